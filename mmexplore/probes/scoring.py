"""Scoring an image against a caption and its perturbations, for a model and a bag-of-words baseline.

A pair *passes* a perturbation when the image scores strictly higher with the true caption than
with the perturbed one; an exact tie counts as half a pass (a coin toss would break it). The
bag-of-words baseline embeds a caption as the normalised mean of its single-word text embeddings,
in sorted word order, so any two captions with the same words get the *same* vector: it ties on
every word-order perturbation (attribute swap, relation swap, shuffle) and so scores 0.5 there. A
model above that uses word order; a model at it reads captions as bags of words — the finding of
Yuksekgonul et al. (ARO, ICLR 2023), which NegCLIP's hard-negative captions partly repair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mmexplore.probes.perturb import PERTURBATION_KINDS, Perturbation, perturb_caption

TIE_TOL = 1e-6


def caption_words(text: str) -> list[str]:
    """Lower-case words of a caption without punctuation (the bag of words)."""
    return [w for w in re.findall(r"[\w']+", str(text).lower()) if w]


def bag_of_words_embeddings(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """Normalised mean of single-word text embeddings per caption, shape (n_texts, embed_dim).

    Words are averaged in sorted order so that equal bags give bit-identical vectors.
    """
    bags = [sorted(caption_words(t)) or [""] for t in texts]
    vocab = sorted({w for bag in bags for w in bag})
    word_emb = encoder.encode_texts(vocab)
    where = {w: i for i, w in enumerate(vocab)}
    out = np.stack([word_emb[[where[w] for w in bag]].mean(axis=0) for bag in bags]).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def pass_value(true_score: float, perturbed_score: float) -> float:
    """1 when the true caption wins, 0.5 on a tie, 0 when the perturbation wins."""
    if abs(true_score - perturbed_score) <= TIE_TOL:
        return 0.5
    return 1.0 if true_score > perturbed_score else 0.0


@dataclass
class ProbeRow:
    """One perturbation of a caption, scored against the image (cosine similarities)."""

    kind: str
    text: str
    score: float
    passed: bool
    bow_score: float
    bow_pass: float


@dataclass
class ProbeResult:
    """A caption, its cosine with the image, and every perturbation's row."""

    caption: str
    score: float
    bow_score: float
    rows: list[ProbeRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "score": self.score, "bow_score": self.bow_score,
                "perturbations": [asdict(r) for r in self.rows]}


def score_probes(
    encoder: Any,
    image_embeddings: np.ndarray,
    captions: Sequence[str],
    *,
    kinds: tuple[str, ...] = PERTURBATION_KINDS,
    seed: int = 0,
    bag_of_words: bool = True,
) -> list[ProbeResult]:
    """Probe each (image, caption) pair with the perturbations of its caption.

    Parameters
    ----------
    encoder : Encoder
    image_embeddings : ndarray of shape (n_pairs, embed_dim)
        Unit-norm image embeddings, row i paired with ``captions[i]``.
    captions : sequence of str, length n_pairs
    kinds, seed
        As for :func:`~mmexplore.probes.perturb.perturb_caption`.
    bag_of_words : bool
        Also score the bag-of-words baseline (else its fields are NaN).

    Returns
    -------
    list of ProbeResult
        One per pair; all texts are embedded in one batch.
    """
    perturbed: list[list[Perturbation]] = [perturb_caption(c, kinds, seed) for c in captions]
    texts = sorted(set(captions) | {p.text for ps in perturbed for p in ps})
    at = {t: i for i, t in enumerate(texts)}
    emb = encoder.encode_texts(texts)
    bow = bag_of_words_embeddings(encoder, texts) if bag_of_words else None
    img = np.asarray(image_embeddings, dtype=np.float32)
    results = []
    for i, (cap, ps) in enumerate(zip(captions, perturbed, strict=True)):
        s_true = float(img[i] @ emb[at[cap]])
        b_true = float(img[i] @ bow[at[cap]]) if bow is not None else float("nan")
        res = ProbeResult(cap, s_true, b_true)
        for p in ps:
            s = float(img[i] @ emb[at[p.text]])
            b = float(img[i] @ bow[at[p.text]]) if bow is not None else float("nan")
            res.rows.append(ProbeRow(p.kind, p.text, s, pass_value(s_true, s) == 1.0, b,
                                     pass_value(b_true, b) if bow is not None else float("nan")))
        results.append(res)
    return results


def accuracy_by_kind(results: Sequence[ProbeResult], kinds: tuple[str, ...] = PERTURBATION_KINDS) -> dict[str, dict[str, float]]:
    """Per kind: ``{"model", "bag_of_words", "n"}`` accuracies in [0, 1] (NaN where n = 0).

    Only perturbations that changed the caption are counted (no-ops were dropped upstream).
    """
    out: dict[str, dict[str, float]] = {}
    for kind in kinds:
        rows = [r for res in results for r in res.rows if r.kind == kind]
        n = len(rows)
        model = np.mean([pass_value(res.score, r.score) for res in results for r in res.rows if r.kind == kind]) if n else np.nan
        bow = np.mean([r.bow_pass for r in rows]) if n else np.nan
        out[kind] = {"model": float(model), "bag_of_words": float(bow), "n": n}
    return out
