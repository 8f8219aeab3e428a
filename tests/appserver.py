"""``streamlit run app.py`` on a free loopback port, for the browser tests and ``benchmarks/concurrency.py``.

One helper, so the tests and the benchmark start the server the same way (loopback only, headless,
no file watcher, offline) and stop it the same way (its whole process group):

>>> with serve(Path("server.log")) as srv:           # doctest: +SKIP
...     srv.url, srv.rss_mb(), srv.model_loads()
('http://127.0.0.1:40123', 612.3, {'bundled@cpu': 1})

Not a test module: it imports neither pytest nor the app, so a benchmark can use it too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 90


def find_chromium() -> str | None:
    """The system Chromium (``$MMEXPLORE_CHROMIUM``, ``/usr/bin/chromium`` or on ``PATH``), or None."""
    candidates = (
        os.environ.get("MMEXPLORE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    )
    for cand in candidates:
        if cand and Path(cand).is_file():
            return cand
    return None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its process, URL and log file."""

    proc: subprocess.Popen
    url: str
    log_path: Path

    def rss_mb(self) -> float:
        """Resident memory of the server process, MB (Linux ``/proc``)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]

    def model_loads(self) -> dict[str, int]:
        """How many times the server log says each ``spec@device`` was loaded."""
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


@contextlib.contextmanager
def serve(log_path: Path, model: str = "bundled", env_extra: dict[str, str] | None = None,
          timeout_s: float = START_TIMEOUT_S) -> Iterator[Server]:
    """Start ``streamlit run app.py`` headless on a free loopback port; stop its process group after.

    ``model`` is the server's default model spec (``MMEXPLORE_MODEL``), on CPU. Raises
    RuntimeError when the server exits or does not answer ``/_stcore/health`` within ``timeout_s``.
    """
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    env = dict(os.environ, HF_HUB_OFFLINE="1", MMEXPLORE_MODEL=model, MMEXPLORE_DEVICE="cpu", **(env_extra or {}))
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
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
                raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.5)
        yield Server(proc, url, log_path)
    finally:
        # The server was started in its own session: stop exactly that process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Streamlit waits for a running script before it exits; do not wait for that.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        log.close()
