"""App speed: switching to the Similarity page with 32 images × 32 captions, model and embeddings cached.

Runs the real app (``app.py``) under Streamlit's AppTest, in one process:

1. load the model and the data set once and render the Similarity page (the cold run: encoding);
2. then switch Home → Similarity several times and time each switch to Similarity (the warm path a
   user sees after the first visit), and, as a baseline measured in the same run, each switch to
   the Home page.

Prints the median times, the ratio to the 1 s target of issue 4 and to the Home-page baseline, and
writes ``benchmarks/results/app.json``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/app.py [--repeats 7] [--n 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="images (and as many captions)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model", default=None, help="model spec (default: bundled, as the tests)")
    args = parser.parse_args()

    from apptest_utils import new_app, test_model_spec

    from mmexplore.data.samples import shapes_samples
    from mmexplore_app.state import Dataset

    model = args.model or test_model_spec()
    ds = Dataset.from_samples(shapes_samples(n=args.n, negatives=False))
    at = new_app(dataset=ds, model=model, device="cpu", timeout=600)

    t0 = time.perf_counter()
    at.run()
    at.switch_page("mmexplore_app/pages/similarity.py")
    at.run()
    cold = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"the similarity page failed: {at.exception[0].value}")
    from apptest_utils import heatmap_values

    shape = heatmap_values(at).shape
    assert shape == (args.n, args.n), shape

    sim_times, home_times = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        at.switch_page("mmexplore_app/pages/home.py")
        at.run()
        home_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        at.switch_page("mmexplore_app/pages/similarity.py")
        at.run()
        sim_times.append(time.perf_counter() - t)
        assert not at.exception
    sim, home = statistics.median(sim_times), statistics.median(home_times)
    result = {
        "benchmark": "app_similarity_switch",
        "model": model,
        "images": args.n,
        "captions": args.n,
        "repeats": args.repeats,
        "cold_first_render_s": round(cold, 3),
        "switch_to_similarity_median_s": round(sim, 4),
        "switch_to_similarity_max_s": round(max(sim_times), 4),
        "switch_to_home_median_s": round(home, 4),
        "target_s": TARGET_S,
        "ratio_to_target": round(sim / TARGET_S, 3),
        "ratio_to_home_baseline": round(sim / home, 2) if home > 0 else None,
        "cpu_threads": os.cpu_count(),
    }
    print(f"first render (model load + encoding {args.n}+{args.n}): {cold:.2f} s")
    print(
        f"switch to Similarity, {args.n}×{args.n}, cached: median {sim * 1000:.0f} ms "
        f"(max {max(sim_times) * 1000:.0f} ms) = {sim / TARGET_S:.2f} × the {TARGET_S:.0f} s target"
    )
    print(f"baseline, switch to Home: median {home * 1000:.0f} ms; Similarity/Home = {sim / home:.2f}")
    out = ROOT / "benchmarks" / "results" / "app.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
