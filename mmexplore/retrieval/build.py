"""Building a :class:`~mmexplore.retrieval.collection.SearchIndex` from a folder or a captions file.

Embedding a large folder takes a while, so the build is resumable: embeddings are written to
``DIR/chunks/`` in chunks of ``chunk_size`` rows as they are computed (``image-00000.npy`` with a
``image-00000.jsonl`` naming its rows), and a re-run skips every item a chunk already holds. Only
then is the faiss index built over all chunks and saved. Files that cannot be read are reported and
skipped (and retried on the next run). New files in the folder are embedded on the next run and
join the index: that is the incremental path for collections on disk. A file whose bytes changed
(content hash) is embedded again and a deleted one leaves the index; every chunk carries checksums
and its shape, and a damaged one is set aside and redone. Once the index is published, the chunks
are compacted: rows of changed and deleted files, pieces of an interrupted chunk and chunks set
aside by an earlier build are removed, so the folder does not grow with every change. Builds of one folder take a lock, and the
finished index is published atomically (:meth:`SearchIndex.save`), so two at once give one copy
of each item.
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
from mmexplore.fsutil import file_lock, sha256_file, write_atomic
from mmexplore.retrieval.backends import AUTO
from mmexplore.retrieval.collection import INDEX_FILE, KINDS, ModelMismatchError, SearchIndex
from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD

CHUNKS_DIR = "chunks"
MANIFEST = "manifest.json"
BUILD_LOCK = ".build.lock"
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
    """Embeddings written chunk by chunk under ``folder``: ``{kind}-{n:05d}.npy`` + ``.jsonl`` + ``.sum``.

    The ``.sum`` file (written last, so a chunk counts only when complete) holds the SHA-256 of the
    other two and the array's shape. A chunk whose files do not match it, or whose vectors are not
    finite unit-norm rows of the model's dimension, is set aside (renamed ``*.corrupt``) with a
    message naming it in :attr:`problems`, and its rows are embedded again; :meth:`compact` removes
    it at the end of the next build.
    """

    def __init__(self, folder: str | os.PathLike, model_id: str, model_name: str = "", dim: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.problems: list[str] = []
        self.set_aside: set[Path] = set()  # set aside by this store: kept for one build, for inspection
        manifest = self.folder / MANIFEST
        stored = None
        if manifest.is_file():
            try:
                stored = json.loads(manifest.read_text(encoding="utf-8")).get("model_id")
            except (json.JSONDecodeError, AttributeError):
                stored = None  # unreadable: rewritten below (the chunks' own checks still apply)
        if stored is not None and stored != model_id:
            raise ModelMismatchError(
                f"{self.folder.parent}: its embeddings come from model '{stored}', not '{model_id}'; "
                "use that model or another --index folder"
            )
        if stored is None:
            write_atomic(manifest, json.dumps({"model_id": model_id, "model": model_name}))

    def _chunks(self, kind: str) -> list[Path]:
        return sorted(self.folder.glob(f"{kind}-[0-9][0-9][0-9][0-9][0-9].npy"))

    def _set_aside(self, npy: Path, why: str) -> None:
        for suffix in (".npy", ".jsonl", ".sum"):
            f = npy.with_suffix(suffix)
            if f.exists():
                os.replace(f, f.with_name(f.name + ".corrupt"))
                self.set_aside.add(f.with_name(f.name + ".corrupt"))
        self.problems.append(f"{npy}: {why}; set aside as {npy.name}.corrupt and its rows embedded again")

    def _read_chunk(self, npy: Path) -> tuple[np.ndarray, list[dict[str, str]]] | None:
        meta, summ = npy.with_suffix(".jsonl"), npy.with_suffix(".sum")
        if not summ.is_file() or not meta.is_file():
            return None  # interrupted before its last file (or written by an older mmexplore): redone
        try:
            expected = json.loads(summ.read_text(encoding="utf-8"))
            if sha256_file(npy) != expected["npy_sha256"] or sha256_file(meta) != expected["jsonl_sha256"]:
                self._set_aside(npy, "contents do not match the chunk's checksum")
                return None
            arr = np.load(npy, allow_pickle=False)
            rows = [json.loads(ln) for ln in meta.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._set_aside(npy, f"unreadable ({type(exc).__name__})")
            return None
        why = _bad_vectors(arr, len(rows), self.dim)
        if why is None and list(arr.shape) != list(expected.get("shape", [])):
            why = f"shape {arr.shape} differs from the recorded {expected.get('shape')}"
        if why is not None:
            self._set_aside(npy, why)
            return None
        return arr, rows

    def load(self, kind: str) -> tuple[np.ndarray | None, list[dict[str, str]]]:
        """All stored vectors of ``kind`` (None when none) and their records (with ``key`` and ``stamp``)."""
        vecs, recs = [], []
        for npy in self._chunks(kind):
            chunk = self._read_chunk(npy)
            if chunk is not None:
                vecs.append(chunk[0])
                recs.extend(chunk[1])
        return (np.concatenate(vecs) if vecs else None), recs

    def done_keys(self, kind: str) -> set[tuple[str, str]]:
        """``(key, stamp)`` of every stored row: a changed file (new stamp) is not done."""
        return {(r["key"], r.get("stamp", "")) for r in self.load(kind)[1]}

    def _files(self, kind: str) -> tuple[list[Path], set[Path]]:
        """Every file of ``kind`` here (chunks, set-aside ``.corrupt`` files, temporary files) and those
        that belong to complete chunks (``.npy``, ``.jsonl`` and ``.sum`` all present)."""
        every = [*self.folder.glob(f"{kind}-[0-9][0-9][0-9][0-9][0-9].*"),
                 *self.folder.glob(f".{kind}-[0-9][0-9][0-9][0-9][0-9].*.tmp")]
        complete: set[Path] = set()
        for npy in self._chunks(kind):
            trio = {npy, npy.with_suffix(".jsonl"), npy.with_suffix(".sum")}
            if all(f.is_file() for f in trio):
                complete |= trio
        return every, complete

    def compact(self, kind: str, vectors: np.ndarray | None, records: list[dict[str, str]], *, stored_rows: int,
                chunk_size: int) -> dict[str, int]:
        """Keep only ``records`` (with their ``vectors``, shape ``(len(records), dim)``) of ``kind``.

        ``stored_rows`` is how many rows the chunks hold now (from :meth:`load`). When it exceeds
        ``len(records)`` (rows of changed or deleted files), the kept rows are written as new chunks
        and the old ones removed; either way, leftovers of interrupted writes and chunks set aside by
        an earlier build are removed (those set aside by this store stay until the next build). New
        chunks are written before old ones are removed, so an interruption leaves duplicates, which
        a build reads once, never a gap. Returns ``{"rows": rows dropped, "files": files removed}``.
        """
        every, complete = self._files(kind)
        leftovers = [p for p in every if p not in complete and p not in self.set_aside]
        stale = stored_rows - len(records)
        if stale > 0:
            for start in range(0, len(records), chunk_size):
                self.write(kind, vectors[start:start + chunk_size], records[start:start + chunk_size])  # type: ignore[index]
            leftovers += sorted(complete)
        for p in leftovers:
            p.unlink(missing_ok=True)
        return {"rows": max(stale, 0), "files": len(leftovers)}

    def write(self, kind: str, vectors: np.ndarray, records: list[dict[str, str]]) -> None:
        """Append one chunk; the ``.sum`` is written last, so a chunk counts only when complete."""
        existing = sorted(self.folder.glob(f"{kind}-[0-9][0-9][0-9][0-9][0-9].*"))
        n = max((int(p.name.split(".")[0].split("-")[-1]) for p in existing), default=-1) + 1
        stem = self.folder / f"{kind}-{n:05d}"
        arr = np.asarray(vectors, dtype=np.float32)
        with open(f"{stem}.npy.tmp", "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(f"{stem}.npy.tmp", f"{stem}.npy")
        write_atomic(Path(f"{stem}.jsonl"), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        summary = {"npy_sha256": sha256_file(f"{stem}.npy"), "jsonl_sha256": sha256_file(f"{stem}.jsonl"),
                   "shape": list(arr.shape)}
        write_atomic(Path(f"{stem}.sum"), json.dumps(summary))


def _bad_vectors(arr: np.ndarray, rows: int, dim: int | None) -> str | None:
    """Why ``arr`` cannot be ``rows`` embeddings of dimension ``dim`` (None when it can)."""
    if arr.ndim != 2 or arr.shape[0] != rows:
        return f"shape {arr.shape} for {rows} records"
    if dim is not None and arr.shape[1] != dim:
        return f"vectors of dimension {arr.shape[1]}, the model's is {dim}"
    if arr.dtype != np.float32 or not np.isfinite(arr).all():
        return "vectors that are not finite float32"
    if rows and not np.allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-3):
        return "vectors that are not unit length"
    return None


def _stamp(path: str) -> str:
    """Content hash of an image file (so a replaced image is embedded again); empty when unreadable."""
    try:
        return sha256_file(path)[:32]
    except OSError:
        return ""


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
    lock_timeout_s: float | None = None,
    max_items: int | None = None,
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
    lock_timeout_s : float, optional
        A build holds ``index_dir/.build.lock`` from start to finish, so two builds of one folder run
        one after the other (the second finds the work done); give up after this many seconds
        (None: wait).
    max_items : int, optional
        Refuse a source with more images plus captions than this (a shared server's per-index limit).

    The index holds exactly the source's current items, one row each, in the source's order: an
    image whose bytes changed since it was embedded (content hash) is embedded again, and rows of
    files no longer in the source are left out.

    Returns
    -------
    dict
        ``{"index", "model", "sizes": {kind: n}, "embedded", "skipped", "changed", "removed",
        "compacted": {"rows", "files"}, "errors": [...], "index_info"}``; ``errors`` also names any
        corrupt chunk set aside; ``compacted`` counts the stale rows and leftover files removed from
        the chunks after publishing (see :meth:`ChunkStore.compact`).
    """
    root = Path(index_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    items = read_source(source, roots=roots)
    n_items = len(items.images) + len(items.texts)
    if max_items is not None and n_items > max_items:
        raise InputError(f"{source}: {n_items:,} images and captions, over this server's limit of {max_items:,} "
                         "per index (MMEXPLORE_MAX_INDEX_ITEMS); pick a smaller folder")
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / BUILD_LOCK, timeout_s=lock_timeout_s, what=f"the index {root}"):
        return _build_locked(items, source, root, encoder, backend=backend, threshold=threshold,
                             chunk_size=chunk_size, batch_size=batch_size, progress=progress, on_chunk=on_chunk)


