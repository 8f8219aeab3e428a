"""Concurrent browser sessions on one server: isolation, one load per model, bounded memory, no blocking.

Starts ``streamlit run app.py`` on loopback and drives headless Chromium (Playwright) sessions at the
same time. Each session loads a sample set (shapes or photos) and, in some, another model, then
opens Similarity, Heatmaps and Joint space and reads the numbers shown. Checks:

- isolation: each session's InfoNCE loss and modality gap equal the values computed by the core for
  *its* data and model (so nothing leaked through a shared cache), and its Heatmaps page lists its
  own images;
- the server log says each (spec, device) was loaded once;
- the server's resident memory after each round (all sessions closed) stays within a bound: the
  first round's value (every model and sample set loaded) plus 150 MB;
- the home page's load time in an idle session while another session runs a long computation (a
  t-SNE of 2,000 random points, uploaded as an .npz), against the same load with nothing else
  running, measured in the same run (a ratio; the busy loads must end before the computation).

Each session is bounded in time (a stuck one becomes a problem of the report, with a screenshot in
``benchmarks/results/``, and the others go on); progress lines go to stderr.

``nice -n 5 python benchmarks/concurrency.py [--sessions 10] [--rounds 3]`` writes
``benchmarks/results/concurrency.json``; ``tests/test_concurrency.py`` runs it with three sessions.
The server is started by ``tests/appserver.py``, as in the browser tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server helper shared with the browser tests
sys.path.insert(0, str(ROOT))
from appserver import CHROMIUM_ARGS, find_chromium, serve  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# (sample set, model spec) of session k, cycled: two data sets, three models.
PLAN = [("shapes", "bundled"), ("photos", "bundled-nodense"), ("shapes", "bundled-noneg"),
        ("photos", "bundled"), ("shapes", "bundled-nodense")]
SOURCE_LABEL = {  # the sidebar's "Source" option for each spec (mmexplore_app.sidebar.MODEL_SOURCES)
    "bundled": "Bundled (shapes world)",
    "bundled-nodense": "Bundled without the dense term (unlocalised attention maps)",
    "bundled-noneg": "Bundled without hard negatives (for probes)",
}
STEP_TIMEOUT_MS = 300_000
_T0 = time.perf_counter()


def _progress(msg: str) -> None:
    """One line on stderr with the seconds since start (so a stalled step shows where it stalled)."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def expected_numbers(plan: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """InfoNCE loss, modality gap and image names the pages must show, computed by the core."""
    from mmexplore.data.samples import photo_samples, shapes_samples
    from mmexplore.metrics.similarity import similarity_report
    from mmexplore.models import load_model
    from mmexplore.projection.gap import modality_gap
    from mmexplore_app.state import Dataset

    out = {}
    for samples, spec in sorted(set(plan)):
        ds = Dataset.from_samples(shapes_samples(n=8) if samples == "shapes" else photo_samples())
        enc = load_model(spec, "cpu")
        img, txt = enc.encode_images(ds.images), enc.encode_texts(ds.texts)
        rep = similarity_report(img, txt, logit_scale=enc.logit_scale, pairs=ds.pairs)
        out[(samples, spec)] = {"infonce": round(float(rep.infonce_loss), 3), "gap": round(modality_gap(img, txt), 3),
                                "first_image": ds.image_names[0]}
    return out


async def _idle(pg) -> None:
    await pg.wait_for_timeout(400)
    for sel in ('[data-testid="stStatusWidget"]', '[data-testid="stSpinner"]', '[data-testid="stStatusWidget"]'):
        await pg.wait_for_selector(sel, state="detached", timeout=STEP_TIMEOUT_MS)
    await pg.wait_for_timeout(300)


async def _open(pg, title: str) -> float:
    """Open a page from the sidebar navigation; seconds until its script run finished."""
    t0 = time.perf_counter()
    await pg.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).first.click()
    await _idle(pg)
    return time.perf_counter() - t0


async def _metric(pg, label: str) -> float:
    box = pg.locator('[data-testid="stMetric"]').filter(has_text=label).first
    await box.wait_for(timeout=STEP_TIMEOUT_MS)
    text = await box.locator('[data-testid="stMetricValue"]').inner_text()
    return float(re.search(r"-?\d+\.\d+", text).group(0))  # type: ignore[union-attr]


def _active_model(sidebar_text: str) -> str | None:
    """The model the sidebar says is in use (its caption starts with ``<spec> · <device>``)."""
    m = re.search(r"^(\S+) · (cpu|cuda\S*|mps)\b", sidebar_text, flags=re.M)
    return m.group(1) if m else None


async def _load_model(pg, spec: str, tries: int = 3, settle_s: float = 20) -> int:
    """Pick ``spec`` in the sidebar and click Load model until the sidebar names it; returns the clicks.

    Under load, Streamlit (1.67) can drop a click that arrives while the rerun caused by the picker
    is still running: the browser sends it (seen on the websocket) but its callback never runs. A
    user sees the old model named in the sidebar and clicks again; so does this, and counts.
    """
    side = pg.locator('[data-testid="stSidebar"]')
    await side.locator('[data-testid="stSelectbox"]').first.click()
    await pg.get_by_role("option", name=SOURCE_LABEL[spec], exact=True).click()
    await _idle(pg)
    for click in range(1, tries + 1):
        await side.get_by_role("button", name="Load model", exact=True).click()
        await _idle(pg)
        deadline = time.perf_counter() + settle_s
        while time.perf_counter() < deadline:
            if _active_model(await side.inner_text()) == spec:
                return click
            await pg.wait_for_timeout(500)
    raise RuntimeError(f"the sidebar never named {spec} after {tries} clicks on Load model")


async def run_session(browser, url: str, samples: str, spec: str, tag: str = "") -> dict[str, Any]:
    """One browser session (its own context, so its own Streamlit session); returns what it saw.

    On a failure the page is saved as ``benchmarks/results/concurrency-failed-<tag>.png``.
    """
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = await ctx.new_page()
    pg.set_default_timeout(STEP_TIMEOUT_MS)
    t0 = time.perf_counter()
    tag = f"{tag or 'session'} {samples}/{spec}"
    load_clicks = 0
    try:
        _progress(f"{tag}: open home")
        await pg.goto(url, wait_until="domcontentloaded")
        await pg.get_by_role("button", name="Shapes samples", exact=True).wait_for()
        await _idle(pg)
        _progress(f"{tag}: home ready")
        if spec != "bundled":
            load_clicks = await _load_model(pg, spec)
            _progress(f"{tag}: model loaded ({load_clicks} click(s) on Load model)")
        name = "Shapes samples" if samples == "shapes" else "Photo samples"
        await pg.get_by_role("button", name=name, exact=True).click()
        await pg.get_by_text("8 images", exact=False).first.wait_for()
        await _idle(pg)
        _progress(f"{tag}: data loaded")
        await _open(pg, "Similarity")
        infonce = await _metric(pg, "InfoNCE loss")
        _progress(f"{tag}: similarity {infonce}")
        await _open(pg, "Heatmaps")
        # under load the status widget can vanish between two script runs: wait for the maps themselves
        # the subheader itself: "per word" also appears in hidden help text (word attribution)
        await pg.locator('[data-testid="stMain"] h3', has_text="Per word").first.wait_for()
        await _idle(pg)
        # Widget values (the picked image's name, its caption) live in inputs, not in the text.
        values = await pg.eval_on_selector_all('[data-testid="stMain"] input, [data-testid="stMain"] textarea',
                                               "els => els.map(e => e.value)")
        heat_text = await pg.locator('[data-testid="stMain"]').inner_text() + "\n" + "\n".join(values)
        _progress(f"{tag}: heatmaps drawn")
        await _open(pg, "Joint space")
        gap = await _metric(pg, "‖mean(images) − mean(texts)‖")
        _progress(f"{tag}: joint space gap {gap}")
        exceptions = await pg.locator('[data-testid="stException"]').count()
        sidebar = await pg.locator('[data-testid="stSidebar"]').inner_text()
        return {"samples": samples, "spec": spec, "infonce": infonce, "gap": gap, "heatmap_text": heat_text[:4000],
                "sidebar": sidebar[:2000], "exceptions": exceptions, "seconds": round(time.perf_counter() - t0, 1),
                "load_clicks": load_clicks}
    except BaseException:
        _progress(f"{tag}: failed; the page is in concurrency-failed-*.png")
        with contextlib.suppress(Exception):
            RESULTS.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^\w.-]+", "_", tag)
            await pg.screenshot(path=str(RESULTS / f"concurrency-failed-{safe}.png"))
        raise
    finally:
        await ctx.close()


def check_session(seen: dict[str, Any], expected: dict[str, Any], other_images: list[str]) -> list[str]:
    """Problems with one session's view (empty when it saw exactly its own data and numbers)."""
    problems = []
    if abs(seen["infonce"] - expected["infonce"]) > 0.0015:
        problems.append(f"InfoNCE {seen['infonce']} != {expected['infonce']}")
    if abs(seen["gap"] - expected["gap"]) > 0.0015:
        problems.append(f"gap {seen['gap']} != {expected['gap']}")
    if expected["first_image"] not in seen["heatmap_text"]:
        problems.append(f"Heatmaps does not show its image {expected['first_image']}")
    leaked = [n for n in other_images if n in seen["heatmap_text"]]
    if leaked:
        problems.append(f"Heatmaps shows another session's images {leaked[:3]}")
    if seen["exceptions"]:
        problems.append(f"{seen['exceptions']} exception(s) on the page")
    if _active_model(seen["sidebar"]) != seen["spec"]:
        problems.append(f"the sidebar names model {_active_model(seen['sidebar'])}, not {seen['spec']}")
    return problems


