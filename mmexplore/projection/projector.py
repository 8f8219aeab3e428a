"""``Projector``: a seeded, scikit-learn-style estimator over the registered projection methods.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(20, 8))
>>> p = Projector("pca", n_components=2).fit(x)
>>> p.embedding_.shape, p.transform(x[:3]).shape
((20, 2), (3, 2))
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.projection.methods import as_2d_float, get_method, make_config

ALLOWED_DIMS = (2, 3)


class NotFittedError(InputError):
    """``transform`` called before ``fit``."""


class Projector:
    """Project rows of an embedding matrix to 2-D or 3-D with a registered method.

    Parameters
    ----------
    method : str, default "umap"
        A name from :func:`mmexplore.projection.list_methods`.
    n_components : int, default 2
        2 or 3.
    random_state : int, default 0
        Seed; the same data and seed give the same map.
    **params
        Method parameters (see the method's config class, e.g. ``n_neighbors`` for UMAP).

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), float32
        The fitted points' coordinates.
    method_ : str
        The method actually used (``"pca"`` when the data were too few for the one asked for).
    config_ : dataclass
        The parameters actually used, after small-data adaptation.
    notes_ : list of str
        What was changed and why (shown to the user).
    estimator_ : object
        The fitted backend (``umap.UMAP``, ``sklearn.decomposition.PCA``, ``sklearn.manifold.TSNE``).
    """

    def __init__(self, method: str = "umap", n_components: int = 2, *, random_state: int = 0, **params: Any) -> None:
        self.method = method
        self.n_components = n_components
        self.random_state = random_state
        self.params = params

    def fit(self, x: np.ndarray) -> Projector:
        """Fit the map to ``x`` of shape (n_samples, n_features); returns self."""
        x = as_2d_float(x)
        n, d = x.shape
        if self.n_components not in ALLOWED_DIMS:
            raise InputError(f"n_components must be 2 or 3, got {self.n_components}")
        if n == 0:
            raise InputError("nothing to project: 0 points")
        spec = get_method(self.method)
        config = make_config(spec.name, **self.params)
        notes: list[str] = []
        if n < spec.min_points:
            notes.append(f"{spec.name} needs at least {spec.min_points} points, got {n}: used PCA instead")
            spec = get_method("pca")
            config = make_config("pca")
        notes += spec.adapt(config, n, d)
        # PCA can give at most min(n, d) components; extra axes are padded with zeros.
        k = self.n_components
        if spec.name == "pca" and min(n, d) < k:
            k = min(n, d)
            notes.append(f"only {k} PCA component(s) exist for {n} point(s) in {d} dims: remaining axes are 0")
        estimator = spec.build(config, k, self.random_state)
        with warnings.catch_warnings():
            # umap/sklearn warn about things already handled above (tiny graphs, seeds vs threads).
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            emb = np.asarray(estimator.fit_transform(x), dtype=np.float32)
        self.embedding_ = self._pad(emb)
        self.method_ = spec.name
        self.config_ = config
        self.notes_ = notes
        self.estimator_ = estimator
        self._spec = spec
        return self

    def _pad(self, emb: np.ndarray) -> np.ndarray:
        if emb.shape[1] < self.n_components:
            emb = np.hstack([emb, np.zeros((emb.shape[0], self.n_components - emb.shape[1]), np.float32)])
        return emb

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """Fit and return ``embedding_``, shape (n_samples, n_components)."""
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Place new rows ``x`` (n_new, n_features) into the fitted map → (n_new, n_components).

        Raises
        ------
        InputError
            Not fitted yet, or the method cannot place new points (t-SNE).
        """
        if not hasattr(self, "estimator_"):
            raise NotFittedError("this Projector is not fitted yet: call fit(x) first")
        if not self._spec.supports_transform:
            raise InputError(
                f"{self.method_} cannot place new points into an existing map; fit it on all points, "
                "or use umap or pca"
            )
        x = as_2d_float(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return self._pad(np.asarray(self.estimator_.transform(x), dtype=np.float32))

    def params_used(self) -> dict[str, Any]:
        """The fitted method's parameters as a plain dict."""
        return {"method": self.method_, "n_components": self.n_components, "random_state": self.random_state,
                **dataclasses.asdict(self.config_)}
