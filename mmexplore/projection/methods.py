"""Projection methods (UMAP, PCA, t-SNE) as a registry of name → config + backend.

The registry follows FiftyOne Brain's visualisation module: each method is a small config
dataclass (its parameters, with defaults) plus a backend factory that builds the underlying
estimator; heavy libraries (``umap``, which pulls in numba) are imported inside the factory, so
``import mmexplore.projection`` stays cheap. Capabilities are declared, not discovered by trial:
``supports_transform`` says whether new points can be placed into an existing map.

>>> sorted(list_methods())
['pca', 'tsne', 'umap']
>>> get_method("pca").supports_transform
True
>>> get_method("tsne").supports_transform
False
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmexplore.errors import InputError


@dataclass
class UMAPConfig:
    """UMAP parameters (umap-learn). ``metric="cosine"`` suits CLIP embeddings (unit vectors).

    ``pca_dims``: inputs with more dimensions are first reduced by PCA to this many (the usual
    practice before UMAP: the nearest-neighbour search, most of UMAP's cost, gets several times
    faster and loses little); None turns it off. ``n_epochs=200`` is umap-learn's own choice for
    data sets over 10k points, used at every size for a predictable cost.
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    n_epochs: int | None = 200
    init: str = "spectral"
    pca_dims: int | None = 50


@dataclass
class PCAConfig:
    """PCA parameters (scikit-learn). ``whiten=False`` keeps distances in embedding units."""

    whiten: bool = False


@dataclass
class TSNEConfig:
    """t-SNE parameters (scikit-learn, Barnes-Hut for 2-D/3-D)."""

    perplexity: float = 30.0
    metric: str = "cosine"
    max_iter: int = 1000


@dataclass(frozen=True)
class MethodSpec:
    """One registered projection method.

    Attributes
    ----------
    name : str
    config_cls : type
        Dataclass holding the method's parameters and defaults.
    build : callable(config, n_components, random_state) -> estimator
        Makes the backend estimator (heavy imports happen here).
    supports_transform : bool
        Whether a fitted map can place new points (``transform``). t-SNE cannot: its map is the
        result of optimising the fitted points themselves, with no function to apply to new ones.
    min_points : int
        Fewest points the backend can handle; fewer fall back to PCA with a note.
    adapt : callable(config, n_points, n_features) -> list of str
        Shrinks size-dependent parameters for small data sets; returns notes for the user.
    description : str
    """

    name: str
    config_cls: type
    build: Callable[[Any, int, int], Any]
    supports_transform: bool
    min_points: int
    adapt: Callable[[Any, int, int], list[str]] = field(default=lambda cfg, n, d: [])
    description: str = ""


def _build_umap(cfg: UMAPConfig, n_components: int, random_state: int) -> Any:
    import umap  # heavy (numba): only when UMAP is used

    reducer = umap.UMAP(
        n_neighbors=cfg.n_neighbors,
        min_dist=cfg.min_dist,
        metric=cfg.metric,
        n_components=n_components,
        n_epochs=cfg.n_epochs,
        random_state=random_state,
        init=cfg.init,
        n_jobs=1,  # a seed makes umap single-threaded anyway; saying so silences its warning
    )
    if cfg.pca_dims is None:
        return reducer
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline

    return make_pipeline(PCA(n_components=cfg.pca_dims, random_state=random_state), reducer)


def _adapt_umap(cfg: UMAPConfig, n: int, d: int) -> list[str]:
    notes = []
    if cfg.pca_dims is not None and cfg.pca_dims >= min(n, d):
        cfg.pca_dims = None  # nothing to gain (or PCA impossible): UMAP on the raw vectors
    if cfg.n_neighbors > n - 1:
        notes.append(f"UMAP n_neighbors lowered from {cfg.n_neighbors} to {n - 1}: only {n} points")
        cfg.n_neighbors = n - 1
    if n < 16:
        # Spectral initialisation needs a well-connected graph; tiny graphs get random starts.
        cfg.init = "random"
    return notes


def _build_pca(cfg: PCAConfig, n_components: int, random_state: int) -> Any:
    from sklearn.decomposition import PCA

    return PCA(n_components=n_components, whiten=cfg.whiten, random_state=random_state)


def _build_tsne(cfg: TSNEConfig, n_components: int, random_state: int) -> Any:
    from sklearn.manifold import TSNE

    return TSNE(
        n_components=n_components,
        perplexity=cfg.perplexity,
        metric=cfg.metric,
        max_iter=cfg.max_iter,
        init="pca",
        random_state=random_state,
    )


def _adapt_tsne(cfg: TSNEConfig, n: int, d: int) -> list[str]:
    # scikit-learn requires perplexity < n_samples; about n/3 keeps the neighbourhoods meaningful.
    limit = max(1.0, (n - 1) / 3.0)
    if cfg.perplexity > limit:
        old = cfg.perplexity
        cfg.perplexity = float(limit)
        return [f"t-SNE perplexity lowered from {old:g} to {limit:.3g}: only {n} points"]
    return []


_REGISTRY: dict[str, MethodSpec] = {
    "umap": MethodSpec(
        "umap", UMAPConfig, _build_umap, supports_transform=True, min_points=4, adapt=_adapt_umap,
        description="UMAP (umap-learn): keeps local neighbourhoods; can place new points",
    ),
    "pca": MethodSpec(
        "pca", PCAConfig, _build_pca, supports_transform=True, min_points=1,
        description="PCA (scikit-learn): linear, exact, fast; distances along axes are real",
    ),
    "tsne": MethodSpec(
        "tsne", TSNEConfig, _build_tsne, supports_transform=False, min_points=4, adapt=_adapt_tsne,
        description="t-SNE (scikit-learn): local clusters; cannot place new points",
    ),
}


def list_methods() -> list[str]:
    """Names of the registered projection methods."""
    return list(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name``.

    Raises
    ------
    InputError
        ``"Unsupported method 'x'. The available methods are [...]"``.
    """
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise InputError(f"Unsupported method {name!r}. The available methods are {list_methods()}")
    return _REGISTRY[key]


def make_config(name: str, **params: Any) -> Any:
    """A config of method ``name`` with ``params`` overriding its defaults (unknown keys → InputError)."""
    spec = get_method(name)
    known = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"unknown parameter(s) {unknown} for method {spec.name!r}; it takes {sorted(known)}")
    return spec.config_cls(**params)


def as_2d_float(x: Any, name: str = "embeddings") -> np.ndarray:
    """``x`` as a finite float32 array of shape (n, d); InputError naming ``name`` otherwise."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (rows × dims), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def warm_up_umap(sizes: tuple[int, ...] = (300, 4200), d: int = 64) -> float:
    """Fit UMAP once at each of ``sizes`` on random points, so numba compiles its code now; returns seconds.

    umap-learn compiles its layout optimiser (and, above 4,096 points, pynndescent's neighbour search)
    on first use in a process, 15–40 s on 2 cores, and numba does not cache that on disk. The app runs
    this in a background thread when its server starts (``MMEXPLORE_WARM_UP``).
    """
    import time

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    for n in sizes:
        x = rng.standard_normal((n, d)).astype(np.float32)
        _build_umap(UMAPConfig(n_epochs=20), 2, 0).fit(x)  # compiling is the point, not the layout
    return time.perf_counter() - t
