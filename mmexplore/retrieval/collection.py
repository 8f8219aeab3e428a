"""A searchable collection: image and text embeddings of one model, with their metadata, on disk.

:class:`SearchIndex` holds up to two :class:`~mmexplore.retrieval.vector_index.VectorIndex` (one per
kind, ``image`` and ``text``) and, for every row, a metadata record (``path``, ``caption``). It
refuses vectors from another model (:class:`ModelMismatchError` names both model ids), because
embeddings of two models live in unrelated spaces and mixing them gives meaningless neighbours.

Folder layout (no pickle anywhere)::

    DIR/index.json       model id and name, embed dim, per-kind backend, size and measured recall
    DIR/image.faiss      faiss index of the image embeddings (when there are images)
    DIR/image.jsonl      one JSON record per image row: {"path", "caption"} (built from an
                         embeddings folder: DIR/image.items.parquet, the same two columns)
    DIR/text.faiss       ... and the same for captions
    DIR/text.jsonl
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.fsutil import file_lock, sha256_file, write_atomic
from mmexplore.retrieval.backends import AUTO
from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD, VectorIndex, rows_path

KINDS = ("image", "text")
FORMAT_VERSION = 2  # 2: every file's size and SHA-256 in index.json, checked before reading
INDEX_FILE = "index.json"
# Held exclusively while a build renames its files into place, shared while a reader reads them.
PUBLISH_LOCK = ".publish.lock"


class ModelMismatchError(InputError):
    """Embeddings of one model offered to an index built with another."""


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown item kind '{kind}'; choose one of {list(KINDS)}")


class ArrowRecords(Sequence):
    """Read-only ``{"path", "caption"}`` records backed by an Arrow table (millions of rows, no dicts)."""

    def __init__(self, table: Any) -> None:
        self.table = table.select(["path", "caption"])
        self._path = self.table.column("path")
        self._caption = self.table.column("caption")

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        return {"path": str(self._path[i].as_py() or ""), "caption": str(self._caption[i].as_py() or "")}


class SearchIndex:
    """Image and text embeddings of one model, searchable by text or by image.

    Parameters
    ----------
    model_id : str
        The encoder's ``model_id`` (spec and weights digest); every added vector must come from it.
    model_name : str
        The model spec a user gives to load that encoder (e.g. ``bundled``), shown in messages.
    backend, threshold, params
        Passed to each kind's :class:`VectorIndex`.

    Attributes
    ----------
    indexes : dict of str to VectorIndex
        Per kind present.
    items : dict of str to list of dict
        Per kind, one ``{"path", "caption"}`` record per row (row i of ``indexes[kind]``).
    """

    def __init__(
        self,
        model_id: str,
        model_name: str = "",
        *,
        backend: str = AUTO,
        threshold: int = DEFAULT_THRESHOLD,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.model_id = model_id
        self.model_name = model_name or model_id.split("@")[0]
        self.backend = backend
        self.threshold = threshold
        self.params = params
        self.indexes: dict[str, VectorIndex] = {}
        self.items: dict[str, Any] = {}  # per kind: list of dicts, or ArrowRecords when large

    # ------------------------------------------------------------------ content
    def check_model(self, model_id: str, what: str = "the query") -> None:
        """Raise :class:`ModelMismatchError` unless ``model_id`` is this index's model."""
        if model_id != self.model_id:
            raise ModelMismatchError(
                f"{what} uses model '{model_id}' but the index was built with model '{self.model_id}'; "
                f"use the same model (--model {self.model_name}) or build a new index"
            )

    @property
    def embed_dim(self) -> int | None:
        return next((ix.dim_ for ix in self.indexes.values()), None)

    def size(self, kind: str) -> int:
        """Rows of ``kind`` (0 when absent)."""
        return self.indexes[kind].n_ if kind in self.indexes else 0

    def add(self, kind: str, vectors: np.ndarray, records: list[dict[str, str]], model_id: str) -> SearchIndex:
        """Add rows of ``kind``: ``vectors`` (n, d) unit-norm and one ``{"path", "caption"}`` record each."""
        _check_kind(kind)
        self.check_model(model_id, "the new embeddings")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(records):
            raise InputError(f"{len(records)} records for {vectors.shape[0] if vectors.ndim else 0} vectors")
        if len(records) == 0:
            return self
        dim = self.embed_dim
        if dim is not None and vectors.shape[1] != dim:
            raise InputError(f"embeddings of dimension {vectors.shape[1]} cannot join an index of dimension {dim}")
        if kind not in self.indexes:
            self.indexes[kind] = VectorIndex(self.backend, threshold=self.threshold, params=self.params)
            self.items[kind] = []
        if isinstance(self.items[kind], ArrowRecords):
            self.items[kind] = list(self.items[kind])
        self.indexes[kind].add(vectors)
        self.items[kind].extend({"path": str(r.get("path", "")), "caption": str(r.get("caption", ""))} for r in records)
        return self

    # ------------------------------------------------------------------ queries
    def default_target(self) -> str:
        """``image`` when the index has images, else ``text``."""
        return "image" if "image" in self.indexes else "text"

    def search(self, query: np.ndarray, target: str | None = None, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` rows of kind ``target`` nearest to one query vector.

        Returns
        -------
        list of dict
            ``{"path", "score", "caption", "kind", "id"}``, best first; ``score`` is the cosine.
        """
        target = target or self.default_target()
        _check_kind(target)
        if target not in self.indexes:
            have = ", ".join(self.indexes) or "nothing"
            raise InputError(f"the index holds no {target}s (it has: {have}); choose another target")
        scores, ids = self.indexes[target].search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        out = []
        for score, i in zip(scores[0], ids[0], strict=True):
            if i < 0:
                continue
            rec = self.items[target][int(i)]
            out.append({"path": rec["path"], "score": float(score), "caption": rec["caption"], "kind": target, "id": int(i)})
        return out

    def search_text(self, encoder: Any, text: str, target: str | None = None, k: int = 10) -> list[dict[str, Any]]:
        """Text → image (default) or text → text with ``encoder`` (must be the index's model)."""
        if not str(text).strip():
            raise InputError("empty query text")
        self.check_model(encoder.model_id)
        return self.search(encoder.encode_texts([text])[0], target, k)

    def search_image(self, encoder: Any, image: Any, target: str | None = None, k: int = 10) -> list[dict[str, Any]]:
        """Image → image (default) or image → text with ``encoder`` (must be the index's model)."""
        self.check_model(encoder.model_id)
        return self.search(encoder.encode_images([image])[0], target, k)

    def describe(self) -> dict[str, Any]:
        """Model, dimension and, per kind, backend, size and measured recall (JSON-able)."""
        return {
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "model": self.model_name,
            "embed_dim": self.embed_dim,
            "backend": self.backend,
            "threshold": self.threshold,
            "kinds": {kind: ix.describe() for kind, ix in self.indexes.items()},
        }

    # ------------------------------------------------------------------ disk
    def save(self, folder: str | os.PathLike) -> Path:
        """Write the index into ``folder`` (created if needed); returns the folder.

        Every file is first written under a temporary name; then, holding the folder's publish lock,
        all are renamed into place and ``index.json`` (with each file's size and SHA-256) last. A
        reader (:meth:`load` takes the same lock, shared) sees the old index or the new one, whole.
        """
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        tag = f"{os.getpid()}.tmp"
        staged: list[tuple[Path, Path]] = []
        files: dict[str, dict[str, Any]] = {}
        keep: set[str] = {INDEX_FILE}
        try:
            for kind, ix in self.indexes.items():
                tmp = root / f".{kind}.faiss.{tag}"
                ix.save(tmp)
                staged.append((tmp, root / f"{kind}.faiss"))
                keep.add(f"{kind}.faiss")
                if getattr(ix, "rows_", None) is not None:  # the re-ranking rows travel with their index
                    staged.append((rows_path(tmp), rows_path(root / f"{kind}.faiss")))
                    keep.add(f"{kind}.faiss.rows")
                items = self.items[kind]
                if isinstance(items, ArrowRecords):  # large: a Parquet table instead of JSON lines
                    import pyarrow.parquet as pq

                    name = f"{kind}.items.parquet"
                    tmp = root / f".{name}.{tag}"
                    pq.write_table(items.table, tmp)
                else:
                    name = f"{kind}.jsonl"
                    tmp = root / f".{name}.{tag}"
                    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
                files[name] = {"bytes": tmp.stat().st_size, "sha256": sha256_file(tmp)}
                staged.append((tmp, root / name))
                keep.add(name)
            meta = {**self.describe(), "files": files}
            with file_lock(root / PUBLISH_LOCK, what=str(root)):
                for tmp, final in staged:
                    os.replace(tmp, final)
                for kind, ix in self.indexes.items():
                    ix.moved_rows(rows_path(root / f"{kind}.faiss"))
                for kind in KINDS:
                    for suffix in (".faiss", ".faiss.rows", ".jsonl", ".items.parquet"):
                        if f"{kind}{suffix}" not in keep:
                            (root / f"{kind}{suffix}").unlink(missing_ok=True)
                write_atomic(root / INDEX_FILE, json.dumps(meta, indent=2))
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
        return root

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SearchIndex:
        """Read an index written by :meth:`save` (InputError naming the folder when it is not one)."""
        root = Path(folder)
        meta_path = root / INDEX_FILE
        if not meta_path.is_file():
            raise InputError(f"{root}: not a search index (no {INDEX_FILE}); build one with `mmexplore index build`")
        with file_lock(root / PUBLISH_LOCK, shared=True):
            return cls._load(root, meta_path)

    @classmethod
    def _load(cls, root: Path, meta_path: Path) -> SearchIndex:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            model_id = meta["model_id"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{meta_path}: unreadable index description ({type(exc).__name__})") from None
        obj = cls(model_id, meta.get("model", ""), backend=meta.get("backend", AUTO),
                  threshold=int(meta.get("threshold", DEFAULT_THRESHOLD)))
        files = meta.get("files") if isinstance(meta.get("files"), dict) else {}
        for kind, desc in meta.get("kinds", {}).items():
            _check_kind(kind)
            ix = VectorIndex.load(root / f"{kind}.faiss", desc)
            items_path = root / f"{kind}.jsonl"
            parquet_path = root / f"{kind}.items.parquet"
            for p in (items_path, parquet_path):
                if p.is_file():
                    _check_file(p, files.get(p.name))
            items: Any
            if parquet_path.is_file():
                import pyarrow.parquet as pq

                items_path, items = parquet_path, ArrowRecords(pq.read_table(parquet_path))
            elif items_path.is_file():
                lines = [ln for ln in items_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
                items = [json.loads(ln) for ln in lines]
            else:
                raise InputError(f"{items_path}: metadata table missing")
            if len(items) != ix.n_:
                raise InputError(f"{items_path}: {len(items)} records for {ix.n_} vectors; rebuild the index")
            obj.indexes[kind], obj.items[kind] = ix, items
        if obj.indexes and meta.get("embed_dim") not in (None, obj.embed_dim):
            raise InputError(f"{meta_path}: says dimension {meta.get('embed_dim')}, its vectors have {obj.embed_dim}; "
                             "rebuild the index")
        return obj


def _check_file(path: Path, expected: Any) -> None:
    """Refuse a metadata file whose size or SHA-256 differs from the one recorded in ``index.json``."""
    if not isinstance(expected, dict) or "sha256" not in expected:
        raise InputError(f"{path}: no checksum recorded for it in {INDEX_FILE} (older mmexplore); rebuild the index")
    if path.stat().st_size != int(expected.get("bytes", -1)) or sha256_file(path) != expected["sha256"]:
        raise InputError(f"{path}: does not match the checksum in {INDEX_FILE} (changed or damaged); rebuild the index")
