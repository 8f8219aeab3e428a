"""The ``mmexplore`` command line (DESIGN §8).

Each feature registers its commands from its own module (``COMMAND_MODULES``): a module exposes
``register(commands, evals)`` where ``commands`` are the top-level subparsers and ``evals`` the
subparsers of ``mmexplore eval``. Every command takes ``--model``, ``--device`` and ``--json``; user
errors exit with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mmexplore import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "mmexplore.cli.core",
    "mmexplore.cli.embed",
    "mmexplore.cli.heatmap",
    "mmexplore.cli.projection",
    "mmexplore.cli.relation",
    "mmexplore.cli.retrieval",
    "mmexplore.cli.robustness",
    "mmexplore.cli.training",
)


class UsageError(Exception):
    """A bad command line (the message is already printed)."""


class Parser(argparse.ArgumentParser):
    """argparse with one error line (``mmexplore heatmap: error: argument --opacity: ...``) and no exit.

    :func:`main` turns the error into exit status 2 and returns it, like every other user error.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mmexplore",
        description="Explore how images and text connect inside CLIP-style joint embedding models.",
    )
    parser.add_argument("--version", action="version", version=f"mmexplore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    eval_parser = commands.add_parser("eval", help="measure the model on the shapes world")
    evals = eval_parser.add_subparsers(dest="what", metavar="WHAT")
    evals.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, evals)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmexplore`` console script; returns the exit status."""
    from mmexplore.cli.common import run_command

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError:
        return 2
    return run_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
