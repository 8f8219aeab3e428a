"""Retrieval core: backends, recall, disk round trip, model-mismatch refusal, resumable build."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mmexplore.errors import InputError
from mmexplore.retrieval import (
    BACKENDS,
    ModelMismatchError,
    SearchIndex,
    VectorIndex,
    available_backends,
    build_index,
    get_backend,
)
from mmexplore.retrieval.backends import choose_backend
from mmexplore.retrieval.sources import ArraySource
from mmexplore.retrieval.vector_index import recall_at_k


def unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Points around 20 centres: low intrinsic dimension, like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, d))
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_equals_numpy_argsort():
    x, q = unit(400, 24, 1), unit(7, 24, 2)
    idx = VectorIndex("exact").fit(x)
    scores, ids = idx.search(q, k=15)
    sims = q @ x.T
    expected = np.argsort(-sims, axis=1)[:, :15]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, axis=1), atol=1e-5)
    assert idx.recall_ == 1.0


def test_registry_declares_capabilities_and_rejects_unknown():
    assert set(BACKENDS) == {"exact", "hnsw", "ivf", "ivfpq", "ivfsq"} and available_backends()[0] == "auto"
    assert get_backend("exact").capabilities.exact and not get_backend("hnsw").capabilities.exact
    assert get_backend("ivfpq").capabilities.needs_training
    with pytest.raises(InputError, match=r"Unsupported search backend .annoy..*exact.*hnsw.*ivf.*ivfpq"):
        get_backend("annoy")


def test_hnsw_recall_sanity_and_measured_at_build():
    x = clustered(3000, 32)
    idx = VectorIndex("hnsw", params={"ef_search": 64}).fit(x)
    assert idx.backend_ == "hnsw" and 0.9 <= idx.recall_ <= 1.0
    q = clustered(50, 32, seed=5)
    _, approx = idx.search(q, 10)
    _, exact = VectorIndex("exact").fit(x).search(q, 10)
    overlap = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert overlap >= 0.9
    assert idx.describe()["params"]["ef_search"] == 64


def near_ties(n: int, d: int = 128, clusters: int = 4, seed: int = 0) -> np.ndarray:
    """Few clusters with isotropic noise: a cluster's neighbours differ by ~1e-4 in cosine (the 10M case)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((clusters, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivfsq_reranks_the_shortlist_with_exact_scores(tmp_path):
    x, q = near_ties(4000, d=64), near_ties(100, d=64, seed=9)
    exact = q @ x.T
    _, truth = VectorIndex("exact").fit(x).search(q, 10)
    sq = VectorIndex("ivfsq", params={"nprobe": 64}, rows_dir=tmp_path).fit(x)
    scores, ids = sq.search(q, 10)
    assert recall_at_k(ids, truth) >= 0.97
    err = np.abs(scores - np.take_along_axis(exact, ids, 1)).max()
    assert err < 1e-3  # float16 rows: the final scores are cosines, not 8-bit approximations
    s1, i1 = sq.index_.search(q, 10)  # the 8-bit codes' own scores, before re-ranking
    assert np.abs(s1 - np.take_along_axis(exact, i1, 1)).max() > 3 * err
    assert len(list(tmp_path.glob("mmexplore-rows-*"))) == 1  # the build's row file, 2 bytes per dimension
    assert next(tmp_path.glob("mmexplore-rows-*")).stat().st_size == 4000 * 64 * 2
    del sq
    import gc

    gc.collect()
    assert not list(tmp_path.glob("mmexplore-rows-*"))  # an unsaved build leaves no file behind


def test_ivfsq_rows_travel_with_the_saved_index_and_are_checked(tmp_path):
    x = near_ties(3000, d=32)
    index = SearchIndex("m@1", backend="ivfsq")
    index.add("image", x, [{"path": f"{i}.png"} for i in range(3000)], "m@1")
    folder = index.save(tmp_path / "ix")
    assert (folder / "image.faiss.rows").stat().st_size == 3000 * 32 * 2
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]  # nothing staged left
    hits = SearchIndex.load(folder).search(x[5], "image", k=3)
    assert hits[0]["path"] == "5.png"
    rows = folder / "image.faiss.rows"
    data = bytearray(rows.read_bytes())
    data[100] ^= 0xFF
    rows.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"image.faiss.rows: contents do not match"):
        SearchIndex.load(folder)
    rows.unlink()
    with pytest.raises(InputError, match=r"image.faiss.rows: the index's re-ranking rows are missing"):
        SearchIndex.load(folder)


def test_ivfsq_add_appends_rows():
    x = near_ties(3000, d=32)
    idx = VectorIndex("ivfsq", params={"nprobe": 16}).fit(x[:2000])
    idx.add(x[2000:])
    assert idx.n_ == 3000 and idx.rows_.n == 3000
    assert idx.search(x[2500], 1)[1][0, 0] == 2500


def test_auto_keeps_codes_and_reranks_from_disk_past_the_flat_budget():
    assert choose_backend(2_000_000, 20_000, 512, flat_budget=4 * 2**30) == "ivf"
    assert choose_backend(10_000_000, 20_000, 512, flat_budget=4 * 2**30) == "ivfsq"


