"""Search and probe commands: ``index build``, ``search``, ``probe``, ``eval compositional``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mmexplore.cli.argtypes import any_int, float_range, int_range, positive_int
from mmexplore.cli.common import add_common_args, command, load_encoder, readability_fields
from mmexplore.errors import InputError, ModelLoadError

# The hard-negative model and its plain-CLIP twin: NegCLIP's effect on the same scenes.
DEFAULT_COMPARED = "bundled,bundled-nodense,bundled-noneg"


def _kinds_summary(kinds: dict[str, Any]) -> dict[str, Any]:
    return {kind: {"backend": d["backend"], "size": d["size"], "recall@10": d["recall@10"],
                   **({"nprobe": d["params"]["nprobe"]} if d["params"].get("nprobe") is not None else {})}
            for kind, d in kinds.items()}


def cmd_index_build(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.retrieval import build_index

    if not 0 < args.recall_target <= 1:
        raise InputError(f"--recall-target must be in (0, 1], got {args.recall_target}")
    if args.threshold < 1:
        raise InputError(f"--threshold must be at least 1, got {args.threshold}")
    if (args.source is None) == (args.embeddings is None):
        raise InputError("give exactly one of SOURCE (images or captions to embed) or --embeddings DIR")
    if args.embeddings is not None:
        from mmexplore.retrieval.from_embeddings import build_index_from_embeddings

        out = build_index_from_embeddings(args.embeddings, args.index, backend=args.backend,
                                          threshold=args.threshold, recall_target=args.recall_target,
                                          progress=not args.no_progress)
        out["kinds"] = _kinds_summary(out["kinds"])
        return out
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if not Path(args.source).exists():
        raise InputError(f"{args.source}: no such file or folder")
    encoder = load_encoder(args)
    out = build_index(args.source, args.index, encoder, backend=args.backend, threshold=args.threshold,
                      chunk_size=args.chunk_size, progress=not args.no_progress)
    info = out.pop("index_info")
    out["kinds"] = _kinds_summary(info["kinds"])
    out["model_id"] = info["model_id"]
    return out


def cmd_search(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.retrieval import SearchIndex

    text = args.text if args.text is not None else args.query
    if (text is None) == (args.image is None):
        raise InputError("give exactly one query: --text QUERY (or a positional QUERY) or --image FILE")
    if args.k < 1:
        raise InputError(f"--k must be at least 1, got {args.k}")
    index = SearchIndex.load(args.index)
    if args.model is None:
        args.model = index.model_name  # the index's own model unless another is asked for
    encoder = load_encoder(args)
    if args.image is not None:
        from mmexplore.data.images import load_image

        results = index.search_image(encoder, load_image(args.image), args.target, args.k)
        query = {"image": args.image}
    else:
        results = index.search_text(encoder, text, args.target, args.k)
        read = readability_fields(encoder, [text])
        query = {"text": text, "unknown_word_share": read["unknown_word_share"], **read["readability"][0]}
    has_captions = any(r["caption"] for r in results)
    rows = [{"path": r["path"], "score": r["score"], **({"caption": r["caption"]} if has_captions else {})}
            for r in results]
    lines = [f"{r['score']:.4f}  {r['path']}" + (f"  {r['caption']}" if r.get("caption") else "") for r in rows]
    return {"query": query, "target": results[0]["kind"] if results else args.target, "results": rows,
            "warnings": read["warnings"] if args.image is None else [], "_text": "\n".join(lines) or "no results"}


def cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.probes import score_probes

    if not args.text.strip():
        raise InputError("--text is empty")
    image = load_image(args.image)
    encoder = load_encoder(args)
    res = score_probes(encoder, encoder.encode_images([image]), [args.text], seed=args.seed)[0]
    lines = [f"{'caption':15s} {res.score:.4f}        {res.caption}"]
    lines += [f"{r.kind:15s} {r.score:.4f}  {'pass' if r.passed else 'FAIL'}  {r.text}" for r in res.rows]
    read = readability_fields(encoder, [args.text])
    lines.append(f"words the model cannot read: {read['unknown_word_share']:.0%}")
    return {"image": args.image, **res.to_dict(), "unknown_word_share": read["unknown_word_share"],
            "warnings": read["warnings"], "_text": "\n".join(lines)}


def _table(results: dict[str, Any]) -> str:
    """A human-readable side-by-side table of ``eval compositional``."""
    from mmexplore.probes import ARO_NOTE, PERTURBATION_KINDS

    lines = []
    models = [m for m, r in results["models"].items() if "missing" not in r]
    for renderer in results["renderers"]:
        lines.append(f"renderer: {renderer}  (accuracy: true caption beats its perturbation; bag of words in brackets)")
        lines.append(f"{'kind':16s}" + "".join(f"{m:>24s}" for m in models) + f"{'n':>6s}")
        for kind in PERTURBATION_KINDS:
            cells, n = "", 0
            for m in models:
                r = results["models"][m]["accuracy"][renderer][kind]
                cells += f"{r['model']:>13.3f} ({r['bag_of_words']:.3f})   "
                n = r["n"]
            lines.append(f"{kind:16s}{cells}{n:>6d}")
        lines.append("")
    for m, r in results["models"].items():
        if "missing" in r:
            lines.append(f"{m}: MISSING — {r['missing']}")
    lines.append(ARO_NOTE)
    return "\n".join(lines)


def cmd_eval_compositional(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.evaluation.retrieval import RENDERERS
    from mmexplore.models import load_model
    from mmexplore.probes import ARO_NOTE, ARO_REFERENCE, evaluate_compositional

    if args.scenes < 1:
        raise InputError(f"--scenes must be at least 1, got {args.scenes}")
    specs = [s.strip() for s in (args.models or args.model or DEFAULT_COMPARED).split(",") if s.strip()]
    if not specs:
        raise InputError("--models is empty; e.g. --models bundled,bundled-noneg")
    renderers = RENDERERS if args.renderer == "both" else (args.renderer,)
    models: dict[str, Any] = {}
    for spec in specs:
        try:
            encoder = load_model(spec, args.device)
        except ModelLoadError as exc:
            if len(specs) == 1:
                raise
            # A variant not shipped yet (e.g. bundled-noneg) must not hide the others' results.
            hint = (f"; train it with `mmexplore train --negatives 0 --out assets/{spec}`"
                    if spec == "bundled-noneg" else "")
            models[spec] = {"missing": f"model '{spec}' is not available ({exc}){hint}"}
            continue
        res = evaluate_compositional(encoder, n_scenes=args.scenes, renderers=renderers)
        models[spec] = {"model_id": encoder.model_id, "accuracy": res}
    if all("missing" in m for m in models.values()):
        raise ModelLoadError("; ".join(m["missing"] for m in models.values()))
    out = {"models": models, "renderers": list(renderers), "n_scenes": args.scenes,
           "reference": {"source": "ARO, Yuksekgonul et al. 2023, Visual Genome (context, not our results)",
                         "figures": ARO_REFERENCE, "note": ARO_NOTE}}
    out["_text"] = _table(out)
    return out


def register(commands: Any, evals: Any) -> None:
    from mmexplore.retrieval.backends import available_backends
    from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD

    index_parser = commands.add_parser("index", help="build a search index (see `mmexplore index build -h`)")
    index_cmds = index_parser.add_subparsers(dest="index_command", metavar="ACTION")
    index_cmds.required = True
    p = command(index_cmds, "build", cmd_index_build,
                "embed a folder of images or a captions CSV/JSONL into a search index (resumable), "
                "or index an embeddings folder from `mmexplore embed` (--embeddings)")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="folder of images, or a CSV/TSV/JSONL with image,text columns")
    p.add_argument("--embeddings", metavar="DIR", default=None,
                   help="build from the Parquet shards of `mmexplore embed --out DIR` (no re-encoding)")
    p.add_argument("--index", required=True, metavar="DIR", help="index folder (re-run with the same folder to resume)")
    p.add_argument("--backend", default="auto", choices=available_backends(),
                   help="search backend (auto: exact below --threshold rows, else ivf; ivfpq with 8-bit "
                        "re-ranking when the vectors exceed 4 GiB)")
    p.add_argument("--threshold", type=positive_int, default=DEFAULT_THRESHOLD, help="rows from which auto is approximate")
    p.add_argument("--recall-target", type=float_range(0.0, 1.0, lo_open=True), default=0.95,
                   help="recall@10 the approximate index is tuned to (measured on held-out queries, stored)")
    p.add_argument("--chunk-size", type=int_range(1, 1_000_000), default=256, help="rows embedded and saved together")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = command(commands, "search", cmd_search, "search an index by text or by image")
    p.set_defaults(model=None)  # default: the model the index was built with
    p.add_argument("query", nargs="?", metavar="QUERY", help="query text (same as --text)")
    p.add_argument("--index", required=True, metavar="DIR")
    p.add_argument("--text", metavar="QUERY", help="query text")
    p.add_argument("--image", metavar="FILE", help="query image")
    p.add_argument("--k", type=int_range(1, 10_000), default=10, help="results to return")
    p.add_argument("--target", choices=["image", "text"], default=None,
                   help="what to return (default: images when the index has them)")

    p = command(commands, "probe", cmd_probe, "score an image against a caption and its perturbations")
    p.add_argument("--image", required=True, metavar="FILE")
    p.add_argument("--text", required=True, metavar="CAPTION")
    p.add_argument("--seed", type=any_int, default=0, help="seed of the shuffled and dropped words")

    p = evals.add_parser("compositional", help="per-perturbation accuracy vs a bag-of-words baseline (ARO-style)")
    add_common_args(p)
    p.set_defaults(model=None, handler=cmd_eval_compositional)
    p.add_argument("--models", default=None,
                   help=f"comma-separated model specs compared side by side (default: --model, else {DEFAULT_COMPARED})")
    p.add_argument("--scenes", type=int_range(1, 100_000), default=200, help="held-out two-object scenes")
    p.add_argument("--renderer", choices=["train", "alt", "both"], default="both")
