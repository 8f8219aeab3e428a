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

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.retrieval.backends import AUTO, BackendConfig, auto_params, choose_backend, get_backend
from mmexplore.retrieval.rerank import RowStore
from mmexplore.retrieval.sources import ArraySource, VectorSource, stream_knn

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
        Queries of that measurement (and as many more that tune the recall knob).
    recall_target : float
        recall@``recall_k`` that ``nprobe`` is tuned to reach (inverted-file backends).
    params : dict, optional
        Backend parameters (e.g. ``{"ef_search": 256}``); unknown keys are ignored.
    rows_dir : path-like, optional
        Where a backend that re-ranks from disk (``ivfsq``) keeps its float16 rows until :meth:`save`
        moves them beside the index (2 bytes per dimension per vector); default: the system's
        temporary directory.

    Attributes
    ----------
    backend_ : str
        The backend built.
    config_ : BackendConfig
    index_ : faiss.Index
    dim_ : int
    recall_ : float or None
        recall@``recall_k`` vs exact search on held-out queries at build time (1.0 for exact).
    tuning_ : list of dict
        The recall measured for each value of the recall knob tried while tuning.
    build_s_ : float
        Seconds the build took (training, filling, tuning and measuring).
    """

    def __init__(
        self,
        backend: str = AUTO,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        recall_k: int = 10,
        n_recall_queries: int = 200,
        recall_target: float = 0.95,
        params: dict[str, Any] | None = None,
        rows_dir: str | os.PathLike | None = None,
    ) -> None:
        self.backend = backend
        self.rows_dir = rows_dir
        self.recall_target = recall_target
        self.threshold = threshold
        self.recall_k = recall_k
        self.n_recall_queries = n_recall_queries
        self.params = params

    # ------------------------------------------------------------------ fitting
    def _config(self, name: str, n: int = 0, dim: int = 0) -> BackendConfig:
        extra = auto_params(name, n, dim) if self.backend == AUTO else {}
        return get_backend(name, **{**extra, **(self.params or {})})

    def fit(self, vectors: np.ndarray) -> VectorIndex:
        """Build the index over ``vectors`` (n, d); rows are normalised to unit length."""
        return self.fit_source(ArraySource(as_unit_float32(vectors)))

    def fit_source(self, source: VectorSource) -> VectorIndex:
        """Build the index from a :class:`VectorSource`, filled batch by batch (bounded memory).

        Trains on a random sample of the source (backends that learn), adds each batch at its
        positions, sets the backend's recall knob (``nprobe``) to the cheapest value whose recall@k on
        one set of probe queries reaches ``recall_target``, then measures recall@k on a second,
        held-out set against exact search streamed over the source. Probe queries are sampled rows
        plus noise, so none of them is a stored vector.
        """
        import time

        t0 = time.perf_counter()
        n, dim = int(source.n), int(source.dim)
        if n == 0:
            raise InputError("no vectors to index")
        name = choose_backend(n, self.threshold, dim) if self.backend == AUTO else self.backend
        config = self._config(name, n, dim)  # raises on unknown names
        if n < config.capabilities.min_size:
            if self.backend != AUTO:
                raise InputError(f"backend '{name}' needs at least {config.capabilities.min_size} vectors, got {n}")
            name, config = "exact", self._config("exact")
        index = config.create(dim, n)
        self.rows_ = self._new_row_store(n, dim) if config.reranks_from_disk else None
        n_train = config.train_size_for(n) if config.capabilities.needs_training else 0
        n_probe = 0 if config.capabilities.exact else 2 * self.n_recall_queries
        sample = source.sample(max(n_train, n_probe), seed=0) if (n_train or n_probe) else None
        if n_train:
            assert sample is not None
            config.train(index, sample[:n_train] if len(sample) > n_train else sample)
        index = _fill(index, source, config, self.rows_)
        config.configure_search(index)
        self.backend_, self.config_, self.dim_, self.index_ = name, config, dim, index
        self.tuning_: list[dict[str, float]] = []
        self.recall_ = 1.0
        if sample is not None and n_probe:
            k = min(self.recall_k, n)
            tune_q = recall_queries(sample, self.n_recall_queries, seed=1)
            held_q = recall_queries(sample, self.n_recall_queries, seed=2)
            _, truth = stream_knn(np.concatenate([tune_q, held_q]), source, k)
            tune_truth, held_truth = truth[: len(tune_q)], truth[len(tune_q):]
            if config.tunable and getattr(config, config.tunable) is None:
                self._tune(config, tune_q, tune_truth, k)
            _, found = self._knn(held_q, k)
            self.recall_ = recall_at_k(found, held_truth)
        self.build_s_ = time.perf_counter() - t0
        return self

    def _tune(self, config: BackendConfig, queries: np.ndarray, truth: np.ndarray, k: int) -> None:
        """Set ``config.tunable`` to the cheapest value reaching ``recall_target`` on ``queries``."""
        assert config.tunable is not None
        chosen = None
        for value in config.tune_values():
            setattr(config, config.tunable, value)
            config.configure_search(self.index_)
            _, found = self._knn(queries, k)
            recall = recall_at_k(found, truth)
            self.tuning_.append({config.tunable: value, f"recall@{k}": recall})
            chosen = value
            if recall >= self.recall_target:
                break
        setattr(config, config.tunable, chosen)
        config.configure_search(self.index_)

    def _new_row_store(self, n: int, dim: int) -> RowStore:
        """A temporary row file for a build, deleted with this object unless :meth:`save` keeps it."""
        fd, path = tempfile.mkstemp(prefix="mmexplore-rows-", suffix=".f16", dir=self.rows_dir)
        os.close(fd)
        os.chmod(path, 0o644)  # mkstemp's 0600 would hide a shared index's rows from other readers
        self._temp_rows = [path]
        weakref.finalize(self, _unlink_all, self._temp_rows)
        return RowStore.create(path, n, dim)

    def _knn(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search of unit-norm float32 ``queries`` (nq, d), then the exact re-ranking if any."""
        rows = getattr(self, "rows_", None)
        if rows is None:
            return self.index_.search(queries, k)
        shortlist = min(int(self.index_.ntotal), k * max(1, int(self.config_.rerank_factor)))
        _, candidates = self.index_.search(queries, shortlist)
        return rows.rerank(queries, candidates, k)

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
        if getattr(self, "rows_", None) is not None:
            self.rows_.append(x)
        _add(self.index_, x, np.arange(self.n_, self.n_ + len(x), dtype=np.int64))
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
        return self._knn(q, k)

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
            "recall_target": self.recall_target,
            "tuning": getattr(self, "tuning_", []),
            "build_s": getattr(self, "build_s_", None),
            "capabilities": {"exact": caps.exact, "incremental": caps.incremental, "max_k": caps.max_k},
            **({"file": self.file_} if getattr(self, "file_", None) else {}),
            **({"rows_file": self.rows_file_} if getattr(self, "rows_file_", None) else {}),
        }

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> dict[str, Any]:
        """Write the faiss index to ``path``; return :meth:`describe` (to store beside it).

        The description carries the file's size in bytes and SHA-256 (``file``), which :meth:`load`
        checks before faiss reads a byte: a faiss file declares the sizes of its arrays itself, so an
        edited or damaged one could make the reader allocate gigabytes or return garbage scores.
        """
        import faiss

        from mmexplore.fsutil import sha256_file

        self._check_fitted()
        faiss.write_index(self.index_, str(path))
        self.file_ = {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}
        rows = getattr(self, "rows_", None)
        if rows is not None:
            target = rows_path(path)
            if str(rows.path) in self._temp_rows:  # a build's temporary file: move it, don't copy gigabytes
                shutil.move(str(rows.path), target)
                self._temp_rows.clear()
            elif Path(rows.path) != target:
                shutil.copyfile(rows.path, target)
            self.moved_rows(target)
            self.rows_file_ = {"bytes": target.stat().st_size, "sha256": sha256_file(target), "dtype": "float16"}
        return self.describe()

    def moved_rows(self, path: str | os.PathLike) -> None:
        """Tell the index that its row file now lives at ``path`` (after a rename by the caller)."""
        rows = getattr(self, "rows_", None)
        if rows is not None:
            rows.path = Path(path)  # nothing is held open: each read opens the file by this path

    @classmethod
    def load(cls, path: str | Path, description: dict[str, Any]) -> VectorIndex:
        """Read an index written by :meth:`save` with the description it returned."""
        import faiss

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: index file not found")
        check_index_file(p, description)
        try:
            index = faiss.read_index(str(p))
        except RuntimeError as exc:
            raise InputError(f"{p}: not a readable faiss index ({str(exc).splitlines()[0][:200]})") from None
        size, dim = int(description.get("size", index.ntotal)), int(description.get("dim", index.d))
        if int(index.ntotal) != size or int(index.d) != dim:
            raise InputError(f"{p}: holds {index.ntotal} vectors of dimension {index.d}, its description says "
                             f"{description.get('size')} of {description.get('dim')}; rebuild the index")
        params = {k: v for k, v in description.get("params", {}).items() if k not in ("nlist", "pq_m", "nbits")}
        if description["backend"] == "ivfpq":  # indexes saved before ``refine`` existed re-ranked exactly
            params.setdefault("refine", "flat")
        obj = cls(
            description.get("requested_backend", description["backend"]),
            threshold=int(description.get("threshold", DEFAULT_THRESHOLD)),
            recall_k=int(description.get("recall_k", 10)),
            recall_target=float(description.get("recall_target", 0.95)),
            params=params,
        )
        obj.backend_ = description["backend"]
        obj.config_ = obj._config(obj.backend_)
        obj.config_.configure_search(index)
        obj.index_ = index
        obj.dim_ = int(index.d)
        obj.rows_ = None
        if obj.config_.reranks_from_disk:
            rp = rows_path(p)
            if not rp.is_file():
                raise InputError(f"{rp}: the index's re-ranking rows are missing; rebuild the index")
            check_index_file(rp, {"file": description.get("rows_file")})
            obj.rows_ = RowStore.open(rp, size, dim)
            obj.rows_file_ = description.get("rows_file")
        obj.recall_ = description.get(f"recall@{obj.recall_k}")
        obj.file_ = description.get("file")
        return obj


