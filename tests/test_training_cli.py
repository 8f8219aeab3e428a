"""``mmexplore train`` events and ``mmexplore runs`` (the table the Train page shows)."""

import json

import pytest

from mmexplore.cli import main
from mmexplore.settings import reload_settings

TINY = ["--arch", "mmexplore-shapes-xs", "--steps", "6", "--batch-size", "12", "--eval-every", "3",
        "--eval-scenes", "4", "--probe-scenes", "8", "--snapshot-every", "3", "--device", "cpu"]


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMEXPLORE_RUNS_DIR", str(tmp_path))
    reload_settings()
    yield tmp_path
    monkeypatch.delenv("MMEXPLORE_RUNS_DIR")
    reload_settings()


def test_train_json_streams_events_and_runs_compare_prints_the_page_table(runs_dir, capsys):
    from mmexplore.training.runs import compare_rows, format_table

    assert main(["train", "--objective", "clip", "--name", "a", "--json", *TINY]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end" and events[-1]["step"] == 6
    assert [e["step"] for e in events if e["event"] == "eval"] == [0, 3, 6]
    log = runs_dir / "b.jsonl"
    assert main(["train", "--objective", "multi-positive", "--name", "b", "--log", str(log), *TINY]) == 0
    capsys.readouterr()
    assert [json.loads(x)["event"] for x in log.read_text().splitlines()][-1] == "end"
    assert main(["runs", "compare", "a", "b"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == format_table(compare_rows(["a", "b"]))
    assert "multi-positive" in printed and "clip" in printed
    assert main(["runs", "list", "--json"]) == 0
    assert {r["run"] for r in json.loads(capsys.readouterr().out)["runs"]} == {"a", "b"}
    assert main(["info", "--model", "run:a", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["name"] == "run:a"


def test_bad_train_options_are_refused(runs_dir, capsys):
    for argv in (["--steps", "-1"], ["--steps", "0"], ["--lr", "nan"], ["--batch-size", "x"], ["--tau", "inf"]):
        assert main(["train", *argv]) == 2  # one error line, exit status 2 (the CLI's parser does not exit)
    assert main(["runs", "show", "nope"]) == 2
    assert "no training run named 'nope'" in capsys.readouterr().err
    assert main(["train", "--resume", "nope"]) == 2
