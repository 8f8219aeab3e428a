"""The typographic lab's shipped models load, and their stored figures are what a fresh evaluation gives
(one grid cell and the label test; fast)."""

from __future__ import annotations

import pytest

from mmexplore.robustness.evaluate import (
    PARAMS_DEFAULT,
    TYPOGRAPHIC_MODELS,
    RobustnessParams,
    cached_result,
    evaluate_typographic,
    shipped_models,
)


@pytest.mark.parametrize("spec", [m for m in TYPOGRAPHIC_MODELS if m in shipped_models()])
def test_stored_typographic_figures_match_a_fresh_evaluation(spec):
    from mmexplore.models import load_model

    stored = cached_result(spec, "typographic", PARAMS_DEFAULT)
    assert stored is not None, f"no shipped typographic figures for {spec}"
    encoder = load_model(spec, "cpu")
    # The largest text at the first position (60 attacked images) and the label test, afresh.
    size, position = PARAMS_DEFAULT.sizes[-1], PARAMS_DEFAULT.positions[0]
    fresh = evaluate_typographic(encoder, RobustnessParams(sizes=(size,), positions=(position,)), with_heatmaps=False)
    assert fresh["grid"][0][0] == pytest.approx(stored["grid"][-1][0], abs=1e-12)
    assert fresh["clean_success"] == pytest.approx(stored["clean_success"], abs=1e-12)
    assert fresh["label_reading"]["accuracy"] == pytest.approx(stored["label_reading"]["accuracy"], abs=1e-12)


def test_the_plain_and_the_reading_model_are_shipped_with_their_figures():
    assert {"bundled", TYPOGRAPHIC_MODELS[1]} <= set(shipped_models())
    plain, reads = (cached_result(m, "typographic", PARAMS_DEFAULT) for m in TYPOGRAPHIC_MODELS[:2])
    # The model taught to read reads a label better than the one that never saw a letter.
    assert reads["label_reading"]["accuracy"] > plain["label_reading"]["accuracy"]