async def _round(chromium: str, url: str, plan: list[tuple[str, str]], session_timeout_s: float,
                 label: str) -> list[dict[str, Any] | BaseException]:
    """All sessions of one round at once; a session that fails or overruns ``session_timeout_s`` is
    returned as its exception (the others go on), so one stuck session cannot stall the benchmark."""
    from playwright.async_api import async_playwright

    async def bounded(k: int, samples: str, spec: str) -> dict[str, Any]:
        return await asyncio.wait_for(run_session(browser, url, samples, spec, tag=f"{label} s{k + 1}"),
                                      session_timeout_s)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(bounded(k, s, m) for k, (s, m) in enumerate(plan)), return_exceptions=True)
        finally:
            await browser.close()


async def _blocking_probe(chromium: str, url: str, n_loads: int = 3) -> dict[str, Any]:
    """Home-page load times of one session, idle and while another session runs a long t-SNE."""
    from playwright.async_api import async_playwright

    async def home_loads(browser) -> list[float]:
        ctx = await browser.new_context()
        pg = await ctx.new_page()
        times = []
        try:
            for _ in range(n_loads):
                t0 = time.perf_counter()
                await pg.goto(url, wait_until="domcontentloaded")
                await pg.get_by_role("button", name="Shapes samples", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
                await _idle(pg)
                times.append(time.perf_counter() - t0)
        finally:
            await ctx.close()
        return times

    async def long_job(browser, started: asyncio.Event) -> float:
        import numpy as np

        rng = np.random.default_rng(0)
        path = RESULTS / "_concurrency_random.npz"
        np.savez(path, image=rng.standard_normal((1000, 64)), text=rng.standard_normal((1000, 64)))
        ctx = await browser.new_context()
        pg = await ctx.new_page()
        pg.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            await pg.goto(url, wait_until="domcontentloaded")
            await pg.get_by_role("button", name="Shapes samples", exact=True).wait_for()
            await _idle(pg)
            await _open(pg, "Joint space")
            await pg.get_by_text("Embeddings file (.npz / .parquet)", exact=True).first.click()
            await _idle(pg)
            await pg.locator('input[type="file"]').first.set_input_files(str(path))
            await _idle(pg)
            await pg.locator('[data-testid="stSelectbox"]').filter(has_text="Method").first.click()
            t0 = time.perf_counter()
            await pg.get_by_role("option", name="TSNE", exact=True).click()
            await pg.wait_for_selector('[data-testid="stSpinner"]', state="attached")
            started.set()
            await _idle(pg)
            return time.perf_counter() - t0
        finally:
            started.set()
            await ctx.close()
            path.unlink(missing_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            idle = await home_loads(browser)
            _progress(f"idle home loads {idle}")
            started = asyncio.Event()
            job = asyncio.create_task(long_job(browser, started))
            await started.wait()
            _progress("long job started")
            busy = await home_loads(browser)
            # the busy loads only count if the long job was still running when they ended
            overlapped = not job.done()
            _progress(f"busy home loads {busy} (long job still running: {overlapped})")
            long_s = await job
        finally:
            await browser.close()
    return {"idle_home_load_s": [round(t, 2) for t in idle], "busy_home_load_s": [round(t, 2) for t in busy],
            "long_computation_s": round(long_s, 1), "busy_loads_overlapped_the_job": overlapped,
            "ratio_median_busy_over_idle": round(sorted(busy)[len(busy) // 2] / sorted(idle)[len(idle) // 2], 2)}


def run(sessions: int, rounds: int, chromium: str, log_path: Path, probe_blocking: bool = True,
        session_timeout_s: float = 900, rss_bound_mb: float = 150) -> dict[str, Any]:
    """Run ``rounds`` rounds of ``sessions`` concurrent sessions; returns the measurements and problems.

    ``rss_bound_mb``: the server's resident memory after each later round may exceed its value after
    the first round (every model and sample set loaded) by at most this much; more is a problem.
    """
    plan = [PLAN[k % len(PLAN)] for k in range(sessions)]
    _progress(f"computing the expected numbers for {sorted(set(plan))}")
    expected = expected_numbers(plan)
    names = {k: v["first_image"] for k, v in expected.items()}
    report: dict[str, Any] = {"sessions": sessions, "plan": [f"{s}|{m}" for s, m in plan], "rounds": [],
                              "problems": [], "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                              "cpus": os.cpu_count()}
    _progress("starting the server")
    with serve(log_path) as srv:
        report["rss_start_mb"] = round(srv.rss_mb(), 1)
        for r in range(rounds):
            t0 = time.perf_counter()
            _progress(f"round {r + 1}: {sessions} sessions")
            seen = asyncio.run(_round(chromium, srv.url, plan, session_timeout_s, f"r{r + 1}"))
            passed = 0
            for k, s in enumerate(seen):
                key = plan[k]
                where = f"round {r + 1} session {k + 1} ({key[0]}, {key[1]})"
                if isinstance(s, BaseException):
                    first = (str(s).strip().splitlines() or [""])[0][:200]
                    report["problems"].append(f"{where}: {type(s).__name__}: {first}")
                    continue
                others = [n for kk, n in names.items() if kk[0] != key[0]]
                found = check_session(s, expected[key], others)
                report["problems"].extend(f"{where}: {p}" for p in found)
                passed += not found
            report["rounds"].append({"round": r + 1, "wall_s": round(time.perf_counter() - t0, 1),
                                     "sessions_passed": passed, "rss_mb": round(srv.rss_mb(), 1),
                                     "load_clicks": [s.get("load_clicks") if isinstance(s, dict) else None
                                                     for s in seen],
                                     "session_s": [s["seconds"] if isinstance(s, dict) else None for s in seen]})
            _progress(f"round {r + 1}: {passed}/{sessions} sessions passed, server RSS {report['rounds'][-1]['rss_mb']} MB")
        loads = srv.model_loads()
        report["model_loads"] = loads
        for key, n in loads.items():
            if n != 1:
                report["problems"].append(f"model {key} loaded {n} times")
        if probe_blocking:
            _progress("blocking probe")
            report["blocking"] = asyncio.run(_blocking_probe(chromium, srv.url))
            if not report["blocking"]["busy_loads_overlapped_the_job"]:
                report["problems"].append("the long computation ended before the busy page loads: make it longer")
    rss = [r["rss_mb"] for r in report["rounds"]]
    report["rss_growth_after_round1_mb"] = round(max(rss[1:], default=rss[0]) - rss[0], 1)
    report["rss_bound_mb"] = round(rss[0] + rss_bound_mb, 1)
    if max(rss) > report["rss_bound_mb"]:
        report["problems"].append(f"server RSS {max(rss)} MB after a round, over the bound {report['rss_bound_mb']} MB "
                                  f"(first round {rss[0]} MB + {rss_bound_mb} MB)")
    report["expected"] = {f"{k[0]}|{k[1]}": v for k, v in expected.items()}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from mmexplore.cli.argtypes import positive_int

    ap.add_argument("--sessions", type=positive_int, default=10)
    ap.add_argument("--rounds", type=positive_int, default=3)
    ap.add_argument("--chromium", default=find_chromium())
    ap.add_argument("--out", default=str(RESULTS / "concurrency.json"))
    ap.add_argument("--no-blocking-probe", action="store_true", help="skip the page-load-while-busy measurement")
    args = ap.parse_args()
    report = run(args.sessions, args.rounds, args.chromium, RESULTS / "concurrency-server.log",
                 probe_blocking=not args.no_blocking_probe)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for r in report["rounds"]:
        print(f"round {r['round']}: {r['sessions_passed']}/{args.sessions} sessions passed the isolation check "
              f"in {r['wall_s']} s, server RSS {r['rss_mb']} MB")
    print(f"RSS growth after round 1: {report['rss_growth_after_round1_mb']} MB (bound {report['rss_bound_mb']} MB); "
          f"model loads: {report['model_loads']}")
    if "blocking" in report:
        b = report["blocking"]
        print(f"home page load idle {b['idle_home_load_s']} s, during another session's "
              f"{b['long_computation_s']} s computation {b['busy_home_load_s']} s "
              f"(median ratio {b['ratio_median_busy_over_idle']})")
    print("problems:", report["problems"] or "none")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
