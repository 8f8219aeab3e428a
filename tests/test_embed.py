"""``mmexplore embed`` (local and Ray Data engines), resume, the errors table, and indexes from shards."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from mmexplore.cli import main
from mmexplore.embeddings.job import EmbedOptions, embed
from mmexplore.embeddings.shards import EmbeddingShards, read_errors
from mmexplore.embeddings.sources import list_items
from mmexplore.errors import InputError


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """30 shapes-world PNGs, one corrupt file, and a captions CSV (two captions for the first image)."""
    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene

    root = tmp_path_factory.mktemp("collection")
    folder = root / "images"
    folder.mkdir()
    rows = []
    for i in range(30):
        scene = make_scene(7000 + i)
        render_scene(scene, 64).save(folder / f"img{i:02d}.png")
        rows.append((f"images/img{i:02d}.png", canonical_caption(scene).text))
    rows.append(("images/img00.png", "another caption of the first image"))
    (folder / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rows.append(("images/zz-broken.png", "a broken file"))
    for name, table in (("captions.csv", rows), ("clean.csv", rows[:-1])):
        with open(root / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "text"])
            w.writerows(table)
    return root


def _vectors(folder, kind):
    shards = EmbeddingShards(folder)
    return shards.load_all(kind), shards.records(kind).to_pylist()


def test_sources_list_folder_glob_and_table(collection):
    folder = list_items(collection / "images")
    assert folder.num_rows == 31 and folder.column("row").to_pylist() == list(range(31))
    assert list_items(str(collection / "images" / "img0*.png")).num_rows == 10
    table = list_items(collection / "captions.csv")
    assert table.num_rows == 32 and sum(table.column("image_first").to_pylist()) == 31
    first = table.to_pylist()[0]
    assert first["image_caption"].endswith("| another caption of the first image")
    with pytest.raises(InputError, match="no such file"):
        list_items(collection / "nope")
    (collection / "bad.csv").write_text("file,caption\na.png,x\n")
    with pytest.raises(InputError, match="missing column"):
        list_items(collection / "bad.csv")


def test_local_embed_errors_table_and_equals_encoder(collection, encoder, tmp_path):
    from mmexplore.data.images import load_image

    out = embed(str(collection / "captions.csv"), tmp_path / "emb", "bundled",
                EmbedOptions(engine="local", rows_per_shard=8, batch_size=5, progress=False))
    assert out["embedded"] == 31 and out["errors"] == 1 and out["engine"] == "local"
    errors = read_errors(tmp_path / "emb").to_pylist()
    assert len(errors) == 1 and "zz-broken.png" in errors[0]["path"] and "corrupt or truncated" in errors[0]["error"]
    images, records = _vectors(tmp_path / "emb", "image")
    assert len(records) == 30 and records[0]["path"].endswith("img00.png")
    direct = encoder.encode_images([load_image(r["path"]) for r in records], use_cache=False)
    assert np.abs(images - direct).max() < 1e-5
    texts, trecs = _vectors(tmp_path / "emb", "text")
    assert np.abs(texts - encoder.encode_texts([r["caption"] for r in trecs], use_cache=False)).max() < 1e-5
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["model_id"] == encoder.model_id and manifest["images"] == 30
    assert manifest["texts"] == len(trecs) == len({r["caption"] for r in trecs})  # each caption once
    schema = pq.read_schema(next((tmp_path / "emb").glob("part-*.parquet")))
    vec = schema.field("image_embedding").type
    assert vec.list_size == 128 and str(vec.value_type) == "float"


def test_resume_after_a_killed_job_has_no_duplicates_and_nothing_missing(collection, tmp_path):
    opts = EmbedOptions(engine="local", rows_per_shard=8, batch_size=4, progress=False)

    def die_after_two_shards(written):
        if written >= 16:
            raise KeyboardInterrupt  # what a kill leaves: complete shards only

    with pytest.raises(KeyboardInterrupt):
        embed(str(collection / "images"), tmp_path / "emb", "bundled", opts, on_shard=die_after_two_shards)
    assert len(list((tmp_path / "emb").glob("part-*.parquet"))) == 2
    (tmp_path / "emb" / ".part-00009-dead.parquet.tmp").write_bytes(b"half a shard")  # killed mid-write
    again = embed(str(collection / "images"), tmp_path / "emb", "bundled", opts)
    assert again["skipped"] == 16 and again["embedded"] == 14
    ids = [i for p in sorted((tmp_path / "emb").glob("part-*.parquet")) for i in pq.read_table(p).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == 30
    full = embed(str(collection / "images"), tmp_path / "full", "bundled", opts)
    assert full["embedded"] == 30
    assert np.array_equal(_vectors(tmp_path / "emb", "image")[0], _vectors(tmp_path / "full", "image")[0])


def test_index_from_shards_equals_index_from_folder(collection, encoder, tmp_path):
    from mmexplore.retrieval import SearchIndex, build_index
    from mmexplore.retrieval.from_embeddings import build_index_from_embeddings

    # (a caption whose image is unreadable is an error row of `embed`, so the table here is clean)
    for source in (collection / "images", collection / "clean.csv"):
        name = source.stem
        build_index(source, tmp_path / f"direct-{name}", encoder, progress=False)
        embed(str(source), tmp_path / f"emb-{name}", "bundled", EmbedOptions(engine="local", progress=False))
        build_index_from_embeddings(tmp_path / f"emb-{name}", tmp_path / f"shards-{name}", progress=False)
        a, b = SearchIndex.load(tmp_path / f"direct-{name}"), SearchIndex.load(tmp_path / f"shards-{name}")
        assert a.model_id == b.model_id and set(a.indexes) == set(b.indexes)
        for kind in a.indexes:
            assert list(a.items[kind]) == list(b.items[kind][:])
            va, vb = (ix.indexes[kind].index_.reconstruct_n(0, ix.size(kind)) for ix in (a, b))
            assert np.abs(va - vb).max() < 1e-5
            q = encoder.encode_texts(["a red circle"])[0]
            assert [r["path"] for r in a.search(q, kind, 5)] == [r["path"] for r in b.search(q, kind, 5)]


def test_cli_embed_then_index_build_embeddings_then_search(collection, tmp_path, capsys):
    assert main(["embed", str(collection / "captions.csv"), "--out", str(tmp_path / "emb"), "--engine", "local",
                 "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["embedded"] == 31 and out["errors"] == 1
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb"), "--index", str(tmp_path / "ix"),
                 "--no-progress", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["sizes"]["image"] == 30 and built["sizes"]["text"] > 20 and built["kinds"]["image"]["recall@10"] == 1.0
    assert main(["search", "a red circle", "--index", str(tmp_path / "ix"), "--k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    for argv, msg in ((["embed", str(tmp_path / "none"), "--out", str(tmp_path / "o")], "no such file"),
                      (["embed", str(collection / "images"), "--out", str(tmp_path / "o"), "--batch-size", "0"],
                       "argument --batch-size: must be between 1 and"),
                      (["index", "build", "--embeddings", str(tmp_path / "ix"), "--index", str(tmp_path / "i2")],
                       "not an embeddings folder"),
                      (["index", "build", "--index", str(tmp_path / "i3")], "exactly one of SOURCE")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1


def test_embeddings_of_another_model_are_refused(collection, tmp_path):
    embed(str(collection / "images" / "img0*.png"), tmp_path / "emb", "bundled",
          EmbedOptions(engine="local", progress=False))
    with pytest.raises(InputError, match="holds embeddings of model"):
        embed(str(collection / "images" / "img0*.png"), tmp_path / "emb", "bundled-nodense",
              EmbedOptions(engine="local", progress=False))


@pytest.mark.slow
def test_ray_job_equals_single_process_and_resumes_after_kill(collection, tmp_path):
    """Ray Data in local mode (~30 s to start its workers on 2 cores, hence slow)."""
    opts = EmbedOptions(engine="local", progress=False)
    embed(str(collection / "captions.csv"), tmp_path / "local", "bundled", opts)
    cmd = [sys.executable, "-m", "mmexplore.cli", "embed", str(collection / "captions.csv"), "--out",
           str(tmp_path / "ray"), "--engine", "ray", "--batch-size", "4", "--rows-per-shard", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "ray").glob("part-*.parquet"))) < 2:
        time.sleep(0.2)
    proc.kill()  # SIGKILL mid-way: no clean-up runs
    proc.wait()
    partial = len(list((tmp_path / "ray").glob("part-*.parquet")))
    assert partial >= 2
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["engine"] == "ray" and out["skipped"] >= 8 and out["skipped"] + out["embedded"] == 31
    ids = [i for p in (tmp_path / "ray").glob("part-*.parquet") for i in pq.read_table(p).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == 31
    assert read_errors(tmp_path / "ray").num_rows == 1
    for kind in ("image", "text"):
        a, ra = _vectors(tmp_path / "local", kind)
        b, rb = _vectors(tmp_path / "ray", kind)
        assert ra == rb and np.abs(a - b).max() < 1e-6
