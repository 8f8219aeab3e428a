"""Renderer speed: milliseconds per held-out scene for every registered renderer, on one thread.

Draws the same held-out scenes (``eval retrieval``'s) with each renderer at 128 px and at the
renderer's own evaluation size, prints the median per image and the ratio to the training renderer
measured in the same run (the baseline), checks the sketch renderer against its 20 ms target at
128 px, and writes ``benchmarks/results/renderers.json``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/renderers.py [--scenes 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 20.0  # sketch, 128 px, one core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from mmexplore.data.renderers import RENDERERS, draw_scene
    from mmexplore.evaluation.retrieval import held_out_scenes

    scenes = held_out_scenes(args.scenes)
    out: dict[str, dict[str, float]] = {}
    for name in RENDERERS:
        out[name] = {}
        for label, size in (("128px", 128), ("eval", None)):
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for s in scenes:
                    draw_scene(s, name, size)
                runs.append((time.perf_counter() - t0) / len(scenes) * 1000)
            out[name][f"ms_{label}"] = round(statistics.median(runs), 3)
    base = out["train"]["ms_128px"]
    for name, r in out.items():
        r["ratio_vs_train_128px"] = round(r["ms_128px"] / base, 2)
        print(f"{name:8s} {r['ms_128px']:7.2f} ms/image at 128 px ({r['ratio_vs_train_128px']:.2f}× train), "
              f"{r['ms_eval']:7.2f} ms at its evaluation size")
    ok = out["sketch"]["ms_128px"] <= TARGET_MS
    print(f"sketch at 128 px: {out['sketch']['ms_128px']:.2f} ms, target ≤ {TARGET_MS} ms: {'met' if ok else 'MISSED'}")
    result = {"scenes": args.scenes, "repeats": args.repeats, "renderers": out, "target_ms": TARGET_MS, "met": ok}
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "renderers.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
