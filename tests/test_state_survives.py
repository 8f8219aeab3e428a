"""Widget state survives reruns and page switches, and a picked image keeps its own caption (issue 20, item 1);
Joint space and CCA use only the pairs the user marked (item 2). AppTest."""

from __future__ import annotations

import numpy as np
from apptest_utils import open_page, sample_dataset

HEAT = "mmexplore_app/pages/heatmaps.py"


def _heat_state(at) -> tuple:
    return (at.selectbox(key="heat_image").value, at.selectbox(key="heat_caption").value,
            at.text_input(key="heat_phrase").value)


def test_heatmaps_keeps_the_picked_image_its_caption_and_phrase_through_every_control_and_a_page_switch():
    at = open_page(HEAT, samples="shapes", n=8)
    ds = at.session_state["dataset"]
    at.selectbox(key="heat_image").set_value(3).run()
    assert _heat_state(at)[:2] == (3, ds.texts[3])  # scene 4 starts from its own caption
    at.text_input(key="heat_phrase").input("triangle").run()
    want = (3, ds.texts[3], "triangle")
    assert _heat_state(at) == want
    changes = [
        lambda: at.radio(key="heat_method").set_value("relevancy"),
        lambda: at.selectbox(key="heat_cmap").set_value("viridis"),
        lambda: at.slider(key="heat_opacity").set_value(0.8),
        lambda: at.slider(key="heat_smooth").set_value(0.5),
        lambda: at.radio(key="heat_word_features").set_value("context"),
        lambda: at.slider(key="heat_start_layer").set_value(1),
        lambda: at.multiselect(key="heat_words").unselect(0),
    ]
    for change in changes:
        change().run()
        assert not at.exception
        assert _heat_state(at) == want
        # The overlays drawn are the picked pair's: the phrase map and the caption's own words.
        assert 'phrase: "triangle"' in [c for img in at.get("image") for c in img.captions]
    words_shown = at.multiselect(key="heat_words").value

    at.switch_page("mmexplore_app/pages/similarity.py")
    at.run()
    at.switch_page(HEAT)
    at.run()
    assert not at.exception
    assert _heat_state(at) == want
    assert at.radio(key="heat_method").value == "relevancy"
    assert at.selectbox(key="heat_cmap").value == "viridis"
    assert at.slider(key="heat_opacity").value == 0.8
    assert at.slider(key="heat_smooth").value == 0.5
    assert at.radio(key="heat_word_features").value == "context"
    assert at.slider(key="heat_start_layer").value == 1
    assert at.multiselect(key="heat_words").value == words_shown

    at.selectbox(key="heat_image").set_value(4).run()  # a new image: its own caption and phrase again
    assert at.selectbox(key="heat_caption").value == ds.texts[4]
    assert at.text_input(key="heat_phrase").value != "triangle"


def test_relation_keeps_the_pair_through_the_mode_toggle_and_a_page_switch():
    at = open_page("mmexplore_app/pages/relation.py", samples="shapes", n=8)
    ds = at.session_state["dataset"]
    at.selectbox(key="rel_image").set_value(3).run()
    assert at.selectbox(key="rel_text_choice").value == ds.texts[3]
    at.radio(key="rel_mode").set_value("many pairs").run()
    assert not at.exception
    at.radio(key="rel_mode").set_value("one pair").run()
    assert at.selectbox(key="rel_image").value == 3
    assert at.selectbox(key="rel_text_choice").value == ds.texts[3]
    at.selectbox(key="rel_text_choice").set_value(ds.texts[5]).run()
    at.switch_page("mmexplore_app/pages/probes.py")
    at.run()
    at.switch_page("mmexplore_app/pages/relation.py")
    at.run()
    assert (at.selectbox(key="rel_image").value, at.selectbox(key="rel_text_choice").value) == (3, ds.texts[5])


def test_probes_keeps_the_picked_image_after_leaving_the_page():
    at = open_page("mmexplore_app/pages/probes.py", samples="shapes", n=8)
    ds = at.session_state["dataset"]
    at.selectbox(key="probe_image").set_value(3).run()
    assert at.selectbox(key="probe_caption").value == ds.texts[3]
    at.switch_page("mmexplore_app/pages/heatmaps.py")
    at.run()
    at.switch_page("mmexplore_app/pages/probes.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="probe_image").value == 3
    assert at.selectbox(key="probe_caption").value == ds.texts[3]
    assert any(ds.texts[3] in m.value for m in at.markdown)  # the scores shown are for scene 4's caption


def test_joint_space_and_cca_controls_survive_a_page_switch():
    at = open_page("mmexplore_app/pages/joint_space.py", samples="shapes", n=8)
    at.selectbox(key="joint_method").set_value("pca").run()
    at.toggle(key="joint_center").set_value(True).run()
    at.slider(key="joint_shift").set_value(0.25).run()
    at.switch_page("mmexplore_app/pages/cca.py")
    at.run()
    at.select_slider(key="cca_reg").set_value(1.0).run()
    assert not at.exception
    at.switch_page("mmexplore_app/pages/joint_space.py")
    at.run()
    assert (at.selectbox(key="joint_method").value, at.toggle(key="joint_center").value,
            at.slider(key="joint_shift").value) == ("pca", True, 0.25)
    at.switch_page("mmexplore_app/pages/cca.py")
    at.run()
    assert at.select_slider(key="cca_reg").value == 1.0


def _unpaired(n: int = 3):
    ds = sample_dataset("shapes", n=n)
    ds.pairs[:] = False
    return ds


def test_joint_space_without_marked_pairs_invents_none_and_offers_pair_in_order():
    at = open_page("mmexplore_app/pages/joint_space.py", dataset=_unpaired())
    assert not at.exception
    assert any("No true pairs are marked" in i.value for i in at.info)
    captions = " ".join(c.value for c in at.caption)
    assert "0 true pairs" in captions and "3 true pairs" not in captions
    at.button(key="joint_pair_in_order").click().run()
    assert not at.exception
    assert at.session_state["dataset"].pairs.sum() == 3  # explicit: only after the click
    assert "3 true pairs" in " ".join(c.value for c in at.caption)


def test_cca_without_marked_pairs_does_not_fit():
    at = open_page("mmexplore_app/pages/cca.py", dataset=_unpaired(12), n=12)
    assert not at.exception
    assert any("No true pairs are marked" in i.value for i in at.info)
    assert any("this data set has 0" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    assert np.asarray(at.session_state["dataset"].pairs).sum() == 0
