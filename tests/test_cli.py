import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import run_json

from mmexplore.cli import main
from mmexplore.data.shapes import canonical_caption, make_scene, render_scene


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    paths, texts = [], []
    for s in range(4):
        scene = make_scene(9000 + s, n_objects=2)
        p = d / f"scene{s}.png"
        render_scene(scene, 128).save(p)
        paths.append(str(p))
        texts.append(canonical_caption(scene).text)
    return d, paths, texts


def test_info_json(capsys):
    data = run_json(capsys, "info")
    assert set(data["model"]) >= {"name", "embed_dim", "image_size", "device", "dtype", "params"}
    assert data["model"]["name"] == "bundled"


def test_similarity_json_contract(capsys, scene_files, encoder):
    _, paths, texts = scene_files
    data = run_json(capsys, "similarity", "--images", *paths, "--texts", *texts)
    for key in ("images", "texts", "cosine", "logit_scale", "probs_i2t", "probs_t2i", "infonce_loss", "recall"):
        assert key in data
    assert {"i2t@1", "t2i@1", "i2t@5", "t2i@5", "i2t@10", "t2i@10"} <= set(data["recall"])
    cos = np.array(data["cosine"])
    assert cos.shape == (4, 4)
    # Same numbers as the core computes directly.
    from PIL import Image

    img = encoder.encode_images([Image.open(p) for p in paths], use_cache=False)
    txt = encoder.encode_texts(texts, use_cache=False)
    np.testing.assert_allclose(cos, img @ txt.T, atol=1e-5)
    np.testing.assert_allclose(np.array(data["probs_i2t"]).sum(1), 1.0, atol=1e-5)


def test_similarity_from_captions_file(capsys, scene_files):
    d, paths, texts = scene_files
    rows = ["image,text"] + [f"{os.path.basename(p)},{t}" for p, t in zip(paths, texts, strict=True)]
    rows.append(f"{os.path.basename(paths[0])},a shape")  # a second caption for image 0
    (d / "caps.csv").write_text("\n".join(rows) + "\n")
    data = run_json(capsys, "similarity", "--captions", str(d / "caps.csv"))
    assert len(data["images"]) == 4 and len(data["texts"]) == 5
    assert data["pairs"][0][4] == 1 and data["infonce_loss"] is not None


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: ["similarity", "--images", str(d / "missing.png"), "--texts", "x"], "missing.png: file not found"),
        (lambda d: ["similarity", "--images", str(d / "corrupt.png"), "--texts", "x"], "corrupt.png"),
        (lambda d: ["similarity", "--images", str(d / "scene0.png"), "--texts", "   "], "caption 1 is empty"),
        (lambda d: ["similarity", "--captions", str(d / "wrong.csv")], "not a pairs file"),
        (lambda d: ["info", "--model", "NoSuchArch:openai"], "unknown architecture"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, scene_files, make, needle):
    d, _, _ = scene_files
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (d / "wrong.csv").write_text("img,caption\na.png,x\n")
    code = main(make(d))
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_runs_as_subprocess(scene_files):
    _, paths, texts = scene_files
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mmexplore.cli", "similarity", "--images", paths[0], "--texts", texts[0], "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cosine"][0][0] > 0
    bad = subprocess.run(
        [sys.executable, "-m", "mmexplore.cli", "similarity", "--images", "/nope.png", "--texts", "x"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "/nope.png" in bad.stderr


def test_samples_writes_a_folder_the_other_commands_read(capsys, tmp_path):
    out = run_json(capsys, "samples", "--out", str(tmp_path / "s"), "--n", "3")
    assert len(out["images"]) == 3 and all(os.path.isfile(p) for p in out["images"])
    sim = run_json(capsys, "similarity", "--captions", out["pairs"])
    assert len(sim["images"]) == 3 and np.asarray(sim["cosine"]).shape == (3, 3)
    assert np.asarray(sim["pairs"]).tolist() == np.eye(3, dtype=int).tolist()
    captions = Path(out["captions"]).read_text(encoding="utf-8").splitlines()
    assert len(captions) > 3  # hard negatives beside the true captions
    both = run_json(capsys, "similarity", "--captions", out["pairs"], "--texts-file", out["captions"])
    assert both["texts"] == captions  # the file's captions first, then the extra (unpaired) ones
    assert np.asarray(both["pairs"])[:, 3:].sum() == 0 and np.asarray(both["cosine"]).shape == (3, len(captions))
    heat = run_json(capsys, "heatmap", "--pairs", out["pairs"])
    assert len(heat["results"]) == 3 and all(r["phrase"] and len(r["peak"]) == 2 for r in heat["results"])
    assert main(["samples", "--out", str(tmp_path / "t"), "--n", "0"]) == 2
