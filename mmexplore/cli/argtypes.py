"""Argument types for the CLI: every number and output path is checked when the command line is parsed.

Each helper is an argparse ``type=``: it returns the converted value or raises
``argparse.ArgumentTypeError``, which argparse turns into one usage line and exit status 2, so a
bad value (``--steps -1``, ``--lr nan``, ``--out`` naming a file) never reaches the code that
would fail on it with a traceback, or run forever.

>>> positive_int("3"), finite_float("1e-3"), int_range(-12, 11)("-1")
(3, 0.001, -1)
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

# Large enough for any real use, small enough that a typo cannot ask for terabytes.
MAX_COUNT = 10_000_000


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(lo: int, hi: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number in ``[lo, hi]``."""

    def parse(text: str) -> int:
        value = _int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:,} and {hi:,}, got {value:,}")
        return value

    parse.__name__ = f"int in [{lo}, {hi}]"  # argparse names the type in some messages
    return parse


def float_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (ends excluded with ``lo_open`` / ``hi_open``)."""

    def parse(text: str) -> float:
        value = _float(text)
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo:g}, {hi:g}{right}, got {value:g}")
        return value

    parse.__name__ = "number in range"
    return parse


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (counts, sizes, steps)."""
    return int_range(1)(text)


def nonneg_int(text: str) -> int:
    """A whole number ≥ 0."""
    return int_range(0)(text)


def any_int(text: str) -> int:
    """Any whole number (seeds, offsets)."""
    return _int(text)


def finite_float(text: str) -> float:
    """Any finite number (no ``nan``, ``inf``)."""
    return _float(text)


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, regularisation, perplexity, minutes)."""
    return float_range(0.0, math.inf, lo_open=True, hi_open=True)(text)


def nonneg_float(text: str) -> float:
    """A finite number ≥ 0 (weights, blur radii)."""
    return float_range(0.0, math.inf, hi_open=True)(text)


def fraction(text: str) -> float:
    """A number in [0, 1] (opacities, shares, recall targets)."""
    return float_range(0.0, 1.0)(text)


def out_dir(text: str) -> Path:
    """An output folder: it may exist (as a folder) or not yet; an existing file is refused."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder")
    return path


def out_file(text: str) -> Path:
    """An output file: it may exist (and is replaced) but not be a folder, and its folder must exist."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
    return path
