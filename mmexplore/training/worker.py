"""Run one training job in its own process: ``python -m mmexplore.training.worker CONFIG.json``.

The Train page starts this worker so that training never competes with the web server for the
Python GIL, and a page refresh or a page switch does not touch it. Events go to the run folder's
``train_log.jsonl`` (the page reads them from there); SIGINT or SIGTERM asks for a clean stop: the
trainer finishes its step, saves a loadable model and checkpoint, and exits 0.

``python -m mmexplore.training.worker --resume RUN_DIR [--steps N] [--minutes M]`` continues a run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 finished or stopped, 1 failed)."""
    from mmexplore.training.trainer import TrainConfig, Trainer

    ap = argparse.ArgumentParser(prog="mmexplore.training.worker")
    ap.add_argument("config", nargs="?", help="a TrainConfig as JSON")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=None)
    args = ap.parse_args(argv)
    if args.resume:
        trainer = Trainer.resume(args.resume, steps=args.steps, minutes=args.minutes)
    else:
        with open(args.config) as f:
            trainer = Trainer(TrainConfig.from_dict(json.load(f)))

    def stop(signum, frame):
        trainer.request_stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        trainer.run()
    except Exception as exc:  # one line for the page; the run folder already says "failed"
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
