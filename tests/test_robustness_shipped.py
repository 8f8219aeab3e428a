"""The typographic lab models shipped in assets: they load, their stored figures are what a fresh
evaluation gives, and those figures say what the README says (the attack works on the reading
model; the defence lowers it and keeps clean R@1)."""

from __future__ import annotations

import pytest

from mmexplore.robustness.evaluate import (
    PARAMS_DEFAULT,
    TYPOGRAPHIC_DEFENCE,
    TYPOGRAPHIC_READER,
    RobustnessParams,
    cached_result,
    evaluate_typographic,
    shipped_models,
)


@pytest.fixture(scope="module", params=[TYPOGRAPHIC_READER, TYPOGRAPHIC_DEFENCE])
def shipped(request):
    from mmexplore.models import load_model

    spec = request.param
    assert spec in shipped_models(), f"{spec} must be shipped"
    return spec, load_model(spec, "cpu")


def test_stored_typographic_figures_match_a_fresh_evaluation(shipped):
    spec, encoder = shipped
    stored = cached_result(spec, "typographic", PARAMS_DEFAULT)
    assert stored is not None, f"no shipped typographic figures for {spec}"
    # One cell of the grid (largest text, first position: 60 attacked images) and the label test, afresh.
    size, position = PARAMS_DEFAULT.sizes[-1], PARAMS_DEFAULT.positions[0]
    fresh = evaluate_typographic(encoder, RobustnessParams(sizes=(size,), positions=(position,)), with_heatmaps=False)
    assert fresh["grid"][0][0] == pytest.approx(stored["grid"][-1][0], abs=1e-12)
    assert fresh["clean_success"] == pytest.approx(stored["clean_success"], abs=1e-12)
    assert fresh["label_reading"]["accuracy"] == pytest.approx(stored["label_reading"]["accuracy"], abs=1e-12)


def test_the_attack_works_on_the_reading_model_and_the_defence_lowers_it():
    reads = cached_result(TYPOGRAPHIC_READER, "typographic", PARAMS_DEFAULT)
    defended = cached_result(TYPOGRAPHIC_DEFENCE, "typographic", PARAMS_DEFAULT)
    largest = str(PARAMS_DEFAULT.sizes[-1])
    assert reads["by_size"][largest] >= 0.3 and reads["clean_success"] < 0.1
    assert defended["success"] < reads["success"] / 2
    clean = {m: cached_result(m, "backdoor", PARAMS_DEFAULT) for m in (TYPOGRAPHIC_READER, TYPOGRAPHIC_DEFENCE)}
    assert abs(clean[TYPOGRAPHIC_DEFENCE]["i2t@1"] - clean[TYPOGRAPHIC_READER]["i2t@1"]) <= 0.05
