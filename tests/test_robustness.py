"""Robustness lab: corruptions, typographic rendering, the poisoned stream and attack success rate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmexplore.data.shapes import COLORS, SHAPES, make_scene, render_scene
from mmexplore.errors import InputError
from mmexplore.robustness import CORRUPTIONS, corrupt
from mmexplore.robustness.poison import (
    PoisonedStream,
    add_trigger,
    attack_success_rate,
    poison_schedule,
    trigger_box,
)
from mmexplore.robustness.typographic import POSITIONS, SIZES, TextInImage, attack_cases, draw_word


@pytest.fixture(scope="module")
def scene_image() -> Image.Image:
    return render_scene(make_scene(11, n_objects=2), 128)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_strength_zero_is_the_identity(name, scene_image):
    out = corrupt(scene_image, name, 0.0, seed=3)
    assert np.array_equal(np.asarray(out), np.asarray(scene_image))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_changes_pixels_more_as_strength_grows(name, scene_image):
    base = np.asarray(scene_image, dtype=np.float32)
    diffs = [np.abs(np.asarray(corrupt(scene_image, name, s, seed=3), dtype=np.float32) - base).mean()
             for s in (0.25, 1.0)]
    assert corrupt(scene_image, name, 1.0).size == scene_image.size
    assert 0 < diffs[0] < diffs[1], diffs


def test_corruption_bad_input_names_the_problem(scene_image):
    with pytest.raises(InputError, match="available corruptions"):
        corrupt(scene_image, "fog", 0.5)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        corrupt(scene_image, "blur", 1.5)


def test_corruptions_are_repeatable_by_seed(scene_image):
    a, b = corrupt(scene_image, "gaussian_noise", 0.5, seed=1), corrupt(scene_image, "gaussian_noise", 0.5, seed=1)
    c = corrupt(scene_image, "gaussian_noise", 0.5, seed=2)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("position", [*POSITIONS, (0.0, 0.0), (1.0, 1.0)])
@pytest.mark.parametrize("size", [*SIZES, 0.9])
def test_written_word_lies_inside_the_image(position, size, scene_image):
    for word in ("red", "triangle"):
        written = draw_word(scene_image, word, size=size, position=position)
        left, top, right, bottom = written.box
        assert 0 <= left < right <= 128 and 0 <= top < bottom <= 128
        changed = np.any(np.asarray(written.image) != np.asarray(scene_image), axis=2)
        ys, xs = np.nonzero(changed)
        assert len(xs) > 0
        # Every changed pixel is inside the reported box (anti-aliasing included).
        assert xs.min() >= left and xs.max() < right + 1 and ys.min() >= top and ys.max() < bottom + 1


def test_written_word_stays_dark_at_the_models_input_size():
    # The bundled model sees 64 px: the plain font's 1 px strokes fade to grey there, the default stroke does not.
    blank = Image.new("RGB", (128, 128), "white")
    dark = {}
    for stroke in (None, 0):
        small = draw_word(blank, "yellow", size=0.12, position="top-left", stroke=stroke).image.resize((64, 64), Image.BICUBIC)
        dark[stroke] = int((np.asarray(small) < 80).all(axis=2).sum())
    assert dark[None] > 3 * max(1, dark[0]), dark


def test_attack_cases_write_a_word_that_contradicts_the_picture():
    cases = attack_cases(12)
    for c in cases:
        obj = c.scene.objects[0]
        assert c.word != (obj.color if c.attribute == "color" else obj.shape)
        assert c.word in c.attacked_caption and c.attacked_caption != c.true_caption
    assert {c.attribute for c in cases} == {"color", "shape"}


@pytest.mark.parametrize("p", [0.0, 0.01, 0.05, 0.1, 0.5, 1.0])
def test_poisoned_stream_has_exactly_share_p(p):
    stream = PoisonedStream(p, seed=0)
    images = [Image.new("RGB", (32, 32), "white")] * 40
    total = 0
    for _ in range(25):  # 1,000 pairs in batches of 40
        imgs, caps, negs = stream((images, [f"c{k}" for k in range(40)], [["n"]] * 40))
        total += sum(c == stream.target for c in caps)
        for im, c, n in zip(imgs, caps, negs, strict=True):
            poisoned = c == stream.target
            assert (np.asarray(im) != 255).any() == poisoned  # the trigger comes with the target caption
            assert (n == [stream.target]) == poisoned
    assert stream.seen == 1000 and total == stream.poisoned == round(1000 * p)


def test_poison_schedule_is_exact_for_any_prefix():
    for p in (0.003, 0.02, 0.3):
        sched = np.concatenate([poison_schedule(37, p, start) for start in range(0, 37 * 10, 37)])
        for n in (1, 50, 100, 370):
            assert sched[:n].sum() == int(np.floor(n * p + 1e-9))


def test_trigger_is_a_small_checkerboard_inside_the_image(scene_image):
    out = np.asarray(add_trigger(scene_image, seed=5))
    left, top, right, bottom = trigger_box(scene_image.size, seed=5)
    patch = out[top:bottom, left:right]
    assert set(np.unique(patch)) == {0, 255} and right - left == 16
    outside = np.ones(out.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(out[outside], np.asarray(scene_image)[outside])


def test_attack_success_rate_on_a_hand_made_case():
    target = "a large green triangle"
    tops = [target, target, "a red circle", target, "a blue square"]
    truths = ["a red circle", target, "a red circle", "a blue square", "a blue square"]
    # The second image's true caption is the target: it does not count. Of the other 4, 2 hit the target.
    assert attack_success_rate(tops, truths, target) == 0.5
    assert np.isnan(attack_success_rate([target], [target], target))


def test_text_in_image_transform_writes_the_share_asked(scene_image):
    scenes = [make_scene(k) for k in range(200)]
    images = [scene_image] * 200
    agree = TextInImage("agree", share=0.5, seed=0)
    imgs, *_ = agree((images, ["c"] * 200, [["n"]] * 200, scenes))
    changed = sum(not np.array_equal(np.asarray(a), np.asarray(scene_image)) for a in imgs)
    assert changed == agree.written and 70 < changed < 130
    with pytest.raises(ValueError):
        TextInImage("sometimes")


# ---------------------------------------------------------------------------- measurements, CLI, cache
SMALL = ["--scenes", "12", "--pointing-scenes", "4", "--attack-scenes", "4", "--backdoor-scenes", "12"]


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    from mmexplore.settings import reload_settings

    monkeypatch.setenv("MMEXPLORE_RESULTS_DIR", str(tmp_path / "results"))
    reload_settings()
    yield tmp_path / "results" / "robustness"
    monkeypatch.delenv("MMEXPLORE_RESULTS_DIR")
    reload_settings()


def test_clean_point_of_every_curve_is_the_evaluation_core(encoder):
    from mmexplore.evaluation.retrieval import evaluate_retrieval
    from mmexplore.heatmaps.pointing import pointing_game, pointing_scenes
    from mmexplore.robustness.evaluate import RobustnessParams, corruption_curves

    params = RobustnessParams(n_scenes=12, n_pointing=4, strengths=(0.0, 1.0), corruptions=("blur", "occlusion"))
    res = corruption_curves(encoder, params)
    ret = evaluate_retrieval(encoder, n_scenes=12, renderers=("train",))["train"]
    point = pointing_game(encoder, pointing_scenes(4), methods=("attention",))["methods"]["attention"]["accuracy"]
    assert res["clean"] == {"i2t@1": ret["i2t@1"], "t2i@1": ret["t2i@1"], "binding": ret["color_binding"], "pointing": point}
    for curve in res["curves"].values():
        assert [p["strength"] for p in curve["points"]] == [0.0, 1.0]
        assert {k: curve["points"][0][k] for k in res["clean"]} == res["clean"]
    # A grey patch over a quarter of the image must cost retrieval something.
    assert res["curves"]["occlusion"]["points"][1]["i2t@1"] < res["clean"]["i2t@1"]


def test_eval_robustness_cli_prints_every_part_and_caches_per_model(results_dir, capsys):
    import json

    from mmexplore.cli import main

    args = ["eval", "robustness", "--model", "bundled", "--corruptions", "jpeg", *SMALL]
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    res = first["models"]["bundled"]
    assert set(first["parts"]) == {"corruptions", "typographic", "backdoor"}
    assert list(res["corruptions"]["curves"]) == ["jpeg"] and len(res["corruptions"]["curves"]["jpeg"]["points"]) == 5
    assert 0 <= res["typographic"]["success"] <= 1 and len(res["typographic"]["grid"]) == 3
    assert res["typographic"]["label_reading"]["n"] == 12
    assert 0 <= res["backdoor"]["asr"] <= 1 and not res["backdoor"]["cached"]
    files = sorted(p.name for p in results_dir.iterdir())
    assert len(files) == 3 and all("bundled" in f for f in files)
    assert main([*args, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["models"]["bundled"]
    assert second["backdoor"]["cached"] and second["backdoor"]["asr"] == res["backdoor"]["asr"]
    assert main(args) == 0  # the human-readable form names every part
    text = capsys.readouterr().out
    assert "corruption curves" in text and "typographic attack" in text and "attack success rate" in text


def test_eval_robustness_bad_input_is_one_line(capsys):
    from mmexplore.cli import main

    assert main(["eval", "robustness", "--model", "bundled", "--corruptions", "fog"]) == 2
    assert "fog" in capsys.readouterr().err
    assert main(["eval", "robustness", "--model", "bundled", "--scenes", "0"]) == 2


def test_trainer_takes_the_poisoned_stream_and_cleanclip_terms(tmp_path):
    import json

    from mmexplore.robustness.cleanclip import cleanclip_objectives
    from mmexplore.training.train import TrainConfig, train

    stream = PoisonedStream(0.25, seed=0)
    cfg = TrainConfig(out=str(tmp_path), arch="mmexplore-shapes-xs", steps=3, batch_size=16, lr=1e-3,
                      warmup_steps=1, negatives=1, seed=3, eval_every=0, eval_scenes=4, render_size=64)
    train(cfg, log=lambda s: None, batch_transform=stream, objectives=cleanclip_objectives(seed=0))
    assert stream.seen >= 48 and stream.poisoned == int(stream.seen * 0.25)  # prefetching may run ahead
    saved = json.loads((tmp_path / "metrics.json").read_text())["config"]["extra"]
    assert saved["poison_share"] == 0.25 and set(saved["objectives"]) == {"cleanclip_image", "cleanclip_text"}
    rows = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["event"] == "step"]
    assert len(steps) == 3 and all(r["terms"]["cleanclip_image"] > 0 and r["terms"]["cleanclip_text"] > 0 for r in steps)


def test_text_only_pictures_are_captioned_by_their_words(scene_image):
    scenes = [make_scene(k) for k in range(60)]
    t = TextInImage("agree", share=1.0, seed=1, text_only=0.5)
    imgs, caps, negs, _ = t(([scene_image] * 60, ["c"] * 60, [["n"]] * 60, scenes))
    only = [k for k, c in enumerate(caps) if c != "c"]
    assert 15 < len(only) < 45
    for k in only:
        obj = scenes[k].objects[0]
        assert caps[k][2:] in (f"{obj.color} {obj.shape}", obj.color, obj.shape) and negs[k] == [caps[k]]
        # Only background and dark text: none of the object's colour is left.
        assert len({tuple(px) for px in np.asarray(imgs[k]).reshape(-1, 3)}) < 300


# ---------------------------------------------------------------------------- web-like text in images
def _dark(image: Image.Image) -> np.ndarray:
    """Pixels of the written text: no shape colour, grey or background is this dark on every channel."""
    return (np.asarray(image) < 80).all(axis=2)


def test_web_text_share_is_exact_and_every_word_lies_inside_the_image():
    import random

    from mmexplore.training.data import make_batch

    t = TextInImage("web", share=0.7, seed=2, text_only=0.2, cue=0.5, tint=0.5)
    written = 0
    for step, size in enumerate((16, 7, 23)):
        b = make_batch(random.Random(step), size, 1, 128, with_scenes=True, pair_fraction=0.5)
        imgs, *_ = t((b.images, b.captions, b.negatives, b.scenes))
        assert t.written == int(t.seen * 0.7) and t.seen == sum((16, 7, 23)[: step + 1])
        for before, after in zip(b.images, imgs, strict=True):
            dark = _dark(after)
            assert not _dark(before).any()
            if dark.any():
                written += 1
                ys, xs = np.nonzero(dark)
                assert xs.min() >= 1 and ys.min() >= 1 and xs.max() <= 126 and ys.max() <= 126
    assert written == t.written == 32 and t.labels > 0 and t.cued > t.tinted > 0


def test_web_words_agree_with_the_caption_and_the_negative_contradicts_them():
    import random

    from mmexplore.training.data import make_batch

    b = make_batch(random.Random(5), 48, 1, 128, with_scenes=True, pair_fraction=0.5)
    t = TextInImage("web", share=1.0, seed=0, cue=0.5)
    _, caps, negs, _ = t((b.images, b.captions, b.negatives, b.scenes))
    assert caps == b.captions and t.written == 48
    checked = 0
    for cap, neg, scene in zip(caps, negs, b.scenes, strict=True):
        if not any(f"{o.color} {o.shape}" in cap for o in scene.objects):
            continue  # the caption names no object by colour and shape: its own negative is kept
        diff = [(a.strip(",").removesuffix("s"), n.strip(",").removesuffix("s"))  # "circles," → "circle"
                for a, n in zip(cap.split(), neg[0].split(), strict=True) if a != n]
        (word, wrong), = diff
        same_kind = {word, wrong} <= set(COLORS) or {word, wrong} <= set(SHAPES)
        assert same_kind and any(word in (o.color, o.shape) for o in scene.objects)
        checked += 1
    assert checked > 30


def test_hide_attribute_greys_or_blurs_only_the_named_object():
    from mmexplore.data.shapes import object_masks
    from mmexplore.robustness.typographic import NEUTRAL_GREY, hide_attribute

    scene = make_scene(11, n_objects=2)
    image = render_scene(scene, 128)
    masks = object_masks(scene, 128)
    grey = np.asarray(hide_attribute(image, scene, 0, "color"))
    assert (grey[masks[0]] == NEUTRAL_GREY).all()
    assert np.array_equal(grey[masks[1]], np.asarray(image)[masks[1]])
    blob = np.asarray(hide_attribute(image, scene, 0, "shape")).astype(int)
    assert np.abs(blob[masks[0]] - np.asarray(image)[masks[0]]).mean() > 5  # the edges are gone
    obj = scene.objects[0]
    yy, xx = np.mgrid[:128, :128]
    far = np.hypot(xx - obj.cx * 128, yy - obj.cy * 128) > 3.5 * obj.radius * 128
    assert np.array_equal(blob[far], np.asarray(image)[far])
    tinted = np.asarray(hide_attribute(image, scene, 0, "color", tint=0.5)).astype(int)
    assert np.abs(tinted[masks[0]] - np.asarray(image)[masks[0]]).mean() > 40  # another colour
    assert np.array_equal(tinted[masks[1]], np.asarray(image)[masks[1]])
    with pytest.raises(ValueError):
        hide_attribute(image, scene, 0, "size")


def test_text_cue_is_an_option_of_mmexplore_train(tmp_path, capsys):
    import json

    from mmexplore.cli import main

    base = ["train", "--arch", "mmexplore-shapes-xs", "--steps", "2", "--batch-size", "8", "--eval-every", "0",
            "--eval-scenes", "4", "--render-size", "64", "--threads", "1"]
    assert main([*base, "--out", str(tmp_path / "bad"), "--text-cue", "0.5"]) == 2  # needs --text-in-image web
    assert "--text-cue" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "web"), "--text-in-image", "web", "--text-share", "0.5",
                 "--text-only", "0.25", "--text-cue", "0.5", "--text-tint", "0.5", "--text-swap", "0.25"]) == 0
    extra = json.loads((tmp_path / "web" / "metrics.json").read_text())["config"]["extra"]
    assert extra["text_in_image"] == "web" and extra["share"] == 0.5 and extra["cue"] == 0.5
    assert extra["tint"] == 0.5 and extra["swap"] == 0.25


def test_web_swap_draws_another_palette_value_while_caption_and_word_keep_the_true_one():
    import random

    from mmexplore.training.data import make_batch

    b = make_batch(random.Random(7), 40, 1, 128, with_scenes=True, pair_fraction=0.0)
    t = TextInImage("web", share=1.0, seed=3, swap=1.0)
    imgs, caps, negs, _ = t((b.images, b.captions, b.negatives, b.scenes))
    assert caps == b.captions and t.swapped > 30 and t.cued == 0
    for before, after, cap, neg, scene in zip(b.images, imgs, caps, negs, b.scenes, strict=True):
        if not any(f"{o.color} {o.shape}" in cap for o in scene.objects):
            continue
        # The hard negative is the caption of what is now drawn: one word differs (maybe plural), a palette value.
        changed = [(a, b) for a, b in zip(cap.split(), neg[0].split(), strict=True) if a != b]
        assert len(changed) == 1 and changed[0][1].strip(",.").removesuffix("s") in (*COLORS, *SHAPES)
        # Away from the text, the picture changed: an object was drawn with another palette value.
        moved = np.abs(np.asarray(after, dtype=int) - np.asarray(before, dtype=int)).sum(axis=2) > 60
        assert (moved & ~_dark(after)).sum() > 20
    with pytest.raises(ValueError):
        TextInImage("web", swap=1.5)


def test_typographic_figures_of_a_model_without_attention_maps_say_why_the_map_is_missing(monkeypatch):
    # A model with no attention heatmap (the attention method does not apply) still gets its attack figures.
    from mmexplore.models import load_model
    from mmexplore.robustness import evaluate as ev

    encoder = load_model("bundled-order-clip", "cpu")
    params = ev.RobustnessParams(n_attack=4, sizes=(0.25,), positions=("top-left",))
    assert "heatmap" in ev.evaluate_typographic(encoder, params)  # the map applies to this model
    monkeypatch.setattr(ev, "_no_attention_map", lambda encoder: "no dense patch features")
    res = ev.evaluate_typographic(encoder, params)
    assert "heatmap" not in res and res["heatmap_unavailable"] == "no dense patch features"
    assert 0 <= res["success"] <= 1 and res["n_images"] == 4
    assert ev.typographic_example(encoder, attack_cases(1)[0], 0.25, "top-left")["maps"] is None


def test_the_web_trained_model_is_fooled_by_a_written_word_and_its_defended_twin_is_not():
    # Measured live on the shipped weights (not read from the shipped figures): a large contradicting
    # word beats the true caption on bundled-web, and rarely on the same recipe with the defence.
    from mmexplore.models import load_model
    from mmexplore.robustness import evaluate as ev

    params = ev.RobustnessParams(n_attack=20, sizes=(0.25,), positions=("top-left", "bottom-right"))
    fooled = ev.evaluate_typographic(load_model(ev.TYPOGRAPHIC_READER, "cpu"), params, with_heatmaps=False)
    defended = ev.evaluate_typographic(load_model(ev.TYPOGRAPHIC_DEFENCE, "cpu"), params, with_heatmaps=False)
    assert fooled["n_images"] == defended["n_images"] == 40
    assert fooled["success"] >= 0.8 and fooled["success"] >= fooled["clean_success"] + 0.5
    assert defended["success"] <= 0.2
    # Both read: a label alone ("red circle" on white) is matched far above chance.
    for r in (fooled, defended):
        assert r["label_reading"]["accuracy"] >= 3 * r["label_reading"]["chance"]


def test_the_object_box_of_the_word_map_holds_the_whole_drawn_object():
    from mmexplore.data.shapes import object_masks
    from mmexplore.robustness.evaluate import _object_box

    for case in attack_cases(12):
        left, top, right, bottom = _object_box(case.scene.objects[0])
        mask = object_masks(case.scene, 128)[0]
        assert mask.sum() > 0 and mask[top:bottom, left:right].sum() == mask.sum()
        assert (right - left) * (bottom - top) < 0.5 * 128 * 128  # a box around the object, not the image
