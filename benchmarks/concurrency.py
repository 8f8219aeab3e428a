"""Concurrent browser sessions on one server: isolation, one load per model, bounded memory, no blocking.

Starts ``streamlit run app.py`` on loopback and drives headless Chromium (Playwright) sessions at the
same time. Each session loads a sample set (shapes or photos) and, in some, another model, then
opens Similarity, Heatmaps and Joint space and reads the numbers shown. Checks:

- isolation: each session's InfoNCE loss and modality gap equal the values computed by the core for
  *its* data and model (so nothing leaked through a shared cache), and its Heatmaps page lists its
  own images;
- the server log says each (spec, device) was loaded once;
- the server's resident memory after each round (all sessions closed) stays within a bound;
- page loads of other sessions while one session runs a long computation (a t-SNE of 3,000
  random points) are timed against idle page loads.

``python benchmarks/concurrency.py [--sessions 10] [--rounds 3]`` writes
``benchmarks/results/concurrency.json``; ``tests/test_concurrency.py`` runs it with fewer sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# (sample set, model spec) of session k, cycled: two data sets, three models.
PLAN = [("shapes", "bundled"), ("photos", "bundled-nodense"), ("shapes", "bundled-noneg"),
        ("photos", "bundled"), ("shapes", "bundled-nodense")]
SOURCE_LABEL = {  # the sidebar's "Source" option for each spec (mmexplore_app.sidebar.MODEL_SOURCES)
    "bundled": "Bundled (shapes world)",
    "bundled-nodense": "Bundled without the dense term (unlocalised attention maps)",
    "bundled-noneg": "Bundled without hard negatives (for probes)",
}
STEP_TIMEOUT_MS = 300_000


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process, MB (Linux /proc)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]

    def model_loads(self) -> dict[str, int]:
        """How many times the server log says each (spec, device) was loaded."""
        # A record may be printed by two handlers (the app's and a root handler set by a library), in
        # two formats: count each format apart and keep the larger count.
        text = self.log_path.read_text(errors="replace")
        counts: dict[str, int] = {}
        for prefix in (r"^\S+ \S+ INFO mmexplore\.models: ", r"^INFO:mmexplore\.models:"):
            per: dict[str, int] = {}
            for m in re.finditer(prefix + r"model loaded: (\S+) on (\S+)", text, flags=re.M):
                key = f"{m.group(1)}@{m.group(2)}"
                per[key] = per.get(key, 0) + 1
            for key, n in per.items():
                counts[key] = max(counts.get(key, 0), n)
        return counts


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(log_path: Path, env_extra: dict[str, str] | None = None, timeout_s: float = 120):
    """``streamlit run app.py`` on a free loopback port; the whole process group is stopped afterwards."""
    port = _free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    env = dict(os.environ, HF_HUB_OFFLINE="1", MMEXPLORE_MODEL="bundled", MMEXPLORE_DEVICE="cpu",
               **(env_extra or {}))
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode}; see {log_path}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
            if time.time() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s} s")
            time.sleep(0.5)
        yield Server(proc, url, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        log.close()


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


async def run_session(browser, url: str, samples: str, spec: str) -> dict[str, Any]:
    """One browser session (its own context, so its own Streamlit session); returns what it saw."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = await ctx.new_page()
    pg.set_default_timeout(STEP_TIMEOUT_MS)
    t0 = time.perf_counter()
    try:
        await pg.goto(url, wait_until="domcontentloaded")
        await pg.get_by_role("button", name="Shapes samples", exact=True).wait_for()
        await _idle(pg)
        if spec != "bundled":
            side = pg.locator('[data-testid="stSidebar"]')
            await side.locator('[data-testid="stSelectbox"]').first.click()
            await pg.get_by_role("option", name=SOURCE_LABEL[spec], exact=True).click()
            await _idle(pg)
            await side.get_by_role("button", name="Load model", exact=True).click()
            await _idle(pg)
        name = "Shapes samples" if samples == "shapes" else "Photo samples"
        await pg.get_by_role("button", name=name, exact=True).click()
        await pg.get_by_text("8 images", exact=False).first.wait_for()
        await _idle(pg)
        await _open(pg, "Similarity")
        infonce = await _metric(pg, "InfoNCE loss")
        await _open(pg, "Heatmaps")
        # under load the status widget can vanish between two script runs: wait for the maps themselves
        # the subheader itself: "per word" also appears in hidden help text (word attribution)
        await pg.locator('[data-testid="stMain"] h3', has_text="Per word").first.wait_for()
        await _idle(pg)
        # Widget values (the picked image's name, its caption) live in inputs, not in the text.
        values = await pg.eval_on_selector_all('[data-testid="stMain"] input, [data-testid="stMain"] textarea',
                                               "els => els.map(e => e.value)")
        heat_text = await pg.locator('[data-testid="stMain"]').inner_text() + "\n" + "\n".join(values)
        await _open(pg, "Joint space")
        gap = await _metric(pg, "‖mean(images) − mean(texts)‖")
        exceptions = await pg.locator('[data-testid="stException"]').count()
        sidebar = await pg.locator('[data-testid="stSidebar"]').inner_text()
        return {"samples": samples, "spec": spec, "infonce": infonce, "gap": gap, "heatmap_text": heat_text[:4000],
                "sidebar": sidebar[:2000], "exceptions": exceptions, "seconds": round(time.perf_counter() - t0, 1)}
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
    return problems


