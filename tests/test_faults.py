"""Faults that must lose or corrupt nothing: concurrent and killed builds, changed files, damaged entries.

Builds run in separate processes (``tests/build_worker.py``, a fast fake encoder) where the fault
needs two processes or a kill; the rest runs in-process with the same encoder.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from build_worker import SlowFakeEncoder
from PIL import Image

from mmexplore.errors import InputError
from mmexplore.models.cache import EmbeddingCache
from mmexplore.retrieval import SearchIndex, build_index
from mmexplore.retrieval.build import CHUNKS_DIR, ChunkStore

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "build_worker.py"


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"im{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def start_build(source: Path, index: Path, chunk: int = 4, sleep_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen([sys.executable, str(WORKER), str(source), str(index), str(chunk), str(sleep_s)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def image_paths(index: Path) -> list[str]:
    return [r["path"] for r in SearchIndex.load(index).items["image"]]


def test_two_concurrent_builds_give_one_copy_of_each_image(tmp_path):
    files = make_images(tmp_path / "imgs", 24)
    procs = [start_build(tmp_path / "imgs", tmp_path / "ix", chunk=4, sleep_s=0.15) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    paths = image_paths(tmp_path / "ix")
    assert sorted(paths) == sorted(str(f.resolve()) for f in files)  # exactly one copy of each image
    assert sorted(r["embedded"] for r in results) == [0, 24]  # the second waited, then found the work done
    # the chunks hold each image once too (the second build embedded nothing)
    _, recs = ChunkStore(tmp_path / "ix" / CHUNKS_DIR, "fake@1").load("image")
    assert len(recs) == 24


def test_killed_build_resumes_without_duplicates_or_gaps(tmp_path):
    files = make_images(tmp_path / "imgs", 30)
    proc = start_build(tmp_path / "imgs", tmp_path / "ix", chunk=3, sleep_s=0.4)
    chunks = tmp_path / "ix" / CHUNKS_DIR
    deadline = time.monotonic() + 90
    while len(list(chunks.glob("image-*.sum"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the build ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "ix" / "index.json").exists()  # killed before publishing
    done = len(ChunkStore(chunks, "fake@1").load("image")[1])
    assert 6 <= done < 30
    res = build_index(tmp_path / "imgs", tmp_path / "ix", SlowFakeEncoder(0.0), chunk_size=3, progress=False)
    assert res["skipped"] == done and res["embedded"] == 30 - done
    paths = image_paths(tmp_path / "ix")
    assert sorted(paths) == sorted(str(f.resolve()) for f in files)  # no duplicate, no gap


def test_rebuild_notices_changed_and_deleted_files(tmp_path):
    files = make_images(tmp_path / "imgs", 8)
    enc = SlowFakeEncoder(0.0)
    build_index(tmp_path / "imgs", tmp_path / "ix", enc, progress=False)
    Image.fromarray(np.full((6, 6, 3), 200, dtype=np.uint8)).save(files[0])  # replaced in place
    files[1].unlink()
    res = build_index(tmp_path / "imgs", tmp_path / "ix", enc, progress=False)
    assert (res["embedded"], res["changed"], res["removed"], res["sizes"]["image"]) == (1, 1, 1, 7)
    si = SearchIndex.load(tmp_path / "ix")
    assert str(files[1].resolve()) not in [r["path"] for r in si.items["image"]]
    new_vec = enc.encode_images([Image.open(files[0])])[0]
    top = si.search(new_vec, "image", 1)[0]
    assert top["path"] == str(files[0].resolve()) and top["score"] == pytest.approx(1.0, abs=1e-5)
    # the chunks were compacted: the replaced image's old row and the deleted image's row are gone
    # (rewritten as one new chunk: the two old ones, the first build's and the re-embedded image's, went)
    assert res["compacted"] == {"rows": 2, "files": 6}
    assert len(list((tmp_path / "ix" / CHUNKS_DIR).glob("image-*"))) == 3  # one chunk: .npy, .jsonl, .sum
    _, recs = ChunkStore(tmp_path / "ix" / CHUNKS_DIR, "fake@1").load("image")
    assert sorted(r["key"] for r in recs) == sorted(str(f.resolve()) for f in files if f.exists())
    again = build_index(tmp_path / "imgs", tmp_path / "ix", enc, progress=False)
    assert (again["embedded"], again["skipped"], again["compacted"]) == (0, 7, {"rows": 0, "files": 0})


def test_damaged_or_wrong_chunks_are_set_aside_and_redone(tmp_path):
    files = make_images(tmp_path / "imgs", 8)
    enc = SlowFakeEncoder(0.0)
    build_index(tmp_path / "imgs", tmp_path / "ix", enc, chunk_size=4, progress=False)
    chunks = tmp_path / "ix" / CHUNKS_DIR
    first = chunks / "image-00000.npy"
    data = bytearray(first.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte inside the vectors
    first.write_bytes(bytes(data))
    # well-formed chunks with valid checksums but wrong content: another dimension, NaN
    store = ChunkStore(chunks, "fake@1")
    recs = [{"path": "x", "caption": "", "key": str(files[2].resolve()), "stamp": "0"}]
    store.write("image", np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32), recs)
    store.write("image", np.full((1, 8), np.nan, dtype=np.float32), recs)
    res = build_index(tmp_path / "imgs", tmp_path / "ix", enc, chunk_size=4, progress=False)
    problems = " ".join(res["errors"])
    assert "image-00000.npy" in problems and "checksum" in problems
    assert "dimension 16" in problems and "not finite" in problems
    assert res["embedded"] == 4  # the damaged chunk's rows, again
    assert sorted(image_paths(tmp_path / "ix")) == sorted(str(f.resolve()) for f in files)
    assert (chunks / "image-00000.npy.corrupt").is_file()  # kept for one build, to look at
    # leftovers of an interrupted write: a chunk without its .sum, a temporary file
    (chunks / "image-00090.npy").write_bytes(b"half a chunk")
    (chunks / ".image-00091.jsonl.4242.tmp").write_text("{}")
    again = build_index(tmp_path / "imgs", tmp_path / "ix", enc, chunk_size=4, progress=False)
    assert again["embedded"] == 0 and again["errors"] == []
    left = sorted(p.name for p in chunks.iterdir() if p.name.startswith(("image-", ".image-")))
    assert not [n for n in left if n.endswith((".corrupt", ".tmp")) or "00090" in n], left
    assert len(left) % 3 == 0 and len(ChunkStore(chunks, "fake@1").load("image")[1]) == 8  # complete chunks only
    # three chunks set aside by the build before (.npy, .jsonl, .sum each) and the two leftovers
    assert again["compacted"] == {"rows": 0, "files": 11}
    assert sorted(image_paths(tmp_path / "ix")) == sorted(str(f.resolve()) for f in files)


@pytest.fixture()
def built(tmp_path):
    make_images(tmp_path / "imgs", 6)
    build_index(tmp_path / "imgs", tmp_path / "ix", SlowFakeEncoder(0.0), progress=False)
    return tmp_path / "ix"


def test_flipped_bytes_in_image_faiss_are_refused_naming_the_file(built):
    f = built / "image.faiss"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x40
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"image\.faiss: contents do not match the checksum"):
        SearchIndex.load(built)


def test_swapped_lines_in_image_jsonl_are_refused_naming_the_file(built):
    f = built / "image.jsonl"
    lines = f.read_text().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    f.write_text("".join(lines))
    with pytest.raises(InputError, match=r"image\.jsonl: does not match the checksum"):
        SearchIndex.load(built)


def test_faiss_length_field_is_checked_before_faiss_reads_the_file(built, monkeypatch):
    import faiss

    f = built / "image.faiss"
    data = bytearray(f.read_bytes())
    n, d = 6, 8
    at = data.find((n * d).to_bytes(8, "little"))  # an IndexFlat's float count, after its header
    assert 0 < at < 64
    data[at:at + 8] = (1 << 34).to_bytes(8, "little")  # claims 64 GiB of vectors
    f.write_bytes(bytes(data))
    meta = json.loads((built / "index.json").read_text())  # even with the size in index.json made to fit
    meta["kinds"]["image"]["file"]["bytes"] = len(data)
    (built / "index.json").write_text(json.dumps(meta))

    def never(*a, **k):
        raise AssertionError("faiss.read_index was called on an unchecked file")

    monkeypatch.setattr(faiss, "read_index", never)
    with pytest.raises(InputError, match=r"image\.faiss"):
        SearchIndex.load(built)


def test_embedding_cache_refuses_damaged_and_wrong_entries(tmp_path):
    key = EmbeddingCache.key("m", "text", "abc")
    vec = np.full(8, 1 / np.sqrt(8), dtype=np.float32)
    EmbeddingCache(directory=tmp_path).put(key, vec)
    np.testing.assert_array_equal(EmbeddingCache(directory=tmp_path).get(key, 8), vec)
    path = EmbeddingCache(directory=tmp_path)._path(key)
    rng = np.random.default_rng(0)
    wrong = {
        "random vector, stale checksum": (rng.standard_normal(8).astype(np.float32), None),
        "wrong dimension": (np.full(16, 0.25, np.float32), "valid"),
        "NaN": (np.full(8, np.nan, np.float32), "valid"),
    }
    for why, (bad, check) in wrong.items():
        with open(path, "wb") as fh:
            np.savez(fh, vec=bad, check=EmbeddingCache.checksum(key, bad if check else vec))
        cache = EmbeddingCache(directory=tmp_path)
        assert cache.get(key, 8) is None and cache.rejected == 1, why
    path.write_bytes(b"\x93NUMPY not really")  # damaged file
    assert EmbeddingCache(directory=tmp_path).get(key, 8) is None
    np.save(path.with_suffix(".npy"), vec)  # a bare vector without a checksum (old format) is not read
    fresh = EmbeddingCache(directory=tmp_path)
    fresh.put(key, vec)  # rewritten
    np.testing.assert_array_equal(EmbeddingCache(directory=tmp_path).get(key, 8), vec)


@pytest.mark.parametrize("fault", ["not a folder", "disk full"])
def test_unwritable_cache_dir_degrades_to_memory_with_one_warning(tmp_path, monkeypatch, caplog, encoder, fault):
    if fault == "not a folder":  # root ignores read-only permissions, so a file where the folder should be
        (tmp_path / "file").write_text("x")
        directory = tmp_path / "file" / "cache"
    else:
        directory = tmp_path / "cache"

        def full(*a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(np, "savez", full)
    cache = EmbeddingCache(directory=directory)
    old = encoder.cache
    encoder.cache = cache
    try:
        with caplog.at_level(logging.WARNING, logger="mmexplore.cache"):
            a = encoder.encode_texts(["a red circle", "a blue square", "a green triangle"])
            b = encoder.encode_texts(["a red circle", "a yellow star"])
    finally:
        encoder.cache = old
    np.testing.assert_allclose(a[0], b[0])
    assert cache.hits >= 1 and cache.directory is None and cache.disk_error
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1
