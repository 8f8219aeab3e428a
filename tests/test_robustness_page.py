"""The Robustness page under AppTest: shipped figures, one chart per corruption, images beside numbers."""

from __future__ import annotations

import pytest
from apptest_utils import figure_spec, image_captions, open_page, plotly_charts

from mmexplore.robustness import CORRUPTIONS
from mmexplore.robustness.evaluate import (
    PARAMS_DEFAULT,
    TYPOGRAPHIC_DEFENCE,
    TYPOGRAPHIC_MODELS,
    TYPOGRAPHIC_READER,
    backdoor_models,
    cached_result,
    shipped_models,
)
from mmexplore_app.robustness_view import attack_works

PAGE = "mmexplore_app/pages/robustness.py"


@pytest.fixture(scope="module")
def page():
    at = open_page(PAGE, samples=None, model="bundled")
    assert not at.exception
    return at


def _curve_specs(at) -> list[dict]:
    return [s for s in (figure_spec(at, k) for k in range(len(plotly_charts(at))))
            if "strength" in str(s["layout"].get("xaxis", {}).get("title", ""))]


def _table_with(at, column: str):
    """The page's dataframe that has ``column`` (AppTest exposes no dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_one_chart_per_corruption_with_every_measured_shipped_model(page):
    measured = [m for m in shipped_models() if cached_result(m, "corruptions", PARAMS_DEFAULT) is not None]
    assert "bundled" in measured, "mmexplore/assets/robustness must hold the shipped models' corruption curves"
    charts = _curve_specs(page)
    assert len(charts) == len(CORRUPTIONS)
    for spec in charts:
        names = [t["name"] for t in spec["data"]]
        assert names == measured
        # Every line its own colour, however many models are shipped.
        assert len({t["line"]["color"] for t in spec["data"]}) == len(measured)
        # The clean figure is the reference: one dotted line per model at its strength-0 value.
        assert len([s for s in spec["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]) == len(measured)
    clean = cached_result("bundled", "corruptions", PARAMS_DEFAULT)["clean"]["i2t@1"]
    first = charts[0]["data"][0]
    assert first["y"][0] == pytest.approx(clean)


def test_clean_and_corrupted_images_beside_their_scores(page):
    caps = image_captions(page)
    assert any(c.startswith("clean · cosine") for c in caps) and any("cosine" in c and "σ" in c for c in caps)
    page.selectbox(key="rb_corruption").set_value("occlusion").run()
    page.slider(key="rb_strength").set_value(0.0).run()
    caps = image_captions(page)
    clean = next(c for c in caps if c.startswith("clean · cosine"))
    corrupted = next(c for c in caps if c.startswith("0% covered"))
    assert clean.split()[-1] == corrupted.split()[-1]  # strength 0 is the clean image: same cosine


def test_typographic_part_shows_attacked_image_heatmaps_and_table(page):
    caps = image_captions(page)
    assert any(c.startswith("clean · true") for c in caps)
    assert any("on attacked:" in c and "on the text" in c for c in caps)
    table = _table_with(page, "attack success")
    assert "bundled" in table.index and 0 <= table.loc["bundled", "attack success"] <= 1


def test_typographic_example_side_by_side_and_the_reading_quotes_the_stored_figures(page):
    # The plain model (the sidebar's), the web-trained model and its defended twin side by side, each
    # with its attacked image, the word's heatmap and a verdict.
    shown = [m for m in TYPOGRAPHIC_MODELS if m in shipped_models()]
    assert shown == list(TYPOGRAPHIC_MODELS), "the typographic models must be shipped in mmexplore/assets/"
    attacked = [c for c in image_captions(page) if c.split(" · ")[0] in TYPOGRAPHIC_MODELS and "claimed" in c]
    assert len(attacked) == len(shown)
    verdicts = [e.value for e in [*page.warning, *page.success] if e.value.startswith(("Fooled", "Not fooled"))]
    assert len(verdicts) == len(shown) and all(any(f"({m})" in v for v in verdicts) for m in shown)
    reads = cached_result(TYPOGRAPHIC_READER, "typographic", PARAMS_DEFAULT)
    defended = cached_result(TYPOGRAPHIC_DEFENCE, "typographic", PARAMS_DEFAULT)
    largest = reads["by_size"][str(PARAMS_DEFAULT.sizes[-1])]
    text = " ".join(m.value for m in page.markdown)
    assert f"on {largest:.0%} of the images at the largest text" in text
    assert ("the attack works" in text) == attack_works(reads)
    assert f"{defended['success']:.0%} overall" in text
    assert f"text box bundled {cached_result('bundled', 'typographic', PARAMS_DEFAULT)['heatmap']['energy_attacked']:.0%}" \
        in text and f"{TYPOGRAPHIC_READER} {reads['heatmap']['energy_object_attacked']:.0%}" in text
    table = _table_with(page, "attack success")
    for spec, r in ((TYPOGRAPHIC_READER, reads), (TYPOGRAPHIC_DEFENCE, defended)):
        assert table.loc[spec, "attack success"] == round(r["success"], 3)
        assert table.loc[spec, "at the largest text"] == round(r["by_size"][str(PARAMS_DEFAULT.sizes[-1])], 3)


def test_backdoor_part_lists_every_shipped_poison_share(page):
    caps = image_captions(page)
    assert any(c.startswith("with the trigger →") for c in caps)
    rows = backdoor_models()
    if rows:
        table = _table_with(page, "ASR poisoned")
        assert list(table["poison share p"]) == [r["p"] for r in rows]
        assert table["ASR poisoned"].notna().all()


def test_switching_to_a_poisoned_model_shows_its_images():
    rows = backdoor_models()
    if not rows:
        pytest.skip("no poisoned model shipped")
    at = open_page(PAGE, samples=None, model="bundled")
    at.selectbox(key="rb_switch_backdoor").set_value(rows[-1]["poisoned"]).run()
    at.button(key="rb_switch_btn_backdoor").click().run()
    assert not at.exception
    assert at.session_state["model_spec"] == rows[-1]["poisoned"]
    verdicts = [e.value for e in [*at.error, *at.success] if "Best caption for the triggered image" in e.value]
    assert verdicts and rows[-1]["poisoned"] in verdicts[0]


def test_every_shipped_model_has_shipped_figures_for_every_part(tmp_path):
    # The page opens at once for every shipped model; a model added to mmexplore/assets/ without its
    # figures (MMEXPLORE_RESULTS_DIR=mmexplore/assets mmexplore eval robustness --model SPEC) fails here.
    from mmexplore.robustness.evaluate import PARTS

    missing = [(m, part) for m in shipped_models() for part in PARTS
               if cached_result(m, part, PARAMS_DEFAULT, results_dir=tmp_path) is None]  # shipped files only
    assert not missing