async def _round(chromium: str, url: str, plan: list[tuple[str, str]]) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(run_session(browser, url, s, m) for s, m in plan))
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
        np.savez(path, image=rng.standard_normal((1500, 64)), text=rng.standard_normal((1500, 64)))
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
            await pg.locator('[data-testid="stSelectbox"]').filter(has_text="UMAP").first.click()
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
            started = asyncio.Event()
            job = asyncio.create_task(long_job(browser, started))
            await started.wait()
            busy = await home_loads(browser)
            long_s = await job
        finally:
            await browser.close()
    return {"idle_home_load_s": [round(t, 2) for t in idle], "busy_home_load_s": [round(t, 2) for t in busy],
            "long_computation_s": round(long_s, 1),
            "ratio_median_busy_over_idle": round(sorted(busy)[len(busy) // 2] / sorted(idle)[len(idle) // 2], 2)}


def run(sessions: int, rounds: int, chromium: str, log_path: Path, probe_blocking: bool = True) -> dict[str, Any]:
    """Run ``rounds`` rounds of ``sessions`` concurrent sessions; returns the measurements and problems."""
    plan = [PLAN[k % len(PLAN)] for k in range(sessions)]
    expected = expected_numbers(plan)
    names = {k: v["first_image"] for k, v in expected.items()}
    report: dict[str, Any] = {"sessions": sessions, "rounds": [], "problems": []}
    with server(log_path) as srv:
        report["rss_start_mb"] = round(srv.rss_mb(), 1)
        for r in range(rounds):
            t0 = time.perf_counter()
            seen = asyncio.run(_round(chromium, srv.url, plan))
            for k, s in enumerate(seen):
                key = (s["samples"], s["spec"])
                others = [n for kk, n in names.items() if kk[0] != key[0]]
                for p in check_session(s, expected[key], others):
                    report["problems"].append(f"round {r + 1} session {k + 1} ({key[0]}, {key[1]}): {p}")
            report["rounds"].append({"round": r + 1, "wall_s": round(time.perf_counter() - t0, 1),
                                     "rss_mb": round(srv.rss_mb(), 1),
                                     "session_s": [s["seconds"] for s in seen]})
        loads = srv.model_loads()
        report["model_loads"] = loads
        for key, n in loads.items():
            if n != 1:
                report["problems"].append(f"model {key} loaded {n} times")
        if probe_blocking:
            report["blocking"] = asyncio.run(_blocking_probe(chromium, srv.url))
    rss = [r["rss_mb"] for r in report["rounds"]]
    report["rss_growth_after_round1_mb"] = round(max(rss[1:], default=rss[0]) - rss[0], 1)
    report["expected"] = {f"{k[0]}|{k[1]}": v for k, v in expected.items()}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chromium", default=os.environ.get("MMEXPLORE_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--out", default=str(RESULTS / "concurrency.json"))
    args = ap.parse_args()
    report = run(args.sessions, args.rounds, args.chromium, RESULTS / "concurrency-server.log")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for r in report["rounds"]:
        print(f"round {r['round']}: {args.sessions} sessions in {r['wall_s']} s, server RSS {r['rss_mb']} MB")
    print(f"RSS growth after round 1: {report['rss_growth_after_round1_mb']} MB; model loads: {report['model_loads']}")
    if "blocking" in report:
        b = report["blocking"]
        print(f"home page load idle {b['idle_home_load_s']} s, during another session's "
              f"{b['long_computation_s']} s computation {b['busy_home_load_s']} s "
              f"(median ratio {b['ratio_median_busy_over_idle']})")
    print("problems:", report["problems"] or "none")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
