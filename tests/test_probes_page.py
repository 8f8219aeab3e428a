"""The probes page under AppTest: per-perturbation pass/fail, per-kind chart vs bag of words, bad input."""

from __future__ import annotations

import pytest
from apptest_utils import _decode_array, figure_spec, open_page, plotly_charts

PAGE = "mmexplore_app/pages/probes.py"


def test_probes_for_a_scene_and_accuracy_chart():
    at = open_page(PAGE, samples="shapes", n=4)
    assert not at.exception
    table = at.dataframe[0].value
    assert {"perturbation", "caption", "cosine", "model", "bag of words"} <= set(table.columns)
    assert set(table["model"]) <= {"pass", "FAIL"} and len(table) >= 3
    assert set(table["bag of words"]) <= {"pass", "tie", "FAIL"}
    caption = at.selectbox(key="probe_caption").value
    assert all(c != caption for c in table["caption"])  # no-op perturbations never shown
    spec = figure_spec(at)
    names = [t["name"] for t in spec["data"]]
    assert any(n.startswith("model") for n in names) and "bag-of-words baseline" in names
    assert any("bag-of-words" in e.label for e in at.expander)


def test_typed_caption_and_empty_caption():
    at = open_page(PAGE, samples="shapes", n=2)
    at.selectbox(key="probe_caption").set_value("✎ type a caption…").run()
    assert not at.exception
    assert any("Type a caption" in i.value for i in at.info)
    at.text_input(key="probe_own").input("The cat is on the mat.").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "The mat is on the cat." in set(table["caption"])
    at.text_input(key="probe_own").input("dog").run()
    assert not at.exception
    assert "negation" in set(at.dataframe[0].value["perturbation"])


def test_page_without_data():
    at = open_page(PAGE, samples=None)
    assert not at.exception
    assert any("needs at least" in i.value for i in at.info)


@pytest.mark.slow  # three models × 50 scenes (~30 s on a busy CPU); the browser test clicks it too
def test_order_family_side_by_side_on_request():
    from mmexplore.models.specs import ORDER_FAMILY
    from mmexplore_app.sidebar import MODEL_SOURCES

    assert set(ORDER_FAMILY) <= set(MODEL_SOURCES.values())  # the sidebar offers every family model
    at = open_page(PAGE, samples="shapes", n=2)
    assert not at.exception
    charts_before = len(plotly_charts(at))
    frames_before = len(at.dataframe)
    assert at.button(key="probe_family_go")  # nothing measured unasked: a button
    at.selectbox(key="probe_family_scenes").set_value(50).run()
    at.button(key="probe_family_go").click().run(timeout=120)
    assert not at.exception
    assert not at.warning, [w.value for w in at.warning]  # every family model loads
    assert len(at.dataframe) == frames_before + 1
    table = at.dataframe[-1].value
    assert list(table.index) == [label.split(" (")[0] for label in ORDER_FAMILY.values()]
    assert "relation order" in table.columns and ((table >= 0) & (table <= 1)).all().all()
    assert len(plotly_charts(at)) == charts_before + 1
    spec = figure_spec(at, -1)
    names = {t["name"] for t in spec["data"]}
    assert names == {"model", "bag-of-words baseline"} and len(spec["data"]) == 2 * len(ORDER_FAMILY)
    # The bag of words ties on relation order for every model.
    bow = [t for t in spec["data"] if t["name"] == "bag-of-words baseline"]
    assert all(dict(zip(t["x"], _decode_array(t["y"]), strict=True))["relation order"] == 0.5 for t in bow)
    # The reading under the table quotes the figures just measured, not fixed ones.
    reading = [m.value for m in at.markdown if m.value.startswith("**On these scenes:**")]
    assert len(reading) == 1
    for label, value in table["relation order"].items():
        assert f"{label} {value:.2f}" in reading[0], reading[0]
