"""The CLI's shape: one way to register commands, no traceback for a bad option, no torch at start-up."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from mmexplore.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for every command and sub-action, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


ALL = list(_parsers(build_parser()))


def test_every_command_has_a_handler_and_takes_json():
    groups = [(path, p) for path, p in ALL if path and p.get_default("handler") is None]
    commands = [(path, p) for path, p in ALL if path and p.get_default("handler") is not None]
    # A command without a handler is a group ("eval", "index") whose sub-actions are required.
    assert sorted(" ".join(path) for path, _ in groups) == ["eval", "index"]
    for _, p in groups:
        assert any(isinstance(a, argparse._SubParsersAction) and a.required for a in p._actions)
    assert len(commands) >= 18
    for path, p in commands:
        assert any("--json" in a.option_strings for a in p._actions), f"{' '.join(path)} takes no --json"
    leaves = commands
    names = {" ".join(path) for path, _ in leaves}
    # The probe commands moved out of cli/retrieval.py; relation's sub-actions are commands like any other.
    assert {"probe", "eval compositional", "relation calibrate", "relation fit", "index build"} <= names
    import mmexplore.cli.probes
    import mmexplore.cli.retrieval

    assert hasattr(mmexplore.cli.probes, "cmd_probe") and not hasattr(mmexplore.cli.retrieval, "cmd_probe")


def test_relation_sub_actions_dispatch_through_the_parser():
    p = build_parser()
    assert p.parse_args(["relation", "--model", "X", "calibrate"]).handler.__name__ == "cmd_calibrate"
    assert p.parse_args(["relation", "--model", "X", "calibrate"]).model == "X"
    assert p.parse_args(["relation", "fit", "--pairs", "f.csv"]).handler.__name__ == "cmd_fit"
    assert p.parse_args(["relation", "--image", "a.png", "--text", "t"]).handler.__name__ == "cmd_relation"


def _numeric_options():
    from mmexplore.cli.argtypes import out_dir, out_file

    for path, p in ALL:
        for a in p._actions:
            if a.option_strings and a.type not in (None, str, out_dir, out_file) and a.choices is None:
                yield pytest.param(path, p, a, id=" ".join((*path, a.option_strings[-1])))


# Numeric options where any integer is meaningful; every other one validates its range when parsed.
FREE_NUMBERS = {"--seed", "--shift", "--start-layer"}


def _required(p: argparse.ArgumentParser) -> list[str]:
    """Dummy values for the parser's required positionals and options, so parsing reaches the option tested."""
    argv: list[str] = []
    for a in p._actions:
        if not a.option_strings and a.nargs is None and not isinstance(a, argparse._SubParsersAction):
            argv.append("x")
        elif a.option_strings and a.required:
            argv += [a.option_strings[-1], "x"]
    return argv


@pytest.mark.parametrize(("path", "parser", "action"), list(_numeric_options()))
def test_a_bad_number_is_one_line_not_a_traceback(capsys, path, parser, action):
    option = action.option_strings[-1]
    if option in FREE_NUMBERS:
        return
    assert action.type not in (int, float), f"{' '.join(path)} {option}: use a validating type from cli.argtypes"
    for value in ("abc", "-5", "nan"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([*path, *_required(parser), option, value])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and option in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--arch", "nosuch"], "nosuch"),
        (["train", "--init", "/no/such/folder"], "/no/such/folder"),
        (["train", "--steps", "0"], "--steps"),
        (["samples", "--size", "3"], "--size"),
        (["info", "--device", "nosuch"], "nosuch"),
        (["relation", "nosuch"], "nosuch"),
        (["eval", "pointing", "--method", "nosuch"], "nosuch"),
        (["nosuch"], "nosuch"),
    ],
)
def test_bad_option_exits_2_with_one_line(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_init_from_a_folder_of_another_arch_names_the_arch_it_was_trained_with(capsys, tmp_path):
    from mmexplore.settings import get_settings

    folder = get_settings().assets_dir / "bundled-web"  # trained with --arch mmexplore-shapes-o64-sincos-avg
    code = main(["train", "--init", str(folder), "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "do not fit architecture mmexplore-shapes-s" in err
    assert "--arch mmexplore-shapes-o64-sincos-avg" in err and len(err.strip().splitlines()) == 1


def test_an_unexpected_error_is_one_line_too(capsys, monkeypatch):
    import mmexplore.cli.core as core

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(core, "cmd_info", broken)
    code = main(["info"])
    err = capsys.readouterr().err
    assert code == 1 and "ZeroDivisionError" in err and "MMEXPLORE_DEBUG" in err
    assert len(err.strip().splitlines()) == 1


def test_start_up_imports_no_torch():
    """``mmexplore --help`` (and building the parser) imports neither torch, open_clip nor scipy."""
    code = ("import sys\nfrom mmexplore.cli import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'streamlit', 'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
