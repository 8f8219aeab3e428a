"""The Probes page's order family in a real browser: one click measures the three shipped models and
draws one panel per model (model vs bag-of-words bars) and the side-by-side table; the renderer picker
offers every registered renderer, the hand-drawn sketches included.

Screenshots at 1024 and 1400 px go to ``tests/artifacts/probes_family_*.png`` and
``tests/artifacts/probes_family_sketch_*.png`` (and to ``$MMEXPLORE_SCREENSHOTS/probes.png`` for the
README when set).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, ROOT, _open, _wait_idle, app_url, browser, chromium_path, page  # noqa: F401 - fixtures

from mmexplore.data.renderers import RENDERERS
from mmexplore.models.specs import ORDER_FAMILY

pytestmark = pytest.mark.browser


def test_probes_page_compares_the_order_family(page):  # noqa: F811 - the fixture
    pg = page
    pg.get_by_role("button", name="Shapes samples", exact=True).wait_for(timeout=400_000)
    _wait_idle(pg)
    pg.get_by_role("button", name="Shapes samples", exact=True).click()
    _wait_idle(pg)
    _open(pg, "probes")
    assert not pg.locator('[data-testid="stException"]').count()
    pg.get_by_text("The order family: bag of words and its fix").wait_for()
    pg.get_by_role("button", name="Compare the family").click()
    pg.get_by_text("the same numbers as").wait_for(timeout=400_000)
    _wait_idle(pg)
    assert pg.locator(".js-plotly-plot").count() == 2  # the data set's chart, then the family's
    chart = pg.locator(".js-plotly-plot").last
    chart.wait_for(state="visible", timeout=400_000)
    # One panel per family model, each with its model bars and its bag-of-words bars.
    titles = [t.strip() for t in chart.locator(".annotation-text").all_text_contents()]
    assert titles[:3] == [label.split(" (")[0] for label in ORDER_FAMILY.values()], titles
    assert chart.locator(".barlayer .trace").count() == 2 * len(ORDER_FAMILY)
    assert not pg.locator('[data-testid="stException"]').count()
    assert not pg.locator('[data-testid="stAlert"]').filter(has_text="not available").count()
    # The reading under the table quotes the measured figures: only the layout model reads order.
    import re

    reading = pg.locator("p", has_text="On these scenes:").first.inner_text()
    order = {m.group(1): float(m.group(2)) for m in re.finditer(r"(plain CLIP|NegCLIP \+ layout readout|NegCLIP) (\d\.\d\d)",
                                                                 reading.split(";")[0])}
    assert order["NegCLIP + layout readout"] >= 0.8 and order["plain CLIP"] < 0.65, reading
    out_dir = os.environ.get("MMEXPLORE_SCREENSHOTS")
    try:
        for width in (1400, 1024):
            pg.set_viewport_size({"width": width, "height": 1100})
            pg.wait_for_timeout(1500)  # Streamlit and Plotly re-lay out on resize
            box = chart.bounding_box()
            assert box is not None and box["width"] <= width, (width, box)
            # The three panels' x labels stay inside the chart (nothing cut at 1024 px).
            labels = [b for b in (t.bounding_box() for t in chart.locator(".xtick text").all()) if b]
            assert labels and all(b["x"] >= box["x"] - 1 and b["x"] + b["width"] <= box["x"] + box["width"] + 1
                                  for b in labels), width
            # ... and so do the panel titles (the longest model name included).
            heads = [b for b in (t.bounding_box() for t in chart.locator(".annotation-text").all()[:3]) if b]
            assert len(heads) == 3 and all(b["x"] >= box["x"] - 1 and b["x"] + b["width"] <= box["x"] + box["width"] + 1
                                           for b in heads), (width, heads, box)
            chart.scroll_into_view_if_needed()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"probes_family_{width}.png"))
        if out_dir:
            target = (ROOT / out_dir) if not Path(out_dir).is_absolute() else Path(out_dir)
            target.mkdir(parents=True, exist_ok=True)
            pg.set_viewport_size({"width": 1400, "height": 1100})
            pg.wait_for_timeout(1000)
            pg.screenshot(path=str(target / "probes.png"), full_page=True)
        # The picker lists every registered renderer; the sketches' figures replace the others' in place.
        pg.set_viewport_size({"width": 1400, "height": 1100})
        for r in RENDERERS.values():
            assert pg.get_by_text(r.label, exact=True).count() == 1, r.name
        pg.get_by_text(RENDERERS["sketch"].label, exact=True).click()
        pg.get_by_text(f"held-out scenes ({RENDERERS['sketch'].label})").wait_for(timeout=400_000)
        pg.get_by_text("drawn by sketch:").wait_for()
        _wait_idle(pg)
        assert not pg.locator('[data-testid="stException"]').count()
        chart = pg.locator(".js-plotly-plot").last
        assert chart.locator(".barlayer .trace").count() == 2 * len(ORDER_FAMILY)
        for width in (1400, 1024):
            pg.set_viewport_size({"width": width, "height": 1100})
            pg.wait_for_timeout(1500)
            box = chart.bounding_box()
            assert box is not None and box["width"] <= width, (width, box)
            pg.get_by_text("drawn by sketch:").scroll_into_view_if_needed()
            pg.screenshot(path=str(ARTIFACTS / f"probes_family_sketch_{width}.png"))
    finally:
        pg.set_viewport_size({"width": 1500, "height": 1400})
