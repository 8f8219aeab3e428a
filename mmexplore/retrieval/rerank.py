"""Exact re-ranking from disk: every vector kept as float16 in one file, read by row.

A compressed index (8-bit codes in memory) finds a shortlist of ``rerank_factor × k`` candidates;
:class:`RowStore` scores that shortlist again with the float16 rows, so the final order is the
exact one up to float16 rounding (≈ 1e-5 on a cosine, below the gap between neighbours of
clustered 512-d embeddings, where 8-bit codes' ≈ 5e-4 is not). The file costs 2 bytes per
dimension on disk and almost nothing in memory: a query reads only its shortlist's rows.

>>> import numpy as np, tempfile, os
>>> x = np.eye(3, dtype=np.float32)
>>> path = os.path.join(tempfile.mkdtemp(), "rows.f16")
>>> store = RowStore.create(path, 3, 3)
>>> store.write(np.arange(3), x)
>>> store.rerank(x[:1], np.array([[2, 0, -1]]), k=1)[1].tolist()
[[0]]
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmexplore.errors import InputError

ROW_DTYPE = np.float16


class RowStore:
    """An (n, dim) float16 array in a file, written by position and read by row.

    Parameters
    ----------
    path : path-like
        The file (``n × dim × 2`` bytes, no header: its shape comes from the index description).
    n, dim : int
    """

    def __init__(self, path: str | os.PathLike, n: int, dim: int) -> None:
        self.path, self.n, self.dim = Path(path), int(n), int(dim)

    @property
    def row_bytes(self) -> int:
        return self.dim * np.dtype(ROW_DTYPE).itemsize

    @classmethod
    def create(cls, path: str | os.PathLike, n: int, dim: int) -> RowStore:
        """An empty store of ``n`` rows (the file is allocated sparse, then filled by :meth:`write`)."""
        store = cls(path, n, dim)
        with open(store.path, "wb") as fh:
            fh.truncate(store.n * store.row_bytes)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, n: int, dim: int) -> RowStore:
        """An existing store; InputError when the file's size is not ``n × dim × 2`` bytes."""
        store = cls(path, n, dim)
        size = store.path.stat().st_size if store.path.is_file() else -1
        if size != store.n * store.row_bytes:
            raise InputError(f"{store.path}: {size} bytes, expected {store.n * store.row_bytes} for {n} rows of "
                             f"dimension {dim}; rebuild the index")
        return store

    def write(self, positions: np.ndarray, vectors: np.ndarray) -> None:
        """Store ``vectors`` (b, dim) at row ``positions`` (b,) int64 (runs of consecutive rows at once)."""
        pos = np.asarray(positions, dtype=np.int64)
        rows = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
        if len(pos) == 0:
            return
        if pos.min() < 0 or pos.max() >= self.n:
            raise InputError(f"row positions outside 0..{self.n - 1}")
        order = np.argsort(pos, kind="stable")
        pos, rows = pos[order], rows[order]
        breaks = np.flatnonzero(np.diff(pos) != 1) + 1
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for run_pos, run_rows in zip(np.split(pos, breaks), np.split(rows, breaks), strict=True):
                os.pwrite(fd, run_rows.tobytes(), int(run_pos[0]) * self.row_bytes)
        finally:
            os.close(fd)

    def append(self, vectors: np.ndarray) -> None:
        """Grow the store by ``vectors`` (b, dim): their rows are ``n .. n + b - 1``."""
        start = self.n
        self.n += len(vectors)
        with open(self.path, "r+b") as fh:
            fh.truncate(self.n * self.row_bytes)
        self.write(np.arange(start, self.n, dtype=np.int64), vectors)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The float16 rows ``ids`` (any shape), as an array of shape ``ids.shape + (dim,)``.

        Read with ``pread``, one row per call, not through a memory map: a map's page faults pull
        neighbouring pages into the process (its resident memory grew to the size of the file in
        the 10M benchmark), while reads leave the caching to the kernel's page cache.
        """
        ids = np.asarray(ids, dtype=np.int64)
        unique, inverse = np.unique(ids, return_inverse=True)
        if len(unique) and (unique[0] < 0 or unique[-1] >= self.n):
            raise InputError(f"row ids outside 0..{self.n - 1}")
        out = np.empty((len(unique), self.dim), dtype=ROW_DTYPE)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            size = self.row_bytes
            for j, i in enumerate(unique.tolist()):
                out[j] = np.frombuffer(os.pread(fd, size, i * size), dtype=ROW_DTYPE)
        finally:
            os.close(fd)
        return out[inverse.reshape(ids.shape)]

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` of each query among its candidates.

        Parameters
        ----------
        queries : ndarray of shape (nq, dim), float32 unit-norm
        candidates : ndarray of shape (nq, m), int64 row ids; -1 marks an empty slot
        k : int

        Returns
        -------
        scores : ndarray of shape (nq, k), float32 cosine, best first (-inf where fewer than k)
        ids : ndarray of shape (nq, k), int64 (-1 where fewer than k)
        """
        cand = np.asarray(candidates, dtype=np.int64)
        valid = cand >= 0
        vecs = self.rows(np.where(valid, cand, 0)).astype(np.float32)
        scores = np.einsum("qmd,qd->qm", vecs, queries.astype(np.float32, copy=False))
        scores[~valid] = -np.inf
        kk = min(k, cand.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
        s, i = np.take_along_axis(scores, top, 1), np.take_along_axis(cand, top, 1)
        i[~np.isfinite(s)] = -1
        if kk < k:
            s = np.pad(s, ((0, 0), (0, k - kk)), constant_values=-np.inf)
            i = np.pad(i, ((0, 0), (0, k - kk)), constant_values=-1)
        return s.astype(np.float32), i
