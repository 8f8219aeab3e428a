"""The app in a real browser: ``streamlit run`` on a free port, driven by headless Chromium.

Run with ``make test-browser`` (installs Debian's ``chromium`` and ``playwright`` when missing).
Playwright is pointed at the system Chromium (``/usr/bin/chromium`` or ``$MMEXPLORE_CHROMIUM``);
its own browser download is never used. The test loads the shapes samples, opens the Similarity
page, checks that the matrix is drawn and saves a screenshot in ``tests/artifacts/``. With
``MMEXPLORE_SCREENSHOTS=assets/screenshots`` it also visits every page and saves ``<page>.png``
there (the README's screenshots).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from appserver import CHROMIUM_ARGS, serve
from appserver import find_chromium as _chromium
from apptest_utils import PAGES, ROOT, test_model_spec

from mmexplore_app.navigation import PAGES as NAV_PAGES
from mmexplore_app.navigation import page as nav_page

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
# Page file stem -> navigation title (the app's page table).
NAV_TITLES = {spec.stem: spec.title for spec in NAV_PAGES}
SERVER_START_TIMEOUT_S = 90
# Generous: on a shared 2-core machine a first page run (model load, JIT compiles) can be slow.
PAGE_RUN_TIMEOUT_MS = 400_000


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = _chromium()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium, or run `make test-browser`)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    return path


@contextlib.contextmanager
def _serve(log_name: str = "streamlit-server.log", model: str | None = None):
    """Start ``streamlit run app.py`` headless on a free port (:func:`appserver.serve`), yield its URL.

    ``model`` is the server's default model spec (default: the tests' model, usually ``bundled``).
    """
    started = False
    try:
        with serve(ARTIFACTS / log_name, model=model or test_model_spec(), timeout_s=SERVER_START_TIMEOUT_S) as srv:
            started = True
            yield srv.url
    except RuntimeError as exc:
        if started:
            raise
        pytest.fail(str(exc))  # the server did not start: a failure of the test, with the log's path


def served_model(model: str, log_name: str):
    """A module-scoped fixture that serves the app with ``model`` as its default and yields the URL.

    Used as ``siglip_url = served_model(SIGLIP, "streamlit-siglip.log")`` in a test module.
    """

    @pytest.fixture(scope="module")
    def url(browser):
        with _serve(log_name, model=model) as u:
            yield u

    return url


@pytest.fixture(scope="module")
def app_url(chromium_path):
    """One server shared by the module's tests."""
    with _serve() as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path):
    """One headless Chromium for the module (Playwright's sync API allows one instance per thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1500, "height": 1400})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(app_url, wait_until="domcontentloaded")
    yield pg
    context.close()


def _wait_idle(pg) -> None:
    """Wait until Streamlit has finished running the script (the 'running' status widget is gone)."""
    pg.wait_for_timeout(400)
    pg.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=PAGE_RUN_TIMEOUT_MS)
    # A long first computation (UMAP's JIT warm-up) can start after the status widget was checked.
    pg.wait_for_selector('[data-testid="stSpinner"]', state="detached", timeout=PAGE_RUN_TIMEOUT_MS)
    pg.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=PAGE_RUN_TIMEOUT_MS)
    pg.wait_for_timeout(300)


def _load_samples(pg, url: str) -> None:
    """Open the app at ``url`` and load the shapes samples (a first page run can take minutes)."""
    pg.goto(url, wait_until="domcontentloaded")
    button = pg.get_by_role("button", name="Shapes samples", exact=True)
    button.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    _wait_idle(pg)
    button.click()
    pg.get_by_text("8 images", exact=False).first.wait_for()
    _wait_idle(pg)


@contextlib.contextmanager
def _samples_page(browser, url: str, width: int, height: int = 1200):
    """A fresh page ``width`` px wide on ``url`` with the shapes samples loaded; closed afterwards."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        _load_samples(pg, url)
        yield pg
    finally:
        context.close()


def _open(pg, stem: str) -> None:
    pg.locator('[data-testid="stSidebarNav"]').get_by_text(NAV_TITLES[stem], exact=True).first.click()
    _wait_idle(pg)


