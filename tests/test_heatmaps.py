"""Heatmaps: word alignment, map shapes and geometry, both methods, the pointing game, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from mmexplore.heatmaps import HeatmapResult, align_words, crop_box, find_phrase, overlay, overlay_grid

# The bundled model unless $MMEXPLORE_TEST_MODEL names another (as tests/apptest_utils.py does).
MODEL = os.environ.get("MMEXPLORE_TEST_MODEL", "bundled")


@pytest.fixture(scope="module")
def encoder():
    from mmexplore.models import load_model

    return load_model(MODEL, "cpu")


@pytest.fixture(scope="module")
def compact_tokenizer():
    from mmexplore.training.train import build_tokenizer

    return build_tokenizer(32)


@pytest.fixture(scope="module")
def clip_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=77)


# --------------------------------------------------------------------------- words <-> tokens


@pytest.mark.parametrize("which", ["compact_tokenizer", "clip_tokenizer"])
def test_punctuation_and_repeated_words(which, request):
    tok = request.getfixturevalue(which)
    al = align_words(tok, ["A red circle, left of a RED square."])[0]
    assert al.words == ["a", "red", "circle", ",", "left", "of", "a", "red", "square", "."]
    # Repeated words keep their own positions (start token at 0, so word k sits at k + 1 here).
    assert al.token_positions[1] == [2] and al.token_positions[7] == [8]
    assert al.eot_position == len(al.words) + 1
    assert not al.truncated and al.note == ""


def test_multi_piece_words_merge(clip_tokenizer):
    al = align_words(clip_tokenizer, ["an unbelievably blue-ish héllo"])[0]
    assert al.words == ["an", "unbelievably", "blue", "-", "ish", "héllo"]
    assert any(len(p) > 1 for p in al.token_positions)  # some word is several BPE pieces
    flat = [p for pos in al.token_positions for p in pos]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)
    assert 0 not in flat and al.eot_position not in flat  # special tokens belong to no word


def test_long_caption_truncated_with_note(compact_tokenizer):
    text = " ".join(["a small red circle left of a large blue square"] * 6)
    al = align_words(compact_tokenizer, [text])[0]
    assert al.truncated
    assert len(al.words) == 30  # context 32 minus start and end tokens (every word here is one piece)
    assert al.eot_position == 31
    assert "truncated" in al.note and "32" in al.note
    assert al.dropped_words == len(text.split()) - 30


def test_find_phrase(compact_tokenizer):
    al = align_words(compact_tokenizer, ["a small red circle left of a large Blue square"])[0]
    assert find_phrase(al, "large blue square", compact_tokenizer) == [7, 8, 9]
    assert find_phrase(al, "green triangle", compact_tokenizer) is None


# --------------------------------------------------------------------------- geometry


def test_crop_box_and_peak_on_a_wide_image():
    assert crop_box(200, 100, "shortest") == (50.0, 0.0, 150.0, 100.0)
    assert crop_box(200, 100, "squash") == (0.0, 0.0, 200.0, 100.0)
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, 3, 0] = 1.0  # bottom-left patch of the centre crop
    res = HeatmapResult("x", ["x"], maps, "attention", (200, 100), crop_box(200, 100))
    assert res.peak(0) == (50 + 12.5, 87.5)
    up = res.upsampled(0)
    assert up.shape == (100, 200)
    assert up[:, :50].sum() == 0 and up[:, 150:].sum() == 0  # outside the model's view
    assert up.sum() == pytest.approx(1.0, abs=1e-4)
    back = HeatmapResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.words == res.words and np.allclose(back.maps, res.maps) and back.peak(0) == res.peak(0)


def test_overlay_and_grid_sizes():
    maps = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    res = HeatmapResult("a b", ["a", "b"], maps / maps.sum((1, 2), keepdims=True), "attention", (96, 64), crop_box(96, 64))
    img = Image.new("RGB", (96, 64), (200, 200, 200))
    ov = overlay(img, res, 1, cmap="viridis", opacity=0.6, smooth=1.0)
    assert ov.size == (96, 64) and ov.mode == "RGB"
    assert np.asarray(ov).std() > 0  # the map shows
    assert np.array_equal(np.asarray(overlay(img, res, 0, opacity=0.0)), np.asarray(img))
    grid = overlay_grid(img, res, ncols=3, cell=50)
    assert grid.size == (150, 66)


# --------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def scene_pair(shapes_scenes):
    from mmexplore.data.shapes import canonical_caption, render_scene

    scene = shapes_scenes[0]
    cap = canonical_caption(scene)
    return scene, render_scene(scene, 128), cap


def test_unrolled_forward_matches_encode_image(encoder, scene_pair):
    import torch

    from mmexplore.heatmaps.features import visual_pass

    px = encoder.preprocess(scene_pair[1])[None].to(encoder.device)
    with torch.no_grad():
        ref = encoder.model.encode_image(px)
        mine = visual_pass(encoder.model.visual, px, attn_from=0)
    assert torch.allclose(ref, mine.pooled, atol=1e-5)
    assert len(mine.attentions) == len(encoder.model.visual.transformer.resblocks)


@pytest.mark.parametrize("method", ["attention", "relevancy"])
def test_map_shapes_both_methods(encoder, scene_pair, method):
    from mmexplore.heatmaps import compute_heatmaps

    scene, image, cap = scene_pair
    wide = Image.new("RGB", (192, 128), scene.background)
    wide.paste(image, (32, 0))
    phrases = [p.text for p in cap.phrases]
    res = compute_heatmaps(encoder, [image, wide], [cap.text, cap.text], phrases=[phrases, phrases], method=method)
    grid = tuple(encoder.model.visual.grid_size)
    for r in res:
        assert r.words == cap.text.lower().replace(",", " ,").split()
        assert r.maps.shape == (len(r.words), *grid)
        assert r.phrase_maps.shape == (len(phrases), *grid)
        assert np.allclose(r.maps.sum(axis=(1, 2)), 1, atol=1e-4) and (r.maps >= 0).all()
        assert r.upsampled(0).shape == (r.image_size[1], r.image_size[0])
    # The wide image is the square one padded left and right: the centre crop sees (nearly, after
    # resampling) the same pixels, and peaks shift by the padding.
    assert res[1].box == (32.0, 0.0, 160.0, 128.0)
    assert np.allclose(res[0].maps, res[1].maps, atol=2e-3)
    alone = compute_heatmaps(encoder, [wide], [cap.text], phrases=[phrases], method=method)[0]
    assert np.allclose(alone.maps, res[1].maps, atol=1e-5)  # batching does not mix pairs
    assert np.allclose(alone.phrase_maps, res[1].phrase_maps, atol=1e-5)
    x0, y0 = res[0].peak(phrases[0])
    x1, y1 = res[1].peak(phrases[0])
    assert abs(x1 - 32 - x0) <= 16 and abs(y1 - y0) <= 16  # within one patch (16 px here)


def test_pointing_game_beats_random_baseline(encoder):
    from mmexplore.heatmaps import pointing_game, pointing_scenes

    report = pointing_game(encoder, pointing_scenes(10, seed_offset=9_000))
    assert report["n_phrases"] >= 20
    best = max(m["accuracy"] for m in report["methods"].values())
    assert best >= report["baseline"] + 0.35  # the pixel baseline is ~0.05
    assert 0 < report["ceiling"] <= 1
    for m in report["methods"].values():
        assert m["energy"] > report["baseline"]
        assert m["accuracy"] <= report["ceiling"]  # a hit needs a patch centre inside the mask


def test_bundled_model_points_at_the_named_object(encoder):
    """The shipped model (trained with the dense term) names the right object, not just any object."""
    from mmexplore.heatmaps import pointing_game, pointing_scenes

    report = pointing_game(encoder, pointing_scenes(10, seed_offset=9_000), methods=("attention",))
    assert report["methods"]["attention"]["accuracy"] >= report["object_baseline"] + 0.35


def test_without_the_dense_term_attention_does_not_localise():
    """The contrast the README explains: the same recipe without the dense term maps the background."""
    from mmexplore.heatmaps import pointing_game, pointing_scenes
    from mmexplore.models import load_model

    report = pointing_game(load_model("bundled-nodense", "cpu"), pointing_scenes(10, seed_offset=9_000), methods=("attention",))
    assert report["methods"]["attention"]["accuracy"] < report["object_baseline"]


@pytest.mark.parametrize("method", ["attention", "relevancy"])
def test_the_word_triangle_lights_up_the_triangle(encoder, method):
    """The issue's check, on a fixed held-out scene: a small red circle left of a large yellow triangle."""
    from mmexplore.data.shapes import Scene, ShapeObject, object_masks, render_scene
    from mmexplore.heatmaps import compute_heatmaps

    scene = Scene(objects=(ShapeObject("circle", "red", "small", 0.25, 0.45, 0.09),
                           ShapeObject("triangle", "yellow", "large", 0.7, 0.55, 0.17)))
    image = render_scene(scene, 128)
    text = "a small red circle left of a large yellow triangle"
    res = compute_heatmaps(encoder, [image], [text], method=method)[0]
    x, y = res.peak(res.words.index("triangle"))
    masks = object_masks(scene, 128)
    assert masks[1][int(y), int(x)], (method, x, y)
    up = res.upsampled(res.words.index("triangle"))
    assert up[masks[1]].sum() > up[masks[0]].sum()  # more of the map on the triangle than on the circle


