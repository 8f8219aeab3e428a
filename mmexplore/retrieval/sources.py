"""Where an index's vectors come from: an array in memory, or shards streamed from disk.

A :class:`VectorSource` gives its size, a random sample (to train on and to draw probe queries
from) and its vectors batch by batch with their positions (row ids of the index). An index built
from a source never needs every vector at once, and neither does :func:`stream_knn`, the exact
search that recall is measured against.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class VectorSource(Protocol):
    """Unit-norm float32 vectors, read batch by batch.

    Attributes
    ----------
    n, dim : int
    sequential : bool
        Batches come in position order 0, 1, ..., n-1 (else each carries arbitrary positions).
    """

    n: int
    dim: int
    sequential: bool

    def sample(self, m: int, seed: int = 0) -> np.ndarray:
        """About ``m`` rows drawn uniformly without replacement, (≤ m, dim) float32."""
        ...

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(positions (b,) int64, vectors (b, dim) float32)`` covering every row once."""
        ...


class ArraySource:
    """A :class:`VectorSource` over an (n, dim) array in memory, in batches of ``batch`` rows."""

    sequential = True

    def __init__(self, vectors: np.ndarray, batch: int = 100_000) -> None:
        self.vectors = vectors
        self.n, self.dim = int(vectors.shape[0]), int(vectors.shape[1])
        self.batch = batch

    def sample(self, m: int, seed: int = 0) -> np.ndarray:
        if m >= self.n:
            return self.vectors
        rng = np.random.default_rng(seed)
        return self.vectors[np.sort(rng.choice(self.n, m, replace=False))]

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, self.n, self.batch):
            stop = min(self.n, start + self.batch)
            yield np.arange(start, stop, dtype=np.int64), self.vectors[start:stop]


def stream_knn(queries: np.ndarray, source: VectorSource, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product over every batch of ``source``, merged as it goes.

    Returns
    -------
    scores : ndarray of shape (n_queries, k), float32, best first
    ids : ndarray of shape (n_queries, k), int64 positions
    """
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for positions, vectors in source.batches():
        kk = min(k, len(vectors))
        s, i = faiss.knn(q, np.ascontiguousarray(vectors, dtype=np.float32), kk, metric=faiss.METRIC_INNER_PRODUCT)
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate([best_i, positions[i]], axis=1)
        top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    return best_s, best_i