def test_ivfpq_builds_and_reports_recall():
    x = clustered(2048, 32)
    idx = VectorIndex("ivfpq").fit(x)
    assert idx.backend_ == "ivfpq" and 0.0 < idx.recall_ <= 1.0
    _, ids = idx.search(x[:30], 5)
    assert ((ids >= 0) & (ids < 2048)).all()
    assert np.mean([i in row for i, row in enumerate(ids)]) >= 0.8  # stored vectors mostly find themselves
    with pytest.raises(InputError, match="at least 1024"):
        VectorIndex("ivfpq").fit(x[:100])


def test_auto_switches_by_size_and_on_add():
    x = clustered(600, 16)
    small = VectorIndex(threshold=500).fit(x[:300])
    assert small.backend_ == "exact"
    small.add(x[300:])  # crosses the threshold: rebuilt as an inverted file with all 600 rows
    assert small.backend_ == "ivf" and small.n_ == 600 and small.recall_ > 0.8
    assert small.tuning_ and small.config_.nprobe == small.tuning_[-1]["nprobe"]
    _, ids = small.search(x[450], 1)
    assert ids[0, 0] == 450


def test_bad_vectors_and_queries():
    with pytest.raises(InputError, match="NaN"):
        VectorIndex().fit(np.array([[np.nan, 1.0]]))
    idx = VectorIndex().fit(unit(10, 8))
    with pytest.raises(InputError, match="dimension"):
        idx.search(unit(1, 9))
    with pytest.raises(InputError, match="dimension"):
        idx.add(unit(2, 9))
    with pytest.raises(InputError, match="empty"):
        VectorIndex().search(unit(1, 8))


def records(n, prefix="img"):
    return [{"path": f"{prefix}{i}.png", "caption": f"caption {i}"} for i in range(n)]


def test_search_index_round_trip(tmp_path):
    img, txt = clustered(50, 16, 1), clustered(30, 16, 2)
    si = SearchIndex("toy@1", "toy").add("image", img, records(50), "toy@1").add("text", txt, records(30, "t"), "toy@1")
    before_i, before_t = si.search(txt[3], "image", 5), si.search(img[4], "text", 5)
    si.save(tmp_path / "ix")
    files = sorted(p.name for p in (tmp_path / "ix").iterdir() if not p.name.startswith("."))  # .publish.lock
    assert files == ["image.faiss", "image.jsonl", "index.json", "text.faiss", "text.jsonl"]
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert meta["model_id"] == "toy@1" and meta["embed_dim"] == 16
    assert meta["kinds"]["image"]["backend"] == "exact" and meta["kinds"]["image"]["size"] == 50
    loaded = SearchIndex.load(tmp_path / "ix")
    assert loaded.search(txt[3], "image", 5) == before_i and loaded.search(img[4], "text", 5) == before_t
    assert before_t[0]["caption"] and before_i[0]["path"].startswith("img")
    # Incremental add after loading keeps ids aligned with metadata.
    loaded.add("image", img[:1] * -1, [{"path": "new.png"}], "toy@1")
    assert loaded.search(-img[0], "image", 1)[0]["path"] == "new.png"


def test_refuses_to_mix_models(tmp_path):
    si = SearchIndex("model-A@111", "model-A").add("image", unit(5, 8), records(5), "model-A@111")
    with pytest.raises(ModelMismatchError, match=r"model-B@222.*model-A@111"):
        si.add("image", unit(2, 8), records(2), "model-B@222")
    other = SimpleNamespace(model_id="model-B@222", encode_texts=lambda t: unit(1, 8))
    with pytest.raises(ModelMismatchError, match="model-A@111"):
        si.search_text(other, "a query")
    with pytest.raises(InputError, match="no texts"):
        si.search(unit(1, 8)[0], "text")
    with pytest.raises(InputError, match="not a search index"):
        SearchIndex.load(tmp_path)


