"""Helpers shared by every CLI command: common options, model loading, output, error handling."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from mmexplore.errors import MMExploreError

EXIT_USAGE = 2


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--json``, the options every command takes."""
    parser.add_argument("--model", default="bundled", help="model spec (default: bundled); see README 'Models'")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def command(
    commands: Any, name: str, func: Callable[[argparse.Namespace], dict[str, Any]], help: str
) -> argparse.ArgumentParser:
    """Add a subcommand whose handler returns a JSON-able dict."""
    p = commands.add_parser(name, help=help, description=help)
    add_common_args(p)
    p.set_defaults(handler=func)
    return p


def load_encoder(args: argparse.Namespace):
    """The model named by ``--model`` on ``--device`` (through the one model layer)."""
    from mmexplore.models import load_model

    return load_model(args.model, args.device)


def to_jsonable(obj: Any) -> Any:
    """Numpy arrays and scalars to lists and floats; NaN and infinities to None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _human(result: dict[str, Any], indent: int = 0) -> str:
    lines = []
    pad = "  " * indent
    for key, value in result.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(_human(value, indent + 1))
        elif isinstance(value, list) and value and isinstance(value[0], list):
            lines.append(f"{pad}{key}:")
            for row in value[:50]:
                cells = [f"{v:8.4f}" if isinstance(v, float) else str(v) for v in row[:20]]
                lines.append(f"{pad}  " + " ".join(cells) + (" ..." if len(row) > 20 else ""))
            if len(value) > 50:
                lines.append(f"{pad}  ... ({len(value)} rows)")
        elif isinstance(value, float):
            lines.append(f"{pad}{key}: {value:.4f}")
        else:
            lines.append(f"{pad}{key}: {value}")
    return "\n".join(lines)


def readability_fields(encoder: Any, texts: list[str]) -> dict[str, Any]:
    """What the model reads of ``texts``: ``unknown_word_share`` over all their words, ``readability``
    per text (:meth:`~mmexplore.models.readability.Readability.to_dict`) and ``warnings`` for texts it
    cannot read, negations and truncation (printed on stderr by :func:`emit`)."""
    from mmexplore.models.readability import read_text

    reads = [read_text(encoder, t) for t in texts]
    n_words = sum(len(r.words) for r in reads)
    warnings = []
    for t, r in zip(texts, reads, strict=True):
        notes = r.notes()
        if notes and (r.unreadable or r.negations or r.truncated):
            warnings.append(f"'{t[:60]}': " + " ".join(notes))
    return {"unknown_word_share": sum(len(r.unknown) for r in reads) / n_words if n_words else 1.0,
            "readability": [r.to_dict() for r in reads], "warnings": warnings}


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Print a command's result: JSON (the contract) or an indented summary.

    A result's ``warnings`` (e.g. text the model cannot read) also go to stderr, one line each.
    """
    for w in (result.get("warnings") or []) if isinstance(result, dict) else []:
        print(f"mmexplore: warning: {w}", file=sys.stderr)
    clean = to_jsonable(result)
    if as_json:
        print(json.dumps(clean))
    else:
        text = clean.pop("_text", None) if isinstance(clean, dict) else None
        print(text if text else _human(clean))


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; user errors -> one stderr line and exit status 2."""
    try:
        result = args.handler(args)
    except MMExploreError as exc:
        print(f"mmexplore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mmexplore: interrupted", file=sys.stderr)
        return 130
    except MemoryError:  # numpy's message quotes the array shape only; still, one line and a hint
        print("mmexplore: error: not enough memory for this request; give fewer rows or images", file=sys.stderr)
        return EXIT_USAGE
    if result is not None:
        try:
            emit(result, getattr(args, "json", False))
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (``mmexplore ... | head``): as the Python docs advise, point stdout
            # at devnull so the interpreter's final flush does not raise again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, what a shell reports for a closed pipe
    return 0