# --------------------------------------------------------------------------- CLI


def _run(capsys, *argv):
    from mmexplore.cli import main

    code = main([*argv, "--model", MODEL])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_heatmap_json_and_files(capsys, tmp_path, scene_pair):
    _, image, cap = scene_pair
    path = tmp_path / "scene.png"
    image.save(path)
    phrase = cap.phrases[0].text
    code, out, _ = _run(capsys, "heatmap", "--image", str(path), "--text", cap.text, "--phrase", phrase,
                        "--device", "cpu", "--out", str(tmp_path / "o"), "--json")
    assert code == 0
    d = json.loads(out)
    assert len(d["maps"]) == len(d["words"]) and np.asarray(d["maps"]).shape[1:] == (8, 8)
    assert len(d["files"]) == len(d["words"]) + 2 and all((tmp_path / "o" / f).exists() for f in d["files"])
    assert 0 <= d["peak"][0] < 128 and 0 <= d["peak"][1] < 128


def test_cli_heatmap_pairs(capsys, tmp_path, scene_pair):
    _, image, cap = scene_pair
    image.save(tmp_path / "a.png")
    rows = [{"image": "a.png", "text": cap.text, "phrase": cap.phrases[0].text}, {"image": "a.png", "text": cap.text}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, out, _ = _run(capsys, "heatmap", "--pairs", str(tmp_path / "p.jsonl"), "--method", "relevancy",
                        "--device", "cpu", "--json")
    assert code == 0
    res = json.loads(out)["results"]
    assert [r["phrase"] for r in res] == [cap.phrases[0].text, cap.text]
    assert all(len(r["peak"]) == 2 for r in res)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["heatmap", "--image", "missing.png", "--text", "a red circle"], "missing.png"),
        (["heatmap", "--image", "IMG", "--text", "a circle", "--method", "saliency"], "saliency"),
        (["heatmap", "--image", "IMG", "--text", "a circle", "--method", "gradcam"], "'gradcam' does not apply"),
        (["heatmap", "--image", "IMG", "--text", "   "], "empty"),
        (["heatmap", "--text", "a circle"], "--image"),
        (["eval", "pointing", "--scenes", "0"], "--scenes"),
    ],
)
def test_cli_bad_input_exits_2(capsys, tmp_path, argv, needle):
    Image.new("RGB", (32, 32)).save(tmp_path / "i.png")
    argv = [str(tmp_path / "i.png") if a == "IMG" else a for a in argv]
    code, out, err = _run(capsys, *argv, "--device", "cpu")
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


