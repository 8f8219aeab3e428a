"""Make the shipped replays (``mmexplore/assets/replays/``): short runs of each Train-page preset.

Each run trains the smallest model for ``--steps`` steps (batch 64, one thread) from the same seed,
then its ``run.json``, its events (every ``--thin``-th step event, every eval) and its replay
snapshots are copied to ``mmexplore/assets/replays/<preset>/`` — no weights, so the folder stays small — and
a summary of the held-out figures is printed and written to ``benchmarks/results/presets.json``.

    nice -n 10 .venv/bin/python scripts/make_replays.py --steps 300
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (replay name, preset, extra TrainConfig fields)
RUNS = (
    ("clip", "clip", {}),
    ("negclip", "negclip", {}),
    ("multi-positive", "multi-positive", {}),
    ("sigmoid", "sigmoid", {}),
    ("clip-decorrelation", "clip", {"regularizer": "decorrelation", "reg_weight": 1.0}),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--work", default="runs/replays-work")
    ap.add_argument("--thin", type=int, default=3, help="keep every N-th step event in the shipped log")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()

    from mmexplore.training.presets import preset_config
    from mmexplore.training.trainer import Trainer, read_events

    summary = {}
    for name, preset, extra in RUNS:
        if args.only and name not in args.only:
            continue
        out = Path(args.work) / name
        if out.exists():
            shutil.rmtree(out)
        cfg = preset_config(preset, out=str(out), name=name, steps=args.steps, minutes=None, threads=1, seed=0,
                            device="cpu", **extra)
        t0 = time.time()
        Trainer(cfg).run()
        wall = time.time() - t0
        dst = ROOT / "mmexplore" / "assets" / "replays" / name
        if dst.exists():
            shutil.rmtree(dst)
        (dst / "snapshots").mkdir(parents=True)
        run = json.loads((out / "run.json").read_text())
        run["config"]["out"] = f"mmexplore/assets/replays/{name}"
        (dst / "run.json").write_text(json.dumps(run, indent=1))
        events = read_events(out / "train_log.jsonl")
        kept = [e for e in events if e["event"] != "step" or e["step"] % args.thin == 0 or e["step"] == 1]
        (dst / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in kept))
        for f in (out / "snapshots").iterdir():
            shutil.copy(f, dst / "snapshots" / f.name)
        last = [e for e in events if e["event"] == "eval"][-1]
        summary[name] = {"steps": args.steps, "wall_s": round(wall, 1),
                         **{k: last[k] for k in ("i2t@1", "t2i@1", "color_binding", "relation_order",
                                                  "modality_gap", "dim_corr")},
                         "final": run.get("final")}
        print(name, json.dumps(summary[name]), flush=True)
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    path = res / "presets.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**old, **summary}, indent=1))


if __name__ == "__main__":
    main()
