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
        assert main(["train", *argv]) == 2  # argparse's one-line error; main() returns the status
    assert main(["runs", "show", "nope"]) == 2
    assert "no training run named 'nope'" in capsys.readouterr().err
    assert main(["train", "--resume", "nope"]) == 2


def test_order_options_reach_the_run_and_the_inductive_bias_configs_load(runs_dir, capsys):
    """--twin-kinds, --curriculum-steps and the spatial-bias architectures: a 2-step run of each loads."""
    import numpy as np
    from open_clip.pos_embed import get_2d_sincos_pos_embed

    from mmexplore.models import load_model

    argv = ["train", "--arch", "mmexplore-shapes-o64-sincos-avg", "--steps", "2", "--batch-size", "8",
            "--render-size", "32", "--eval-every", "0", "--eval-scenes", "4", "--device", "cpu", "--name", "o",
            "--negative-kinds", "relation_swap", "--pair-fraction", "0.5", "--twin-kinds", "relation_swap",
            "--curriculum-steps", "1", "--layout-weight", "0.5", "--layout-text-weight", "2", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    run = json.loads((runs_dir / "o" / "run.json").read_text())
    assert run["config"]["twin_kinds"] == ["relation_swap"] and run["config"]["curriculum_steps"] == 1
    assert (run["config"]["layout_weight"], run["config"]["layout_text_weight"]) == (0.5, 2.0)
    enc = load_model("run:o", "cpu")
    visual = enc.model.visual
    # Fixed 2-D sin-cos positions (not trained: still the table after two steps) and the patch tokens'
    # mean as the pooled embedding; the facts the pages read say so.
    assert not visual.positional_embedding.requires_grad
    table = get_2d_sincos_pos_embed(visual.positional_embedding.shape[1], 8, cls_token=True)
    np.testing.assert_allclose(visual.positional_embedding.detach().numpy(), table, atol=1e-6)
    assert visual.pool_type == "avg" and enc.facts.pooling == "average"
    assert main(["train", "--twin-kinds", "size_swap", "--steps", "1"]) == 2
    assert main(["train", "--curriculum-steps", "-3", "--steps", "1"]) == 2
    assert main(["train", "--layout-text-weight", "-1", "--steps", "1"]) == 2
