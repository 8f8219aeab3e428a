"""Several browser sessions on one server at once (fewer than ``benchmarks/concurrency.py``'s ten).

Each session loads its own sample set and, in some, another model; opens Similarity, Heatmaps and
Joint space; and must see exactly the numbers the core computes for its data and model. The server
must load each model once and hold its memory between rounds. Loopback only, bounded in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from appserver import CHROMIUM_ARGS, find_chromium, serve

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.browser


def harness():
    """(Chromium's path, the benchmark's ``concurrency`` module); skips without Chromium or Playwright."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed")
    pytest.importorskip("playwright.async_api")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import concurrency
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return chromium, concurrency


def test_three_concurrent_sessions_see_only_their_own_data_and_numbers(tmp_path):
    chromium, concurrency = harness()
    # bounded in time: a session that overruns 600 s is a problem of the report, not a hang
    report = concurrency.run(3, 2, chromium, tmp_path / "server.log", probe_blocking=False, session_timeout_s=600)
    assert report["problems"] == []
    assert [r["sessions_passed"] for r in report["rounds"]] == [3, 3]
    # three sessions: (shapes, bundled), (photos, bundled-nodense), (shapes, bundled-noneg)
    assert report["model_loads"] == {"bundled@cpu": 1, "bundled-nodense@cpu": 1, "bundled-noneg@cpu": 1}
    rss = [r["rss_mb"] for r in report["rounds"]]
    assert rss[1] - rss[0] < 150, rss  # the second round reuses what the first loaded


def test_quick_second_click_on_a_cold_server_is_not_lost(tmp_path):
    import asyncio

    chromium, concurrency = harness()
    from playwright.async_api import async_playwright

    async def clicks(url: str) -> str:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                pg = await (await browser.new_context()).new_page()
                pg.set_default_timeout(concurrency.STEP_TIMEOUT_MS)
                await pg.goto(url, wait_until="domcontentloaded")
                await pg.get_by_role("button", name="Photo samples", exact=True).click()
                await pg.wait_for_timeout(500)  # the first click's run (decoding eight photos) is still going
                await pg.get_by_role("button", name="Load shapes samples", exact=True).click()
                await pg.get_by_text("(shapes samples)", exact=False).first.wait_for()
                await concurrency._idle(pg)
                return await pg.locator('[data-testid="stSidebar"]').inner_text()
            finally:
                await browser.close()

    with serve(tmp_path / "server.log") as srv:  # a fresh (cold) server
        side = asyncio.run(clicks(srv.url))
    assert "8 images" in side and "shapes samples" in side  # the second click won, nothing was lost