def rows_path(index_path: str | os.PathLike) -> Path:
    """Where the float16 re-ranking rows of the index file ``index_path`` live (``<name>.rows``)."""
    p = Path(index_path)
    return p.with_name(p.name + ".rows")


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def check_index_file(path: Path, description: dict[str, Any]) -> None:
    """Refuse a faiss file whose size or SHA-256 differs from what :meth:`VectorIndex.save` recorded.

    Runs before faiss parses the file, so a length field edited to claim terabytes is never acted
    on. An index saved without a checksum (older mmexplore) is refused too: rebuilding it is cheap
    (``mmexplore index build`` reuses the embedded chunks).
    """
    from mmexplore.fsutil import sha256_file

    expected = description.get("file")
    if not isinstance(expected, dict) or "sha256" not in expected or "bytes" not in expected:
        raise InputError(f"{path}: saved without a checksum (older mmexplore); rebuild the index")
    if path.stat().st_size != int(expected["bytes"]):
        raise InputError(f"{path}: {path.stat().st_size} bytes, but the index was saved with {expected['bytes']} "
                         "(changed or damaged); rebuild the index")
    if sha256_file(path) != expected["sha256"]:
        raise InputError(f"{path}: contents do not match the checksum saved with the index (changed or damaged); "
                         "rebuild the index")


