"""Conformance matrix: every page and every model-using CLI command on one small random-weight model
of each family (CLIP ViT, SigLIP-style ViT, ResNet CLIP), offline, with the model's facts asserted.

The README's family × page table is what these tests check. Not covered here: ``train`` (it trains the
shapes architectures with their own InfoNCE recipe), ``embed`` (Ray; tested in test_embed.py with the
bundled model) and ``eval relation`` (calibrated for the bundled model; minutes).
"""

from __future__ import annotations

import pytest
from apptest_utils import PAGES, open_page
from clirun import run_json

from mmexplore.cli import main

CLIP_VIT = "mmexplore-shapes-xs:random"
SIGLIP_VIT = "mmexplore-shapes-siglip-xs:random"
RESNET = "mmexplore-shapes-rn-xs:random"
FAMILIES = {CLIP_VIT: ("clip-vit", "softmax"), SIGLIP_VIT: ("siglip-vit", "sigmoid"), RESNET: ("clip-resnet", "softmax")}
HEATMAP_METHODS = {CLIP_VIT: ["attention", "relevancy"], SIGLIP_VIT: ["attention"], RESNET: ["attention", "gradcam"]}
# The CLIP ViT family runs every page and command in the default suite already (the bundled model is
# one); its random-weight stand-in joins the matrix under -m slow, keeping the default suite short.
SPECS = [pytest.param(CLIP_VIT, marks=pytest.mark.slow), SIGLIP_VIT, RESNET]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Four held-out shapes scenes written as files, with their pairs table (``mmexplore samples``)."""
    out = tmp_path_factory.mktemp("conf")
    assert main(["samples", "--out", str(out), "--n", "4", "--size", "96", "--json"]) == 0
    rows = (out / "pairs.csv").read_text().strip().splitlines()[1:]
    images = sorted(str(p) for p in out.glob("*.png"))
    return out, images, rows


@pytest.mark.parametrize("spec", SPECS)
def test_every_cli_command_on_every_family(capsys, samples, spec, tmp_path):
    folder, images, _ = samples
    family, rule = FAMILIES[spec]
    m = ["--model", spec, "--device", "cpu"]
    info = run_json(capsys, "info", *m)
    assert (info["facts"]["family"], info["facts"]["scoring"]) == (family, rule)
    assert [k for k, v in info["heatmap_methods"].items() if v["applies"]] == HEATMAP_METHODS[spec]

    sim = run_json(capsys, "similarity", "--captions", str(folder / "pairs.csv"), *m)
    assert sim["rule"] == rule and sim["loss"] is not None and sim["recall"]["i2t@1"] is not None

    text = "a red circle"
    for method in HEATMAP_METHODS[spec]:
        hm = run_json(capsys, "heatmap", "--image", images[0], "--text", text, "--method", method, *m)
        assert hm["method"] == method and hm["grid"] == info["facts"]["grid"] and len(hm["maps"]) == 3
        assert hm["word_attribution"]["words"] == ["a", "red", "circle"]
        if method == "attention":
            dec = hm["score_decomposition"]
            assert abs(sum(map(sum, dec["contributions"])) + dec["remainder_total"] - dec["score"]) < 1e-3

    texts = ["a red circle", "a blue square", "a green triangle", "a yellow circle"]
    proj = run_json(capsys, "project", "--images", *images, "--texts", *texts, "--method", "pca", *m)
    assert len(proj["points"]) == 8 and "modality_gap" in proj
    cca = run_json(capsys, "cca", "--images", *images, "--texts", *texts, "--no-retrieval", *m)
    assert len(cca["correlations"]) >= 1
    rel = run_json(capsys, "relation", "--image", images[0], "--text", text, *m)
    assert rel["label"] and set(rel) >= {"cmi", "sc", "stat", "probabilities"}
    run_json(capsys, "index", "build", str(folder), "--index", str(tmp_path / "ix"), *m)
    found = run_json(capsys, "search", "--index", str(tmp_path / "ix"), "--text", text, "--k", "2", *m)
    assert len(found["results"]) == 2
    probe = run_json(capsys, "probe", "--image", images[0], "--text", "a small red circle left of a blue square", *m)
    assert probe
    point = run_json(capsys, "eval", "pointing", "--scenes", "2", *m)
    assert set(point["pointing"]["methods"]) == set(HEATMAP_METHODS[spec])
    ret = run_json(capsys, "eval", "retrieval", "--scenes", "4", "--renderer", "train", *m)
    assert ret["retrieval"]
    comp = run_json(capsys, "eval", "compositional", "--scenes", "4", "--renderer", "train", *m)
    assert comp


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_every_family(page, spec):
    at = open_page(page, n=4, model=spec)
    assert not at.exception, f"{page} on {spec}: {at.exception}"
    assert not at.error, f"{page} on {spec}: {[e.value for e in at.error]}"
    family, _ = FAMILIES[spec]
    from mmexplore.models.facts import family_label

    assert any(family_label(family) in str(c.value) for c in at.sidebar.caption)  # the facts line
