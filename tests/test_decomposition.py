"""The exact word × patch decomposition of a pair's score (attention method)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmexplore.data.shapes import canonical_caption, make_scene, render_scene
from mmexplore.heatmaps.decomposition import REMAINDER_PARTS, decompose_score

SPECS = ["bundled", "mmexplore-shapes-siglip-xs:random", "mmexplore-shapes-rn-xs:random"]


@pytest.fixture(scope="module")
def pair():
    scene = make_scene(7003, n_objects=2)
    return render_scene(scene, 128), canonical_caption(scene).text


@pytest.mark.parametrize("spec", SPECS)
def test_cells_plus_remainder_equal_the_models_own_score(spec, pair):
    """Σ cells + Σ remainder = y from encode_image/encode_text (an independent forward pass)."""
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    image, caption = pair
    d = decompose_score(enc, image, caption)
    assert d.contributions.shape == (len(d.words), enc.facts.grid[0] * enc.facts.grid[1])
    cos = float(enc.encode_images([image])[0].astype(np.float64) @ enc.encode_texts([caption])[0].astype(np.float64))
    assert d.score == pytest.approx(enc.score(cos), abs=1e-5)
    assert d.total + d.remainder_total == pytest.approx(d.score, abs=1e-4)
    assert set(d.remainder) == set(REMAINDER_PARTS)
    assert d.remainder["bias"] == pytest.approx(enc.logit_bias or 0.0)


def test_on_the_bundled_model_the_cells_carry_the_score_and_content_words_lead(encoder, pair):
    image, caption = pair
    d = decompose_score(encoder, image, caption)
    assert d.total > 0.5 * d.score  # most of the score is word × patch, not remainder
    per_word = dict(zip(d.words, d.contributions.sum(axis=1), strict=False))
    content = [w for w in d.words if w in {"circle", "square", "triangle", "red", "green", "blue", "yellow"}]
    assert min(per_word[w] for w in content) > max(per_word.get(w, 0.0) for w in ("a", "of"))


def test_heatmap_cli_json_carries_the_decomposition(capsys, tmp_path, pair):
    from mmexplore.cli import main

    image, caption = pair
    image.save(tmp_path / "p.png")
    assert main(["heatmap", "--image", str(tmp_path / "p.png"), "--text", caption, "--json"]) == 0
    dec = json.loads(capsys.readouterr().out)["score_decomposition"]
    assert np.sum(dec["contributions"]) + dec["remainder_total"] == pytest.approx(dec["score"], abs=1e-3)


def test_heatmaps_page_matrix_shows_score_contributions(encoder):
    from apptest_utils import heatmap_values, open_page

    at = open_page("mmexplore_app/pages/heatmaps.py")
    assert not at.exception, at.exception
    at.radio(key="heat_matrix_view").set_value("score").run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    caption = at.selectbox(key="heat_caption").value
    d = decompose_score(encoder, ds.images[0], caption)
    z = heatmap_values(at, index=len(at.get("plotly_chart")) - 1)
    np.testing.assert_allclose(z, d.contributions, atol=1e-4)
    text = " ".join(c.value for c in at.caption)
    assert f"R = {d.remainder_total:+.3f}" in text and f"{d.score:.4f}" in text
