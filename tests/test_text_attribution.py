"""Text-side attribution: which words of a caption drive the image–caption score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmexplore.data.shapes import canonical_caption, make_scene, render_scene
from mmexplore.errors import InputError
from mmexplore.heatmaps.text_attribution import word_attribution

COLOURS = {"red", "green", "blue", "yellow"}


def _one_object_scenes(n: int, size: int = 64):
    out = []
    for s in range(n):
        scene = make_scene(7000 + s, n_objects=1)
        out.append((render_scene(scene, size), canonical_caption(scene).text))
    return out


def test_leave_one_out_equals_direct_recomputation(encoder):
    image, caption = _one_object_scenes(1)[0]
    attr = word_attribution(encoder, image, caption, method="leave_one_out")
    img = encoder.encode_images([image], use_cache=False)[0]
    full = encoder.score(float(encoder.encode_texts([caption], use_cache=False)[0] @ img))
    assert attr.score == pytest.approx(full, abs=1e-4)
    for k, word in enumerate(attr.words):
        without = " ".join(w for j, w in enumerate(attr.words) if j != k)
        direct = full - encoder.score(float(encoder.encode_texts([without], use_cache=False)[0] @ img))
        assert attr.scores[k] == pytest.approx(direct, abs=1e-4), word


@pytest.mark.parametrize("method", ["grad_x_input", "leave_one_out"])
def test_colour_word_of_the_drawn_object_beats_the_filler_word(encoder, method):
    """On one-object shapes scenes, the object's colour word drives the score more than "a"."""
    wins = []
    for image, caption in _one_object_scenes(12):
        attr = word_attribution(encoder, image, caption, method=method)
        colour = next(w for w in attr.words if w in COLOURS)
        wins.append(attr.scores[attr.words.index(colour)] > attr.scores[attr.words.index("a")])
    # Leave-one-out is exact and wins on every scene; gradient × input is a noisier local estimate.
    assert np.mean(wins) >= (1.0 if method == "leave_one_out" else 0.75), wins


def test_gradient_x_input_matches_a_finite_difference(encoder):
    """⟨e, ∇y⟩ is the derivative of y(α·e) at α = 1 along the word's own embedding."""
    import torch

    from mmexplore.heatmaps.features import encode_text_from_embeddings

    image, caption = _one_object_scenes(1)[0]
    attr = word_attribution(encoder, image, caption, method="grad_x_input")
    from mmexplore.heatmaps.words import align_words

    positions = align_words(encoder.tokenizer, [caption])[0].token_positions
    img = torch.as_tensor(encoder.encode_images([image], use_cache=False)[0])
    ids = encoder.tokenizer([caption])
    base = encoder.model.token_embedding(ids).detach()

    def y(k: int, alpha: float) -> float:
        emb = base.clone()
        emb[0, positions[k]] *= alpha
        with torch.no_grad():
            _, pooled = encode_text_from_embeddings(encoder.model, ids, emb)
        return float(encoder.score(torch.nn.functional.cosine_similarity(pooled, img[None])[0]))

    h = 1e-3
    for k in range(len(attr.words)):
        fd = (y(k, 1 + h) - y(k, 1 - h)) / (2 * h)
        assert attr.scores[k] == pytest.approx(fd, abs=2e-2 + 2e-2 * abs(fd))


@pytest.mark.parametrize("spec", ["mmexplore-shapes-siglip-xs:random", "mmexplore-shapes-rn-xs:random"])
def test_every_family_and_its_own_score(spec):
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    image, caption = _one_object_scenes(1)[0]
    for method in ("grad_x_input", "leave_one_out"):
        attr = word_attribution(enc, image, caption, method=method)
        assert attr.words == caption.split() and attr.scores.shape == (len(attr.words),)
        assert np.isfinite(attr.scores).all() and attr.rule == enc.facts.scoring
        cos = float(enc.encode_images([image])[0] @ enc.encode_texts([caption])[0])
        assert attr.score == pytest.approx(enc.score(cos), abs=1e-3)


def test_bad_input(encoder):
    image, _ = _one_object_scenes(1)[0]
    with pytest.raises(InputError, match="empty caption"):
        word_attribution(encoder, image, "  ")
    with pytest.raises(InputError, match="available methods"):
        word_attribution(encoder, image, "a red circle", method="saliency")


def test_heatmap_cli_json_has_word_attribution(capsys, tmp_path, encoder):
    from mmexplore.cli import main

    image, caption = _one_object_scenes(1)[0]
    path = tmp_path / "scene.png"
    image.save(path)
    for method in ("leave_one_out", "grad_x_input"):
        assert main(["heatmap", "--image", str(path), "--text", caption, "--text-attribution", method, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        wa = data["word_attribution"]
        assert wa["method"] == method and wa["words"] == data["words"]
        expected = word_attribution(encoder, image, caption, method=method)
        np.testing.assert_allclose(wa["scores"], expected.scores, atol=1e-5)
    assert main(["heatmap", "--image", str(path), "--text", caption, "--text-attribution", "none", "--json"]) == 0
    assert "word_attribution" not in json.loads(capsys.readouterr().out)


def _highlighted(at) -> list[tuple[str, float]]:
    """(word, value) of every highlighted word on the page (the spans' text and tooltip)."""
    import re

    out = []
    for md in at.markdown:
        for title, word in re.findall(r'<span class="mmx-word" title="([-+0-9.]+)"[^>]*>([^<]*)</span>', str(md.value)):
            out.append((word, float(title)))
    return out


@pytest.mark.parametrize(("page", "prefix", "caption_key"), [
    ("mmexplore_app/pages/heatmaps.py", "heat", "heat_caption"),
    ("mmexplore_app/pages/probes.py", "probe", "probe_caption"),
])
def test_pages_highlight_the_words_that_drive_the_score(encoder, page, prefix, caption_key):
    from apptest_utils import open_page

    at = open_page(page)
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    caption = at.selectbox(key=caption_key).value
    radio = at.radio(key=f"{prefix}_text_method")
    assert list(radio.options) == ["gradient × input", "leave one word out"]
    for method in ("grad_x_input", "leave_one_out"):
        radio.set_value(method).run()
        assert not at.exception, at.exception
        expected = word_attribution(encoder, ds.images[0], caption, method=method)
        shown = _highlighted(at)
        assert [w for w, _ in shown] == expected.words
        np.testing.assert_allclose([v for _, v in shown], expected.scores, atol=1e-3)
        radio = at.radio(key=f"{prefix}_text_method")
