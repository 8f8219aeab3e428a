"""Every bad CLI argument ends in one error line and exit status 2, never a traceback or an endless run.

The cases are the ones found by trying 117 bad arguments (issue 21); most are refused while the
command line is parsed (``mmexplore.cli.argtypes``), the rest by the command itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmexplore.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch

    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene

    d = tmp_path_factory.mktemp("cli")
    render_scene(make_scene(HELD_OUT_SEED_START + 3, n_objects=2), 64).save(d / "img.png")
    (d / "existing.txt").write_text("keep me")
    rng = np.random.default_rng(0)
    np.savez(d / "emb.npz", image=rng.standard_normal((20, 8)), text=rng.standard_normal((20, 8)))
    model = d / "pickled-model"
    model.mkdir()
    root = Path(__file__).resolve().parents[1]
    cfg = json.loads((root / "mmexplore" / "assets" / "bundled" / "open_clip_config.json").read_text())
    cfg.pop("mmexplore", None)
    (model / "open_clip_config.json").write_text(json.dumps(cfg))
    torch.save({"w": __import__("collections").OrderedDict()}, model / "open_clip_pytorch_model.bin")
    return d


CASES = {
    "heatmap --start-layer 99": lambda d: ["heatmap", "--image", f"{d}/img.png", "--text", "a red circle",
                                           "--method", "relevancy", "--start-layer", "99"],
    "heatmap --out an existing file": lambda d: ["heatmap", "--image", f"{d}/img.png", "--text", "a red circle",
                                                 "--out", f"{d}/existing.txt"],
    "cca --reg nan": lambda d: ["cca", "--embeddings", f"{d}/emb.npz", "--reg", "nan"],
    "cca --reg -1": lambda d: ["cca", "--embeddings", f"{d}/emb.npz", "--reg", "-1"],
    "project --n-neighbors 0": lambda d: ["project", "--embeddings", f"{d}/emb.npz", "--n-neighbors", "0"],
    "project --perplexity inf": lambda d: ["project", "--embeddings", f"{d}/emb.npz", "--method", "tsne",
                                           "--perplexity", "inf"],
    "project --dims 7": lambda d: ["project", "--embeddings", f"{d}/emb.npz", "--dims", "7"],
    "eval retrieval --scenes 0": lambda d: ["eval", "retrieval", "--scenes", "0"],
    "eval pointing --scenes -3": lambda d: ["eval", "pointing", "--scenes", "-3"],
    "samples --size 0": lambda d: ["samples", "--size", "0", "--out", f"{d}/s"],
    "samples --n many": lambda d: ["samples", "--n", "many", "--out", f"{d}/s"],
    "samples --out an existing file": lambda d: ["samples", "--out", f"{d}/existing.txt"],
    "train --batch-size 0": lambda d: ["train", "--batch-size", "0", "--out", f"{d}/t"],
    "train --lr nan": lambda d: ["train", "--lr", "nan", "--out", f"{d}/t"],
    "train --steps -1": lambda d: ["train", "--steps", "-1", "--out", f"{d}/t"],
    "train --pair-fraction 2": lambda d: ["train", "--pair-fraction", "2", "--out", f"{d}/t"],
    "index build --chunk-size 0": lambda d: ["index", "build", str(d), "--index", f"{d}/ix", "--chunk-size", "0"],
    "search --k 0": lambda d: ["search", "x", "--index", f"{d}/ix", "--k", "0"],
    "heatmap --opacity 3": lambda d: ["heatmap", "--image", f"{d}/img.png", "--text", "x", "--opacity", "3"],
    # the robustness lab's options (mmexplore/cli/robustness.py)
    "eval robustness --scenes 0": lambda d: ["eval", "robustness", "--scenes", "0"],
    "eval robustness --pointing-scenes -1": lambda d: ["eval", "robustness", "--pointing-scenes", "-1"],
    "eval robustness --attack-scenes many": lambda d: ["eval", "robustness", "--attack-scenes", "many"],
    "eval robustness --backdoor-scenes 0": lambda d: ["eval", "robustness", "--backdoor-scenes", "0"],
    "eval robustness --corruptions unknown": lambda d: ["eval", "robustness", "--corruptions", "fog-of-war",
                                                        "--part", "corruptions", "--models", "bundled"],
    "train --poison 1.5": lambda d: ["train", "--poison", "1.5", "--out", f"{d}/t"],
    "train --poison nan": lambda d: ["train", "--poison", "nan", "--out", f"{d}/t"],
    "train --text-share -0.1": lambda d: ["train", "--text-in-image", "agree", "--text-share", "-0.1", "--out", f"{d}/t"],
    "train --text-only 2": lambda d: ["train", "--text-in-image", "agree", "--text-only", "2", "--out", f"{d}/t"],
    "train --poison with --text-in-image": lambda d: ["train", "--poison", "0.1", "--text-in-image", "random",
                                                      "--steps", "1", "--out", f"{d}/t"],
    "local-dir: with a pickle": lambda d: ["similarity", "--model", f"local-dir:{d}/pickled-model",
                                           "--images", f"{d}/img.png", "--texts", "a red circle"],
}


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses a value with SystemExit(2)
        return int(exc.code or 0)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_argument_is_one_error_line(case, files, capsys):
    code = run_cli(CASES[case](files))
    err = capsys.readouterr().err
    assert code == 2, (case, err[-500:])
    assert "Traceback" not in err and err.strip(), case
    last = err.strip().splitlines()[-1]
    assert "error" in last, (case, last)
    assert (files / "existing.txt").read_text() == "keep me"  # nothing overwritten


def test_argument_types_accept_good_values():
    import argparse

    from mmexplore.cli.argtypes import finite_float, fraction, int_range, out_dir, positive_int

    assert positive_int("5") == 5 and finite_float("-2.5") == -2.5 and fraction("1") == 1.0
    assert int_range(-3, 3)("-3") == -3 and out_dir("/nonexistent/new-folder").name == "new-folder"
    for parse, bad in ((positive_int, "0"), (positive_int, "1.5"), (finite_float, "nan"), (finite_float, "-inf"),
                       (fraction, "1.01"), (int_range(-3, 3), "4")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
