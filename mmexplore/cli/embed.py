"""``mmexplore embed``: a folder, glob or captions table to Parquet embedding shards (Ray Data or local)."""

from __future__ import annotations

import argparse
from typing import Any

from mmexplore.cli.argtypes import int_range, out_dir, positive_int
from mmexplore.cli.common import command
from mmexplore.errors import InputError


def cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.embeddings.job import EmbedOptions, embed

    opts = EmbedOptions(engine=args.engine, batch_size=args.batch_size, concurrency=args.concurrency,
                        decode_concurrency=args.decode_concurrency, rows_per_shard=args.rows_per_shard,
                        device=args.device, address=args.address, progress=not args.no_progress)
    opts.check()
    if not str(args.out).strip():
        raise InputError("--out is empty")
    out = embed(args.source, args.out, args.model, opts)
    manifest = out.pop("manifest")
    out["images"], out["texts"] = manifest["images"], manifest["texts"]
    out["_text"] = (f"{out['embedded']} embedded, {out['skipped']} already there, {out['errors']} unreadable "
                    f"({out['engine']}, {out['seconds']:.1f}s) -> {out['out']}: {manifest['images']} images, "
                    f"{manifest['texts']} captions; next: mmexplore index build --embeddings {out['out']} --index DIR")
    return out


def register(commands: Any, evals: Any) -> None:
    p = command(commands, "embed", cmd_embed,
                "embed images and captions into Parquet shards (Ray Data; resumable; --address for a cluster)")
    p.add_argument("source", metavar="SOURCE",
                   help="folder of images, a glob ('photos/*.jpg'), or a CSV/TSV/JSONL/Parquet with image,text columns")
    p.add_argument("--out", required=True, type=out_dir, metavar="DIR",
                   help="embeddings folder (re-run with the same folder to resume)")
    p.add_argument("--engine", default="auto", choices=["auto", "local", "ray"],
                   help="auto: one process for up to 256 items, Ray Data above")
    p.add_argument("--batch-size", type=int_range(1, 65536), default=64, help="images per forward pass and per Ray batch")
    p.add_argument("--concurrency", type=int_range(1, 1024), default=None, help="model actors (default: one per GPU, else 1)")
    p.add_argument("--decode-concurrency", type=int_range(1, 1024), default=None,
                   help="parallel decode tasks (default: Ray decides)")
    p.add_argument("--rows-per-shard", type=positive_int, default=4096, help="rows per Parquet shard")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: $RAY_ADDRESS, else Ray starts on this machine's cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
