"""The heatmaps page under Streamlit's AppTest: loads, shows per-word overlays, handles bad input."""

from __future__ import annotations

from apptest_utils import image_captions, open_page

PAGE = "mmexplore_app/pages/heatmaps.py"



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


def test_the_word_triangle_lights_up_the_triangle_on_the_page():
    """The issue's check through the page: sample scene 5 ("a large red circle left of a small yellow
    triangle"), phrase "triangle", both methods: the page's ground-truth check finds the peak on the
    triangle. That small triangle lies between patch centres, so "on it" means its patch won."""
    at = open_page(PAGE, samples="shapes", n=8)
    at.selectbox(key="heat_image").set_value(4).run()
    caption = at.selectbox(key="heat_caption").value
    assert "triangle" in caption and "circle" in caption
    phrase_key = next(t.key for t in at.text_input if t.key and t.key.startswith("heat_phrase"))
    at.text_input(key=phrase_key).input("triangle").run()
    for method in ("attention", "relevancy"):
        at.radio(key="heat_method").set_value(method).run()
        assert not at.exception
        checks = [m.value for m in at.markdown if "Peak of the phrase map" in m.value]
        assert checks and ("**inside** the named object" in checks[0] or "no peak can land inside it" in checks[0]), (
            method, checks)
        assert "outside" not in checks[0].split("patch centre falls")[0]


def test_overlays_have_a_colour_scale_and_the_word_patch_matrix_starts_white_at_zero():
    """Issue 20, item 9: overlays had no colour scale; the matrix's colour map made 0 look brighter
    than 0.05 and had no patch labels."""
    from apptest_utils import figure_spec, plotly_charts

    at = open_page(PAGE, samples="shapes", n=2)
    assert not at.exception
    assert any("colour scale" in c for c in image_captions(at))
    spec = next(figure_spec(at, k) for k in range(len(plotly_charts(at)))
                if "word × patch" in figure_spec(at, k)["layout"]["title"]["text"])
    trace = spec["data"][0]
    assert trace["zmin"] == 0 and trace["colorscale"][0][1] in ("rgb(247,251,255)", "#f7fbff")  # white at 0
    assert spec["layout"]["xaxis"]["ticktext"][:2] == ["row 0", "row 1"]
