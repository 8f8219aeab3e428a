"""The on-disk format of an embeddings folder, and readers that stream it.

Folder layout (Parquet and JSON only; no pickle)::

    DIR/manifest.json                 model id and name, embed dim, source, counts, shard list
    DIR/part-00000-<run>.parquet      embedding shards (schema below), each written atomically
    DIR/errors-<run>.parquet          items that could not be embedded: id, row, path, caption, error

A shard has the item columns of :mod:`~mmexplore.embeddings.sources` plus ``image_embedding`` and
``text_embedding`` (fixed-size lists of float32, unit norm; null where the item has no caption) and
``model_id``. A shard is complete once its file exists: it is written to a temporary name and renamed,
so a killed job leaves either the whole shard or nothing, and :func:`done_ids` lists what a re-run
may skip.

:class:`EmbeddingShards` reads a folder back for the index build and the app: counts from the
Parquet footers, then one shard at a time, so memory stays bounded by the largest shard.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmexplore.errors import InputError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_GLOB = "part-*.parquet"
ERRORS_GLOB = "errors-*.parquet"
KIND_COLUMNS = {"image": ("image_embedding", "image_first"), "text": ("text_embedding", "text_first")}


class EmbeddingsMismatchError(InputError):
    """An embeddings folder that holds another model's embeddings than the one asked for."""


def shard_schema(dim: int) -> pa.Schema:
    """Arrow schema of a shard whose embeddings have ``dim`` dimensions."""
    vec = pa.list_(pa.float32(), dim)
    return pa.schema([
        ("id", pa.string()), ("row", pa.int64()), ("path", pa.string()), ("caption", pa.string()),
        ("image_caption", pa.string()), ("image_first", pa.bool_()), ("text_first", pa.bool_()),
        ("image_embedding", vec), ("text_embedding", vec), ("model_id", pa.string()),
    ])


ERRORS_SCHEMA = pa.schema([("id", pa.string()), ("row", pa.int64()), ("path", pa.string()),
                           ("caption", pa.string()), ("error", pa.string())])


def vectors_column(vectors: np.ndarray | None, n: int, dim: int, valid: np.ndarray | None = None) -> pa.Array:
    """A fixed-size-list float32 column from an (n, dim) array; rows where ``valid`` is False are null."""
    if vectors is None:
        return pa.nulls(n, pa.list_(pa.float32(), dim))
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    mask = None if valid is None else pa.array(~np.asarray(valid, dtype=bool))
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=mask)


