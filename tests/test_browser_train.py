"""The Train page in a real browser: replays play, a run starts, shows its live matrix, stops.

Screenshots at 1024 and 1400 px go to ``tests/artifacts/train_*.png`` (and to
``$MMEXPLORE_SCREENSHOTS/train.png`` for the README when set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, ROOT, _open, _wait_idle, app_url, browser, chromium_path, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def _runs_dir(tmp_path_factory):
    """The server (started after this) keeps its runs in a temporary folder."""
    old = os.environ.get("MMEXPLORE_RUNS_DIR")
    os.environ["MMEXPLORE_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    yield
    if old is None:
        os.environ.pop("MMEXPLORE_RUNS_DIR", None)
    else:
        os.environ["MMEXPLORE_RUNS_DIR"] = old


def test_train_page_replays_trains_live_and_stops(page):  # noqa: F811 - the fixture
    pg = page
    pg.get_by_role("button", name="Shapes samples", exact=True).wait_for(timeout=400_000)
    _wait_idle(pg)
    _open(pg, "train")
    assert not pg.locator('[data-testid="stException"]').count()
    # Replays of the shipped preset runs draw at once (no training).
    pg.get_by_role("tab", name="Replay").click()
    pg.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
    pg.wait_for_selector(".js-plotly-plot .heatmaplayer image", state="attached")  # the matrix
    assert pg.locator(".js-plotly-plot .updatemenu-button").count() >= 2  # ▶ play / pause
    assert pg.locator(".js-plotly-plot .slider-container").count() == 1  # one slider drives both
    pg.get_by_role("tab", name="Train").click()
    pg.locator(".st-key-tr_preset").get_by_text("Plain CLIP", exact=True).click()
    _wait_idle(pg)
    pg.locator(".st-key-tr_budget").get_by_text("steps", exact=True).click()
    _wait_idle(pg)
    # Training-time variation from the registries: the live run below draws with the "style" augmentation.
    pg.locator(".st-key-tr_augment").click()
    pg.get_by_role("option").filter(has_text="style —").click()
    _wait_idle(pg)
    chosen = pg.locator(".st-key-tr_augment")
    assert "style —" in chosen.inner_text() + " ".join(chosen.locator("input").evaluate_all("els => els.map(e => e.value)")), \
        chosen.inner_text()
    assert pg.locator(".st-key-tr_renderers").get_by_text("train", exact=True).count()
    for width in (1400, 1024):
        pg.set_viewport_size({"width": width, "height": 1400})
        pg.wait_for_timeout(1000)
        box = pg.locator(".st-key-tr_renderers").bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, (width, box)
        pg.locator(".st-key-tr_augment").scroll_into_view_if_needed()
        pg.screenshot(path=str(ARTIFACTS / f"train_settings_{width}.png"))
    pg.set_viewport_size({"width": 1500, "height": 1400})
    t0 = time.time()
    pg.get_by_role("button", name="Start training").click()
    pg.get_by_text("is training on this server").wait_for(timeout=120_000)
    # The live similarity matrix of the held-out probe appears (its first snapshot is step 0) ...
    pg.get_by_text("held-out probe, step").first.wait_for(timeout=180_000)
    # ... and the run moves: a held-out figure after step 0.
    deadline = time.time() + 240
    while time.time() < deadline and not pg.get_by_text("held-out probe, step 25").count():
        pg.wait_for_timeout(1000)
    first_result_s = time.time() - t0
    assert pg.get_by_text("held-out probe, step 25").count(), "no held-out evaluation after step 0"
    for width in (1400, 1024):
        pg.set_viewport_size({"width": width, "height": 2600})
        pg.wait_for_timeout(1500)
        pg.screenshot(path=str(ARTIFACTS / f"train_live_{width}.png"), full_page=True)
    out_dir = os.environ.get("MMEXPLORE_SCREENSHOTS")
    if out_dir:
        target = (ROOT / out_dir) if not Path(out_dir).is_absolute() else Path(out_dir)
        pg.set_viewport_size({"width": 1500, "height": 2400})
        pg.wait_for_timeout(1500)
        pg.screenshot(path=str(target / "train.png"), full_page=True)
    pg.locator(".st-key-tr_stop button").click()
    pg.get_by_text("Name this run").wait_for(timeout=180_000)
    # on an idle machine the short run can end before the click lands: either end is a loadable run
    assert pg.get_by_text("stopped").count() or pg.get_by_text("finished").count()
    pg.set_viewport_size({"width": 1024, "height": 1400})
    pg.wait_for_timeout(800)
    pg.screenshot(path=str(ARTIFACTS / "train_stopped_1024.png"), full_page=True)
    assert not pg.locator('[data-testid="stException"]').count()
    (ARTIFACTS / "train_first_result_s.txt").write_text(f"{first_result_s:.1f}\n")