def _add(index: Any, vectors: np.ndarray, positions: np.ndarray) -> None:
    """Add rows at ``positions``: plainly when they continue the index, by id where faiss can."""
    import faiss

    start = int(index.ntotal)
    if np.array_equal(positions, np.arange(start, start + len(positions))) and not isinstance(index, faiss.IndexIDMap):
        index.add(vectors)
    else:
        index.add_with_ids(vectors, np.ascontiguousarray(positions, dtype=np.int64))


def _fill(index: Any, source: VectorSource, config: BackendConfig, rows: RowStore | None = None) -> Any:
    """Add every batch of ``source`` (and to ``rows``, when given); returns the index (wrapped in an id
    map when it must be)."""
    import faiss

    if not source.sequential:
        if config.name == "exact":  # small by definition of auto: put the rows in order in memory
            full = np.empty((source.n, source.dim), dtype=np.float32)
            for positions, vectors in source.batches():
                full[positions] = vectors
            index.add(full)
            return index
        if config.name not in ("ivf", "ivfsq"):  # these faiss indexes keep rows in insertion order: map ids
            index = faiss.IndexIDMap(index)
    if config.name in ("ivf", "ivfsq") and int(index.ntotal) == 0:
        _fill_presized(index, source, rows)
        return index
    for positions, vectors in source.batches():
        _add(index, np.ascontiguousarray(vectors, dtype=np.float32), positions)
        if rows is not None:
            rows.write(positions, vectors)
    return index


def _fill_presized(index: Any, source: VectorSource, rows: RowStore | None) -> None:
    """Fill an empty inverted file in two passes: assign every vector to its cell, size each cell's
    list once, then add with the assignments.

    faiss grows a cell's list by doubling, so filling one batch at a time holds up to twice the
    codes at rest and, while a list moves, old and new copies at once (10M × 512 8-bit codes: 5.2 GB
    of codes, 10.7 GB peak). Sized lists never move; the coarse assignment is computed once either way.
    """
    import faiss

    ivf = faiss.extract_index_ivf(index)
    assign = np.empty(source.n, dtype=np.int64)
    for positions, vectors in source.batches():
        _, cell = ivf.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        assign[positions] = cell[:, 0]
    counts = np.bincount(assign, minlength=ivf.nlist)
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    for cell in np.flatnonzero(counts):
        lists.resize(int(cell), int(counts[cell]))  # a std::vector keeps its capacity when shrunk
        lists.resize(int(cell), 0)
    for positions, vectors in source.batches():
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(positions, dtype=np.int64)
        cells = np.ascontiguousarray(assign[positions])
        ivf.add_core(len(x), faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(cells))
        if rows is not None:
            rows.write(positions, vectors)
