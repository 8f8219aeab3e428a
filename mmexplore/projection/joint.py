"""Project stacked image and text embeddings into one 2-D/3-D map, with the modality-gap figures.

One keyword-only entry point, :func:`project_joint`, used by the page, the CLI and the benchmark.
Large data: the gap figures always use every row; a non-linear method (UMAP, t-SNE) is fitted on a
pair-preserving sample of at most ``max_fit`` points (PCA uses all), and the result says so in
``notes``. :func:`display_sample` and :func:`density_grid` keep what is *drawn* small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.projection.gap import GapReport, center_modalities, gap_report, pair_indices, shift_along_gap
from mmexplore.projection.methods import as_2d_float
from mmexplore.projection.projector import Projector

MODALITIES = ("image", "text")


@dataclass
class JointProjection:
    """A joint map of images and texts.

    Attributes
    ----------
    points : ndarray of shape (K, dims), float32
        Coordinates of the projected rows (K = N + M unless a sample was taken).
    source : ndarray of shape (K,), int
        Row of each point in the stacked ``[images; texts]`` array: ``< n_images`` is an image.
    n_images, n_texts : int
    pair_lines : ndarray of shape (P, 2), int
        True pairs as (image point, text point) indices into ``points`` (both ends projected).
    gap : GapReport
        Figures of the embeddings as projected (after centring / shifting).
    gap_raw : GapReport
        Figures of the embeddings as given.
    method : str
        Method actually used.
    params : dict
    centered : bool
    shift : float
    notes : list of str
    """

    points: np.ndarray
    source: np.ndarray
    n_images: int
    n_texts: int
    pair_lines: np.ndarray
    gap: GapReport
    gap_raw: GapReport
    method: str
    params: dict[str, Any]
    centered: bool = False
    shift: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def is_text(self) -> np.ndarray:
        """Bool (K,): True for text points."""
        return self.source >= self.n_images

    @property
    def item_index(self) -> np.ndarray:
        """Int (K,): index of each point within its own modality."""
        return np.where(self.is_text, self.source - self.n_images, self.source)

    def to_dict(self) -> dict[str, Any]:
        axes = "xyz"[: self.points.shape[1]]
        pts = [
            {"modality": MODALITIES[int(t)], "index": int(i), **{a: float(v) for a, v in zip(axes, row, strict=True)}}
            for t, i, row in zip(self.is_text, self.item_index, self.points, strict=True)
        ]
        return {
            "points": pts,
            "pairs": self.pair_lines.tolist(),
            "modality_gap": self.gap.gap,
            "modality_gap_raw": self.gap_raw.gap,
            "gap": self.gap.to_dict(),
            "gap_raw": self.gap_raw.to_dict(),
            "method": self.method,
            "dims": int(self.points.shape[1]),
            "params": self.params,
            "centered": self.centered,
            "shift": self.shift,
            "notes": list(self.notes),
        }


def display_sample(
    n_images: int, n_texts: int, pairs: Any = None, *, max_points: int = 10_000, seed: int = 0
) -> np.ndarray:
    """Rows of the stacked ``[images; texts]`` array to draw, at most about ``max_points``.

    Whole pairs are kept together (an image and its text are drawn or skipped together), so the
    pair lines of a sampled plot stay meaningful. Returns sorted int indices; all rows when they fit.
    """
    total = n_images + n_texts
    if total <= max_points:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    ii, tt = pair_indices(pairs, n_images, n_texts)
    take = rng.permutation(len(ii))[: max(1, max_points // 2)]
    rows = np.unique(np.concatenate([ii[take], n_images + tt[take]]))
    if len(rows) < max_points // 2:  # few pairs: top up with unpaired rows
        extra = rng.choice(total, size=max_points - len(rows), replace=False)
        rows = np.unique(np.concatenate([rows, extra]))
    return rows[:max_points] if len(rows) > max_points else rows


def density_grid(points: np.ndarray, is_text: np.ndarray, bins: int = 128) -> dict[str, np.ndarray]:
    """2-D histograms of image and text points on one shared grid (for density rendering).

    Parameters
    ----------
    points : ndarray of shape (K, 2)
    is_text : ndarray of shape (K,), bool
    bins : int

    Returns
    -------
    dict with ``x_edges``, ``y_edges`` (bins + 1,) and ``image``, ``text`` counts (bins, bins),
    indexed [y, x] (rows are y, as a heatmap draws them).
    """
    pts = np.asarray(points, np.float64)[:, :2]
    xe = np.linspace(pts[:, 0].min(), pts[:, 0].max() + 1e-9, bins + 1)
    ye = np.linspace(pts[:, 1].min(), pts[:, 1].max() + 1e-9, bins + 1)
    out = {"x_edges": xe, "y_edges": ye}
    for name, mask in (("image", ~is_text), ("text", is_text)):
        h, _, _ = np.histogram2d(pts[mask, 0], pts[mask, 1], bins=[xe, ye])
        out[name] = h.T
    return out


def project_joint(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    pairs: Any = None,
    *,
    method: str = "umap",
    dims: int = 2,
    center: bool = False,
    shift: float = 0.0,
    random_state: int = 0,
    max_fit: int = 20_000,
    **params: Any,
) -> JointProjection:
    """Project images and texts together, optionally after centring or shifting along the gap.

    Parameters
    ----------
    image_emb : ndarray of shape (N, d)
        Image embeddings (unit rows, as the encoder returns them).
    text_emb : ndarray of shape (M, d)
    pairs : (N, M) bool matrix, (P, 2) index array or None
        True pairs; None pairs image k with text k (needs N == M).
    method : str, default "umap"
        ``"umap"``, ``"pca"`` or ``"tsne"``.
    dims : int, default 2
        2 or 3.
    center : bool, default False
        Subtract each modality's mean first (closes the gap).
    shift : float, default 0.0
        λ of :func:`shift_along_gap`, applied after centring (if any).
    random_state : int, default 0
    max_fit : int, default 20000
        Largest number of points a UMAP/t-SNE is fitted on; more are sampled (pairs kept together).
    **params
        Method parameters (``n_neighbors``, ``min_dist``, ``perplexity``, ...).
    """
    img = as_2d_float(image_emb, "image embeddings")
    txt = as_2d_float(text_emb, "text embeddings")
    if img.shape[1] != txt.shape[1]:
        raise InputError(f"image embeddings have {img.shape[1]} dims but text embeddings {txt.shape[1]}")
    n, m = len(img), len(txt)
    if n == 0 or m == 0:
        raise InputError("need at least one image and one text to draw the joint space")
    ii, tt = pair_indices(pairs, n, m)
    raw = gap_report(img, txt, np.stack([ii, tt], axis=1))
    notes: list[str] = []
    if center:
        img, txt = center_modalities(img, txt)
    if shift:
        img, txt = shift_along_gap(img, txt, float(shift))
    after = gap_report(img, txt, np.stack([ii, tt], axis=1)) if (center or shift) else raw
    stacked = np.vstack([img, txt])
    rows = np.arange(n + m)
    if method != "pca" and n + m > max_fit:
        rows = display_sample(n, m, np.stack([ii, tt], axis=1), max_points=max_fit, seed=random_state)
        notes.append(
            f"{method} was fitted on a sample of {len(rows):,} of {n + m:,} points (pairs kept together); "
            "the gap figures use all points; PCA projects every point"
        )
    proj = Projector(method, dims, random_state=random_state, **params).fit(stacked[rows])
    notes = proj.notes_ + notes
    # Pair lines between projected rows: map stacked row -> point index.
    where = np.full(n + m, -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    a, b = where[ii], where[n + tt]
    keep = (a >= 0) & (b >= 0)
    return JointProjection(
        points=proj.embedding_,
        source=rows,
        n_images=n,
        n_texts=m,
        pair_lines=np.stack([a[keep], b[keep]], axis=1),
        gap=after,
        gap_raw=raw,
        method=proj.method_,
        params=proj.params_used(),
        centered=bool(center),
        shift=float(shift),
        notes=notes,
    )