def test_check_peak_and_objects_named(encoder):
    from mmexplore.data.shapes import Scene, ShapeObject, object_masks, objects_named, render_scene
    from mmexplore.heatmaps import compute_heatmaps
    from mmexplore.heatmaps.pointing import check_peak

    scene = Scene(objects=(ShapeObject("circle", "red", "small", 0.25, 0.45, 0.09),
                           ShapeObject("triangle", "yellow", "large", 0.7, 0.55, 0.17)))
    assert objects_named(scene, "the Triangle") == [1] and objects_named(scene, "red") == [0]
    assert objects_named(scene, "blue") == [] and objects_named(scene, "the one on the left") == []
    res = compute_heatmaps(encoder, [render_scene(scene, 128)], ["a large yellow triangle"], phrases=["triangle"])[0]
    masks = object_masks(scene, 128)
    hit = check_peak(res, "triangle", masks[1])
    assert hit["inside"] and hit["reachable"] and hit["patch_overlap"] > 0.5
    # A 4×4-pixel mask between patch centres (16 px apart here) cannot be hit by any peak.
    tiny = np.zeros((128, 128), bool)
    x, y = (int(v) for v in hit["peak"])
    tiny[y + 2 : y + 6, x + 2 : x + 6] = True
    near = check_peak(res, "triangle", tiny)
    assert not near["inside"] and not near["reachable"] and 0 < near["patch_overlap"] < 0.1
    far = check_peak(res, "triangle", masks[0])
    assert not far["inside"] and far["patch_overlap"] == 0
