"""Training objectives and regularisers: registries of name → loss function, parameters and formula.

Every objective takes the unit-norm features of one batch (:class:`LossInputs`) and returns a dict
of named loss terms, ``"loss"`` being the one that is minimised. The CLI (``mmexplore train
--objective NAME``), the Train page and the tests all read :data:`OBJECTIVES` and
:data:`REGULARIZERS`; a new objective is one :func:`register_objective` call.

Notation (course notes): x_i the image embeddings, y_j the caption embeddings (unit length), s = 1/τ
the logit scale, B the batch size. "Same text" pairs — two scenes captioned by the identical string
("a small red circle") — are true of both images, so no objective ever treats one as a negative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LossInputs:
    """One batch's features and texts, as every objective sees them.

    Attributes
    ----------
    img : Tensor (B, d)
        Unit-norm image embeddings.
    txt : Tensor (B, d)
        Unit-norm embedding of each image's (first) true caption.
    pos : Tensor (B * (p - 1), d) or None
        Further true captions (multi-positive), rows ``i*(p-1) .. i*(p-1)+p-2`` belong to image i.
    neg : Tensor (B * k, d) or None
        Hard-negative captions, rows ``i*k .. i*k+k-1`` made from image i's caption.
    scale : Tensor ()
        Logit scale s = 1/τ (learned or fixed).
    bias : Tensor () or None
        Learned logit bias b (sigmoid objective).
    captions : list of str (B)
    pos_texts : list of list of str (B × (p - 1))
    neg_texts : list of list of str (B × k)
    """

    img: Any
    txt: Any
    scale: Any
    captions: list[str]
    pos: Any = None
    neg: Any = None
    bias: Any = None
    pos_texts: list[list[str]] = field(default_factory=list)
    neg_texts: list[list[str]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        """B."""
        return int(self.img.shape[0])

    def columns(self) -> tuple[Any, list[str], np.ndarray]:
        """All caption columns: features (C, d), texts (C) and owner (C,) (image index, −1 for negatives).

        Order: the B first captions, then the extra positives, then the hard negatives.
        """
        import torch

        feats, texts = [self.txt], list(self.captions)
        owner = list(range(self.batch_size))
        if self.pos is not None:
            feats.append(self.pos)
            for i, row in enumerate(self.pos_texts):
                texts += row
                owner += [i] * len(row)
        if self.neg is not None:
            feats.append(self.neg)
            for row in self.neg_texts:
                texts += row
                owner += [-1] * len(row)
        return torch.cat(feats), texts, np.asarray(owner)

    def true_text_mask(self, texts: list[str]) -> np.ndarray:
        """(B, C) bool: column text is a true caption of image i (its own or an identical string)."""
        mine = [{self.captions[i], *(self.pos_texts[i] if self.pos_texts else [])} for i in range(self.batch_size)]
        return np.array([[t in mine[i] for t in texts] for i in range(self.batch_size)])


LossFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Objective:
    """A registered objective: its loss function, its parameters and what the batch must hold.

    Attributes
    ----------
    name : str
    fn : callable (LossInputs, **params) -> dict of Tensor
        Returns named terms; ``"loss"`` is minimised.
    params : dict
        Default keyword parameters of ``fn``.
    negatives : int
        Hard-negative captions per image the batch should carry by default (0: none).
    positives : int
        True captions per image the batch should carry by default.
    bias : float, "prior" or None
        Initial learned logit bias (None: the model has none; "prior": the log-odds of a positive
        among the batch's caption columns, −log(C − 1)).
    init_scale : float or None
        Initial logit scale s (None: open_clip's 1/0.07).
    summary : str
        One line for the CLI and the page; the full formula is ``fn.__doc__``.
    """

    name: str
    fn: LossFn
    params: dict[str, Any] = field(default_factory=dict)
    negatives: int = 0
    positives: int = 1
    bias: float | str | None = None
    init_scale: float | None = None
    summary: str = ""

    @property
    def formula(self) -> str:
        """The loss function's docstring (it states the formula)."""
        return (self.fn.__doc__ or "").strip()


OBJECTIVES: dict[str, Objective] = {}


def register_objective(objective: Objective) -> Objective:
    """Add an objective to :data:`OBJECTIVES` (the name must be new)."""
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective '{objective.name}' is already registered")
    OBJECTIVES[objective.name] = objective
    return objective


def _mask(logits: Any, mask: np.ndarray) -> Any:
    import torch

    return logits.masked_fill(torch.from_numpy(mask).to(logits.device), float("-inf"))


def clip_loss(inp: LossInputs) -> dict[str, Any]:
    """Symmetric InfoNCE (CLIP).

    L = ½ [ −1/B Σ_i log softmax_j(s·x_i·y_j)_i  −  1/B Σ_j log softmax_i(s·x_i·y_j)_j ]

    over the B × B matrix of the batch's own captions; columns (rows) whose text equals the image's
    own caption are masked out of its softmax. Hard negatives and extra positives are ignored.
    """
    import torch
    import torch.nn.functional as F

    b = inp.batch_size
    logits = inp.scale * inp.img @ inp.txt.T
    same = np.array([[a == c for c in inp.captions] for a in inp.captions])
    np.fill_diagonal(same, False)
    target = torch.arange(b, device=logits.device)
    l_i2t = F.cross_entropy(_mask(logits, same), target)
    l_t2i = F.cross_entropy(_mask(logits.T, same.T), target)
    return {"loss": 0.5 * (l_i2t + l_t2i), "i2t": l_i2t, "t2i": l_t2i}


def negclip_loss(inp: LossInputs) -> dict[str, Any]:
    """InfoNCE with hard-negative captions (NegCLIP, Yuksekgonul et al. 2023).

    L = ½ [ −1/B Σ_i log ( e^{s·x_i·y_i} / (Σ_j e^{s·x_i·y_j} + Σ_{n ∈ N} e^{s·x_i·ỹ_n}) )
            −1/B Σ_j log softmax_i(s·x_i·y_j)_j ]

    N = every hard-negative caption of the batch (each image's own swaps: attribute, colour,
    relation order, count; with counterfactual image twins, the twin's caption is also a batch
    caption). Negatives join the image→text softmax only (they have no image). Columns whose text
    equals the image's own caption are masked, so a swap that happens to be true is never pushed away.
    """
    import torch
    import torch.nn.functional as F

    b = inp.batch_size
    all_txt = inp.txt if inp.neg is None else torch.cat([inp.txt, inp.neg])
    all_texts = inp.captions + [t for row in inp.neg_texts for t in row]
    logits = inp.scale * inp.img @ all_txt.T
    same = np.array([[a == t for t in all_texts] for a in inp.captions])
    same[np.arange(b), np.arange(b)] = False
    target = torch.arange(b, device=logits.device)
    l_i2t = F.cross_entropy(_mask(logits, same), target)
    t2i = inp.scale * inp.txt @ inp.img.T
    same_t = same[:, :b].T.copy()
    l_t2i = F.cross_entropy(_mask(t2i, same_t), target)
    return {"loss": 0.5 * (l_i2t + l_t2i), "i2t": l_i2t, "t2i": l_t2i}


def multi_positive_loss(inp: LossInputs) -> dict[str, Any]:
    """Several true captions per image, each its own target (no shared probability mass).

    With P_i the true captions of image i (its p captions, plus any identical string in the batch):

    L_i2t = −1/|Q| Σ_i Σ_{c ∈ P_i} log ( e^{s·x_i·y_c} / Σ_{j ∉ P_i \\ {c}} e^{s·x_i·y_j} )
    L_t2i = −1/|Q| Σ_c log ( e^{s·x_o(c)·y_c} / Σ_{i : c ∉ P_i or i = o(c)} e^{s·x_i·y_c} )
    L = ½ (L_i2t + L_t2i)

    Q = all (image, true caption) pairs, o(c) the image caption c was written for. Each caption is
    matched on its own: in row (i, c) the *other* positives of i are masked out of the softmax,
    so they neither compete with c nor share its target (unlike one soft target of mass 1/p each).
    Hard negatives, when present, are extra image→text columns.
    """
    import torch
    import torch.nn.functional as F

    cols, texts, owner = inp.columns()
    logits = inp.scale * inp.img @ cols.T  # (B, C)
    true = inp.true_text_mask(texts)  # (B, C)
    pos_cols = np.flatnonzero(owner >= 0)
    rows = owner[pos_cols]
    i2t_mask = true[rows].copy()  # (Q, C): other positives of the row's image ...
    i2t_mask[np.arange(len(pos_cols)), pos_cols] = False  # ... but not the target itself
    target = torch.from_numpy(pos_cols).to(logits.device)
    l_i2t = F.cross_entropy(_mask(logits[torch.from_numpy(rows).to(logits.device)], i2t_mask), target)
    t2i = logits[:, torch.from_numpy(pos_cols).to(logits.device)].T  # (Q, B)
    t2i_mask = true[:, pos_cols].T.copy()
    t2i_mask[np.arange(len(pos_cols)), rows] = False
    l_t2i = F.cross_entropy(_mask(t2i, t2i_mask), torch.from_numpy(rows).to(logits.device))
    return {"loss": 0.5 * (l_i2t + l_t2i), "i2t": l_i2t, "t2i": l_t2i}


def sigmoid_loss(inp: LossInputs) -> dict[str, Any]:
    """Pairwise sigmoid loss (SigLIP, Zhai et al. 2023), learned scale s and bias b.

    L = −1/B Σ_i Σ_j log σ( z_ij · (s·x_i·y_j + b) ),   z_ij = +1 if caption j is true of image i, else −1

    over every caption column of the batch (own captions, extra positives, hard negatives). Each
    pair is an independent binary decision: no softmax, so nothing is normalised across the batch
    and several true captions per image need no masking. s starts at 10 and b at the prior log-odds
    of a positive, −log(C − 1) for C caption columns, so the many negatives do not dominate the first
    steps: the paper's b = −10 is this prior for its 32k batches; with C = 128 it is −4.8.
    """
    import torch.nn.functional as F

    cols, texts, _owner = inp.columns()
    bias = inp.bias if inp.bias is not None else 0.0
    logits = inp.scale * inp.img @ cols.T + bias
    z = logits.new_tensor(np.where(inp.true_text_mask(texts), 1.0, -1.0))
    per_pair = -F.logsigmoid(z * logits)
    b = inp.batch_size
    pos = (per_pair * (z > 0)).sum() / b
    neg = (per_pair * (z < 0)).sum() / b
    return {"loss": pos + neg, "pos": pos, "neg": neg}


register_objective(Objective(
    "clip", clip_loss, summary="symmetric InfoNCE (CLIP), τ learned or fixed", negatives=0))
register_objective(Objective(
    "negclip", negclip_loss, negatives=1,
    summary="InfoNCE + hard-negative captions (attribute, colour, relation-order, count swaps)"))
register_objective(Objective(
    "multi-positive", multi_positive_loss, positives=2,
    summary="several true captions per image, each its own target, other positives masked"))
register_objective(Objective(
    "sigmoid", sigmoid_loss, bias="prior", init_scale=10.0,
    summary="SigLIP pairwise sigmoid loss, learned scale and bias"))


@dataclass(frozen=True)
class Regularizer:
    """A term added to any objective: ``weight × fn(img, txt)``.

    Attributes
    ----------
    name : str
    fn : callable (img Tensor (B, d), txt Tensor (B, d)) -> Tensor ()
    weight : float
        Default weight.
    summary : str
    """

    name: str
    fn: Callable[[Any, Any], Any]
    weight: float = 1.0
    summary: str = ""

    @property
    def formula(self) -> str:
        """The function's docstring (it states the formula)."""
        return (self.fn.__doc__ or "").strip()


def _offdiag_corr_sq(z: Any) -> Any:
    zc = z - z.mean(0, keepdim=True)
    zc = zc / (zc.norm(dim=0, keepdim=True) + 1e-6)
    c = zc.T @ zc  # (d, d) correlation matrix of the dimensions over the batch
    d = c.shape[0]
    off = c - c.diag().diag()
    return (off**2).sum() / (d * (d - 1))


def decorrelation(img: Any, txt: Any) -> Any:
    """Decorrelation of the embedding dimensions (redundancy reduction, as in Barlow Twins / VICReg).

    R = ½ [ mean_{k≠l} C_img[k,l]² + mean_{k≠l} C_txt[k,l]² ]

    C = the d × d correlation matrix of one modality's embedding dimensions over the batch. It is 0
    when every dimension carries its own information and 1 when all dimensions move together, so
    it keeps the joint space from collapsing onto a few directions.
    """
    return 0.5 * (_offdiag_corr_sq(img) + _offdiag_corr_sq(txt))


REGULARIZERS: dict[str, Regularizer] = {
    "decorrelation": Regularizer("decorrelation", decorrelation, weight=1.0,
                                 summary="mean squared off-diagonal correlation of embedding dimensions"),
}


def mean_abs_dim_corr(emb: np.ndarray) -> float:
    """Mean |off-diagonal correlation| of the dimensions of ``emb`` (N, d): 0 = independent dims.

    The figure the decorrelation regulariser is judged by (on held-out embeddings).
    """
    x = np.asarray(emb, np.float64)
    x = x - x.mean(0)
    x /= np.linalg.norm(x, axis=0) + 1e-12
    c = x.T @ x
    d = c.shape[0]
    return float((np.abs(c).sum() - np.abs(np.diag(c)).sum()) / (d * (d - 1)))


def objective_table() -> list[dict[str, Any]]:
    """Rows ``{"name", "summary", "negatives", "positives", "formula"}`` for listings (CLI, page)."""
    return [{"name": o.name, "summary": o.summary, "negatives": o.negatives, "positives": o.positives,
             "formula": o.formula} for o in OBJECTIVES.values()]
