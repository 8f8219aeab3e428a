"""The probes page under AppTest: per-perturbation pass/fail, per-kind chart vs bag of words, bad input."""

from __future__ import annotations

from apptest_utils import figure_spec, open_page

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
