"""``mmexplore heatmap`` (per-word maps of one pair, or phrase peaks of a pairs file) and
``mmexplore eval pointing`` (docs/design.md §8)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mmexplore.cli.argtypes import float_range, fraction, int_range, nonneg_int, out_dir
from mmexplore.cli.common import command, load_encoder, readability_fields
from mmexplore.errors import InputError
from mmexplore.heatmaps.pointing import EVAL_SEED_OFFSET


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "x"


def _method_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"start_layer": args.start_layer, "word_features": args.word_features, "phrase_features": args.phrase_features}


def _write_pair_files(out: Path, stem: str, image: Any, result: Any, args: argparse.Namespace) -> list[str]:
    from mmexplore.heatmaps import overlay, overlay_grid

    out.mkdir(parents=True, exist_ok=True)
    style = {"cmap": args.cmap, "opacity": args.opacity, "smooth": args.smooth}
    files = []
    for k, word in enumerate(result.words):
        path = out / f"{stem}_{args.method}_{k:02d}_{_safe(word)}.png"
        overlay(image, result, k, **style).save(path)
        files.append(str(path))
    for phrase in result.phrases:
        path = out / f"{stem}_{args.method}_phrase_{_safe(phrase)}.png"
        overlay(image, result, phrase, **style).save(path)
        files.append(str(path))
    grid = out / f"{stem}_{args.method}_grid.png"
    overlay_grid(image, result, **style).save(grid)
    files.append(str(grid))
    return files


def cmd_heatmap(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.heatmaps import check_method, compute_heatmaps

    check_method(args.method)
    if args.pairs:
        if args.image or args.text:
            raise InputError("give either --pairs FILE or --image/--text, not both")
        return _heatmap_pairs(args)
    if not args.image or args.text is None:
        raise InputError("pass --image FILE and --text TEXT (or --pairs FILE)")
    if not args.text.strip():
        raise InputError("--text is empty: type at least one word")
    image = load_image(args.image)
    encoder = load_encoder(args)
    phrases = [args.phrase] if args.phrase else []
    result = compute_heatmaps(encoder, [image], [args.text], phrases=[phrases], method=args.method, **_method_kwargs(args))[0]
    files = _write_pair_files(Path(args.out), _safe(Path(args.image).stem), image, result, args) if args.out else []
    d = result.to_dict()
    out = {"words": d["words"], "maps": d["maps"], "files": files, **{k: v for k, v in d.items() if k not in {"words", "maps"}}}
    read = readability_fields(encoder, [args.text, *([args.phrase] if args.phrase else [])])
    out["unknown_word_share"] = read["readability"][0]["unknown_share"]
    out["warnings"] = read["warnings"]
    text_method = _text_method(args, encoder)
    if text_method:
        from mmexplore.heatmaps.text_attribution import word_attribution

        out["word_attribution"] = word_attribution(encoder, image, args.text, method=text_method).to_dict()
    if args.method == "attention":
        from mmexplore.heatmaps.decomposition import decompose_score

        # The attention matrix's companion: the same word × patch cells as shares of the pair's score.
        out["score_decomposition"] = decompose_score(encoder, image, args.text).to_dict()
    if args.phrase:
        out["peak"] = list(result.peak(args.phrase))
        # A peak exists for any string; for a phrase the model cannot read it locates nothing.
        out["phrase_readable"] = not read["readability"][1]["unreadable"]
    return out


def _text_method(args: argparse.Namespace, encoder: Any) -> str | None:
    """The text attribution to report: as asked, else the first that applies to the model; None for 'none'."""
    from mmexplore.heatmaps.text_attribution import TEXT_METHODS, text_method_support

    if args.text_attribution == "none":
        return None
    if args.text_attribution != "auto":
        return args.text_attribution
    support = text_method_support(encoder.facts)
    return next(m for m in TEXT_METHODS if support[m] is None)


def _heatmap_pairs(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs
    from mmexplore.heatmaps import compute_heatmaps, overlay

    table = read_pairs(args.pairs)
    cache: dict[str, Any] = {}
    for row in table.rows:
        if row["image"] not in cache:
            cache[row["image"]] = load_image(row["image"])
    images = [cache[r["image"]] for r in table.rows]
    texts = [r["text"] for r in table.rows]
    # No phrase on a row: the map of the whole caption (its pooled embedding).
    phrases = [(r.get("phrase") or "").strip() or r["text"] for r in table.rows]
    encoder = load_encoder(args)
    results = compute_heatmaps(encoder, images, texts, phrases=phrases, method=args.method, **_method_kwargs(args))
    out_rows = []
    for n, (row, res, phrase) in enumerate(zip(table.rows, results, phrases, strict=True)):
        item = {"image": row["image"], "text": row["text"], "phrase": phrase, "peak": list(res.peak(phrase))}
        if res.note:
            item["note"] = res.note
        if args.out:
            path = Path(args.out) / f"{n:04d}_{_safe(Path(row['image']).stem)}_{args.method}_{_safe(phrase)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            overlay(images[n], res, phrase, cmap=args.cmap, opacity=args.opacity, smooth=args.smooth).save(path)
            item["file"] = str(path)
        out_rows.append(item)
    return {"method": args.method, "results": out_rows}


def cmd_eval_pointing(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.heatmaps import get_method, list_methods, pointing_game
    from mmexplore.heatmaps.pointing import pointing_scenes

    if args.scenes < 1:
        raise InputError(f"--scenes must be at least 1, got {args.scenes}")
    if args.seed_offset < 0:
        raise InputError(f"--seed-offset must be at least 0, got {args.seed_offset}")
    every = args.method in ("all", "both")
    if not every:
        get_method(args.method)
    encoder = load_encoder(args)
    # "all": every registered method that applies to this model; the others are named with the reason.
    methods = list_methods(encoder) if every else [args.method]
    skipped = {m: get_method(m).unsupported(encoder) for m in list_methods() if every and m not in methods}
    scenes = pointing_scenes(args.scenes, seed_offset=args.seed_offset)
    report = pointing_game(encoder, scenes, methods=methods, **_method_kwargs(args))
    report["seed_offset"] = args.seed_offset
    if skipped:
        report["skipped"] = skipped
    lines = [f"pointing game, {report['n_scenes']} scenes, {report['n_phrases']} object phrases ({encoder.info.name})",
             f"  random pixel baseline {report['baseline']:.3f}; random object baseline {report['object_baseline']:.3f}; "
             f"patch-resolution ceiling {report['ceiling']:.3f}"]
    for m, r in report["methods"].items():
        lines.append(
            f"  {m:10s} accuracy {r['accuracy']:.3f}  energy in mask {r['energy']:.3f}  peak on an object {r['any_object']:.3f}"
        )
    lines += [f"  {m:10s} skipped: {why}" for m, why in skipped.items()]
    return {"model": encoder.info.name, "pointing": report, "_text": "\n".join(lines)}


def _add_method_args(p: argparse.ArgumentParser) -> None:
    from mmexplore.heatmaps.methods import PHRASE_FEATURES, WORD_FEATURES

    p.add_argument("--start-layer", type=int_range(-1024, 1023), default=0,
                   help="relevancy: first image block used (negative: from the end)")
    p.add_argument("--word-features", choices=WORD_FEATURES, default="alone",
                   help="context: the word's token state in the caption; alone: the word embedded on its own")
    p.add_argument("--phrase-features", choices=PHRASE_FEATURES, default="pooled",
                   help="pooled: the phrase embedded on its own; words: mean of its word features in the caption")


def register(commands: Any, evals: Any) -> None:
    from mmexplore.heatmaps.methods import get_method, list_methods
    from mmexplore.heatmaps.render import COLORMAPS
    from mmexplore.heatmaps.text_attribution import TEXT_METHODS

    p = command(commands, "heatmap", cmd_heatmap,
                "per-word heatmaps (the registered methods that apply to the model) and which words drive the score")
    p.add_argument("--image", metavar="FILE", help="image file")
    p.add_argument("--text", metavar="TEXT", help="caption")
    p.add_argument("--phrase", metavar="P", help="also map this phrase (embedded on its own); reports its peak")
    p.add_argument("--pairs", metavar="FILE", help="CSV/JSONL with image,text[,phrase] columns: the peak of each row's phrase")
    names = list_methods()
    p.add_argument("--method", default="attention",
                   help="; ".join(f"{m}: {get_method(m).label}" for m in names) + " (default attention)")
    p.add_argument("--out", type=out_dir, metavar="DIR", help="write overlay PNGs (one per word, phrase, and a grid) here")
    p.add_argument("--cmap", default="inferno", choices=COLORMAPS)
    p.add_argument("--opacity", type=fraction, default=0.5)
    p.add_argument("--smooth", type=float_range(0.0, 50.0), default=0.0, help="Gaussian blur of the overlay, in patches")
    p.add_argument("--text-attribution", choices=["auto", *TEXT_METHODS, "none"], default="auto",
                   help="which words drive the pair's score, in the JSON's word_attribution (auto: gradient × input "
                        "where words map to tokens, else leave-one-word-out)")
    _add_method_args(p)

    p = command(evals, "pointing", cmd_eval_pointing, "pointing game: does each object phrase's map peak inside its mask?")
    p.add_argument("--scenes", type=int_range(1, 100_000), default=100, help="held-out scenes with 2-3 objects")
    p.add_argument("--seed-offset", type=nonneg_int, default=EVAL_SEED_OFFSET,
                   help="which held-out scenes (default 7000, the reported set; another offset gives a fresh set)")
    p.add_argument("--method", choices=[*names, "all", "both"], default="all",
                   help="one method, or all that apply to the model (default; 'both' is the older name of 'all')")
    _add_method_args(p)