def test_similarity_page_in_a_real_browser(page):
    pg = page
    button = pg.get_by_role("button", name="Shapes samples", exact=True)
    button.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)  # the first run loads the model
    _wait_idle(pg)
    button.click()
    pg.get_by_text("8 images", exact=False).first.wait_for()
    _wait_idle(pg)
    _open(pg, "similarity")
    chart = pg.locator(".js-plotly-plot").first
    chart.wait_for(state="visible", timeout=PAGE_RUN_TIMEOUT_MS)
    # Plotly draws the heatmap as a raster <image> in its heatmap layer and the thumbnails as
    # layout images: both must be there, plus one outline per true pair.
    pg.wait_for_selector(".js-plotly-plot .heatmaplayer image", state="attached")
    thumbs = chart.locator(".layer-above .imagelayer image, g.layer-above image")
    assert thumbs.count() == 8
    assert chart.locator(".shapelayer path").count() >= 8
    assert pg.get_by_text("InfoNCE loss (nats)").count() >= 1
    assert not pg.locator('[data-testid="stException"]').count()
    chart.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "similarity.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    out_dir = os.environ.get("MMEXPLORE_SCREENSHOTS")
    if out_dir:
        target = (ROOT / out_dir) if not Path(out_dir).is_absolute() else Path(out_dir)
        target.mkdir(parents=True, exist_ok=True)
        for page_file in PAGES:
            stem = Path(page_file).stem
            _open(pg, stem)
            if stem in ("joint_space", "cca"):
                # These pages compute a projection first (UMAP compiles on first use): wait for the chart.
                pg.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=PAGE_RUN_TIMEOUT_MS)
                _wait_idle(pg)
            assert not pg.locator('[data-testid="stException"]').count(), f"{stem}: exception shown"
            pg.screenshot(path=str(target / f"{stem}.png"), full_page=True)


WIDTHS = (1024, 1280, 1920)  # the README's screenshots: a laptop, a projector, a wide screen


def test_similarity_layout_at_three_widths_in_a_real_browser(page, app_url):
    """Issue 20, items 8-10: at 1024, 1280 and 1920 px the first caption label is inside the chart,
    the loss is shown whole, the tables do not scroll sideways; hard negatives are marked; the
    favicon is served by the app itself (no font CDN). Screenshots: ``similarity_<width>.png``."""
    pg = page
    _open(pg, "similarity")
    icons = pg.evaluate("() => Array.from(document.querySelectorAll('link[rel*=icon]')).map(l => l.href)")
    assert icons and all(h.startswith(app_url) or h.startswith("data:") for h in icons), icons
    out_dir = os.environ.get("MMEXPLORE_SCREENSHOTS")
    target = ((ROOT / out_dir) if not Path(out_dir).is_absolute() else Path(out_dir)) if out_dir else None
    try:
        for width in WIDTHS:
            pg.set_viewport_size({"width": width, "height": 900})
            pg.wait_for_timeout(1500)  # Streamlit and Plotly re-lay out on resize
            chart = pg.locator(".js-plotly-plot").first
            chart.wait_for(state="visible")
            box = chart.bounding_box()
            first = chart.locator(".xtick text").first.bounding_box()
            assert first is not None and first["x"] >= box["x"] - 1, (width, first, box)
            assert pg.locator(".xtick text").filter(has_text="✗").count() >= 1  # hard negatives marked
            loss = pg.locator('[data-testid="stMetricValue"]').first
            assert "…" not in loss.inner_text() and loss.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), width
            chart.scroll_into_view_if_needed()
            pg.screenshot(path=str(ARTIFACTS / f"similarity_{width}.png"))
            # The data grid scrolls inside its own scroller element: wider content means sideways scrolling.
            script = "e => { const s = e.querySelector('.dvn-scroller') || e; return [s.scrollWidth, s.clientWidth]; }"
            widths = [g.evaluate(script) for g in pg.locator('[data-testid="stDataFrame"]').all()]
            assert widths and all(sw <= cw + 1 for sw, cw in widths), (width, widths)
            assert not pg.locator('[data-testid="stException"]').count()
            if target is not None:
                target.mkdir(parents=True, exist_ok=True)
                pg.screenshot(path=str(target / f"similarity_{width}.png"))
    finally:
        pg.set_viewport_size({"width": 1500, "height": 1400})


def _selectbox_value(pg, label: str) -> str:
    box = pg.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    return box.evaluate("e => Array.from(e.querySelectorAll('input')).map(i => i.value).join('') || e.textContent")


def _pick(pg, label: str, option: str) -> None:
    pg.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    pg.get_by_role("option", name=option, exact=True).click()
    _wait_idle(pg)


