"""Running the CLI in-process from tests (imported by the test modules, like ``appserver``)."""

from __future__ import annotations

import json
from typing import Any

from mmexplore.cli import main


def run_json(capsys, *argv: str) -> Any:
    """``mmexplore ARGV --json`` in this process: asserts exit status 0 and returns the parsed output."""
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)