def _build_locked(items: SourceItems, source: Any, root: Path, encoder: Any, *, backend: str, threshold: int,
                  chunk_size: int, batch_size: int, progress: bool,
                  on_chunk: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    from tqdm import tqdm

    from mmexplore.data.images import load_image

    meta_path = root / INDEX_FILE
    if meta_path.is_file():  # the model of an existing index (its files are checked when it is read)
        try:
            stored = json.loads(meta_path.read_text(encoding="utf-8")).get("model_id")
        except (json.JSONDecodeError, AttributeError):
            stored = None
        if stored is not None and stored != encoder.model_id:
            SearchIndex(stored).check_model(encoder.model_id, "this build")
    store = ChunkStore(root / CHUNKS_DIR, encoder.model_id, encoder.info.name, dim=getattr(encoder, "embed_dim", None))
    errors: list[str] = []
    embedded = skipped = changed = removed = 0
    current: dict[str, list[tuple[str, str, dict[str, str]]]] = {
        "image": [(key, _stamp(key), rec) for key, rec in items.images],
        "text": [(key, "", rec) for key, rec in items.texts],
    }
    for kind, entries in current.items():
        if not entries:
            continue
        stored_rows = store.load(kind)[1]
        done = {(r["key"], r.get("stamp", "")) for r in stored_rows}
        old_keys = {r["key"] for r in stored_rows}
        todo = [(key, stamp, rec) for key, stamp, rec in entries if (key, stamp) not in done]
        skipped += len(entries) - len(todo)
        changed += sum(1 for key, _, _ in todo if key in old_keys)
        removed += len(old_keys - {key for key, _, _ in entries})
        bar = tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"embedding {kind}s",
                   unit=kind, file=sys.stderr, disable=not progress)
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start:start + chunk_size]
            if kind == "image":
                images, recs = [], []
                for key, stamp, rec in chunk:
                    try:
                        images.append(load_image(key))
                        recs.append({**rec, "key": key, "stamp": stamp})
                    except InputError as exc:
                        errors.append(str(exc))
                vecs = encoder.encode_images(images, batch_size=batch_size) if images else None
            else:
                recs = [{**rec, "key": key, "stamp": stamp} for key, stamp, rec in chunk]
                vecs = encoder.encode_texts([key for key, _, _ in chunk])
            if vecs is not None and len(recs):
                store.write(kind, vecs, recs)
                embedded += len(recs)
            bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(kind, len(entries) - len(todo) + start + len(chunk), len(entries))
        bar.close()
    index = SearchIndex(encoder.model_id, encoder.info.name, backend=backend, threshold=threshold)
    kept: dict[str, tuple[np.ndarray | None, list[dict[str, str]], int]] = {}
    for kind in KINDS:
        vecs, recs = store.load(kind)
        kept[kind] = (None, [], len(recs))
        if vecs is None:
            continue
        # One row per current item, in the source's order: the stored row of its (key, stamp), with
        # the source's record (a captions file may have changed an image's captions).
        row_of: dict[tuple[str, str], int] = {}
        for i, r in enumerate(recs):
            row_of.setdefault((r["key"], r.get("stamp", "")), i)
        picked = [(row_of[(key, stamp)], rec) for key, stamp, rec in current[kind] if (key, stamp) in row_of]
        if picked:
            rows = np.fromiter((i for i, _ in picked), dtype=np.int64, count=len(picked))
            index.add(kind, vecs[rows], [rec for _, rec in picked], encoder.model_id)
            kept[kind] = (vecs[rows], [recs[i] for i, _ in picked], len(recs))
    errors.extend(store.problems)
    if not index.indexes:
        raise InputError(f"{source}: nothing could be embedded ({len(errors)} unreadable files)")
    index.save(root)
    # Only after the index is published: the chunks are a cache for resuming, and what was dropped
    # from them is no longer needed by any index.
    compacted = {"rows": 0, "files": 0}
    for kind, (vecs_kept, recs_kept, stored_rows) in kept.items():
        for key, n in store.compact(kind, vecs_kept, recs_kept, stored_rows=stored_rows, chunk_size=chunk_size).items():
            compacted[key] += n
    return {
        "index": str(root),
        "model": encoder.info.name,
        "sizes": {kind: index.size(kind) for kind in index.indexes},
        "embedded": embedded,
        "skipped": skipped,
        "changed": changed,
        "removed": removed,
        "compacted": compacted,
        "errors": errors,
        "index_info": index.describe(),
    }
