"""Embedding throughput of the model layer vs a plain open_clip loop (issue: foundation, item 8).

For each model (the bundled one and a random-init ViT-B-32, which has the compute of the real one),
the same images and captions are embedded by

- ``plain``: a loop written here with open_clip directly (same model, same batch size);
- ``cold``: ``Encoder.encode_images`` / ``encode_texts`` with the embedding cache bypassed;
- ``cached``: the same call again, served from the embedding cache.

It prints items/s and the ratios ``cold / plain`` (target >= 1.0) and ``cached / cold`` (target >= 100),
and writes ``benchmarks/results/embed.json``.

A second part (``--pipeline-images N``, default 2,000) times ``mmexplore embed`` end to end on N
generated JPEG files with captions (same model, same files, fresh output folders): the single-process
engine against the Ray Data engine (decode tasks + one model actor), Ray start-up included, and
prints the ratio. No GPU is lent to this machine, so the GPU images/s figure is not measured here.

Usage: ``python benchmarks/embed.py [--models bundled,ViT-B-32:random] [--images 64] [--texts 256]
[--pipeline-images 2000] [--pipeline-models bundled,ViT-B-32:random]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def _best_of(fn, repeats: int) -> float:
    """Fastest wall time of ``repeats`` runs (seconds): the least disturbed by other processes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_model(spec: str, n_images: int, n_texts: int, batch: int, repeats: int) -> dict:
    import torch

    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene
    from mmexplore.models import clear_loaded_models, load_model

    clear_loaded_models()
    enc = load_model(spec, "cpu")
    scenes = [make_scene(10_000 + i) for i in range(max(n_images, n_texts))]
    images = [render_scene(s, 224) for s in scenes[:n_images]]
    # Distinct captions: vary the wording so no caption repeats (duplicates would be encoded once).
    texts = [f"{canonical_caption(s).text} number {i}" for i, s in enumerate(scenes[:n_texts])]
    model, preprocess, tokenizer = enc.model, enc.preprocess, enc.tokenizer

    def plain_images() -> None:
        with torch.no_grad():
            for i in range(0, len(images), batch):
                x = torch.stack([preprocess(im) for im in images[i : i + batch]])
                f = model.encode_image(x)
                torch.nn.functional.normalize(f, dim=-1).numpy()

    def plain_texts() -> None:
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                f = model.encode_text(tokenizer(texts[i : i + batch]))
                torch.nn.functional.normalize(f, dim=-1).numpy()

    out: dict = {"spec": spec, "params": enc.info.params, "n_images": n_images, "n_texts": n_texts, "batch": batch}
    for kind, items, plain, call in (
        ("images", images, plain_images, enc.encode_images),
        ("texts", texts, plain_texts, enc.encode_texts),
    ):
        plain()  # warm-up (allocations, lazy init)
        t_plain = _best_of(plain, repeats)
        t_cold = _best_of(lambda c=call, it=items: c(it, batch_size=batch, use_cache=False), repeats)
        enc.cache.clear()
        call(items, batch_size=batch)  # fill the cache
        t_cached = _best_of(lambda c=call, it=items: c(it, batch_size=batch), repeats)
        n = len(items)
        out[kind] = {
            "plain_per_s": n / t_plain,
            "cold_per_s": n / t_cold,
            "cached_per_s": n / t_cached,
            "cold_vs_plain": t_plain / t_cold,
            "cached_vs_cold": t_cold / t_cached,
        }
    clear_loaded_models()
    return out


def make_jpegs(folder: Path, n: int, size: int) -> Path:
    """``n`` shapes-world scenes as JPEG files plus a captions CSV (reused when already there)."""
    import csv

    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene

    table = folder / "captions.csv"
    if table.is_file() and sum(1 for _ in folder.glob("*.jpg")) == n:
        return table
    folder.mkdir(parents=True, exist_ok=True)
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        for i in range(n):
            scene = make_scene(50_000 + i)
            render_scene(scene, size).save(folder / f"{i:06d}.jpg", quality=90)
            w.writerow([f"{i:06d}.jpg", f"{canonical_caption(scene).text} ({i})"])
    return table


def bench_pipeline(spec: str, n: int, size: int, batch: int, workdir: Path) -> dict:
    """``mmexplore embed`` with engine local vs ray on the same files (fresh output each)."""
    import shutil

    from mmexplore.embeddings.job import EmbedOptions, embed
    from mmexplore.embeddings.shards import EmbeddingShards

    table = make_jpegs(workdir / f"jpeg-{size}-{n}", n, size)
    out: dict = {"spec": spec, "n_files": n, "image_px": size, "batch": batch}
    vecs = {}
    for engine in ("local", "ray"):
        dest = workdir / f"out-{engine}"
        shutil.rmtree(dest, ignore_errors=True)
        res = embed(str(table), dest, spec, EmbedOptions(engine=engine, batch_size=batch, progress=False))
        out[engine] = {"seconds": res["seconds"], "items_per_s": n / res["seconds"],
                       **{k: res[k] for k in ("actors", "cpus") if k in res}}
        vecs[engine] = EmbeddingShards(dest).load_all("image")
        shutil.rmtree(dest, ignore_errors=True)
        print(f"  {spec:20s} {engine:5s} {n} files in {res['seconds']:6.1f}s = {n / res['seconds']:7.1f} items/s", flush=True)
    out["ray_vs_local"] = out["local"]["seconds"] / out["ray"]["seconds"]
    out["max_abs_diff"] = float(abs(vecs["local"] - vecs["ray"]).max())
    print(f"  {spec:20s} Ray Data x{out['ray_vs_local']:.2f} vs one process; max |diff| {out['max_abs_diff']:.1e}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bundled,ViT-B-32:random")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pipeline-images", type=int, default=2000, help="0 skips the embed-job comparison")
    parser.add_argument("--pipeline-models", default="bundled,ViT-B-32:random")
    parser.add_argument("--workdir", default="/tmp/mmexplore-bench-embed")
    parser.add_argument("--skip-layer", action="store_true", help="only the embed-job comparison")
    args = parser.parse_args()
    import torch

    results = []
    for spec in ([] if args.skip_layer else args.models.split(",")):
        r = bench_model(spec.strip(), args.images, args.texts, args.batch, args.repeats)
        results.append(r)
        for kind in ("images", "texts"):
            m = r[kind]
            print(
                f"{spec:22s} {kind:6s} plain {m['plain_per_s']:8.1f}/s  model layer {m['cold_per_s']:8.1f}/s "
                f"(x{m['cold_vs_plain']:.2f}, target >= 1.0)  cached {m['cached_per_s']:10.1f}/s "
                f"(x{m['cached_vs_cold']:.0f} vs cold, target >= 100)"
            )
    pipeline = []
    if args.pipeline_images:
        import shutil

        workdir = Path(args.workdir)
        for spec in args.pipeline_models.split(","):
            size = 64 if spec.strip() == "bundled" else 224
            pipeline.append(bench_pipeline(spec.strip(), args.pipeline_images, size, 64, workdir))
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "embed",
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_avg_at_end": os.getloadavg(), "gpu": "none lent to this task: GPU images/s not measured"},
        "results": results,
        "pipeline": pipeline,
    }
    name = "embed.json" if results else "embed_pipeline.json"
    (RESULTS / name).write_text(json.dumps(payload, indent=2))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