def test_heatmaps_keeps_the_picked_images_caption_in_a_real_browser(page):
    """Issue 20, item 1: scene 4 picked, then a phrase typed and the method switched: the browser still
    shows (and sends back) scene 4's own caption, and the phrase stays, also after a page switch."""
    from mmexplore.data.samples import shapes_samples

    scene4 = shapes_samples(n=8).texts[3]
    pg = page
    _open(pg, "heatmaps")
    _pick(pg, "Image", "scene 4")
    assert scene4 in _selectbox_value(pg, "Caption")
    phrase = pg.get_by_role("textbox", name="Phrase to map (optional)")
    phrase.fill("triangle")
    phrase.press("Enter")
    _wait_idle(pg)
    assert scene4 in _selectbox_value(pg, "Caption")
    pg.get_by_text("gradient relevancy", exact=True).click()
    _wait_idle(pg)
    for _ in range(2):
        assert scene4 in _selectbox_value(pg, "Caption")
        assert pg.get_by_role("textbox", name="Phrase to map (optional)").input_value() == "triangle"
        # The maps are drawn at the end of the run (relevancy takes seconds on a busy CPU): wait for them.
        pg.get_by_text('phrase: "triangle"').first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
        assert not pg.locator('[data-testid="stException"]').count()
        _open(pg, "similarity")
        _open(pg, "heatmaps")
    assert "scene 4" in _selectbox_value(pg, "Image")


def test_upload_in_a_real_browser_reports_bad_file_and_keeps_good_ones(page):
    import io

    from PIL import Image

    def png(color: str) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), color).save(buf, "PNG")
        return buf.getvalue()

    pg = page
    _open(pg, "home")
    before = pg.locator('[data-testid="stSidebar"]').inner_text()
    uploader = pg.locator('[data-testid="stFileUploaderDropzoneInput"]').first
    uploader.set_input_files(
        files=[
            {"name": "red.png", "mimeType": "image/png", "buffer": png("red")},
            {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\nbroken"},
            {"name": "blue.png", "mimeType": "image/png", "buffer": png("blue")},
        ]
    )
    pg.get_by_text("broken.png:", exact=False).first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
    _wait_idle(pg)
    assert pg.get_by_text("Added 2 image(s).").count() == 1
    sidebar = pg.locator('[data-testid="stSidebar"]').inner_text()

    def n_images(text: str) -> int:
        found = re.search(r"(\d+) images", text)
        return int(found.group(1)) if found else 0

    assert n_images(sidebar) == n_images(before) + 2  # the two good files, nothing lost
    assert not pg.locator('[data-testid="stException"]').count()
    pg.screenshot(path=str(ARTIFACTS / "upload.png"))


def _synthetic_embeddings(folder, n_pairs: int, dim: int = 32) -> None:
    """An ``mmexplore embed`` folder of ``n_pairs`` clustered (image, caption) pairs (no model needed)."""
    import numpy as np
    import pyarrow as pa

    from mmexplore.embeddings.shards import ShardWriter

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    lab = rng.integers(0, 50, n_pairs)
    img = centres[lab] + 0.3 * rng.standard_normal((n_pairs, dim)).astype(np.float32)
    txt = img + 0.5 * rng.standard_normal((n_pairs, dim)).astype(np.float32) + 2.0  # a modality gap
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    rows = np.arange(n_pairs)
    items = pa.table({"id": [f"{r:016x}" for r in rows], "row": rows, "path": [f"img/{r}.png" for r in rows],
                      "caption": [f"caption {r}" for r in rows], "image_caption": [f"caption {r}" for r in rows],
                      "image_first": np.ones(n_pairs, bool), "text_first": np.ones(n_pairs, bool)})
    writer = ShardWriter(folder, "synthetic@test", "synthetic", dim, "test")
    writer.write_shard(items, img, None, txt, np.ones(n_pairs, bool))
    writer.finish()


def test_joint_map_draws_every_point_of_100k_in_a_real_browser(page, tmp_path):
    """An embeddings folder of 50k pairs (100k points) drawn whole; time to first draw and frame rate measured.

    ``MMEXPLORE_MAP_PAIRS=500000`` runs the same check at 1M points (the README's figure)."""
    pg = page
    n_pairs = int(os.environ.get("MMEXPLORE_MAP_PAIRS", "50000"))
    n_points = 2 * n_pairs
    _synthetic_embeddings(tmp_path / "emb", n_pairs)
    _open(pg, "joint_space")
    pg.get_by_text("Embeddings folder (mmexplore embed)", exact=True).click()
    _wait_idle(pg)
    box = pg.get_by_label("Embeddings folder written by `mmexplore embed SOURCE --out DIR`")
    box.fill(str(tmp_path / "emb"))
    box.press("Enter")
    _wait_idle(pg)
    pg.locator('[data-testid="stSelectbox"]').filter(has_text="Method").first.click()
    pg.get_by_role("option", name="PCA").click()
    _wait_idle(pg)
    thumb = pg.locator('[data-testid="stSlider"]').filter(has_text="Points drawn at most").get_by_role("slider")
    thumb.focus()
    count_points = """() => { let n = 0; for (const el of document.querySelectorAll('.js-plotly-plot')) {
        for (const t of (el._fullData || [])) { if (t.mode === 'markers' && t.x) n += t.x.length; } } return n; }"""
    t0 = time.perf_counter()
    thumb.press("End")  # "every point"
    pg.wait_for_function(f"({count_points})() >= {n_points}", timeout=PAGE_RUN_TIMEOUT_MS)
    first_draw_s = time.perf_counter() - t0
    _wait_idle(pg)
    plot = pg.locator(".js-plotly-plot").filter(has=pg.locator("canvas")).first
    bb = plot.bounding_box()
    pg.evaluate("""() => { window.__frames = 0; const tick = () => { window.__frames++;
        if (window.__counting) requestAnimationFrame(tick); }; window.__counting = true; requestAnimationFrame(tick); }""")
    t1 = time.perf_counter()
    for k in range(40):  # hover across the map: each move hit-tests 100k points
        pg.mouse.move(bb["x"] + bb["width"] * (0.2 + 0.6 * k / 40), bb["y"] + bb["height"] * 0.5)
    pg.mouse.move(bb["x"] + bb["width"] * 0.3, bb["y"] + bb["height"] * 0.3)
    pg.mouse.down()
    pg.mouse.move(bb["x"] + bb["width"] * 0.6, bb["y"] + bb["height"] * 0.6, steps=10)
    pg.mouse.up()  # box zoom: a redraw of every point
    pg.wait_for_timeout(500)
    elapsed = time.perf_counter() - t1
    fps = pg.evaluate("() => { window.__counting = false; return window.__frames; }") / elapsed
    report = {"points": pg.evaluate(count_points), "pairs": n_pairs, "time_to_first_draw_s": first_draw_s, "interaction_fps": fps}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"joint_map_{n_points}.json").write_text(json.dumps(report, indent=2))
    pg.screenshot(path=str(ARTIFACTS / f"joint_map_{n_points}.png"))
    print(f"joint map: {report}")
    assert report["points"] == n_points and fps > 1
    assert pg.get_by_text(f"All {n_points:,} points drawn (WebGL)").count() == 1


