"""The heatmaps page under Streamlit's AppTest: loads, shows per-word overlays, handles bad input."""

from __future__ import annotations

from apptest_utils import image_captions, open_page

PAGE = "pages/heatmaps.py"



def test_page_shows_word_overlays_for_both_methods():
    at = open_page(PAGE, samples="shapes", n=3)
    assert not at.exception
    caption = at.selectbox(key="heat_caption").value
    words = caption.lower().replace(",", " ,").split()
    shown = image_captions(at)
    assert "image" in shown and any(c.startswith("phrase:") for c in shown)  # a sample scene has a phrase
    for w in set(words):
        assert w in shown
    assert any("inside" in m.value or "outside" in m.value for m in at.markdown)  # ground-truth check
    assert at.get("download_button")

    at.radio(key="heat_method").set_value("relevancy").run()
    assert not at.exception
    assert set(words) <= set(image_captions(at))
    assert at.session_state["heat_method"] == "relevancy"


def test_page_typed_caption_and_bad_input():
    at = open_page(PAGE, samples="shapes", n=2)
    at.selectbox(key="heat_caption").set_value("✎ type a caption…").run()
    assert not at.exception
    assert any("Type a caption" in i.value for i in at.info)  # empty caption: a friendly note, no maps

    at.text_input(key="heat_own").input("a green triangle, a green triangle and " + "a blue square " * 12).run()
    assert not at.exception
    assert any("truncated" in w.value for w in at.warning)  # long caption: visible note
    assert "triangle" in image_captions(at)


def test_page_without_data_explains_what_it_needs():
    at = open_page(PAGE, samples=None)
    assert not at.exception
    assert any("needs at least" in i.value for i in at.info)
