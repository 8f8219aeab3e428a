"""The Relation page under Streamlit AppTest."""

from __future__ import annotations

from apptest_utils import open_page, plotly_charts, texts_of

from mmexplore.relation import CLASSES


def test_relation_page_labels_a_pair_and_shows_evidence():
    at = open_page("mmexplore_app/pages/relation.py", samples="shapes", n=4)
    assert not at.exception
    labels = [m.value for m in at.metric]
    assert labels and labels[0] in CLASSES
    assert len(at.metric) == 4  # relation, CMI, SC, STAT
    assert plotly_charts(at)  # the probability bar
    assert len(at.dataframe) >= 2  # taxonomy table and evidence
    # A typed contradicting caption: the label is one of the classes and the evidence table lists its phrases.
    at.selectbox(key="rel_text_choice").select("✎ type a text…").run()
    at.text_area(key="rel_own").input("a blue circle left of a red square and two yellow triangles").run()
    assert not at.exception
    assert at.metric[0].value in CLASSES
    assert any("Why:" in t for t in texts_of(at.markdown))


def test_relation_page_handles_empty_text_and_batches():
    at = open_page("mmexplore_app/pages/relation.py", samples="shapes", n=4)
    at.selectbox(key="rel_text_choice").select("✎ type a text…").run()
    at.text_area(key="rel_own").input("   ").run()
    assert not at.exception
    assert any("Type a text" in t for t in texts_of(at.info))
    at.radio(key="rel_mode").set_value("many pairs").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) >= 4 and set(table["label"]) <= set(CLASSES)
    assert plotly_charts(at)  # count per class


def test_relation_page_without_data_says_what_to_do():
    at = open_page("mmexplore_app/pages/relation.py", samples=None)
    assert not at.exception
    assert any("no images" in t for t in texts_of(at.info))


def test_picking_an_image_starts_from_its_own_caption():
    at = open_page("mmexplore_app/pages/relation.py", samples="shapes", n=4)
    at.selectbox(key="rel_image").set_value(2).run()
    assert not at.exception
    ds = at.session_state["dataset"]
    assert ds.pairs[2, ds.texts.index(at.selectbox(key="rel_text_choice").value)]
    assert any(m.label == "Relation" and m.value == "Anchorage" for m in at.metric)  # a true caption → Anchorage
