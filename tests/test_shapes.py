import random

import numpy as np
import pytest

from mmexplore.data.shapes import (
    COLORS,
    NEGATIVE_KINDS,
    canonical_caption,
    count_caption,
    hard_negative,
    hard_negatives,
    make_scene,
    object_masks,
    relation_between,
    render_scene,
    scene_captions,
)
from mmexplore.data.shapes_alt import render_scene_alt


def test_scenes_are_deterministic():
    assert make_scene(42) == make_scene(42)
    a = np.asarray(render_scene(make_scene(42), 64))
    b = np.asarray(render_scene(make_scene(42), 64))
    assert np.array_equal(a, b)
    assert make_scene(42) != make_scene(43)


@pytest.mark.parametrize("seed", range(20))
def test_masks_match_objects(seed):
    scene = make_scene(seed)
    size = 128
    masks = object_masks(scene, size)
    img = np.asarray(render_scene(scene, size)).astype(float)
    assert masks.shape == (len(scene.objects), size, size)
    for obj, mask in zip(scene.objects, masks, strict=True):
        ys, xs = np.nonzero(mask)
        assert len(xs) > 20
        # The mask sits where the object is ...
        assert abs(xs.mean() / size - obj.cx) < 0.05 and abs(ys.mean() / size - obj.cy) < 0.06
        # ... and the pixels inside it have the object's colour (nearest palette colour).
        mean_rgb = img[mask].mean(axis=0)
        nearest = min(COLORS, key=lambda c: np.linalg.norm(np.array(COLORS[c]) - mean_rgb))
        assert nearest == obj.color


@pytest.mark.parametrize("seed", range(30))
def test_captions_describe_the_scene(seed):
    scene = make_scene(seed)
    for cap in scene_captions(scene):
        for ph in cap.phrases:
            obj = scene.objects[ph.object_index]
            assert cap.text[ph.char_span[0] : ph.char_span[1]] == ph.text
            assert obj.color in ph.text and (obj.shape in ph.text)
            words = cap.text.split()[ph.word_span[0] : ph.word_span[1]]
            assert " ".join(words).rstrip(",") == ph.text
    canon = canonical_caption(scene)
    # Every object is mentioned exactly once in the canonical caption.
    assert sorted(p.object_index for p in canon.phrases) == list(range(len(scene.objects)))
    if canon.relation is not None:
        i, rel, j = canon.relation
        assert relation_between(scene.objects[i], scene.objects[j]) == rel


def test_relation_geometry():
    scene = make_scene(3, n_objects=2)
    cap = canonical_caption(scene)
    i, rel, j = cap.relation
    a, b = scene.objects[i], scene.objects[j]
    if rel == "left of":
        assert a.cx < b.cx
    elif rel == "right of":
        assert a.cx > b.cx
    elif rel == "above":
        assert a.cy < b.cy
    else:
        assert a.cy > b.cy


@pytest.mark.parametrize("seed", range(40))
def test_hard_negatives_differ_and_are_false(seed):
    scene = make_scene(seed)
    truths = {c.text for c in scene_captions(scene)}
    for cap in (canonical_caption(scene), count_caption(scene)):
        for neg in hard_negatives(cap, random.Random(seed)):
            assert neg.text != cap.text
            assert neg.text not in truths
            assert neg.kind in NEGATIVE_KINDS


def test_specific_negatives():
    scene = make_scene(0)
    cap = canonical_caption(scene)  # "a large red square right of a large yellow triangle, ..."
    swap = hard_negative(cap, "relation_swap", random.Random(0))
    assert swap is not None
    assert swap.text.startswith("a " + cap.phrases[1].text + " " + cap.relation[1])
    # Perturbations that would leave the caption unchanged are dropped.
    single = canonical_caption(make_scene(2))
    assert single.relation is None
    assert hard_negative(single, "relation_swap", random.Random(0)) is None


def test_count_caption_and_count_negative():
    scene = make_scene(0)
    cap = count_caption(scene)
    neg = hard_negative(cap, "count_change", random.Random(1))
    assert neg is not None and neg.text != cap.text
    assert any(w in neg.text.split() for w in ("two", "three", "a"))


def test_alt_renderer_differs_but_keeps_geometry():
    scene = make_scene(5)
    a = np.asarray(render_scene(scene, 128)).astype(float)
    b = np.asarray(render_scene_alt(scene, 128, style_seed=1)).astype(float)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() > 2  # not the same pixels
    mask = object_masks(scene, 128)[0]
    obj = scene.objects[0]
    mean_rgb = b[mask].mean(axis=0)
    nearest = min(COLORS, key=lambda c: np.linalg.norm(np.array(COLORS[c]) - mean_rgb))
    assert nearest == obj.color
