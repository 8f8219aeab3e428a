"""The order family's layout model (an average-pooled ViT) in a real browser: every page opens on it; Heatmaps draws
its attention maps (exact patch features of an average-pooled tower) and says why relevancy does not
apply. Screenshots at 1024 and 1400 px go to ``tests/artifacts/heatmaps_order_layout_*.png``.
"""

from __future__ import annotations

import pytest
from test_browser import ARTIFACTS, PAGE_RUN_TIMEOUT_MS, _open, _samples_page, _wait_idle, browser, chromium_path, served_model  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

LAYOUT = "bundled-order-layout"


layout_url = served_model(LAYOUT, "streamlit-order-layout.log")


@pytest.mark.parametrize("width", [1024, 1400])
def test_heatmaps_page_on_the_average_pooled_layout_model(browser, layout_url, width):  # noqa: F811 - the fixture
    with _samples_page(browser, layout_url, width) as pg:
        _open(pg, "heatmaps")
        pg.get_by_text("Per word (attention)", exact=True).first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
        _wait_idle(pg)
        assert not pg.locator('[data-testid="stException"]').count()
        assert pg.locator('[data-testid="stImage"] img').count() >= 2  # the image and its word maps
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"heatmaps_order_layout_{width}.png"
        pg.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


def test_every_page_runs_on_the_layout_model(browser, layout_url):  # noqa: F811 - the fixture
    """The shipped order model is an open_clip model like any other: every page opens on it without an
    exception (screenshots ``tests/artifacts/order_layout_<page>.png``)."""
    from test_browser import NAV_TITLES

    with _samples_page(browser, layout_url, 1400, height=1100) as pg:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for stem in NAV_TITLES:
            _open(pg, stem)
            assert not pg.locator('[data-testid="stException"]').count(), stem
            pg.screenshot(path=str(ARTIFACTS / f"order_layout_{stem}.png"))
