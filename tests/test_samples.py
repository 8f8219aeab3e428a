"""Sample sets (mmexplore.data.samples): shapes scenes with hard negatives, and scikit-image photos."""

from __future__ import annotations

import numpy as np
import pytest

from mmexplore.data.samples import PHOTO_CAPTIONS, PHOTO_DISTRACTORS, photo_samples, shapes_samples
from mmexplore.data.shapes import HELD_OUT_SEED_START, canonical_caption, scene_captions


def test_shapes_samples_structure():
    s = shapes_samples(n=6, size=96)
    assert len(s.images) == len(s.names) == len(s.scenes) == 6
    assert all(im.size == (96, 96) and im.mode == "RGB" for im in s.images)
    assert s.pairs.shape == (6, len(s.texts)) and s.pairs.dtype == bool
    assert len(s.texts) == len(set(s.texts)) == len(s.text_kinds)
    # Image k's one true caption is column k, and it is that scene's canonical caption.
    assert np.array_equal(s.pairs[:, :6], np.eye(6, dtype=bool))
    assert s.texts[:6] == [canonical_caption(sc).text for sc in s.scenes]
    # Samples are held-out scenes: never used in training.
    assert all(sc.seed >= HELD_OUT_SEED_START for sc in s.scenes)


def test_shapes_negatives_are_false_for_every_image():
    s = shapes_samples(n=8)
    neg_cols = [j for j, k in enumerate(s.text_kinds) if k.startswith("negative:")]
    assert len(neg_cols) >= 4  # most scenes have an applicable perturbation
    assert not s.pairs[:, neg_cols].any()
    true_texts = {c.text for sc in s.scenes for c in scene_captions(sc)}
    true_texts |= {f"a {o.phrase}" for sc in s.scenes for o in sc.objects}
    for j in neg_cols:
        assert s.texts[j] not in true_texts
    kinds = {s.text_kinds[j] for j in neg_cols}
    assert len(kinds) >= 2  # a mix of perturbations, not one kind only


def test_shapes_samples_deterministic_and_seeded():
    a, b = shapes_samples(n=3), shapes_samples(n=3)
    assert a.texts == b.texts
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.images, b.images, strict=True))
    c = shapes_samples(n=3, seed=HELD_OUT_SEED_START + 123_456)
    assert c.texts != a.texts


def test_shapes_samples_without_negatives_and_bad_n():
    s = shapes_samples(n=4, negatives=False)
    assert s.pairs.shape == (4, 4) and np.array_equal(s.pairs, np.eye(4, dtype=bool))
    with pytest.raises(ValueError):
        shapes_samples(n=0)


def test_photo_samples():
    p = photo_samples()
    assert p.names == list(PHOTO_CAPTIONS)
    assert all(im.mode == "RGB" and max(im.size) <= 384 for im in p.images)
    assert p.pairs.shape == (len(p.images), len(p.texts))
    assert (p.pairs.sum(axis=1) >= 1).all()  # every photo has a caption
    assert not p.pairs[:, -len(PHOTO_DISTRACTORS):].any()  # distractors match nothing
    # Grey-scale originals (camera, coins) come out as 3-channel images.
    assert np.asarray(p.images[p.names.index("camera")]).shape[2] == 3


def test_photo_samples_subset_and_unknown():
    p = photo_samples(("chelsea", "rocket"), max_side=64)
    assert p.names == ["chelsea", "rocket"] and max(p.images[0].size) == 64
    with pytest.raises(ValueError, match="unknown photo sample"):
        photo_samples(("nope",))
