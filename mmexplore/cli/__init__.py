"""The ``mmexplore`` command line (docs/design.md §8).

Each feature registers its commands from its own module (``COMMAND_MODULES``): a module exposes
``register(commands, evals)`` where ``commands`` are the top-level subparsers and ``evals`` the
subparsers of ``mmexplore eval``, and adds every command, sub-action included, with
:func:`mmexplore.cli.common.command` (the one way). Model commands take ``--model``, ``--device`` and
``--json``; user errors exit with status 2 and one line on stderr, never a traceback. Registering
imports no torch: handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from mmexplore import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "mmexplore.cli.core",
    "mmexplore.cli.embed",
    "mmexplore.cli.heatmap",
    "mmexplore.cli.projection",
    "mmexplore.cli.relation",
    "mmexplore.cli.retrieval",
    "mmexplore.cli.probes",
    "mmexplore.cli.robustness",
    "mmexplore.cli.training",
)


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line on stderr, exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} -h`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``mmexplore`` parser with every module's commands registered."""
    from mmexplore.cli.common import command, subcommands

    parser = Parser(
        prog="mmexplore",
        description="Explore how images and text connect inside CLIP-style joint embedding models.",
    )
    parser.add_argument("--version", action="version", version=f"mmexplore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    evals = subcommands(command(commands, "eval", None, "measure the model on the shapes world", options="none"), "what",
                        metavar="WHAT")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, evals)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmexplore`` console script; returns the exit status."""
    from mmexplore.cli.common import EXIT_USAGE, run_command
    from mmexplore.errors import MMExploreError

    try:
        parser = build_parser()  # reads the settings: a bad MMEXPLORE_* value is one line too
    except MMExploreError as exc:
        print(f"mmexplore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h, --version, or a usage error already printed on one line
        return int(exc.code or 0)
    return run_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
