"""The server's one background training run, shared by every browser session of the Train page.

A :class:`TrainingJob` is a worker process (:mod:`mmexplore.training.worker`) training into a run
folder; the page reads its events from the folder's ``train_log.jsonl`` and its latest probe
embeddings from ``snapshots/``. A process, not a thread, so training never competes with the web
server for the Python GIL. The :data:`JOBS` manager lives in this module, which Streamlit imports
once per server process, so a run survives page switches and browser refreshes: the page simply
re-attaches to ``JOBS.current()``. One run at a time per server; starting a second while one trains
raises :class:`Busy` with a message naming the running one.

No Streamlit here: the page draws, this module only runs and remembers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError


class Busy(InputError):
    """Another run is training on this server."""


@dataclass
class TrainingJob:
    """A worker process training one run, and the events it has reported so far.

    Attributes
    ----------
    out : Path
        The run folder.
    proc : subprocess.Popen
    steps, evals : list of dict
        ``step`` and ``eval`` events read so far.
    end : dict or None
        The ``end`` event once the run has ended.
    error : str or None
        One line when the worker failed.
    """

    out: Path
    proc: Any
    steps: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    start_event: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    first_eval_s: float | None = None  # wall seconds from start to the first held-out figure after step 0
    _offset: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """The run's folder name (its model is ``run:NAME``)."""
        return self.out.name

    @property
    def running(self) -> bool:
        """True while the worker process lives."""
        return self.proc.poll() is None

    @property
    def status(self) -> str:
        """``starting``, ``running``, ``finished``, ``stopped`` or ``failed``."""
        self.refresh()
        if self.end is not None:
            return str(self.end.get("status"))
        if self.running:
            return "running" if self.start_event else "starting"
        return "failed"

    @property
    def config(self) -> dict[str, Any]:
        """The run's settings (from its start event, else the request)."""
        return (self.start_event or {}).get("config", {})

    def refresh(self) -> None:
        """Read the events the worker appended since the last call."""
        with self._lock:
            path = self.out / "train_log.jsonl"
            if not path.is_file():
                return
            if path.stat().st_size < self._offset:  # rewritten (a resume after a crash): read it again
                self._offset, self.steps, self.evals, self.end = 0, [], [], None
            with open(path) as f:
                f.seek(self._offset)
                chunk = f.read()
            done = chunk.rfind("\n") + 1  # a half-written last line is read next time
            self._offset += len(chunk[:done].encode())
            for line in chunk[:done].splitlines():
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kind = ev.get("event")
                if kind == "start":
                    self.start_event = ev
                    self.end = None  # a resumed run: the earlier session's end is history
                elif kind == "step":
                    self.steps.append(ev)
                elif kind == "eval":
                    self.evals.append(ev)
                    if self.first_eval_s is None and ev["step"] > 0:
                        self.first_eval_s = time.time() - self.started
                elif kind == "end":
                    self.end = ev
            if not self.running and self.end is None and self.error is None:
                self.error = _last_line(self.out / "worker.log") or f"the worker exited with status {self.proc.returncode}"

    def stop(self) -> None:
        """Ask the worker to stop after its current step (it then saves a loadable model)."""
        if self.running:
            self.proc.send_signal(signal.SIGINT)

    @property
    def step(self) -> int:
        """The last step reported."""
        return int(self.steps[-1]["step"]) if self.steps else int((self.start_event or {}).get("step", 0))

    def elapsed_s(self) -> float:
        """Training seconds of the run so far (earlier sessions of a resumed run included)."""
        return float(self.steps[-1].get("elapsed_s", 0.0)) if self.steps else 0.0

    def progress(self) -> float:
        """Share of the budget used, 0–1."""
        if self.end is not None:
            return 1.0 if self.end.get("status") == "finished" else min(1.0, self._budget_share())
        return min(1.0, self._budget_share())

    def _budget_share(self) -> float:
        cfg = self.config
        if not cfg:
            return 0.0
        share = self.step / max(1, int(cfg.get("steps") or 1))
        if cfg.get("minutes"):
            share = max(share, self.elapsed_s() / (60 * float(cfg["minutes"])))
        return share

    def latest_snapshot_step(self) -> int | None:
        """Step of the newest replay snapshot on disk, or None."""
        files = sorted((self.out / "snapshots").glob("step_*.npz"))
        return int(files[-1].stem.split("_")[1]) if files else None

    def latest_probe(self) -> dict[str, Any] | None:
        """The newest replay snapshot (see :func:`latest_probe`)."""
        return latest_probe(self.out)


def latest_probe(out: Path) -> dict[str, Any] | None:
    """The newest replay snapshot of a run: ``step``, ``image`` (k, d), ``caption`` (k, d), ``captions``, ``scene_seeds``."""
    folder = out / "snapshots"
    files = sorted(folder.glob("step_*.npz"))
    meta_path = folder / "probe.json"
    if not files or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(files[-1], allow_pickle=False) as z:
            return {"step": int(z["step"][0]), "image": z["image"].astype(np.float32),
                    "caption": z["caption"].astype(np.float32), "captions": meta["captions"],
                    "scene_seeds": meta["scene_seeds"]}
    except (OSError, ValueError, KeyError, json.JSONDecodeError):  # being written: try next refresh
        return None


def _last_line(path: Path) -> str | None:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


class JobManager:
    """At most one :class:`TrainingJob` per server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def current(self) -> TrainingJob | None:
        """The running job, or the last one (finished, stopped or failed), or None."""
        job = self._job
        if job is not None:
            job.refresh()
        return job

    def _check_free(self) -> None:
        job = self._job
        if job is not None and job.running:
            raise Busy(f"run '{job.name}' is training on this server (step {job.step}); "
                       "one run at a time — stop it or wait for it to finish")

    def _spawn(self, out: Path, args: list[str]) -> TrainingJob:
        out.mkdir(parents=True, exist_ok=True)
        log = open(out / "worker.log", "w")  # noqa: SIM115 - handed to the child process
        proc = subprocess.Popen([sys.executable, "-m", "mmexplore.training.worker", *args], stdout=subprocess.DEVNULL,
                                stderr=log, cwd=os.getcwd())  # the child inherits this environment
        log.close()
        return TrainingJob(out=out, proc=proc)

    def start(self, cfg: Any) -> TrainingJob:
        """Start a new run from a :class:`~mmexplore.training.trainer.TrainConfig` (validated here first)."""
        cfg.validate()
        with self._lock:
            self._check_free()
            out = Path(cfg.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "train_log.jsonl").write_text("")
            request = out / "request.json"
            request.write_text(json.dumps(asdict(cfg)))
            self._job = self._spawn(out, [str(request)])
            return self._job

    def resume(self, out: str | Path, *, steps: int | None = None, minutes: float | None = None) -> TrainingJob:
        """Continue a stopped (or finished) run from its checkpoint."""
        out = Path(out)
        if not (out / "checkpoint" / "state.json").is_file():
            raise InputError(f"run '{out.name}' has no checkpoint to resume from")
        with self._lock:
            self._check_free()
            args = ["--resume", str(out)]
            if steps is not None:
                args += ["--steps", str(int(steps))]
            if minutes is not None:
                args += ["--minutes", str(float(minutes))]
            self._job = self._spawn(out, args)
            return self._job

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current worker exits (tests, benchmarks)."""
        job = self._job
        if job is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(timeout)
            job.refresh()


JOBS = JobManager()
