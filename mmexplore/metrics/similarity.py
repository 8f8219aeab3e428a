"""Similarity maths of a contrastive image–text model (docs/design.md §4), over numpy arrays.

Notation: ``E_i`` (N × d) image and ``E_t`` (M × d) text embeddings, unit rows. Cosine
``S = E_i E_tᵀ``; logits ``C = logit_scale · S`` where ``logit_scale = 1/τ``; softmax over texts
per image (i→t) and over images per text (t→i). Pairs are a boolean N × M matrix, so an image may
have several true captions and a caption several true images.

Two scoring rules (the model's own, see :class:`~mmexplore.models.facts.ModelFacts`):

* ``softmax`` (CLIP): logits ``C = s·S``, probabilities by softmax over a batch, symmetric InfoNCE loss;
* ``sigmoid`` (SigLIP, a model with a ``logit_bias`` b): logits ``C = s·S + b``, each pair's own
  probability ``σ(C_ij)`` (no normalisation over the batch), and the sigmoid loss
  ``-(1/N) Σ_ij log σ(z_ij C_ij)`` with ``z_ij = +1`` for true pairs and ``-1`` otherwise (Zhai et al.
  2023; open_clip's ``SigLipLoss``).

Recall@K ranks by cosine, the same under both rules (s > 0 and b shift nothing within a row).

>>> import numpy as np
>>> e = np.eye(3, dtype=np.float32)
>>> r = similarity_report(e, e, logit_scale=10.0)
>>> r.recall["i2t@1"], r.recall["t2i@1"]
(1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero). Shape unchanged, float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def cosine_matrix(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity.

    Parameters
    ----------
    image_emb : ndarray of shape (N, d)
    text_emb : ndarray of shape (M, d)
        Need not be normalised; they are normalised here.

    Returns
    -------
    ndarray of shape (N, M), float64, values in [-1, 1].
    """
    a = l2_normalize(image_emb).astype(np.float64)
    b = l2_normalize(text_emb).astype(np.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dims differ: images {a.shape[1]}, texts {b.shape[1]}")
    return a @ b.T


def softmax_i2t(logits: np.ndarray) -> np.ndarray:
    """Softmax over texts for each image: rows of the (N, M) result sum to 1."""

    from scipy.special import softmax  # lazily: scipy costs ~0.5 s at CLI start-up
    return softmax(logits, axis=1)


def softmax_t2i(logits: np.ndarray) -> np.ndarray:
    """Softmax over images for each text: columns of the (N, M) result sum to 1."""

    from scipy.special import softmax  # lazily: scipy costs ~0.5 s at CLI start-up
    return softmax(logits, axis=0)


def identity_pairs(n_images: int, n_texts: int) -> np.ndarray:
    """Pairs matrix (N, M) for the common case "image k goes with text k" (needs N == M)."""
    if n_images != n_texts:
        raise ValueError(
            f"no pairs given and {n_images} images vs {n_texts} texts: give pairs explicitly "
            "(e.g. a captions file with image,text columns)"
        )
    return np.eye(n_images, dtype=bool)


def _logits_and_pairs(logits: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``logits`` as float64 and ``pairs`` as bool, both (N, M); ValueError when their shapes differ."""
    logits = np.asarray(logits, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=bool)
    if logits.shape != pairs.shape:
        raise ValueError(f"logits {logits.shape} and pairs {pairs.shape} differ in shape")
    return logits, pairs


def infonce_loss(logits: np.ndarray, pairs: np.ndarray) -> float:
    """Symmetric InfoNCE ½(CE(C, pairs) + CE(Cᵀ, pairsᵀ)) in nats.

    With several true texts for an image, each image's target is spread uniformly over its true
    texts (and likewise per text), which reduces to the usual diagonal CE for one-to-one pairs.
    Images (texts) without any true pair do not contribute to their direction's term.

    Parameters
    ----------
    logits : ndarray of shape (N, M)
        ``logit_scale × cosine``.
    pairs : ndarray of shape (N, M), bool
    """
    logits, pairs = _logits_and_pairs(logits, pairs)
    if not pairs.any():
        return float("nan")

    def directional(lg: np.ndarray, pr: np.ndarray) -> float:
        rows = pr.any(axis=1)
        from scipy.special import log_softmax  # lazily: scipy costs ~0.5 s at CLI start-up
        lp = log_softmax(lg[rows], axis=1)
        target = pr[rows] / pr[rows].sum(axis=1, keepdims=True)
        return float(-(target * lp).sum(axis=1).mean())

    return 0.5 * (directional(logits, pairs) + directional(logits.T, pairs.T))


def sigmoid_probs(logits: np.ndarray) -> np.ndarray:
    """σ(C) elementwise: each (image, caption) pair's own match probability, (N, M), in (0, 1)."""
    from scipy.special import expit  # lazily: scipy costs ~0.5 s at CLI start-up
    return expit(np.asarray(logits, dtype=np.float64))


def sigmoid_loss(logits: np.ndarray, pairs: np.ndarray) -> float:
    """SigLIP's loss ``-(1/N) Σ_ij log σ(z_ij · C_ij)`` in nats, z = +1 on true pairs, -1 elsewhere.

    Every cell counts: an unmarked cell is a negative pair. Normalised by the number of images N,
    as in open_clip's ``SigLipLoss`` (so it grows with the number of captions M).

    Parameters
    ----------
    logits : ndarray of shape (N, M)
        ``logit_scale × cosine + logit_bias``.
    pairs : ndarray of shape (N, M), bool
    """
    logits, pairs = _logits_and_pairs(logits, pairs)
    if not pairs.any():
        return float("nan")
    z = np.where(pairs, 1.0, -1.0)
    from scipy.special import log_expit  # lazily: scipy costs ~0.5 s at CLI start-up
    return float(-log_expit(z * logits).sum() / logits.shape[0])


def recall_at_k(scores: np.ndarray, pairs: np.ndarray, k: int) -> float:
    """Fraction of query rows whose top-``k`` columns contain at least one true pair.

    Rows without any true pair are left out. Ties are broken by column order (stable sort).

    Parameters
    ----------
    scores : ndarray of shape (Q, C)
    pairs : ndarray of shape (Q, C), bool
    k : int
        Clipped to the number of columns.
    """
    pairs = np.asarray(pairs, dtype=bool)
    rows = pairs.any(axis=1)
    if not rows.any():
        return float("nan")
    k = max(1, min(int(k), scores.shape[1]))
    top = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(pairs[rows], top, axis=1).any(axis=1)
    return float(hit.mean())


def paired_recall_at_1(queries: np.ndarray, gallery: np.ndarray, rows: Any = None, *, block: int = 1024) -> float:
    """R@1 of row-paired embeddings: query row r's true match is gallery row r; cosine, blockwise.

    Equals ``recall_at_k(cosine_matrix(queries[rows], gallery), eye, 1)`` (ties go to the earlier
    gallery row, as the stable sort there) without the full score matrix or its sort: each block of
    queries costs one (b, d) × (d, n) product and two comparisons, so memory is O(block · n) and time
    O(len(rows) · n · d).

    Parameters
    ----------
    queries, gallery : ndarray of shape (n, d)
        Row r of one goes with row r of the other; normalised here.
    rows : array of int, optional
        The query rows evaluated (all n when None), e.g. a random sample.
    block : int
        Queries per matrix product.

    Returns
    -------
    float
        Share of the evaluated queries whose own gallery row ranks first; NaN for no rows.
    """
    q = l2_normalize(queries)
    g = l2_normalize(gallery)
    rows = np.arange(len(q)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return float("nan")
    hits = 0
    for start in range(0, len(rows), block):
        r = rows[start:start + block]
        # argmax returns the first of equal maxima: the same tie rule as the stable sort.
        hits += int((np.argmax(q[r] @ g.T, axis=1) == r).sum())
    return hits / len(rows)


@dataclass
class SimilarityReport:
    """Everything the similarity page and ``mmexplore similarity`` show, as plain arrays.

    Attributes
    ----------
    cosine : ndarray (N, M)
    logits : ndarray (N, M)
        ``logit_scale × cosine`` (+ ``logit_bias`` under the sigmoid rule).
    probs_i2t : ndarray (N, M)
        Softmax over texts per image (rows sum to 1). Under the sigmoid rule this is *not* the
        model's probability (see ``probs_pair``); kept for comparison.
    probs_t2i : ndarray (N, M)
        Softmax over images per text (columns sum to 1); same remark.
    logit_scale : float
    pairs : ndarray (N, M), bool
    infonce_loss : float
        Symmetric InfoNCE of the softmax rule; NaN when no pairs are given or the rule is sigmoid
        (not that model's objective).
    rule : {"softmax", "sigmoid"}
    logit_bias : float or None
        b of the sigmoid rule.
    probs_pair : ndarray (N, M) or None
        σ(logits), each pair's own probability (sigmoid rule only).
    sigmoid_loss : float
        SigLIP loss over all N × M cells (sigmoid rule; NaN otherwise or without pairs).
    recall : dict
        ``"i2t@K"`` and ``"t2i@K"`` for each K.
    best_text_for_image, best_image_for_text : list of int
    """

    cosine: np.ndarray
    logits: np.ndarray
    probs_i2t: np.ndarray
    probs_t2i: np.ndarray
    logit_scale: float
    pairs: np.ndarray
    infonce_loss: float
    recall: dict[str, float] = field(default_factory=dict)
    rule: str = "softmax"
    logit_bias: float | None = None
    probs_pair: np.ndarray | None = None
    sigmoid_loss: float = float("nan")
    best_text_for_image: list[int] = field(default_factory=list)
    best_image_for_text: list[int] = field(default_factory=list)

    @property
    def loss_name(self) -> str:
        """The model's own objective: ``infonce`` (softmax rule) or ``sigmoid``."""
        return "sigmoid" if self.rule == "sigmoid" else "infonce"

    @property
    def loss(self) -> float:
        """The value of the model's own objective on the marked pairs (NaN without pairs)."""
        return self.sigmoid_loss if self.rule == "sigmoid" else self.infonce_loss

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (NaN becomes None) with the CLI contract's field names."""

        def clean(x: float) -> float | None:
            return None if x is None or not np.isfinite(x) else float(x)

        return {
            "cosine": self.cosine.round(6).tolist(),
            "logits": self.logits.round(5).tolist(),
            "logit_scale": float(self.logit_scale),
            "probs_i2t": self.probs_i2t.round(6).tolist(),
            "probs_t2i": self.probs_t2i.round(6).tolist(),
            "pairs": self.pairs.astype(int).tolist(),
            "infonce_loss": clean(self.infonce_loss),
            "rule": self.rule,
            "logit_bias": None if self.logit_bias is None else float(self.logit_bias),
            "probs_pair": None if self.probs_pair is None else self.probs_pair.round(6).tolist(),
            "sigmoid_loss": clean(self.sigmoid_loss),
            "loss_name": self.loss_name,
            "loss": clean(self.loss),
            "recall": {k: clean(v) for k, v in self.recall.items()},
            "best_text_for_image": self.best_text_for_image,
            "best_image_for_text": self.best_image_for_text,
        }


def similarity_report(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    *,
    logit_scale: float,
    logit_bias: float | None = None,
    pairs: np.ndarray | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> SimilarityReport:
    """Compute cosine, logits, probabilities, the model's loss and recall@K for one image and text set.

    The rule follows ``logit_bias``: None → softmax (both softmaxes, InfoNCE); a number → sigmoid
    (pairwise σ(s·cos + b), SigLIP loss; the softmaxes are still given, for comparison only).

    Parameters
    ----------
    image_emb : ndarray of shape (N, d)
    text_emb : ndarray of shape (M, d)
    logit_scale : float
        The model's ``exp(logit_scale)`` = 1/τ (e.g. 100 for OpenAI CLIP).
    logit_bias : float, optional
        The model's ``logit_bias`` b (SigLIP); None for softmax models.
    pairs : ndarray of shape (N, M), bool, optional
        True pairs; when None and N == M, image k pairs with text k; when None and N != M, no pairs
        (loss and recall are NaN).
    ks : tuple of int
        The K of recall@K.
    """
    if len(image_emb) == 0 or len(text_emb) == 0:
        raise ValueError("need at least one image and one text")
    cos = cosine_matrix(image_emb, text_emb)
    n, m = cos.shape
    if pairs is None:
        pairs = np.eye(n, dtype=bool) if n == m else np.zeros((n, m), dtype=bool)
    pairs = np.asarray(pairs, dtype=bool)
    if pairs.shape != (n, m):
        raise ValueError(f"pairs must have shape {(n, m)}, got {pairs.shape}")
    sigmoid = logit_bias is not None
    logits = float(logit_scale) * cos + (float(logit_bias) if sigmoid else 0.0)  # type: ignore[arg-type]
    recall: dict[str, float] = {}
    for k in ks:
        recall[f"i2t@{k}"] = recall_at_k(cos, pairs, k)
        recall[f"t2i@{k}"] = recall_at_k(cos.T, pairs.T, k)
    return SimilarityReport(
        cosine=cos,
        logits=logits,
        probs_i2t=softmax_i2t(logits),
        probs_t2i=softmax_t2i(logits),
        logit_scale=float(logit_scale),
        pairs=pairs,
        infonce_loss=float("nan") if sigmoid else infonce_loss(logits, pairs),
        recall=recall,
        rule="sigmoid" if sigmoid else "softmax",
        logit_bias=float(logit_bias) if sigmoid else None,  # type: ignore[arg-type]
        probs_pair=sigmoid_probs(logits) if sigmoid else None,
        sigmoid_loss=sigmoid_loss(logits, pairs) if sigmoid else float("nan"),
        best_text_for_image=[int(j) for j in cos.argmax(axis=1)],
        best_image_for_text=[int(i) for i in cos.argmax(axis=0)],
    )
