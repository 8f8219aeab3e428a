"""The Robustness page in a real browser at 1024 and 1400 px: six corruption charts, the attacked image and
its heatmaps, the backdoor chart; screenshots in ``tests/artifacts/robustness-<width>.png``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from test_browser import (  # noqa: F401 - fixtures are used by name
    ARTIFACTS,
    PAGE_RUN_TIMEOUT_MS,
    ROOT,
    _open,
    _wait_idle,
    app_url,
    browser,
    chromium_path,
    page,
)

from mmexplore.robustness import CORRUPTIONS
from mmexplore.robustness.evaluate import (
    PARAMS_DEFAULT,
    TYPOGRAPHIC_DEFENCE,
    TYPOGRAPHIC_MODELS,
    TYPOGRAPHIC_READER,
    cached_result,
    shipped_models,
)

pytestmark = pytest.mark.browser


def _tab(pg, name: str) -> None:
    pg.get_by_role("tab", name=name).click()
    _wait_idle(pg)


@pytest.mark.parametrize("width", [1024, 1400])
def test_robustness_page_in_a_real_browser(page, width):  # noqa: F811
    pg = page
    pg.set_viewport_size({"width": width, "height": 2400})  # tall: Streamlit scrolls inside the page
    _open(pg, "robustness")
    panel = pg.locator('[data-testid="stTabs"] [role="tabpanel"]:visible').first
    panel.locator(".js-plotly-plot").nth(len(CORRUPTIONS)).wait_for(state="visible", timeout=PAGE_RUN_TIMEOUT_MS)
    # The model legend plus one chart per corruption, each with a line per measured model.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"robustness-{width}.png"), full_page=True)
    titles = panel.locator(".js-plotly-plot .gtitle").evaluate_all("els => els.map(e => e.textContent)")
    assert len([t for t in titles if "strength 1" in t]) == len(CORRUPTIONS), titles
    assert not pg.locator('[data-testid="stException"]').count()
    # The model legend shows every measured model, none hidden behind the legend's scroll bar.
    legend = panel.locator(".js-plotly-plot").first
    box = legend.bounding_box()
    entries = legend.locator(".legend .traces").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [e.textContent, r.top, r.bottom]; })")
    measured = [m for m in shipped_models() if cached_result(m, "corruptions", PARAMS_DEFAULT) is not None]
    assert sorted(t for t, _, _ in entries) == sorted(measured)
    assert all(box["y"] <= top and bottom <= box["y"] + box["height"] + 1 for _, top, bottom in entries), entries
    # Nothing spills sideways at this width: every chart fits inside the page.
    widths = pg.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(e => e.getBoundingClientRect().right)")
    assert max(widths) <= width

    _tab(pg, "Typographic attack")
    panel = pg.locator('[data-testid="stTabs"] [role="tabpanel"]:visible').first
    panel.get_by_text("on attacked:", exact=False).first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    panel.get_by_text(f"({TYPOGRAPHIC_DEFENCE})", exact=False).first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    # Clean image and its word map, then for the sidebar's model, the web-trained model and its defended
    # twin: attacked image, word map and verdict. On the first scene (25 % text, top-left) the web-trained
    # model is fooled and the other two are not.
    assert panel.locator("img").count() >= 8
    for spec, verdict in (("bundled", "Not fooled"), (TYPOGRAPHIC_READER, "Fooled"), (TYPOGRAPHIC_DEFENCE, "Not fooled")):
        assert panel.get_by_text(re.compile(rf"^{verdict}.*\({re.escape(spec)}\)")).count() == 1, spec
    assert panel.get_by_text("at the largest text", exact=False).count() >= 1
    assert panel.get_by_text("attack success", exact=False).count() >= 1
    # The side-by-side images fit the page at this width, and each row lines up across the columns
    # (a header above each image wrapped to different heights at 1024 px).
    rights = panel.locator("img").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)")
    assert max(rights) <= width
    tops = pg.evaluate("""() => [...document.querySelectorAll('[data-testid="stImageCaption"]')].map(e => {
        const i = (e.closest('[data-testid="stImage"]') || e.parentElement).querySelector('img');
        return [e.textContent, i ? Math.round(i.getBoundingClientRect().top) : null]; })""")
    attacked = {c.split(" · ")[0]: t for c, t in tops if c.split(" · ")[0] in TYPOGRAPHIC_MODELS and "claimed" in c}
    maps = [t for c, t in tops if "on attacked:" in c]
    assert set(attacked) == set(TYPOGRAPHIC_MODELS) and len(set(attacked.values())) == 1, attacked
    assert len(maps) == len(TYPOGRAPHIC_MODELS) and len(set(maps)) == 1, maps
    pg.screenshot(path=str(ARTIFACTS / f"robustness-typographic-{width}.png"), full_page=True)
    # The explanation for a class opens and says what the experiments showed: the attack works on the
    # model whose captions followed the writing, and the defence (--text-lie) is the same data captioned by the picture.
    panel.get_by_text("What am I looking at? (typographic attacks)").click()
    lesson = panel.get_by_text("The attack needs a model that reads", exact=False)
    lesson.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    lesson.scroll_into_view_if_needed()
    assert panel.get_by_text("--text-lie", exact=False).count() >= 1
    explained = panel.locator('[data-testid="stExpander"]').last.evaluate("e => e.getBoundingClientRect().right")
    assert explained <= width
    pg.screenshot(path=str(ARTIFACTS / f"robustness-typographic-explained-{width}.png"))

    _tab(pg, "Backdoor & CleanCLIP")
    panel = pg.locator('[data-testid="stTabs"] [role="tabpanel"]:visible').first
    panel.get_by_text("with the trigger", exact=False).first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    assert not pg.locator('[data-testid="stException"]').count()
    pg.screenshot(path=str(ARTIFACTS / f"robustness-backdoor-{width}.png"), full_page=True)

    out_dir = os.environ.get("MMEXPLORE_SCREENSHOTS")
    if out_dir and width == 1400:
        target = (ROOT / out_dir) if not Path(out_dir).is_absolute() else Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(ARTIFACTS / f"robustness-typographic-{width}.png", target / "robustness-typographic.png")
        _tab(pg, "Corruptions")
        pg.screenshot(path=str(target / "robustness.png"), full_page=True)
    _tab(pg, "Corruptions")
