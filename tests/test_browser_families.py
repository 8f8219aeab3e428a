"""A SigLIP-style model in a real browser: the Similarity page shows its own sigmoid rule.

Same set-up as ``test_browser.py`` (system Chromium, ``streamlit run`` on a free port), with the
small offline SigLIP-style model as the server's default. Screenshots at 1024 and 1400 px wide go to
``tests/artifacts/``.
"""

from __future__ import annotations

import pytest
from test_browser import ARTIFACTS, PAGE_RUN_TIMEOUT_MS, _open, _samples_page, browser, chromium_path, served_model  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

SIGLIP = "mmexplore-shapes-siglip-xs:random"


siglip_url = served_model(SIGLIP, "streamlit-siglip.log")


@pytest.mark.parametrize("width", [1024, 1400])
def test_similarity_page_sigmoid_model_in_a_real_browser(browser, siglip_url, width):  # noqa: F811 - the fixture
    with _samples_page(browser, siglip_url, width) as pg:
        assert pg.get_by_text("SigLIP-style ViT", exact=False).count() >= 1  # sidebar facts line
        _open(pg, "similarity")
        chart = pg.locator(".js-plotly-plot").first
        chart.wait_for(state="visible", timeout=PAGE_RUN_TIMEOUT_MS)
        pg.wait_for_selector(".js-plotly-plot .heatmaplayer image", state="attached")
        assert pg.get_by_text("Sigmoid loss (nats)").count() >= 1
        assert pg.get_by_text("InfoNCE loss").count() == 0
        assert pg.get_by_text("pairwise probability σ(s·cos + b)").count() >= 1
        assert chart.locator(".shapelayer path").count() >= 8  # true pairs outlined
        assert not pg.locator('[data-testid="stException"]').count()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"similarity_sigmoid_{width}.png"
        pg.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
