"""Building a :class:`~mmexplore.retrieval.collection.SearchIndex` from a folder or a captions file.

Embedding a large folder takes a while, so the build is resumable: embeddings are written to
``DIR/chunks/`` in chunks of ``chunk_size`` rows as they are computed (``image-00000.npy`` with a
``image-00000.jsonl`` naming its rows), and a re-run skips every item a chunk already holds. Only
then is the faiss index built over all chunks and saved. Files that cannot be read are reported and
skipped (and retried on the next run). New files in the folder are embedded on the next run and
join the index: that is the incremental path for collections on disk.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.retrieval.backends import AUTO
from mmexplore.retrieval.collection import INDEX_FILE, KINDS, ModelMismatchError, SearchIndex
from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD

CHUNKS_DIR = "chunks"
MANIFEST = "manifest.json"
CAPTION_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")


@dataclass
class SourceItems:
    """What a source contributes: per kind, ``(key, record)`` with key = path or caption text."""

    images: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    texts: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def read_source(source: str | os.PathLike, *, roots: Sequence[str | os.PathLike] | None = None) -> SourceItems:
    """Items of a folder of images, or of a captions CSV/TSV/JSONL (``image``, ``text`` columns).

    A captions file gives one image row per unique image (its captions joined with `` | ``) and one
    text row per unique caption (``path``: the first image it describes). With ``roots`` (shared
    mode's data roots), files whose resolved path leaves them (symlinks) are left out of a folder, and
    a captions file naming such an image is refused.
    """
    from mmexplore.data.images import list_image_files
    from mmexplore.data.pairs import read_pairs
    from mmexplore.pathguard import guard_paths, inside_roots

    src = Path(source)
    guard_paths([src], shared=roots is not None, roots=roots or (), what="source")
    if src.is_dir():
        files = list_image_files(src)
        if roots is not None:
            files = [p for p in files if inside_roots(p, roots)]
        if not files:
            raise InputError(f"{src}: no image files in the folder")
        return SourceItems(images=[(str(p.resolve()), {"path": str(p.resolve()), "caption": ""}) for p in files])
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.suffix.lower() not in CAPTION_SUFFIXES:
        raise InputError(f"{src}: expected a folder of images or a captions file ({', '.join(CAPTION_SUFFIXES)})")
    table = read_pairs(src)
    guard_paths(table.images, shared=roots is not None, roots=roots or (), what="image path")
    captions_of: dict[str, list[str]] = {}
    first_image: dict[str, str] = {}
    for row in table.rows:
        captions_of.setdefault(row["image"], []).append(row["text"])
        first_image.setdefault(row["text"], row["image"])
    images = [(p, {"path": p, "caption": " | ".join(dict.fromkeys(captions_of[p]))}) for p in table.images]
    texts = [(t, {"path": first_image[t], "caption": t}) for t in table.texts]
    return SourceItems(images=images, texts=texts)


class ChunkStore:
    """Embeddings written chunk by chunk under ``folder`` (``{kind}-{n:05d}.npy`` + ``.jsonl``)."""

    def __init__(self, folder: str | os.PathLike, model_id: str, model_name: str = "") -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / MANIFEST
        if manifest.is_file():
            stored = json.loads(manifest.read_text(encoding="utf-8")).get("model_id")
            if stored != model_id:
                raise ModelMismatchError(
                    f"{self.folder.parent}: its embeddings come from model '{stored}', not '{model_id}'; "
                    "use that model or another --index folder"
                )
        else:
            manifest.write_text(json.dumps({"model_id": model_id, "model": model_name}), encoding="utf-8")

    def _chunks(self, kind: str) -> list[Path]:
        return sorted(self.folder.glob(f"{kind}-[0-9][0-9][0-9][0-9][0-9].npy"))

    def load(self, kind: str) -> tuple[np.ndarray | None, list[dict[str, str]]]:
        """All stored vectors of ``kind`` (None when none) and their records (with ``key``)."""
        vecs, recs = [], []
        for npy in self._chunks(kind):
            meta = npy.with_suffix(".jsonl")
            if not meta.is_file():
                continue  # a chunk interrupted between its two files: its rows are redone
            rows = [json.loads(ln) for ln in meta.read_text(encoding="utf-8").splitlines() if ln.strip()]
            arr = np.load(npy, allow_pickle=False)
            if len(arr) != len(rows):
                continue
            vecs.append(arr)
            recs.extend(rows)
        return (np.concatenate(vecs) if vecs else None), recs

    def done_keys(self, kind: str) -> set[str]:
        return {r["key"] for r in self.load(kind)[1]}

    def write(self, kind: str, vectors: np.ndarray, records: list[dict[str, str]]) -> None:
        """Append one chunk; the ``.jsonl`` is written last, so a chunk counts only when complete."""
        existing = self._chunks(kind)
        n = int(existing[-1].stem.split("-")[-1]) + 1 if existing else 0
        stem = self.folder / f"{kind}-{n:05d}"
        with open(f"{stem}.npy.tmp", "wb") as fh:
            np.save(fh, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
        os.replace(f"{stem}.npy.tmp", f"{stem}.npy")
        Path(f"{stem}.jsonl.tmp").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        os.replace(f"{stem}.jsonl.tmp", f"{stem}.jsonl")


def build_index(
    source: str | os.PathLike,
    index_dir: str | os.PathLike,
    encoder: Any,
    *,
    backend: str = AUTO,
    threshold: int = DEFAULT_THRESHOLD,
    chunk_size: int = 256,
    batch_size: int = 64,
    progress: bool = True,
    on_chunk: Callable[[str, int, int], None] | None = None,
    roots: Sequence[str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Embed ``source`` into ``index_dir`` (resuming earlier work) and build the search index.

    Parameters
    ----------
    source : path
        A folder of images or a captions file (see :func:`read_source`).
    index_dir : path
        Output folder; the same folder resumes an interrupted build.
    encoder : Encoder
        Its ``model_id`` is stored; a folder holding another model's embeddings is refused.
    backend, threshold
        Search backend (``auto``: exact below ``threshold`` rows, else HNSW).
    chunk_size : int
        Rows embedded and written together (the work lost by an interruption is at most one chunk).
    progress : bool
        Show a tqdm bar on stderr.
    on_chunk : callable(kind, done, total), optional
        Called after each chunk (e.g. a Streamlit progress bar).
    roots : sequence of path, optional
        Shared mode's data roots (see :func:`read_source`); None reads anything.

    Returns
    -------
    dict
        ``{"index", "model", "sizes": {kind: n}, "embedded", "skipped", "errors": [...], "index_info"}``.
    """
    from tqdm import tqdm

    from mmexplore.data.images import load_image

    items = read_source(source, roots=roots)
    root = Path(index_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    store = ChunkStore(root / CHUNKS_DIR, encoder.model_id, encoder.info.name)
    errors: list[str] = []
    embedded = skipped = 0
    for kind, entries in (("image", items.images), ("text", items.texts)):
        if not entries:
            continue
        done = store.done_keys(kind)
        todo = [(key, rec) for key, rec in entries if key not in done]
        skipped += len(entries) - len(todo)
        bar = tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"embedding {kind}s",
                   unit=kind, file=sys.stderr, disable=not progress)
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            if kind == "image":
                images, recs = [], []
                for key, rec in chunk:
                    try:
                        images.append(load_image(key))
                        recs.append({**rec, "key": key})
                    except InputError as exc:
                        errors.append(str(exc))
                vecs = encoder.encode_images(images, batch_size=batch_size) if images else None
            else:
                recs = [{**rec, "key": key} for key, rec in chunk]
                vecs = encoder.encode_texts([key for key, _ in chunk])
            if vecs is not None and len(recs):
                store.write(kind, vecs, recs)
                embedded += len(recs)
            bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(kind, len(entries) - len(todo) + start + len(chunk), len(entries))
        bar.close()
    index = SearchIndex(encoder.model_id, encoder.info.name, backend=backend, threshold=threshold)
    if (root / INDEX_FILE).is_file():
        SearchIndex.load(root).check_model(encoder.model_id, "this build")
    for kind in KINDS:
        vecs, recs = store.load(kind)
        if vecs is not None:
            index.add(kind, vecs, recs, encoder.model_id)
    if not index.indexes:
        raise InputError(f"{source}: nothing could be embedded ({len(errors)} unreadable files)")
    index.save(root)
    return {
        "index": str(root),
        "model": encoder.info.name,
        "sizes": {kind: index.size(kind) for kind in index.indexes},
        "embedded": embedded,
        "skipped": skipped,
        "errors": errors,
        "index_info": index.describe(),
    }
