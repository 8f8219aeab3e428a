"""Training-time variation (issue 15, item 3): ``--augment`` and ``--train-renderers``.

An augmentation must keep every caption true (centres, size classes, colour names, counts) and "none"
must leave the drawing untouched; several training renderers must each draw part of a batch, and the
held-out sketch renderer must never be trainable.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from test_shapes_sketch import HUES, hue_names

from mmexplore.data.renderers import draw_scene
from mmexplore.data.shapes import (
    HELD_OUT_SEED_START,
    SIZES,
    make_scene,
    object_masks,
    relation_between,
    render_scene,
    scene_captions,
)
from mmexplore.errors import InputError
from mmexplore.training.augment import AUGMENTATIONS, get_augmentation, object_mask
from mmexplore.training.data import ShapesStream, make_drawer

SCENES = [make_scene(seed) for seed in range(60)]


def test_none_is_the_identity_and_the_default_stream_is_unchanged():
    aug = get_augmentation("none")
    for scene in SCENES[:5]:
        img = render_scene(scene, 64)
        assert aug.scene(scene, random.Random(1)) is scene
        assert aug.image(img, random.Random(1)).tobytes() == img.tobytes()
    # The default stream draws with the training renderer exactly as before the option existed.
    batch = ShapesStream(seed=2, batch_size=10, negatives=1, render_size=48, with_scenes=True)(3)
    assert all(img.tobytes() == render_scene(s, 48).tobytes() for img, s in zip(batch.images, batch.scenes, strict=True))


def test_style_keeps_every_caption_true():
    aug = get_augmentation("style")
    changed = 0
    for scene in SCENES:
        rng = random.Random(scene.seed)
        drawn = aug.scene(scene, rng)
        assert [c.text for c in scene_captions(drawn)] == [c.text for c in scene_captions(scene)]
        for a, b in zip(scene.objects, drawn.objects, strict=True):
            assert (a.cx, a.cy, a.shape, a.color, a.size) == (b.cx, b.cy, b.shape, b.color, b.size)
            lo, hi = SIZES[b.size]
            assert lo <= b.radius <= hi
        for i, a in enumerate(drawn.objects):
            for j, b in enumerate(drawn.objects):
                if i != j:
                    assert relation_between(a, b) == relation_between(scene.objects[i], scene.objects[j])
        # The drawing keeps each object's colour name where the object is.
        img = aug.image(render_scene(drawn, 96), rng)
        names, masks = hue_names(np.asarray(img)), object_masks(drawn, 96)
        for obj, mask in zip(drawn.objects, masks, strict=True):
            votes = {c: int((names[mask] == c).sum()) for c in HUES}
            assert max(votes, key=votes.get) == obj.color, (scene.seed, obj, votes)
        changed += np.abs(np.asarray(img, float) - np.asarray(render_scene(scene, 96), float)).mean() > 1
    assert changed >= 0.8 * len(SCENES)  # it does vary the drawings


def test_object_mask_finds_objects_on_any_trainable_renderer():
    for scene in SCENES[:10]:
        for name in ("train", "alt"):
            found = object_mask(np.asarray(draw_scene(scene, name, 96)))
            true = object_masks(scene, 96).any(0)
            assert (found & true).sum() >= 0.8 * true.sum(), (scene.seed, name)


def test_train_renderers_mix_within_a_batch_and_sketch_is_refused():
    stream = ShapesStream(seed=5, batch_size=24, negatives=1, render_size=64, with_scenes=True,
                          renderers=("train", "alt"), augment="none")
    batch = stream(0)
    same = [img.tobytes() == render_scene(s, 64).tobytes() for img, s in zip(batch.images, batch.scenes, strict=True)]
    assert 0 < sum(same) < len(same)  # some drawn by the training renderer, the others by alt
    again = stream(0)
    assert [i.tobytes() for i in again.images] == [i.tobytes() for i in batch.images]  # deterministic
    # Drawing never changes which scenes and captions a step draws.
    plain = ShapesStream(seed=5, batch_size=24, negatives=1, render_size=64, with_scenes=True)(0)
    assert plain.captions == batch.captions and plain.negatives == batch.negatives
    with pytest.raises(InputError, match="held-out"):
        make_drawer(64, ("train", "sketch"))
    with pytest.raises(InputError, match="augmentation"):
        make_drawer(64, ("train",), "cutout")
    with pytest.raises(InputError, match="empty"):
        make_drawer(64, ())
    assert list(AUGMENTATIONS) == ["none", "style"]


def test_train_cli_options_reach_the_config(tmp_path, monkeypatch, capsys):
    import json

    from mmexplore.cli import main
    from mmexplore.settings import reload_settings

    monkeypatch.setenv("MMEXPLORE_RUNS_DIR", str(tmp_path))
    reload_settings()
    try:
        argv = ["train", "--arch", "mmexplore-shapes-xs", "--steps", "1", "--batch-size", "6", "--render-size", "32",
                "--eval-every", "0", "--eval-scenes", "2", "--device", "cpu", "--name", "aug", "--augment", "style",
                "--train-renderers", "train", "alt", "--json"]
        assert main(argv) == 0
        capsys.readouterr()
        run = json.loads((tmp_path / "aug" / "run.json").read_text())
        assert run["config"]["augment"] == "style" and run["config"]["train_renderers"] == ["train", "alt"]
        assert main(["train", "--train-renderers", "sketch", "--steps", "1", "--name", "bad"]) == 2
        assert "held-out" in capsys.readouterr().err
        assert main(["train", "--augment", "cutout", "--steps", "1"]) == 2
    finally:
        monkeypatch.delenv("MMEXPLORE_RUNS_DIR")
        reload_settings()


def test_held_out_scenes_are_untouched_by_training_options():
    """The stream draws training seeds only, whatever it draws them with."""
    batch = ShapesStream(seed=1, batch_size=8, negatives=1, render_size=32, with_scenes=True,
                         renderers=("alt",), augment="style")(2)
    assert all(s.seed < HELD_OUT_SEED_START for s in batch.scenes)
    assert all(img.size == (32, 32) for img in batch.images)