def column_vectors(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """(n, dim) float32 from a fixed-size-list column without nulls."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if arr.null_count:
        arr = arr.drop_null()
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class ShardWriter:
    """Writes shards and errors of one run into ``folder`` and keeps its manifest.

    Parameters
    ----------
    folder : path
        The embeddings folder (created). A folder holding another model's embeddings is refused.
    model_id, model_name : str
        From the encoder (``Encoder.model_id``, ``Encoder.name``).
    dim : int
        Embedding dimension.
    source : str
        What was embedded (recorded in the manifest).
    """

    def __init__(self, folder: str | os.PathLike, model_id: str, model_name: str, dim: int, source: str) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"{self.folder}: exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        old = read_manifest(self.folder) if (self.folder / MANIFEST).is_file() else None
        if old is not None and old.get("model_id") != model_id:
            raise EmbeddingsMismatchError(
                f"{self.folder}: holds embeddings of model '{old.get('model_id')}', not '{model_id}'; "
                "use that model or another --out folder"
            )
        self.model_id, self.model_name, self.dim, self.source = model_id, model_name, dim, source
        self.schema = shard_schema(dim)
        self.run = uuid.uuid4().hex[:8]
        existing = sorted(self.folder.glob(SHARD_GLOB))
        self.next_seq = 1 + max((int(p.name.split("-")[1]) for p in existing), default=-1)
        self._errors: list[dict[str, Any]] = []

    def write_shard(self, items: pa.Table, image_vecs: np.ndarray | None, image_ok: np.ndarray | None,
                    text_vecs: np.ndarray | None, text_ok: np.ndarray | None) -> Path:
        """Write one shard: ``items`` (item columns) with their embeddings; returns its path."""
        n = items.num_rows
        cols = {name: items.column(name) for name in self.schema.names if name in items.column_names}
        cols["image_embedding"] = vectors_column(image_vecs, n, self.dim, image_ok)
        cols["text_embedding"] = vectors_column(text_vecs, n, self.dim, text_ok)
        cols["model_id"] = pa.array([self.model_id] * n, pa.string())
        table = pa.table([cols[name] for name in self.schema.names], schema=self.schema)
        path = self.folder / f"part-{self.next_seq:05d}-{self.run}.parquet"
        _write_parquet_atomic(table, path)
        self.next_seq += 1
        return path

    def add_errors(self, rows: list[dict[str, Any]]) -> None:
        """Remember items that failed (``id``, ``row``, ``path``, ``caption``, ``error``)."""
        self._errors.extend(rows)

    def finish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write this run's errors table, drop the previous runs' ones, and rewrite the manifest."""
        for old in self.folder.glob(ERRORS_GLOB):
            old.unlink()  # failed items were retried in this run; what still fails is listed anew
        if self._errors:
            table = pa.Table.from_pylist(self._errors, schema=ERRORS_SCHEMA)
            _write_parquet_atomic(table, self.folder / f"errors-{self.run}.parquet")
        shards = EmbeddingShards(self.folder, check=False)
        manifest = {
            "format_version": FORMAT_VERSION, "model_id": self.model_id, "model": self.model_name,
            "embed_dim": self.dim, "source": self.source, "rows": shards.n_rows,
            "images": shards.count("image"), "texts": shards.count("text"), "errors": len(self._errors),
            "shards": [p.name for p in shards.files], "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **(extra or {}),
        }
        tmp = self.folder / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(tmp, self.folder / MANIFEST)
        return manifest


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an embeddings folder (InputError when it is not one)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: not an embeddings folder (no {MANIFEST}); make one with `mmexplore embed`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model_id"], data["embed_dim"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable manifest ({exc})") from None
    return data


def done_ids(folder: str | os.PathLike) -> set[str]:
    """Ids of the items already in complete shards of ``folder`` (empty when there are none)."""
    import pyarrow.parquet as pq

    out: set[str] = set()
    for p in sorted(Path(folder).glob(SHARD_GLOB)):
        out.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    return out


def read_errors(folder: str | os.PathLike) -> pa.Table:
    """The errors table of the last run (empty table when nothing failed)."""
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob(ERRORS_GLOB))
    if not files:
        return ERRORS_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p) for p in files])


@dataclass
class KindPlan:
    """Where each vector of one kind goes: per shard, the selected rows and their index positions."""

    n: int
    positions: list[np.ndarray]  # per shard: position (0..n-1, ordered by listing row) of each selected row
    selected: list[np.ndarray]  # per shard: boolean mask of the rows taken


