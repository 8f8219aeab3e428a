"""Does the dense alignment term (``--dense-weight``) make heatmaps point better? A short A/B run.

Trains the same architecture twice from the same seed for the same wall-clock budget, without and
with the term (both at once, one thread each, so they share the machine's load), then plays the
pointing game on held-out scenes and reads the retrieval figures of each. Prints the ratios
(with / without) and writes ``benchmarks/results/dense_alignment.json``.

    .venv/bin/python benchmarks/dense_alignment.py --minutes 3 --arch mmexplore-shapes-s
    .venv/bin/python benchmarks/dense_alignment.py --minutes 3 --init runs/bundled --lr 3e-4 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def _train(out: str, arch: str, minutes: float, batch_size: int, weight: float, lr: float, seed: int, init: str | None) -> dict:
    from mmexplore.training.train import TrainConfig, train

    cfg = TrainConfig(out=out, arch=arch, steps=100_000, minutes=minutes, batch_size=batch_size, lr=lr,
                      warmup_steps=20 if init else 50, eval_every=0, eval_scenes=100, threads=1, seed=seed,
                      dense_weight=weight, init=init)
    m = train(cfg, log=lambda s: None)
    return {"steps": m["steps"], "wall_s": m["wall_s"], "eval": m["eval"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="mmexplore-shapes-s")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/dense_ab")
    ap.add_argument("--init", default=None, help="fine-tune both arms from this model folder (same --arch)")
    args = ap.parse_args()

    import torch

    from mmexplore.heatmaps import pointing_game
    from mmexplore.models import load_model

    runs = {"without": 0.0, "with": args.weight}
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_train, f"{args.out}/{name}", args.arch, args.minutes, args.batch_size, w, args.lr,
                                     args.seed, args.init)
                   for name, w in runs.items()}
        trained = {name: f.result() for name, f in futures.items()}
    torch.set_num_threads(2)
    report: dict = {"config": vars(args), "train_wall_s": round(time.time() - t0, 1), "runs": {}}
    for name, w in runs.items():
        enc = load_model(f"local-dir:{Path(args.out, name).resolve()}", "cpu")
        pg = pointing_game(enc, n_scenes=args.scenes)
        ev = trained[name]["eval"]
        report["runs"][name] = {
            "dense_weight": w,
            "steps": trained[name]["steps"],
            "pointing": pg,
            "retrieval_i2t@1": {r: ev[r]["i2t@1"] for r in ev},
            "color_binding": {r: ev[r]["color_binding"] for r in ev},
        }
    start = f"fine-tuned from {args.init}" if args.init else "from scratch"
    print(f"{args.arch} {start}, {args.minutes} min each, pointing on {args.scenes} held-out scenes")
    print(f"  random pixel baseline {report['runs']['with']['pointing']['baseline']:.3f}, "
          f"random object {report['runs']['with']['pointing']['object_baseline']:.3f}")
    for name, r in report["runs"].items():
        acc = {m: round(v["accuracy"], 3) for m, v in r["pointing"]["methods"].items()}
        en = {m: round(v["energy"], 3) for m, v in r["pointing"]["methods"].items()}
        print(f"  {name:8s} steps {r['steps']:4d} pointing {acc} energy {en} i2t@1 {r['retrieval_i2t@1']}")
    for m in report["runs"]["with"]["pointing"]["methods"]:
        a = report["runs"]["with"]["pointing"]["methods"][m]["accuracy"]
        b = report["runs"]["without"]["pointing"]["methods"][m]["accuracy"]
        print(f"  ratio with/without, {m} pointing: {a / max(b, 1e-9):.2f}")
    out = Path("benchmarks/results/dense_alignment.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
