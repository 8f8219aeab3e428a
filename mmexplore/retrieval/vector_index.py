"""A faiss index over unit-norm vectors whose backend is chosen by size, with the recall it trades.

:class:`VectorIndex` is a scikit-learn-style estimator: ``fit(vectors)`` picks the backend (``auto``:
exact below ``threshold`` vectors, HNSW above), builds it and, for approximate backends, measures
recall@k against exact search on a sample of queries (stored as ``recall_``), so the speed bought is
shown next to the accuracy it cost. ``search`` returns cosine scores and row ids.

>>> import numpy as np
>>> x = np.eye(4, dtype=np.float32)
>>> idx = VectorIndex().fit(x)
>>> idx.backend_, idx.search(x[:1], k=2)[1][0, 0]
('exact', 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.retrieval.backends import AUTO, BackendConfig, choose_backend, get_backend

DEFAULT_THRESHOLD = 20_000


def as_unit_float32(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    """Check (n, d) finite vectors and return them C-contiguous float32 with unit-norm rows."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"{name}: expected a non-empty (n, d) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InputError(f"{name}: contains an all-zero vector")
    return np.ascontiguousarray(x / norms)


def recall_queries(vectors: np.ndarray, n_queries: int, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """Probe queries for recall: sampled rows plus Gaussian noise of norm ≈ ``noise``, re-normalised.

    A stored row as its own query would find itself trivially; the noise makes the neighbours
    beyond it count, as for a real query that is near, not on, the data.
    """
    rng = np.random.default_rng(seed)
    n, d = vectors.shape
    rows = vectors[rng.choice(n, size=min(n_queries, n), replace=False)]
    q = rows + rng.standard_normal(rows.shape).astype(np.float32) * (noise / np.sqrt(d))
    return as_unit_float32(q)


def exact_knn(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` by inner product: (scores (nq, k), ids (nq, k)), best first."""
    import faiss

    return faiss.knn(np.ascontiguousarray(queries), np.ascontiguousarray(vectors), k, metric=faiss.METRIC_INNER_PRODUCT)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of the exact top-k ids that the approximate top-k found, in [0, 1]."""
    k = exact_ids.shape[1]
    hits = [len(set(a[a >= 0].tolist()) & set(e.tolist())) for a, e in zip(approx_ids, exact_ids, strict=True)]
    return float(np.mean(hits) / k)


class VectorIndex:
    """Nearest-neighbour search by inner product over unit-norm vectors.

    Parameters
    ----------
    backend : str
        ``auto`` (exact below ``threshold`` vectors, else ``hnsw``), or a name from
        :data:`~mmexplore.retrieval.backends.BACKENDS`.
    threshold : int
        Size from which ``auto`` switches from exact to approximate search.
    recall_k : int
        ``k`` of the recall measured at build time.
    n_recall_queries : int
        Queries of that measurement.
    params : dict, optional
        Backend parameters (e.g. ``{"ef_search": 256}``); unknown keys are ignored.

    Attributes
    ----------
    backend_ : str
        The backend built.
    config_ : BackendConfig
    index_ : faiss.Index
    dim_ : int
    recall_ : float or None
        recall@``recall_k`` vs exact search at build time (1.0 for exact; None before fit).
    """

    def __init__(
        self,
        backend: str = AUTO,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        recall_k: int = 10,
        n_recall_queries: int = 200,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.threshold = threshold
        self.recall_k = recall_k
        self.n_recall_queries = n_recall_queries
        self.params = params

    # ------------------------------------------------------------------ fitting
    def _config(self, name: str) -> BackendConfig:
        return get_backend(name, **(self.params or {}))

    def fit(self, vectors: np.ndarray) -> VectorIndex:
        """Build the index over ``vectors`` (n, d); rows are normalised to unit length."""
        x = as_unit_float32(vectors)
        name = choose_backend(len(x), self.threshold) if self.backend == AUTO else self.backend
        config = self._config(name)  # raises on unknown names
        if len(x) < config.capabilities.min_size:
            if self.backend != AUTO:
                raise InputError(
                    f"backend '{name}' needs at least {config.capabilities.min_size} vectors, got {len(x)}"
                )
            name, config = "exact", self._config("exact")
        self.backend_ = name
        self.config_ = config
        self.dim_ = int(x.shape[1])
        self.index_ = config.build(x)
        self.recall_ = self._measure_recall(x)
        return self

    def _measure_recall(self, x: np.ndarray) -> float:
        if self.config_.capabilities.exact:
            return 1.0
        k = min(self.recall_k, len(x))
        q = recall_queries(x, self.n_recall_queries)
        _, truth = exact_knn(q, x, k)
        _, found = self.index_.search(q, k)
        return recall_at_k(found, truth)

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise InputError("the index is empty: build it (fit) before searching or adding")

    @property
    def n_(self) -> int:
        """Vectors in the index."""
        self._check_fitted()
        return int(self.index_.ntotal)

    def add(self, vectors: np.ndarray) -> VectorIndex:
        """Append ``vectors``; their ids continue from :attr:`n_`. An unfitted index is fitted instead.

        With ``backend="auto"``, an exact index that grows past ``threshold`` is rebuilt as HNSW
        (and its recall re-measured).
        """
        if not hasattr(self, "index_"):
            return self.fit(vectors)
        x = as_unit_float32(vectors)
        if x.shape[1] != self.dim_:
            raise InputError(f"vectors of dimension {x.shape[1]} cannot join an index of dimension {self.dim_}")
        grows_past = self.backend == AUTO and self.backend_ == "exact" and self.n_ + len(x) >= self.threshold
        if grows_past:
            old = self.index_.reconstruct_n(0, self.n_)
            return self.fit(np.concatenate([old, x]))
        self.index_.add(x)
        return self

    # ------------------------------------------------------------------ queries
    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows per query.

        Parameters
        ----------
        queries : ndarray of shape (n_queries, dim) or (dim,)
        k : int
            Clipped to the index size.

        Returns
        -------
        scores : ndarray of shape (n_queries, k), float32
            Cosine similarities, best first.
        ids : ndarray of shape (n_queries, k), int64
            Row ids; -1 where an approximate backend found fewer than ``k``.
        """
        self._check_fitted()
        q = as_unit_float32(np.atleast_2d(queries), "queries")
        if q.shape[1] != self.dim_:
            raise InputError(f"query of dimension {q.shape[1]} does not match the index dimension {self.dim_}")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        k = min(int(k), self.n_, self.config_.capabilities.max_k)
        scores, ids = self.index_.search(q, k)
        return scores, ids

    def describe(self) -> dict[str, Any]:
        """Backend, parameters, size, dimension, measured recall and capabilities (JSON-able)."""
        self._check_fitted()
        caps = self.config_.capabilities
        return {
            "backend": self.backend_,
            "requested_backend": self.backend,
            "threshold": self.threshold,
            "params": self.config_.params(),
            "size": self.n_,
            "dim": self.dim_,
            f"recall@{self.recall_k}": self.recall_,
            "recall_k": self.recall_k,
            "capabilities": {"exact": caps.exact, "incremental": caps.incremental, "max_k": caps.max_k},
        }

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> dict[str, Any]:
        """Write the faiss index to ``path``; return :meth:`describe` (to store beside it)."""
        import faiss

        self._check_fitted()
        faiss.write_index(self.index_, str(path))
        return self.describe()

    @classmethod
    def load(cls, path: str | Path, description: dict[str, Any]) -> VectorIndex:
        """Read an index written by :meth:`save` with the description it returned."""
        import faiss

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: index file not found")
        try:
            index = faiss.read_index(str(p))
        except RuntimeError as exc:
            raise InputError(f"{p}: not a readable faiss index ({str(exc).splitlines()[0][:200]})") from None
        params = {k: v for k, v in description.get("params", {}).items() if k not in ("nlist", "pq_m", "nbits")}
        obj = cls(
            description.get("requested_backend", description["backend"]),
            threshold=int(description.get("threshold", DEFAULT_THRESHOLD)),
            recall_k=int(description.get("recall_k", 10)),
            params=params,
        )
        obj.backend_ = description["backend"]
        obj.config_ = obj._config(obj.backend_)
        obj.config_.configure_search(index)
        obj.index_ = index
        obj.dim_ = int(index.d)
        obj.recall_ = description.get(f"recall@{obj.recall_k}")
        return obj
