"""Search commands: ``index build`` and ``search``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mmexplore.cli.argtypes import float_range, int_range, positive_int
from mmexplore.cli.common import command, load_encoder, readability_fields, subcommands
from mmexplore.errors import InputError


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


def register(commands: Any, evals: Any) -> None:
    from mmexplore.retrieval.backends import available_backends
    from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD

    index_cmds = subcommands(command(commands, "index", None, "build a search index (see `mmexplore index build -h`)",
                                     options="none"), "index_command")
    p = command(index_cmds, "build", cmd_index_build,
                "embed a folder of images or a captions CSV/JSONL into a search index (resumable), "
                "or index an embeddings folder from `mmexplore embed` (--embeddings)")
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="folder of images, or a CSV/TSV/JSONL with image,text columns")
    p.add_argument("--embeddings", metavar="DIR", default=None,
                   help="build from the Parquet shards of `mmexplore embed --out DIR` (no re-encoding)")
    p.add_argument("--index", required=True, metavar="DIR", help="index folder (re-run with the same folder to resume)")
    p.add_argument("--backend", default="auto", choices=available_backends(),
                   help="search backend (auto: exact below --threshold rows, else ivf; ivfsq, 8-bit codes re-ranked "
                        "from float16 rows on disk, when the vectors exceed 4 GiB)")
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
