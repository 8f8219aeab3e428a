"""Search backends by name: a registry of configs with declared capabilities (STYLE: FiftyOne Brain).

Every backend searches unit-norm float32 vectors by inner product (= cosine similarity):

- ``exact``: :class:`faiss.IndexFlatIP`, a brute-force scan; recall 1 by construction.
- ``hnsw``: :class:`faiss.IndexHNSWFlat` (inner product), a navigable small-world graph; fast queries,
  approximate; its recall is traded against ``ef_search``.
- ``ivfpq``: :class:`faiss.IndexIVFPQ` (inner product) wrapped in :class:`faiss.IndexRefineFlat`: a
  coarse inverted file with product-quantised codes, whose ``refine_factor × k`` best candidates are
  re-ranked exactly; recall traded against ``nprobe`` and ``refine_factor``.

A config holds parameters and capabilities; :meth:`BackendConfig.build` returns a faiss index holding
the vectors. The CLI and the app list their choices from :data:`BACKENDS`.

>>> sorted(BACKENDS)
['exact', 'hnsw', 'ivfpq']
>>> get_backend("hnsw").capabilities.exact
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from mmexplore.errors import InputError


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared rather than discovered by trial.

    Attributes
    ----------
    exact : bool
        Results equal a brute-force scan.
    incremental : bool
        Vectors can be added after the build without rebuilding.
    needs_training : bool
        The build learns from the data (k-means, codebooks); it needs ``min_size`` vectors.
    min_size : int
        Fewest vectors the backend accepts.
    max_k : int
        Largest ``k`` per query.
    metrics : tuple of str
        Supported similarity metrics.
    """

    exact: bool
    incremental: bool
    needs_training: bool
    min_size: int = 1
    max_k: int = 2048
    metrics: tuple[str, ...] = ("inner_product",)


@dataclass
class BackendConfig:
    """Base class: parameters of one search backend (subclasses add theirs)."""

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities]

    def build(self, vectors: np.ndarray) -> Any:  # pragma: no cover - abstract
        """A faiss index holding ``vectors`` (n, d) float32, unit-norm rows."""
        raise NotImplementedError

    def configure_search(self, index: Any) -> None:
        """Apply search-time parameters to a (possibly loaded) index."""

    def params(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict."""
        return asdict(self)


@dataclass
class ExactConfig(BackendConfig):
    """Brute-force inner product (``IndexFlatIP``)."""

    name: ClassVar[str] = "exact"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=True, incremental=True, needs_training=False)

    def build(self, vectors: np.ndarray) -> Any:
        import faiss

        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return index


@dataclass
class HNSWConfig(BackendConfig):
    """HNSW graph over the full vectors (``IndexHNSWFlat``, inner product).

    Parameters
    ----------
    m : int
        Neighbours per node (memory ≈ ``2 m`` int32 per vector on top of the vectors).
    ef_construction : int
        Candidate list while inserting: the build time grows roughly linearly with it.
    ef_search : int
        Candidate list while searching (≥ k): higher is slower and more exact.
    """

    name: ClassVar[str] = "hnsw"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, incremental=True, needs_training=False)
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 128

    def build(self, vectors: np.ndarray) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.add(vectors)
        self.configure_search(index)
        return index

    def configure_search(self, index: Any) -> None:
        index.hnsw.efSearch = self.ef_search


@dataclass
class IVFPQConfig(BackendConfig):
    """Inverted file with product quantisation, re-ranked exactly (``IndexRefineFlat(IndexIVFPQ)``).

    Parameters
    ----------
    nlist : int or None
        Coarse cells; None chooses ``4 √n`` (clamped to [16, 65536]).
    pq_m : int or None
        Sub-quantisers (must divide the dimension); None: sub-vectors of about 8 dimensions.
    nbits : int
        Bits per sub-quantiser code (fewer on small sets, which cannot train 2**nbits centroids).
    nprobe : int
        Cells visited per query.
    refine_factor : int
        ``refine_factor × k`` candidates are re-ranked with the exact vectors.
    train_size : int
        At most this many vectors train the coarse quantiser and the codebooks.
    """

    name: ClassVar[str] = "ivfpq"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, incremental=True, needs_training=True, min_size=1024)
    nlist: int | None = None
    pq_m: int | None = None
    nbits: int = 8
    nprobe: int = 64
    refine_factor: int = 10
    train_size: int = 100_000
    seed: int = 0
    _chosen: dict[str, int] = field(default_factory=dict, repr=False)

    def build(self, vectors: np.ndarray) -> Any:
        import faiss

        n, d = vectors.shape
        # faiss's k-means wants ≥ 39 training points per centroid: small sets get fewer cells and bits.
        n_train = min(n, self.train_size)
        nlist = self.nlist or int(min(65536, max(16, 4 * math.sqrt(n)), max(1, n_train // 39)))
        nbits = int(min(self.nbits, max(1, math.floor(math.log2(max(2, n_train // 39))))))
        # Sub-vectors of about 8 dimensions: finer codes cost training time for little recall.
        pq_m = self.pq_m or next(m for m in range(max(1, d // 8), 0, -1) if d % m == 0)
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(self.seed)
        sample = vectors if n <= self.train_size else vectors[rng.choice(n, self.train_size, replace=False)]
        ivf.train(np.ascontiguousarray(sample))
        index = faiss.IndexRefineFlat(ivf)
        index.add(vectors)
        self._chosen = {"nlist": nlist, "pq_m": pq_m, "nbits": nbits}
        self.configure_search(index)
        return index

    def configure_search(self, index: Any) -> None:
        import faiss

        faiss.downcast_index(index.base_index).nprobe = self.nprobe
        index.k_factor = float(self.refine_factor)

    def params(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        out.update(self._chosen)
        return out


BACKENDS: dict[str, type[BackendConfig]] = {c.name: c for c in (ExactConfig, HNSWConfig, IVFPQConfig)}
AUTO = "auto"


def available_backends() -> list[str]:
    """Names a user can choose, ``auto`` first."""
    return [AUTO, *BACKENDS]


def get_backend(name: str, **params: Any) -> BackendConfig:
    """The config of backend ``name`` with ``params`` (unknown names → InputError listing the choices)."""
    if name not in BACKENDS:
        raise InputError(f"Unsupported search backend '{name}'. The available backends are {available_backends()}")
    cls = BACKENDS[name]
    known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
    return cls(**{k: v for k, v in params.items() if k in known and v is not None})


def choose_backend(n_vectors: int, threshold: int) -> str:
    """``exact`` below ``threshold`` vectors (a scan is fast and exact there), ``hnsw`` above."""
    return "exact" if n_vectors < threshold else "hnsw"
