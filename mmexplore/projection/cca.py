"""Regularised linear CCA between paired image and text embeddings, in closed form.

With centred (and by default standardised) X (n × p) and Y (n × q) and the regularised covariances
``Σxx = XᵀX/(n−1) + rI``, ``Σyy = YᵀY/(n−1) + rI``, ``Σxy = XᵀY/(n−1)``, CCA seeks directions
``a``, ``b`` maximising ``corr(Xa, Yb)``. Whitening each side with its Cholesky factor
(``Σxx = LxLxᵀ``) turns this into one SVD: ``Lx⁻¹ Σxy Ly⁻ᵀ = U S Vᵀ``; the singular values S are all
the canonical correlations at once and ``a = Lx⁻ᵀU``, ``b = Ly⁻ᵀV``. scikit-learn's ``CCA`` finds
the same directions one at a time by alternating iterations and deflation, which is far slower.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> z = rng.normal(size=(500, 1))
>>> x = np.hstack([z, rng.normal(size=(500, 3))]); y = np.hstack([rng.normal(size=(500, 2)), -z])
>>> cca = CCA(reg=0.0).fit(x, y)
>>> round(float(cca.correlations_[0]), 3)
1.0
>>> cca.transform(x, y)[0].shape
(500, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.metrics.similarity import paired_recall_at_1

MIN_PAIRS = 3
# Queries the held-out R@1 is averaged over (each ranked against all held-out pairs); see cca_retrieval.
MAX_QUERIES = 2000


def min_pairs_needed(n_features_x: int, n_features_y: int, reg: float) -> int:
    """Fewest pairs CCA can be fitted on: ``MIN_PAIRS`` with a regulariser, else ``max(p, q) + 2``.

    Without regularisation the covariances must be invertible, which needs more pairs than
    dimensions; even then, with few pairs per dimension the correlations are near 1 by chance.
    """
    return MIN_PAIRS if reg > 0 else max(MIN_PAIRS, max(n_features_x, n_features_y) + 2)


class CCA:
    """Regularised canonical correlation analysis (closed form: whitening + one SVD).

    Parameters
    ----------
    n_components : int or None, default None
        Components kept by ``transform``; None keeps all ``min(p, q, n − 1)``.
    reg : float, default 0.1
        Ridge ``r`` added to each covariance's diagonal (``Σ + rI``). With ``scale=True`` the
        features have unit variance, so ``r`` is a fraction of each feature's variance. It keeps
        the covariances invertible when there are fewer pairs than dimensions and stops small data
        sets from reporting spurious correlations of 1.
    scale : bool, default True
        Standardise each feature to unit variance before fitting (as scikit-learn's CCA does).

    Attributes
    ----------
    x_weights_ : ndarray of shape (p, k)
        Canonical directions of X (in the standardised space): ``X_std @ x_weights_`` are the
        canonical variates, with unit variance.
    y_weights_ : ndarray of shape (q, k)
    correlations_ : ndarray of shape (k,)
        Canonical correlations, descending, in [0, 1] (regularised: slightly shrunk).
    x_mean_, x_std_ : ndarray of shape (p,)
    y_mean_, y_std_ : ndarray of shape (q,)
    n_samples_ : int

    Signs are fixed for determinism: in each ``x_weights_`` column the largest-magnitude entry is
    positive, and the matching ``y_weights_`` column is flipped with it (correlations stay positive).
    """

    def __init__(self, n_components: int | None = None, *, reg: float = 0.1, scale: bool = True) -> None:
        self.n_components = n_components
        self.reg = reg
        self.scale = scale

    def _check_xy(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x)
        y = np.asarray(y)
        dtype = np.float64 if (x.dtype == np.float64 or y.dtype == np.float64) else np.float32
        x, y = x.astype(dtype, copy=False), y.astype(dtype, copy=False)
        if x.ndim != 2 or y.ndim != 2:
            raise InputError(f"CCA needs 2-D arrays (pairs × dims); got shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise InputError(f"CCA needs paired rows: {len(x)} image rows but {len(y)} text rows")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InputError("CCA input contains NaN or infinite values")
        return x, y

    def fit(self, x: Any, y: Any) -> CCA:
        """Fit on paired rows ``x`` (n, p) and ``y`` (n, q); returns self.

        Raises
        ------
        InputError
            Unpaired shapes, NaNs, a negative ``reg``, or too few pairs (the message says how many).
        """
        x, y = self._check_xy(x, y)
        n, p = x.shape
        q = y.shape[1]
        if self.reg < 0:
            raise InputError(f"reg must be >= 0, got {self.reg}")
        need = min_pairs_needed(p, q, self.reg)
        if n < need:
            hint = "" if self.reg > 0 else " (or set reg > 0)"
            raise InputError(f"CCA needs at least {need} pairs, got {n}: add more image–text pairs{hint}")
        k_max = min(p, q, n - 1)
        k = k_max if self.n_components is None else int(self.n_components)
        if not 1 <= k <= k_max:
            raise InputError(f"n_components must be in [1, {k_max}] (min(p, q, n − 1)), got {self.n_components}")
        self.x_mean_, self.x_std_ = self._moments(x)
        self.y_mean_, self.y_std_ = self._moments(y)
        xs = (x - self.x_mean_) / self.x_std_.astype(x.dtype)
        ys = (y - self.y_mean_) / self.y_std_.astype(y.dtype)
        # Covariance products in the input precision (float32 halves the time on big inputs);
        # the small p×p / q×q factorisations in float64.
        c = 1.0 / (n - 1)
        sxx = (xs.T @ xs).astype(np.float64) * c
        syy = (ys.T @ ys).astype(np.float64) * c
        sxy = (xs.T @ ys).astype(np.float64) * c
        sxx[np.diag_indices(p)] += self.reg
        syy[np.diag_indices(q)] += self.reg
        lx = self._cholesky(sxx, "image")
        ly = self._cholesky(syy, "text")
        import scipy.linalg  # here, not at import: `mmexplore --help` should not pay for scipy

        # M = Lx⁻¹ Σxy Ly⁻ᵀ, the cross-covariance of the whitened variables.
        m = scipy.linalg.solve_triangular(lx, sxy, lower=True)
        m = scipy.linalg.solve_triangular(ly, m.T, lower=True).T
        u, s, vt = np.linalg.svd(m, full_matrices=False)
        a = scipy.linalg.solve_triangular(lx.T, u[:, :k_max], lower=False)
        b = scipy.linalg.solve_triangular(ly.T, vt[:k_max].T, lower=False)
        signs = np.sign(a[np.argmax(np.abs(a), axis=0), np.arange(k_max)])
        signs[signs == 0] = 1.0
        self.x_weights_ = (a * signs)[:, :k]
        self.y_weights_ = (b * signs)[:, :k]
        self.correlations_ = np.clip(s[:k], 0.0, 1.0)
        self.all_correlations_ = np.clip(s[:k_max], 0.0, 1.0)
        self.n_samples_ = n
        return self

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = x.mean(axis=0, dtype=np.float64).astype(x.dtype)
        if not self.scale:
            return mean, np.ones(x.shape[1])
        std = x.std(axis=0, ddof=1, dtype=np.float64)
        std[std < 1e-12] = 1.0  # constant features: leave them (they carry no correlation)
        return mean, std

    @staticmethod
    def _cholesky(s: np.ndarray, side: str) -> np.ndarray:
        try:
            return np.linalg.cholesky(s)
        except np.linalg.LinAlgError:
            raise InputError(
                f"the {side} covariance is singular (more dimensions than pairs, or repeated embeddings): "
                "set reg > 0 or add pairs"
            ) from None

    def _check_fitted(self) -> None:
        if not hasattr(self, "x_weights_"):
            raise InputError("this CCA is not fitted yet: call fit(x, y) first")

    def transform(self, x: Any, y: Any = None, *, n_components: int | None = None) -> Any:
        """Canonical variates: ``x`` (n, p) → (n, k); with ``y`` (n, q) also → (n, k), as a tuple.

        ``n_components`` (≤ the fitted k) keeps only the leading components.
        """
        self._check_fitted()
        k = self.x_weights_.shape[1] if n_components is None else int(n_components)
        if not 1 <= k <= self.x_weights_.shape[1]:
            raise InputError(f"n_components must be in [1, {self.x_weights_.shape[1]}], got {n_components}")
        xa = np.asarray(x, np.float64)
        tx = ((xa - self.x_mean_) / self.x_std_) @ self.x_weights_[:, :k]
        if y is None:
            return tx
        ya = np.asarray(y, np.float64)
        ty = ((ya - self.y_mean_) / self.y_std_) @ self.y_weights_[:, :k]
        return tx, ty

    def fit_transform(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fit, then return the canonical variates of ``x`` and ``y``."""
        return self.fit(x, y).transform(x, y)


@dataclass
class CCARetrieval:
    """Image→text R@1 in the canonical space (top-k components) vs raw cosine, on the same pairs.

    Attributes
    ----------
    ks : list of int
        Numbers of canonical components tried.
    recall_cca : list of float
        i→t R@1 using cosine between the first k canonical variates.
    recall_raw : float
        i→t R@1 using cosine between the raw embeddings.
    t2i_cca : list of float
    t2i_raw : float
    n_eval : int
        Pairs evaluated (every one is a candidate for each query).
    n_queries : int
        Queries R@1 is averaged over, per direction (a random sample when fewer than ``n_eval``).
    held_out : bool
        True when CCA was fitted on other pairs than the ones evaluated (honest figures); False
        when there were too few pairs to split (in-sample figures are optimistic).
    correlations : list of float
        Canonical correlations of the fit.
    """

    ks: list[int]
    recall_cca: list[float]
    recall_raw: float
    t2i_cca: list[float]
    t2i_raw: float
    n_eval: int
    held_out: bool
    correlations: list[float]
    n_queries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def cca_retrieval(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    *,
    ks: Any = None,
    reg: float = 0.1,
    test_fraction: float = 0.3,
    min_test: int = 20,
    seed: int = 0,
    max_queries: int | None = MAX_QUERIES,
    progress: Any = None,
) -> CCARetrieval:
    """Compare retrieval in CCA space (first k components) with raw cosine on paired rows.

    Parameters
    ----------
    image_emb, text_emb : ndarray of shape (n, d)
        Paired rows (row i of one goes with row i of the other).
    ks : sequence of int, optional
        Component counts; default a doubling ladder 1, 2, 4, ... up to all components.
    reg : float
    test_fraction : float
        Share of pairs held out for evaluation when there are at least ``min_test / test_fraction``
        pairs; otherwise CCA is evaluated in-sample (``held_out=False``).
    max_queries : int or None
        R@1 is averaged over at most this many queries (a fixed random sample of the evaluated pairs),
        each ranked against every evaluated pair; None ranks them all. The standard error of the
        estimate is at most 0.5 / sqrt(n_queries) (0.011 at 2,000).
    progress : callable, optional
        ``progress(done, total)`` after each of the ``2 · (len(ks) + 1)`` rankings.
    """
    img = np.asarray(image_emb)
    txt = np.asarray(text_emb)
    n = len(img)
    rng = np.random.default_rng(seed)
    n_test = round(n * test_fraction)
    held_out = n_test >= min_test and n - n_test >= min_pairs_needed(img.shape[1], txt.shape[1], reg)
    if held_out:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    else:
        test = train = np.arange(n)
    cca = CCA(reg=reg).fit(img[train], txt[train])
    k_all = cca.x_weights_.shape[1]
    if ks is None:
        ks = sorted({min(2**j, k_all) for j in range(int(np.log2(max(k_all, 1))) + 2)})
    ks = [int(k) for k in ks if 1 <= int(k) <= k_all]
    xt, yt = img[test], txt[test]
    tx, ty = cca.transform(xt, yt)
    # Every held-out caption stays a candidate; the queries are a fixed random sample of at most
    # max_queries (stated with the result), so the cost is O(queries · n · k), not the O(n² log n)
    # of ranking every full row (20k pairs took 66 s that way).
    n_q = len(test) if max_queries is None else min(len(test), int(max_queries))
    queries = np.sort(rng.permutation(len(test))[:n_q]) if n_q < len(test) else np.arange(len(test))
    total = 2 * (len(ks) + 1)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    recall_raw = paired_recall_at_1(xt, yt, queries)
    step()
    t2i_raw = paired_recall_at_1(yt, xt, queries)
    step()
    r_cca, t_cca = [], []
    for k in ks:
        r_cca.append(paired_recall_at_1(tx[:, :k], ty[:, :k], queries))
        step()
        t_cca.append(paired_recall_at_1(ty[:, :k], tx[:, :k], queries))
        step()
    return CCARetrieval(
        ks=ks,
        recall_cca=r_cca,
        recall_raw=recall_raw,
        t2i_cca=t_cca,
        t2i_raw=t2i_raw,
        n_eval=len(test),
        held_out=bool(held_out),
        n_queries=n_q,
        correlations=[float(c) for c in cca.correlations_],
    )
