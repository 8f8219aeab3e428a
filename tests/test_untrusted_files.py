"""Untrusted files: a crafted file of each kind a user can supply is refused without running its code.

Every payload is a pickle whose loading would create a marker folder (``os.mkdir``); each test
checks the loader refuses the file with a one-line error and that the marker does not exist.
Also: the safe defaults every mode starts with (loopback, no tracebacks in the browser, a size
limit on model architectures) and user text from files shown as text, not markdown.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tomllib

from mmexplore.errors import InputError, ModelLoadError

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture()
def marker(tmp_path):
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a crafted file ran code"


def test_weights_file_with_pickled_code_is_refused(tmp_path, marker):
    import torch

    from mmexplore.models import load_model

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": Payload(marker)}}, path)
    with pytest.raises(ModelLoadError, match=r"could not load evil\.pt"):
        load_model(f"mmexplore-shapes-xs:{path}", "cpu")


def test_local_dir_with_pickled_weights_is_refused(tmp_path, marker):
    import torch

    from mmexplore.models import load_model

    folder = tmp_path / "model"
    folder.mkdir()
    cfg = json.loads((ROOT / "mmexplore" / "assets" / "bundled" / "open_clip_config.json").read_text())
    cfg.pop("mmexplore", None)
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    torch.save({"w": Payload(marker)}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="only open_clip weights"):
        load_model(f"local-dir:{folder}", "cpu")


def test_npz_with_object_array_is_refused(tmp_path, marker):
    from mmexplore.projection.embeddings_io import read_embeddings

    path = tmp_path / "evil.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    np.savez(path, image=obj, text=np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="without pickled objects"):
        read_embeddings(path)


def test_parquet_with_pickled_extension_type_is_not_unpickled(tmp_path, marker):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mmexplore.projection.embeddings_io import read_embeddings

    # pyarrow's old "arrow.py_extension_type" carried a pickle in the field metadata (CVE-2023-47248).
    field = pa.field("image_embedding", pa.binary(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": pickle.dumps(Payload(marker)),
    })
    table = pa.table({"image_embedding": pa.array([b"x"]), "text_embedding": pa.array([b"y"])})
    table = table.cast(pa.schema([field, pa.field("text_embedding", pa.binary())]))
    pq.write_table(table, tmp_path / "evil.parquet")
    with pytest.raises(InputError):
        read_embeddings(tmp_path / "evil.parquet")


def test_pickle_named_as_pairs_file_is_refused_without_echo(tmp_path, marker):
    from mmexplore.data.pairs import read_pairs

    path = tmp_path / "pairs.csv"
    path.write_bytes(pickle.dumps(Payload(marker)) + b"SECRET-LINE")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert "SECRET" not in str(err.value) and "mkdir" not in str(err.value)


def test_index_folder_with_pickled_files_is_refused(tmp_path, marker):
    from mmexplore.retrieval import SearchIndex

    ix = tmp_path / "ix"
    ix.mkdir()
    blob = pickle.dumps(Payload(marker))
    (ix / "image.faiss").write_bytes(blob)
    (ix / "image.jsonl").write_bytes(blob)
    (ix / "index.json").write_text(json.dumps({"model_id": "m", "kinds": {"image": {
        "backend": "exact", "size": 1, "dim": 4, "file": {"bytes": len(blob), "sha256": "0" * 64}}}}))
    with pytest.raises(InputError, match=r"image\.faiss"):
        SearchIndex.load(ix)
    (ix / "index.json").write_bytes(blob)
    with pytest.raises(InputError, match="unreadable index description"):
        SearchIndex.load(ix)


def test_cache_entry_and_chunk_with_object_arrays_are_refused(tmp_path, marker):
    from mmexplore.models.cache import EmbeddingCache
    from mmexplore.retrieval.build import ChunkStore

    cache = EmbeddingCache(directory=tmp_path / "cache")
    key = EmbeddingCache.key("m", "text", "x")
    path = cache._path(key)
    path.parent.mkdir(parents=True)
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    with open(path, "wb") as fh:
        np.savez(fh, vec=obj, check=np.zeros(32, np.uint8))
    assert cache.get(key, 4) is None
    store = ChunkStore(tmp_path / "chunks", "m", dim=4)
    store.write("image", np.eye(4, dtype=np.float32)[:1], [{"key": "a", "stamp": "", "path": "a", "caption": ""}])
    np.save(tmp_path / "chunks" / "image-00000.npy", obj, allow_pickle=True)
    assert store.load("image")[0] is None and store.problems


# ---------------------------------------------------------------------------- safe defaults
def test_streamlit_config_binds_loopback_and_hides_tracebacks():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["server"]["enableXsrfProtection"] is True and cfg["server"]["enableCORS"] is True
    assert cfg["client"]["toolbarMode"] == "viewer"  # no "Clear cache" for every session's models


def test_make_run_binds_loopback_unless_told_otherwise():
    def run_cmd(*extra: str) -> str:
        out = subprocess.run(["make", "-n", "-W", "requirements.txt", "run", *extra], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        return next(line for line in out.splitlines() if "streamlit run" in line)

    assert "--server.address 127.0.0.1" in run_cmd()
    assert "--server.address 0.0.0.0" in run_cmd("HOST=0.0.0.0")


def test_large_architecture_needs_an_explicit_setting(monkeypatch):
    from mmexplore.models import load_model
    from mmexplore.models.loader import _check_size
    from mmexplore.settings import reload_settings

    with pytest.raises(ModelLoadError, match=r"986M parameters, above the limit of 500M.*MMEXPLORE_MAX_MODEL_PARAMS"):
        load_model("ViT-H-14:random", "cpu")
    _check_size("ViT-L-14", "ViT-L-14:random")  # 428M: under the default
    monkeypatch.setenv("MMEXPLORE_MAX_MODEL_PARAMS", "2000000000")
    try:
        reload_settings()
        _check_size("ViT-H-14", "ViT-H-14:random")  # allowed once the server says so
    finally:
        monkeypatch.undo()
        reload_settings()


MD_ATTACK = "![x](http://example.invalid/pixel.png)"


def test_user_text_from_files_renders_as_text_not_markdown():
    from apptest_utils import image_captions, open_page
    from test_shared_mode import page_text

    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene
    from mmexplore_app.state import Dataset

    ds = Dataset()
    ds.add_images([render_scene(make_scene(HELD_OUT_SEED_START + i, n_objects=2), 64) for i in range(2)],
                  [f"{MD_ATTACK}{i}.png" for i in range(2)])
    ds.add_texts([f"a red circle {MD_ATTACK}", "a blue square"])
    for page in ("mmexplore_app/pages/home.py", "mmexplore_app/pages/heatmaps.py", "mmexplore_app/pages/probes.py"):
        at = open_page(page, dataset=ds)
        assert not at.exception, page
        assert "example.invalid" in page_text(at), page  # the text is shown ...
        # ... and every element that renders markdown has it escaped (option lists and tables are plain text)
        rendered = [str(e.value) for kind in ("markdown", "caption", "error", "warning", "info", "success")
                    for e in getattr(at, kind)] + image_captions(at)
        leaks = [t for t in rendered if re.search(r"(?<!\\)\]\(http://example", t)]
        assert not leaks, (page, leaks)
        assert any("example.invalid" in t for t in rendered) or page != "mmexplore_app/pages/home.py"


def test_show_error_escapes_links():
    from mmexplore_app.widgets import no_links

    assert not re.search(r"(?<!\\)\]\(", no_links(f"model '{MD_ATTACK}' not found"))