def test_deep_link_on_a_fresh_server_opens_the_page_without_a_toast(browser):
    """The first request a new server sees is a deep link: the page runs inside the router, no "Page not found".

    Streamlit's legacy ``pages/`` mode showed that toast (and ran the page without the sidebar) on a first
    deep link; pages now live in ``mmexplore_app/pages/``."""
    spec = nav_page("heatmaps")
    with _serve("streamlit-deeplink.log") as url:
        context = browser.new_context(viewport={"width": 1024, "height": 900})
        try:
            pg = context.new_page()
            pg.set_default_timeout(60_000)
            pg.goto(f"{url}/{spec.url_path}", wait_until="domcontentloaded")
            pg.get_by_role("heading", name="Heatmaps").first.wait_for(timeout=PAGE_RUN_TIMEOUT_MS)
            _wait_idle(pg)
            pg.wait_for_timeout(1500)  # the toast, when it comes, follows the first script run
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / "deep_link.png"))
            assert pg.get_by_text("Page not found", exact=False).count() == 0
            assert pg.locator('[data-testid="stToast"]').count() == 0
            assert pg.url.rstrip("/").endswith(spec.url_path)
            # The router ran: the shared sidebar (model picker, navigation) is there.
            nav = pg.locator('[data-testid="stSidebarNav"]')
            assert nav.get_by_text(spec.title, exact=True).count() >= 1
            assert not pg.locator('[data-testid="stException"]').count()
        finally:
            context.close()