class EmbeddingShards:
    """Read-only view of an embeddings folder, streamed shard by shard.

    Parameters
    ----------
    folder : path
    check : bool
        Require a manifest (False while a job is still writing).

    Attributes
    ----------
    manifest : dict
    files : list of Path
        Complete shards, in name order.
    dim : int
    model_id : str
    """

    def __init__(self, folder: str | os.PathLike, *, check: bool = True) -> None:
        import pyarrow.parquet as pq

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: not a folder")
        self.manifest = read_manifest(self.folder) if check else {}
        self.files = sorted(self.folder.glob(SHARD_GLOB))
        if check and not self.files:
            raise InputError(f"{self.folder}: the embeddings folder has no shards")
        self._rows = [pq.ParquetFile(p).metadata.num_rows for p in self.files]
        schema = pq.read_schema(self.files[0]) if self.files else None
        self.dim = int(schema.field("image_embedding").type.list_size) if schema else int(self.manifest.get("embed_dim", 0))
        self.model_id = self.manifest.get("model_id", "")
        self._plans: dict[str, KindPlan] = {}

    @property
    def n_rows(self) -> int:
        """Items in the folder (rows of all shards)."""
        return int(sum(self._rows))

    def table(self, i: int, columns: list[str] | None = None) -> pa.Table:
        """Shard ``i`` (optionally only some columns)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.files[i], columns=columns)

    def plan(self, kind: str) -> KindPlan:
        """Rows of ``kind`` to index (first row of each distinct image / caption, with an embedding),
        numbered in listing order; reads only the small columns."""
        if kind not in KIND_COLUMNS:
            raise InputError(f"unknown kind '{kind}'; choose image or text")
        if kind in self._plans:
            return self._plans[kind]
        vec_col, first_col = KIND_COLUMNS[kind]
        rows, masks = [], []
        for i in range(len(self.files)):
            t = self.table(i, ["row", first_col, vec_col])
            first = t.column(first_col).to_numpy(zero_copy_only=False)
            mask = first & t.column(vec_col).is_valid().to_numpy(zero_copy_only=False)
            masks.append(mask)
            rows.append(t.column("row").to_numpy()[mask])
        everything = np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
        positions = [np.searchsorted(everything, r).astype(np.int64) for r in rows]
        self._plans[kind] = KindPlan(len(everything), positions, masks)
        return self._plans[kind]

    def count(self, kind: str) -> int:
        """Vectors of ``kind`` an index would hold."""
        return self.plan(kind).n

    def iter_vectors(self, kind: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions (m,), vectors (m, dim) float32)`` per shard, in shard order."""
        plan = self.plan(kind)
        vec_col = KIND_COLUMNS[kind][0]
        for i in range(len(self.files)):
            if not plan.selected[i].any():
                continue
            col = self.table(i, [vec_col]).column(vec_col).combine_chunks()
            taken = col.filter(pa.array(plan.selected[i]))
            yield plan.positions[i], column_vectors(taken, self.dim)

    def sample(self, kind: str, n: int, seed: int = 0) -> np.ndarray:
        """About ``n`` vectors of ``kind`` drawn uniformly at random, read shard by shard."""
        plan = self.plan(kind)
        rng = np.random.default_rng(seed)
        chosen = np.zeros(plan.n, dtype=bool)
        chosen[rng.choice(plan.n, size=min(n, plan.n), replace=False)] = True
        parts = [vecs[chosen[pos]] for pos, vecs in self.iter_vectors(kind)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def records(self, kind: str) -> pa.Table:
        """``path`` and ``caption`` of each indexed row of ``kind``, in position order (no vectors).

        For images the caption is every caption of that image joined (``image_caption``)."""
        plan = self.plan(kind)
        caption_col = "image_caption" if kind == "image" else "caption"
        parts, order = [], []
        for i in range(len(self.files)):
            t = self.table(i, ["path", caption_col]).filter(pa.array(plan.selected[i]))
            parts.append(t.rename_columns(["path", "caption"]))
            order.append(plan.positions[i])
        if not parts:
            return pa.table({"path": pa.array([], pa.string()), "caption": pa.array([], pa.string())})
        table = pa.concat_tables(parts)
        inverse = np.empty(plan.n, dtype=np.int64)
        inverse[np.concatenate(order)] = np.arange(plan.n)
        return table.take(pa.array(inverse))

    def load_all(self, kind: str) -> np.ndarray:
        """Every vector of ``kind`` in position order, (n, dim) float32 (for small folders only)."""
        out = np.empty((self.count(kind), self.dim), dtype=np.float32)
        for pos, vecs in self.iter_vectors(kind):
            out[pos] = vecs
        return out


class ShardSource:
    """One kind of an embeddings folder as a vector source for an index (batches = shards).

    Implements :class:`mmexplore.retrieval.sources.VectorSource`; ``progress`` shows a tqdm bar on
    stderr per pass over the shards.
    """

    def __init__(self, shards: EmbeddingShards, kind: str, *, progress: bool = False) -> None:
        self.shards, self.kind, self.progress = shards, kind, progress
        plan = shards.plan(kind)
        self.n, self.dim = plan.n, shards.dim
        order = np.concatenate(plan.positions) if plan.positions else np.zeros(0, np.int64)
        self.sequential = bool(np.array_equal(order, np.arange(plan.n)))
        self._pass = 0

    def sample(self, m: int, seed: int = 0) -> np.ndarray:
        return self.shards.sample(self.kind, m, seed)

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from tqdm import tqdm

        self._pass += 1
        what = "adding" if self._pass == 1 else "exact search for recall"
        bar = tqdm(total=self.n, desc=f"{self.kind}s: {what}", unit="vec", disable=not self.progress, leave=False)
        for positions, vectors in self.shards.iter_vectors(self.kind):
            yield positions, vectors
            bar.update(len(positions))
        bar.close()
