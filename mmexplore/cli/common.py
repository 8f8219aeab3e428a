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
EXIT_FAILURE = 1


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--json``, the options every model command takes."""
    from mmexplore.settings import get_settings

    settings = get_settings()
    parser.add_argument("--model", default=settings.default_model,
                        help=f"model spec (default: {settings.default_model}); see README 'Models'")
    parser.add_argument("--device", default=settings.default_device, help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _inherited_common_args(parser: argparse.ArgumentParser) -> None:
    """The common options again on a sub-action, without defaults, so ``relation --model X calibrate`` keeps X."""
    parser.add_argument("--model", default=argparse.SUPPRESS, help="model spec (default: the parent command's)")
    parser.add_argument("--device", default=argparse.SUPPRESS, help="auto, cpu, cuda or mps")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")


# What ``command(..., options=...)`` adds: every model command takes the common options.
OPTION_SETS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "common": add_common_args,
    "json": lambda p: p.add_argument("--json", action="store_true", help="print the result as JSON on stdout"),
    "inherit": _inherited_common_args,
    "none": lambda p: None,
}


def command(
    commands: Any,
    name: str,
    func: Callable[[argparse.Namespace], dict[str, Any]] | None,
    help: str,
    *,
    options: str = "common",
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The one way to add a CLI command (top level, under ``eval``, or a sub-action such as ``relation fit``).

    ``commands`` is the subparsers object to add to; ``func`` the handler (``args -> JSON-able dict``),
    or None for a group whose sub-actions have handlers; ``options`` one of :data:`OPTION_SETS`
    (``"common"``: ``--model/--device/--json``; ``"json"``: only ``--json``; ``"inherit"``: the common
    options without defaults, for a sub-action; ``"none"``).
    """
    p = commands.add_parser(name, help=help, description=description or help)
    OPTION_SETS[options](p)
    if func is not None:
        p.set_defaults(handler=func)
    return p


def subcommands(parser: argparse.ArgumentParser, dest: str, *, required: bool = True, metavar: str = "ACTION") -> Any:
    """Sub-actions of a command (``index build``, ``relation calibrate``); add them with :func:`command`."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    sub.required = required
    return sub


def load_encoder(args: argparse.Namespace):
    """The model named by ``--model`` on ``--device`` (through the one model layer)."""
    from mmexplore.models import load_model

    return load_model(args.model, args.device)


def add_renderer_arg(parser: argparse.ArgumentParser) -> None:
    """``--renderer``: a registered shapes renderer, ``all`` (the default) or ``both`` (train + alt)."""
    from mmexplore.data.renderers import RENDERER_GROUPS, RENDERERS

    parser.add_argument(
        "--renderer", choices=[*RENDERERS, *RENDERER_GROUPS], default="all",
        help=f"which renderer draws the held-out scenes: one of {', '.join(RENDERERS)}; 'all' (default) every one; "
        "'both' train and alt (the two renderers before the sketch renderer was added)")


def renderers_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The renderer names ``--renderer`` stands for."""
    from mmexplore.data.renderers import resolve_renderers

    return resolve_renderers(args.renderer)


def model_specs(raw: str | None) -> list[str]:
    """The model specs of a comma-separated option such as ``--models bundled,bundled-noneg`` (blanks dropped)."""
    return [s.strip() for s in (raw or "").split(",") if s.strip()]


def each_model(
    specs: list[str],
    device: str,
    measure: Callable[[Any], dict[str, Any]],
    missing: Callable[[str, Exception], str] = lambda spec, exc: str(exc),
) -> dict[str, dict[str, Any]]:
    """``{spec: measure(encoder)}`` for the models of a comparison command, in order.

    A model that does not load is an error when it is the only one; among several it becomes
    ``{"missing": missing(spec, exc)}``, so that one absent variant does not hide the others' results.
    """
    from mmexplore.errors import ModelLoadError
    from mmexplore.models import load_model

    models: dict[str, dict[str, Any]] = {}
    for spec in specs:
        try:
            encoder = load_model(spec, device)
        except ModelLoadError as exc:
            if len(specs) == 1:
                raise
            models[spec] = {"missing": missing(spec, exc)}
            continue
        models[spec] = measure(encoder)
    return models


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
    """Run the parsed command; user errors -> one stderr line and exit status 2.

    Anything else a handler raises is an input no check caught (or a bug): it is reported on one line
    as well, with exit status 1; ``MMEXPLORE_DEBUG=1`` shows the traceback.
    """
    from mmexplore.settings import get_settings

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
    except Exception as exc:
        if get_settings().debug:
            raise
        # The type and the first line only, cut short: a message must not echo a file's contents.
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        print(f"mmexplore: error: {args.command} failed: {type(exc).__name__}: {first} "
              "(an unchecked input or a bug; MMEXPLORE_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILURE
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