class FakeEncoder:
    """Deterministic 8-d embeddings from pixels/text (fast); counts what it embeds; can fail on demand."""

    def __init__(self, model_id="fake@1", fail_after=None):
        self.model_id, self.fail_after, self.n_images = model_id, fail_after, 0
        self.info = SimpleNamespace(name=model_id.split("@")[0])

    def encode_images(self, images, batch_size=64):
        if self.fail_after is not None and self.n_images + len(images) > self.fail_after:
            raise KeyboardInterrupt  # an interruption in the middle of the build
        self.n_images += len(images)
        x = np.stack([np.asarray(im.convert("RGB").resize((2, 2)), dtype=np.float32).ravel()[:8] + 1 for im in images])
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_texts(self, texts):
        x = np.stack([np.frombuffer(t.encode().ljust(8, b"_")[:8], dtype=np.uint8).astype(np.float32) for t in texts])
        return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(folder / f"im{i:02d}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def test_build_is_resumable_and_skips_bad_images(tmp_path, image_folder):
    out = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(image_folder, out, FakeEncoder(fail_after=7), chunk_size=3, progress=False)
    chunks = list((out / "chunks").glob("image-*.jsonl"))
    assert len(chunks) == 2  # two complete chunks survived (the first one has the broken file's gap)
    n_done = sum(len(c.read_text().splitlines()) for c in chunks)
    assert n_done == 5
    enc = FakeEncoder()
    res = build_index(image_folder, out, enc, chunk_size=3, progress=False)
    assert enc.n_images == 10 - n_done and res["skipped"] == n_done and res["embedded"] == 10 - n_done
    assert res["sizes"] == {"image": 10}
    assert len(res["errors"]) == 1 and "broken.jpg" in res["errors"][0]
    index = SearchIndex.load(out)
    first = sorted(image_folder.glob("im*.png"))[0]
    hit = index.search_image(enc, Image.open(first), k=1)[0]
    assert hit["path"] == str(first.resolve()) and hit["score"] == pytest.approx(1.0, abs=1e-5)
    again = FakeEncoder()
    build_index(image_folder, out, again, chunk_size=3, progress=False)
    assert again.n_images == 0  # nothing redone
    with pytest.raises(ModelMismatchError, match="other@2"):
        build_index(image_folder, out, FakeEncoder("other@2"), progress=False)


def test_build_from_captions_file(tmp_path, image_folder):
    caps = tmp_path / "caps.csv"
    caps.write_text("image,text\nimgs/im00.png,a red thing\nimgs/im01.png,a blue thing\nimgs/im00.png,a second caption\n")
    enc = FakeEncoder()
    res = build_index(caps, tmp_path / "ix", enc, progress=False)
    assert res["sizes"] == {"image": 2, "text": 3}
    index = SearchIndex.load(tmp_path / "ix")
    hit = index.search_text(enc, "a blue thing", target="text", k=1)[0]
    assert hit["caption"] == "a blue thing" and hit["path"].endswith("im01.png")
    assert index.items["image"][0]["caption"] == "a red thing | a second caption"
    with pytest.raises(InputError, match="expected a folder"):
        build_index(image_folder / "im00.png", tmp_path / "x", enc, progress=False)


def test_approximate_index_round_trip_keeps_search_settings(tmp_path):
    x = clustered(1500, 16)
    idx = VectorIndex("hnsw", params={"ef_search": 40}).fit(x)
    desc = idx.save(tmp_path / "h.faiss")
    back = VectorIndex.load(tmp_path / "h.faiss", desc)
    assert back.backend_ == "hnsw" and back.index_.hnsw.efSearch == 40 and back.recall_ == idx.recall_
    np.testing.assert_array_equal(back.search(x[:20], 5)[1], idx.search(x[:20], 5)[1])
    (tmp_path / "bad.faiss").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"bad\.faiss: 4 bytes, but the index was saved with"):
        VectorIndex.load(tmp_path / "bad.faiss", desc)
    from mmexplore.fsutil import sha256_file

    junk_desc = {**desc, "file": {"bytes": 4, "sha256": sha256_file(tmp_path / "bad.faiss")}}
    with pytest.raises(InputError, match="not a readable faiss index"):  # checksum matches, faiss still refuses
        VectorIndex.load(tmp_path / "bad.faiss", junk_desc)


class ShuffledSource:
    """A VectorSource whose batches come out of position order (as shards written by workers do)."""

    sequential = False

    def __init__(self, x, batch=97, seed=0):
        self.x, self.n, self.dim, self.batch = x, len(x), x.shape[1], batch
        self.order = np.random.default_rng(seed).permutation(len(x))

    def sample(self, m, seed=0):
        return ArraySource(self.x).sample(m, seed)

    def batches(self):
        for s in range(0, self.n, self.batch):
            pos = self.order[s:s + self.batch]
            yield pos, self.x[pos]


@pytest.mark.parametrize("backend,params", [("exact", {}), ("ivf", {}), ("ivfpq", {"refine": "sq8"}), ("ivfsq", {})])
def test_streamed_out_of_order_equals_in_memory(backend, params, tmp_path):
    x = clustered(3000, 32)
    mem = VectorIndex(backend, params=params).fit(x)
    streamed = VectorIndex(backend, params=params).fit_source(ShuffledSource(x))
    q = x[:50] + 0.01
    _, i1 = mem.search(q, 10)
    _, i2 = streamed.search(q, 10)
    assert recall_at_k(i2, i1) >= 0.98 and streamed.n_ == 3000
    assert streamed.recall_ >= 0.9
    desc = streamed.save(tmp_path / "ix.faiss")
    back = VectorIndex.load(tmp_path / "ix.faiss", desc)
    assert np.array_equal(back.search(q, 10)[1], i2)


def test_recall_target_sets_nprobe_and_is_measured_on_held_out_queries():
    x = clustered(20_000, 32)
    idx = VectorIndex("ivf", recall_target=0.99).fit(x)
    d = idx.describe()
    assert d["params"]["nprobe"] == d["tuning"][-1]["nprobe"] and d["tuning"][-1]["recall@10"] >= 0.99
    assert d["recall@10"] >= 0.95 and d["recall_target"] == 0.99
    lower = VectorIndex("ivf", recall_target=0.5).fit(x)
    assert lower.config_.nprobe <= idx.config_.nprobe
