"""Core commands: ``info``, ``similarity``, ``samples``, ``eval retrieval`` (training: :mod:`mmexplore.cli.training`)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from mmexplore.cli.argtypes import int_range, out_dir
from mmexplore.cli.common import add_renderer_arg, command, load_encoder, readability_fields, renderers_of
from mmexplore.errors import InputError


def cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.heatmaps import get_method, list_methods
    from mmexplore.heatmaps.text_attribution import text_method_support

    encoder = load_encoder(args)
    heat = {m: get_method(m).applies(encoder) for m in list_methods()}
    text = text_method_support(encoder.facts)
    return {
        "model": encoder.info.to_dict(),
        "facts": encoder.facts.to_dict(),
        "heatmap_methods": {m: {"applies": ok, "reason": why} for m, (ok, why) in heat.items()},
        "text_attribution_methods": {m: {"applies": why is None, "reason": why or ""} for m, why in text.items()},
    }


def cmd_similarity(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs, read_texts
    from mmexplore.pipeline import compute_similarity

    pairs = None
    if args.captions:
        if args.images:
            raise InputError("give either --captions FILE or --images, not both")
        table = read_pairs(args.captions)
        image_paths, texts, pairs = table.images, table.texts, table.pairs
        # Extra captions (e.g. hard negatives) join as columns that pair with no image.
        extra = list(args.texts or []) + (read_texts(args.texts_file) if args.texts_file else [])
        extra = [t for t in dict.fromkeys(extra) if t not in set(texts)]
        if extra:
            texts = [*texts, *extra]
            pairs = np.hstack([pairs, np.zeros((pairs.shape[0], len(extra)), dtype=bool)])
    else:
        image_paths = list(args.images or [])
        texts = list(args.texts or [])
        if args.texts_file:
            texts += read_texts(args.texts_file)
        if not image_paths:
            raise InputError("no images: pass --images FILE... or --captions FILE")
        if not texts:
            raise InputError("no captions: pass --texts TEXT... , --texts-file FILE or --captions FILE")
    images = [load_image(p) for p in image_paths]
    encoder = load_encoder(args)
    report = compute_similarity(encoder, images, texts, pairs)
    return {"images": image_paths, "texts": texts, "model": encoder.info.to_dict(), **report.to_dict(),
            **readability_fields(encoder, texts)}


def cmd_samples(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.samples import photo_samples, shapes_samples, write_samples

    if args.n < 1:
        raise InputError("--n must be at least 1")
    if args.set == "shapes":
        samples = shapes_samples(n=args.n, size=args.size)
    else:
        samples = photo_samples()
        samples.images, samples.names = samples.images[: args.n], samples.names[: args.n]
        samples.pairs, samples.scenes = samples.pairs[: args.n], samples.scenes[: args.n]
    return {"set": args.set, **write_samples(samples, args.out)}


def cmd_eval_retrieval(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.evaluation.retrieval import evaluate_retrieval

    encoder = load_encoder(args)
    res = evaluate_retrieval(encoder, n_scenes=args.scenes, renderers=renderers_of(args))
    return {"model": encoder.info.name, "retrieval": res}


def register(commands: Any, evals: Any) -> None:
    command(commands, "info", cmd_info,
            "show the model's name, size, device, dtype and facts (family, scoring rule, pooling, heatmap methods)")

    p = command(commands, "similarity", cmd_similarity, "image×text cosine, logits, softmax or sigmoid probabilities, loss, R@K")
    p.add_argument("--images", nargs="+", metavar="FILE", help="image files (image k pairs with text k)")
    p.add_argument("--texts", nargs="+", metavar="TEXT", help="captions (with --captions: extra unpaired captions)")
    p.add_argument("--texts-file", metavar="FILE", help="captions, one per line (with --captions: extra unpaired captions)")
    p.add_argument("--captions", metavar="FILE", help="CSV/TSV/JSONL with image,text columns (many-to-many)")

    p = command(
        commands, "samples", cmd_samples, "write a sample set (PNGs, pairs.csv, captions.txt) to a folder", options="json",
        description="Write a sample set to a folder: one PNG per image, pairs.csv (image,text,phrase) and "
        "captions.txt (all captions, hard negatives included). Shapes scenes are held-out seeds.",
    )
    p.add_argument("--out", default="samples", type=out_dir, metavar="DIR", help="output folder (default: samples)")
    p.add_argument("--set", choices=["shapes", "photos"], default="shapes", help="shapes-world scenes or scikit-image photos")
    p.add_argument("--n", type=int_range(1, 100_000), default=8, help="number of images (photos: at most 8)")
    p.add_argument("--size", type=int_range(16, 4096), default=192, help="side of the rendered shapes scenes, pixels")

    p = command(evals, "retrieval", cmd_eval_retrieval, "R@K and hard-negative accuracy on held-out scenes")
    p.add_argument("--scenes", type=int_range(1, 100_000), default=200)
    add_renderer_arg(p)
