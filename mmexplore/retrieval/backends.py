"""Search backends by name: a registry of configs with declared capabilities (STYLE: FiftyOne Brain).

Every backend searches unit-norm float32 vectors by inner product (= cosine similarity):

- ``exact``: :class:`faiss.IndexFlatIP`, a brute-force scan; recall 1 by construction.
- ``hnsw``: :class:`faiss.IndexHNSWFlat` (inner product), a navigable small-world graph; fast queries,
  approximate; its recall is traded against ``ef_search``.
- ``ivf``: :class:`faiss.IndexIVFFlat`: k-means cells trained on a sample, scanned exactly; recall
  traded against ``nprobe`` (set from a recall target at build time).
- ``ivfpq``: :class:`faiss.IndexIVFPQ` (inner product) wrapped in :class:`faiss.IndexRefine`: a
  coarse inverted file with product-quantised codes, whose ``refine_factor × k`` best candidates are
  re-ranked with the float32 vectors (``refine="flat"``) or 8-bit copies (``"sq8"``); recall traded
  against ``nprobe`` and ``refine_factor``.
- ``ivfsq``: :class:`faiss.IndexIVFScalarQuantizer` (8-bit codes, 1 byte per dimension in memory)
  whose ``rerank_factor × k`` best candidates are re-ranked exactly from float16 rows on disk
  (:class:`~mmexplore.retrieval.rerank.RowStore`); how 10M × 512 is searched in ≈ 5 GB of memory
  at recall@10 ≥ 0.9 on clustered data, where product codes cannot order near-equal neighbours.

A config holds parameters and capabilities; :meth:`BackendConfig.build` returns a faiss index holding
the vectors. The CLI and the app list their choices from :data:`BACKENDS`.

>>> sorted(BACKENDS)
['exact', 'hnsw', 'ivf', 'ivfpq', 'ivfsq']
>>> get_backend("hnsw").capabilities.exact
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
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
    """Base class: parameters of one search backend (subclasses add theirs).

    A build is ``create`` (an empty index for ``n`` vectors), ``train`` (on a sample, for the
    backends that learn), then ``add`` in as many batches as wanted: that is how an index is filled
    shard by shard from Parquet without holding every vector. Backends with a recall knob name it in
    ``tunable``; :class:`~mmexplore.retrieval.vector_index.VectorIndex` sets it from a recall target.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities]
    tunable: ClassVar[str | None] = None
    # Backends whose shortlist is re-ranked from a RowStore on disk (their ``rerank_factor`` × k rows).
    reranks_from_disk: ClassVar[bool] = False

    def create(self, dim: int, n: int) -> Any:  # pragma: no cover - abstract
        """An empty faiss index for about ``n`` vectors of dimension ``dim``."""
        raise NotImplementedError

    def train(self, index: Any, sample: np.ndarray) -> None:
        """Learn from ``sample`` (m, d) unit-norm float32 (no-op for backends that do not learn)."""

    def build(self, vectors: np.ndarray) -> Any:
        """A faiss index holding ``vectors`` (n, d) float32, unit-norm rows (create, train, add)."""
        index = self.create(vectors.shape[1], len(vectors))
        self.train(index, self.training_sample(vectors))
        index.add(vectors)
        self.configure_search(index)
        return index

    def training_sample(self, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
        """The rows ``train`` needs (all of them for backends that do not learn)."""
        return vectors

    def configure_search(self, index: Any) -> None:
        """Apply search-time parameters to a (possibly loaded) index."""

    def tune_values(self) -> list[int]:
        """Candidate values of ``tunable``, cheapest first."""
        return []

    def params(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass
class ExactConfig(BackendConfig):
    """Brute-force inner product (``IndexFlatIP``)."""

    name: ClassVar[str] = "exact"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=True, incremental=True, needs_training=False)

    def create(self, dim: int, n: int) -> Any:
        import faiss

        return faiss.IndexFlatIP(dim)


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

    def create(self, dim: int, n: int) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def configure_search(self, index: Any) -> None:
        index.hnsw.efSearch = self.ef_search


def _pow2_near(x: float, lo: int, hi: int) -> int:
    """The power of two nearest ``x`` (in log scale), clamped to [lo, hi]."""
    return int(min(hi, max(lo, 2 ** round(math.log2(max(1.0, x))))))


@dataclass
class _IVFBase(BackendConfig):
    """Shared by the inverted-file backends: cells chosen from the data size, ``nprobe`` from recall."""

    tunable: ClassVar[str | None] = "nprobe"
    nlist: int | None = None
    nprobe: int | None = None
    train_per_cell: int = 40
    niter: int = 10
    seed: int = 0
    _chosen: dict[str, int] = field(default_factory=dict, repr=False)

    def choose_nlist(self, n: int) -> int:
        """``nlist`` or ≈ √n cells (a power of two in [16, 4096]), fewer when n cannot train them."""
        nlist = self.nlist or _pow2_near(math.sqrt(n), 16, 4096)
        return int(max(1, min(nlist, n // self.train_per_cell if n >= self.train_per_cell else 1)))

    def training_sample(self, vectors: np.ndarray, seed: int = 0) -> np.ndarray:
        want = self.train_size_for(len(vectors))
        if len(vectors) <= want:
            return vectors
        rng = np.random.default_rng(self.seed + seed)
        return vectors[np.sort(rng.choice(len(vectors), want, replace=False))]

    def train_size_for(self, n: int) -> int:
        """Vectors the training needs: ``train_per_cell`` per cell (k-means), at most n."""
        return int(min(n, self.choose_nlist(n) * self.train_per_cell))

    def _cp(self, ivf: Any) -> None:
        ivf.cp.niter = self.niter
        ivf.cp.seed = self.seed
        ivf.cp.spherical = True  # unit-norm data, inner product: centroids on the sphere too

    def configure_search(self, index: Any) -> None:
        import faiss

        if self.nprobe is not None:
            faiss.extract_index_ivf(index).nprobe = int(self.nprobe)

    def tune_values(self) -> list[int]:
        nlist = self._chosen.get("nlist", self.nlist or 4096)
        return [v for v in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if v <= nlist]

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.update(self._chosen)
        return out


@dataclass
class IVFConfig(_IVFBase):
    """Inverted file over the full vectors (``IndexIVFFlat``, inner product): k-means cells trained on a
    sample, filled in batches; a query scans ``nprobe`` cells exactly.

    Parameters
    ----------
    nlist : int or None
        Cells; None: ≈ √n (power of two in [16, 4096]).
    nprobe : int or None
        Cells visited per query; None: the fewest that reach the recall target (set at build).
    train_per_cell : int
        Training vectors per cell (k-means sample = ``nlist × train_per_cell``).
    niter : int
        k-means iterations.
    """

    name: ClassVar[str] = "ivf"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, incremental=True, needs_training=True, min_size=64)

    def create(self, dim: int, n: int) -> Any:
        import faiss

        nlist = self.choose_nlist(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self._cp(index)
        self._chosen = {"nlist": nlist}
        return index

    def train(self, index: Any, sample: np.ndarray) -> None:
        index.train(np.ascontiguousarray(sample))


@dataclass
class _CompressedIVF(_IVFBase):
    """Shared by the inverted files that keep codes, not vectors: a bounded training sample, and from
    2,048 cells an HNSW graph over the centroids (k-means still assigns exactly while training)."""

    train_size: int = 200_000
    _keep: list[Any] = field(default_factory=list, repr=False)

    def train_size_for(self, n: int) -> int:
        return int(min(n, self.train_size, max(self.choose_nlist(n) * self.train_per_cell, 256 * 40)))

    def coarse_quantizer(self, dim: int, nlist: int) -> Any:
        """The index that assigns vectors to cells: exact below 2,048 cells, an HNSW graph above."""
        import faiss

        if nlist >= 2048:
            return faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexFlatIP(dim)

    def setup_ivf(self, ivf: Any, quantizer: Any, dim: int, nlist: int) -> None:
        """k-means parameters on ``ivf``; with an HNSW quantizer, exact assignment while training."""
        import faiss

        self._cp(ivf)
        self._keep = [quantizer]
        if nlist >= 2048:
            clustering = faiss.IndexFlatIP(dim)  # k-means assigns exactly; the HNSW is filled after
            ivf.clustering_index = clustering
            self._keep.append(clustering)

    def train(self, index: Any, sample: np.ndarray) -> None:
        index.train(np.ascontiguousarray(sample))


@dataclass
class IVFPQConfig(_CompressedIVF):
    """Inverted file with product quantisation, re-ranked (``IndexRefine(IndexIVFPQ)``).

    Parameters
    ----------
    nlist : int or None
        Coarse cells; None: ≈ √n (power of two in [16, 4096]). From 2,048 cells the coarse quantiser
        is an HNSW graph over the centroids, so assigning millions of vectors stays fast.
    pq_m : int or None
        Sub-quantisers (must divide the dimension); None: sub-vectors of about 8 dimensions.
    nbits : int
        Bits per sub-quantiser code (fewer on small sets, which cannot train 2**nbits centroids).
    nprobe : int or None
        Cells visited per query; None: the fewest that reach the recall target.
    refine : {"flat", "sq8"}
        What re-ranks the ``refine_factor × k`` candidates: the float32 vectors (exact scores, 4 bytes
        per dimension in memory) or 8-bit scalar-quantised copies (1 byte per dimension: how 10M × 512
        fits in 8 GB).
    refine_factor : int
    train_size : int
        Upper bound of the training sample.
    """

    name: ClassVar[str] = "ivfpq"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, incremental=True, needs_training=True, min_size=1024)
    pq_m: int | None = None
    nbits: int = 8
    refine: str = "flat"
    refine_factor: int = 10

    def create(self, dim: int, n: int) -> Any:
        import faiss

        if self.refine not in ("flat", "sq8"):
            raise InputError(f"ivfpq refine must be 'flat' or 'sq8', got {self.refine!r}")
        n_train = self.train_size_for(n)
        nlist = self.choose_nlist(n)
        # faiss's k-means wants ≥ 39 training points per centroid: small sets get fewer bits.
        nbits = int(min(self.nbits, max(1, math.floor(math.log2(max(2, n_train // 39))))))
        pq_m = self.pq_m or next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)
        quantizer = self.coarse_quantizer(dim, nlist)
        ivf = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, nbits, faiss.METRIC_INNER_PRODUCT)
        self.setup_ivf(ivf, quantizer, dim, nlist)
        if self.refine == "sq8":
            refine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            index = faiss.IndexRefine(ivf, refine)
        else:
            index = faiss.IndexRefineFlat(ivf)
        index.k_factor = float(self.refine_factor)
        self._chosen = {"nlist": nlist, "pq_m": pq_m, "nbits": nbits}
        return index

    def configure_search(self, index: Any) -> None:
        import faiss

        super().configure_search(index)
        while isinstance(index, faiss.IndexIDMap):  # built from out-of-order shards
            index = faiss.downcast_index(index.index)
        faiss.downcast_index(index).k_factor = float(self.refine_factor)


@dataclass
class IVFSQConfig(_CompressedIVF):
    """Inverted file with 8-bit scalar codes (``IndexIVFScalarQuantizer``), re-ranked exactly from disk.

    Memory: 1 byte per dimension per vector (plus the cells' ids); the float16 rows that re-rank the
    shortlist live in a file beside the index and are read only for the candidates.

    Parameters
    ----------
    nlist : int or None
        Coarse cells; None: ≈ √n (power of two in [16, 4096]); an HNSW graph over the centroids from
        2,048 cells.
    nprobe : int or None
        Cells visited per query; None: the fewest that reach the recall target.
    rerank_factor : int
        Shortlist length per result: ``rerank_factor × k`` candidates are scored exactly.
    train_size : int
        Upper bound of the training sample.
    """

    name: ClassVar[str] = "ivfsq"
    reranks_from_disk: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, incremental=True, needs_training=True, min_size=1024)
    rerank_factor: int = 10

    def create(self, dim: int, n: int) -> Any:
        import faiss

        if self.rerank_factor < 1:
            raise InputError(f"ivfsq rerank_factor must be at least 1, got {self.rerank_factor}")
        nlist = self.choose_nlist(n)
        quantizer = self.coarse_quantizer(dim, nlist)
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
        self.setup_ivf(index, quantizer, dim, nlist)
        self._chosen = {"nlist": nlist}
        return index

BACKENDS: dict[str, type[BackendConfig]] = {
    c.name: c for c in (ExactConfig, HNSWConfig, IVFConfig, IVFPQConfig, IVFSQConfig)}
# Above this many bytes of float32 vectors, ``auto`` keeps compressed codes instead of the vectors.
FLAT_BUDGET_BYTES = 4 * 2**30
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


def choose_backend(n_vectors: int, threshold: int, dim: int = 512, flat_budget: int = FLAT_BUDGET_BYTES) -> str:
    """What ``auto`` builds for ``n_vectors`` of dimension ``dim``.

    ``exact`` below ``threshold`` (a scan is fast and exact there); ``ivf`` while the float32 vectors
    fit in ``flat_budget`` bytes (cells scanned exactly: recall is bought with ``nprobe`` alone, and the
    build is k-means on a sample plus one assignment pass, ~10× faster than an HNSW graph at 1M);
    above it ``ivfsq``: 8-bit codes in memory (1/4 of the vectors) and an exact re-ranking of the
    shortlist from float16 rows on disk. (``ivfpq``'s product codes are 8× smaller again, but on
    clustered 512-d data they cannot order a cluster's near-equal neighbours: at 10M its recall@10
    stayed at 0.37; see benchmarks/retrieval.py.)
    """
    if n_vectors < threshold:
        return "exact"
    if n_vectors * dim * 4 <= flat_budget:
        return "ivf"
    return "ivfsq"


def auto_params(name: str, n_vectors: int, dim: int, flat_budget: int = FLAT_BUDGET_BYTES) -> dict[str, Any]:
    """Parameters ``auto`` adds to the chosen backend (``ivfpq`` past the budget re-ranks from SQ8)."""
    if name == "ivfpq" and n_vectors * dim * 4 > flat_budget:
        return {"refine": "sq8"}
    return {}
