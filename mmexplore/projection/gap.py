"""The modality gap (Liang et al., NeurIPS 2022) and the operations that close or widen it.

Image and text embeddings of a contrastive model sit in two separate cones of the unit sphere.
With ``E_i`` (N × d) and ``E_t`` (M × d) unit rows:

- the gap vector ``g = mean(E_i) − mean(E_t)`` and its length ``Δ = ‖g‖``;
- centring each modality (subtract its own mean) makes ``Δ`` exactly 0;
- shifting by ``λ`` along the gap, ``E_i − λ g`` and ``E_t + λ g`` (then re-normalised, as in the
  paper), closes the gap for ``λ > 0`` (λ = 0.5 meets in the middle) and widens it for ``λ < 0``.

>>> import numpy as np
>>> img = np.array([[1.0, 0.0], [0.8, 0.6]]); txt = np.array([[0.0, 1.0], [0.6, 0.8]])
>>> round(modality_gap(img, txt), 4)
0.8485
>>> c_img, c_txt = center_modalities(img, txt)
>>> round(modality_gap(c_img, c_txt), 10)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.metrics.similarity import l2_normalize


def gap_vector(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """``mean(E_i) − mean(E_t)``, shape (d,), float64 (embeddings used as given)."""
    return np.asarray(image_emb, np.float64).mean(axis=0) - np.asarray(text_emb, np.float64).mean(axis=0)


def modality_gap(image_emb: np.ndarray, text_emb: np.ndarray) -> float:
    """``Δ = ‖mean(E_i) − mean(E_t)‖`` (Euclidean, embedding units; at most 2 for unit rows)."""
    return float(np.linalg.norm(gap_vector(image_emb, text_emb)))


def center_modalities(image_emb: np.ndarray, text_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subtract each modality's own mean: both clouds centred on 0, so the gap is exactly 0.

    Rows are not re-normalised (re-normalising would move the means off 0 again).
    Returns float32 arrays of the input shapes.
    """
    img = np.asarray(image_emb, np.float64)
    txt = np.asarray(text_emb, np.float64)
    return (img - img.mean(axis=0)).astype(np.float32), (txt - txt.mean(axis=0)).astype(np.float32)


def shift_along_gap(
    image_emb: np.ndarray, text_emb: np.ndarray, lam: float, *, renormalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Move images by ``−λ g`` and texts by ``+λ g`` (g = gap vector), then re-normalise rows.

    Parameters
    ----------
    image_emb : ndarray of shape (N, d)
    text_emb : ndarray of shape (M, d)
    lam : float
        0 leaves them as they are; 0.5 moves both means to their midpoint before re-normalising;
        negative values widen the gap.
    renormalize : bool, default True
        Put rows back on the unit sphere, as the modality-gap paper does.
    """
    g = gap_vector(image_emb, text_emb)
    img = np.asarray(image_emb, np.float64) - lam * g
    txt = np.asarray(text_emb, np.float64) + lam * g
    if renormalize:
        return l2_normalize(img), l2_normalize(txt)
    return img.astype(np.float32), txt.astype(np.float32)


def pair_indices(pairs: Any, n_images: int, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """True pairs as two index arrays ``(image_idx, text_idx)`` of equal length P.

    ``pairs`` may be an (N, M) bool matrix, a (P, 2) integer array of (image, text) indices, or None
    (image k with text k; needs N == M).
    """
    if pairs is None:
        if n_images != n_texts:
            raise InputError(
                f"{n_images} images but {n_texts} texts and no pairs given: give a captions file saying which go together"
            )
        idx = np.arange(n_images)
        return idx, idx.copy()
    arr = np.asarray(pairs)
    if arr.dtype == bool:
        if arr.shape != (n_images, n_texts):
            raise InputError(f"pairs matrix has shape {arr.shape}, expected ({n_images}, {n_texts})")
        ii, tt = np.nonzero(arr)
        return ii, tt
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"pairs: expected a bool matrix or a (P, 2) index array, got shape {arr.shape}")
    ii, tt = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
    if len(ii) and (ii.min() < 0 or ii.max() >= n_images or tt.min() < 0 or tt.max() >= n_texts):
        raise InputError("pairs: an index is out of range")
    return ii, tt


@dataclass
class GapReport:
    """The modality-gap figures of one set of embeddings.

    Attributes
    ----------
    gap : float
        ``Δ = ‖mean(E_i) − mean(E_t)‖``.
    mean_image_norm, mean_text_norm : float
        Length of each modality's mean vector (1 would mean all rows identical; near 0, spread out).
    pair_cosine : float
        Mean cosine of the true (image, text) pairs; NaN when there are none.
    random_cosine : float
        Mean cosine over all (image, text) combinations that are not true pairs: the baseline.
    n_images, n_texts, n_pairs : int
    """

    gap: float
    mean_image_norm: float
    mean_text_norm: float
    pair_cosine: float
    random_cosine: float
    n_images: int
    n_texts: int
    n_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def gap_report(image_emb: np.ndarray, text_emb: np.ndarray, pairs: Any = None) -> GapReport:
    """Gap and pair-vs-random cosines of (N, d) image and (M, d) text embeddings.

    Cosines are computed on unit-normalised rows. The random baseline is exact, not sampled: the sum
    of all N·M cosines is ``(Σ Ê_i)·(Σ Ê_t)``, so the mean over non-pairs costs O((N + M) d) even for
    100k × 100k combinations.
    """
    img = np.asarray(image_emb, np.float64)
    txt = np.asarray(text_emb, np.float64)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
        raise InputError(f"image embeddings {img.shape} and text embeddings {txt.shape} must be (n, d) with the same d")
    if len(img) == 0 or len(txt) == 0:
        raise InputError("need at least one image and one text embedding")
    ii, tt = pair_indices(pairs, len(img), len(txt))
    # Duplicate (i, t) pairs would be double-counted in the subtraction below.
    if len(ii):
        flat = np.unique(ii * len(txt) + tt)
        ii, tt = flat // len(txt), flat % len(txt)
    un_i = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    un_t = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    pair_cos = np.einsum("nd,nd->n", un_i[ii], un_t[tt]) if len(ii) else np.zeros(0)
    total = float(un_i.sum(axis=0) @ un_t.sum(axis=0))
    n_other = len(img) * len(txt) - len(ii)
    random_cos = (total - float(pair_cos.sum())) / n_other if n_other > 0 else float("nan")
    return GapReport(
        gap=modality_gap(img, txt),
        mean_image_norm=float(np.linalg.norm(img.mean(axis=0))),
        mean_text_norm=float(np.linalg.norm(txt.mean(axis=0))),
        pair_cosine=float(pair_cos.mean()) if len(ii) else float("nan"),
        random_cosine=float(random_cos),
        n_images=len(img),
        n_texts=len(txt),
        n_pairs=len(ii),
    )
