"""Measured quality of a model on held-out shapes-world scenes (``mmexplore eval retrieval``).

For ``n_scenes`` held-out scenes (seeds from :data:`~mmexplore.data.shapes.HELD_OUT_SEED_START`), drawn
by each registered renderer (:mod:`mmexplore.data.renderers`: the training renderer "train", the
independent renderer "alt" and the hand-drawn "sketch" renderer):

- image→text and text→image recall@K against the scenes' canonical captions; identical caption
  strings count as the same pair (two scenes with "a small red circle" both match it);
- hard-negative accuracy per kind: the share of scenes where the true caption scores above its
  perturbed version (``color_swap`` is "colour binding", ``relation_swap`` "relation order").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmexplore.data.renderers import draw_scene, renderer_names
from mmexplore.data.shapes import (
    HELD_OUT_SEED_START,
    NEGATIVE_KINDS,
    canonical_caption,
    count_caption,
    hard_negative,
    make_scene,
)
from mmexplore.metrics.similarity import cosine_matrix, recall_at_k

RENDERERS = renderer_names()
# Reported names of two negative kinds (the course notes' words).
NEGATIVE_NAMES = {"color_swap": "color_binding", "relation_swap": "relation_order"}


def held_out_scenes(n_scenes: int = 200, seed_offset: int = 0) -> list:
    """The ``n_scenes`` held-out scenes (deterministic)."""
    return [make_scene(HELD_OUT_SEED_START + seed_offset + i) for i in range(n_scenes)]


def render(scene, renderer: str, size: int | None = None):
    """Draw a held-out scene with the named renderer (:data:`RENDERERS`), its style seeded by the scene.

    ``size`` None is each renderer's own canvas (``train`` 128 px; ``alt`` and ``sketch`` vary with
    the style), which is what every evaluation uses.
    """
    return draw_scene(scene, renderer, size)


@dataclass
class RetrievalProbe:
    """The held-out scenes, their canonical captions and hard negatives that retrieval is scored on.

    Attributes
    ----------
    scenes : list of Scene
    texts : list of str
        Canonical caption of each scene (``len(scenes)``).
    neg_items : list of (scene index, kind, true text, negative text)
        One hard negative per kind and scene where the kind applies (count changes use count captions).
    all_texts : list of str
        Every distinct text to embed (captions, count captions, negatives), sorted.
    """

    scenes: list
    texts: list[str]
    neg_items: list[tuple[int, str, str, str]]
    all_texts: list[str]

    @property
    def text_index(self) -> dict[str, int]:
        """Row of each text in ``all_texts``."""
        return {t: k for k, t in enumerate(self.all_texts)}


def retrieval_probe(n_scenes: int = 200) -> RetrievalProbe:
    """The deterministic probe of :func:`evaluate_retrieval` (also used live by the trainer)."""
    scenes = held_out_scenes(n_scenes)
    captions = [canonical_caption(s) for s in scenes]
    texts = [c.text for c in captions]
    rng = random.Random(0)
    neg_items: list[tuple[int, str, str, str]] = []
    for i, (scene, cap) in enumerate(zip(scenes, captions, strict=True)):
        for kind in NEGATIVE_KINDS:
            base = count_caption(scene) if kind == "count_change" else cap
            neg = hard_negative(base, kind, rng)
            if neg is not None:
                neg_items.append((i, kind, base.text, neg.text))
    all_texts = sorted(set(texts) | {t for _, _, t, _ in neg_items} | {n for *_, n in neg_items})
    return RetrievalProbe(scenes, texts, neg_items, all_texts)


def score_retrieval(
    probe: RetrievalProbe, img_emb: np.ndarray, text_emb: np.ndarray, ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Recall@K both ways and hard-negative accuracy per kind from embeddings of a probe.

    Parameters
    ----------
    probe : RetrievalProbe
    img_emb : ndarray (len(probe.scenes), d)
        Unit-norm image embeddings, one per scene.
    text_emb : ndarray (len(probe.all_texts), d)
        Unit-norm text embeddings, rows in ``probe.all_texts`` order.

    Returns
    -------
    dict
        ``"i2t@K"``, ``"t2i@K"``, ``"color_binding"``, ``"relation_order"``, ``"shape_change"``,
        ``"size_swap"``, ``"count_change"`` (accuracies in [0, 1]), ``"n_*"`` counts, ``"n_scenes"``.
    """
    index = probe.text_index
    cap_emb = text_emb[[index[t] for t in probe.texts]]
    pairs = np.array([[a == b for b in probe.texts] for a in probe.texts])
    cos = cosine_matrix(img_emb, cap_emb)
    res: dict[str, float] = {"n_scenes": float(len(probe.scenes))}
    for k in ks:
        res[f"i2t@{k}"] = recall_at_k(cos, pairs, k)
        res[f"t2i@{k}"] = recall_at_k(cos.T, pairs.T, k)
    per_kind: dict[str, list[bool]] = {k: [] for k in NEGATIVE_KINDS}
    for i, kind, true_text, neg_text in probe.neg_items:
        s_true = float(img_emb[i] @ text_emb[index[true_text]])
        s_neg = float(img_emb[i] @ text_emb[index[neg_text]])
        per_kind[kind].append(s_true > s_neg)
    for kind, wins in per_kind.items():
        name = NEGATIVE_NAMES.get(kind, kind)
        res[name] = float(np.mean(wins)) if wins else float("nan")
        res[f"n_{name}"] = float(len(wins))
    return res


def evaluate_retrieval(
    encoder: Any,
    *,
    n_scenes: int = 200,
    renderers: tuple[str, ...] = RENDERERS,
    ks: tuple[int, ...] = (1, 5),
    use_cache: bool = True,
    image_transform: Callable[[Any, int], Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Recall and hard-negative accuracy of ``encoder`` per renderer.

    ``image_transform(image, k)``, when given, changes scene k's rendered image before it is
    encoded (the robustness lab's corruptions); captions are unchanged.

    Returns
    -------
    dict
        ``{renderer: {"i2t@1", "t2i@1", ..., "color_binding", "relation_order", "shape_change",
        "size_swap", "count_change", "n_scenes"}}``; accuracies in [0, 1].
    """
    probe = retrieval_probe(n_scenes)
    text_emb = encoder.encode_texts(probe.all_texts, use_cache=use_cache)
    out: dict[str, dict[str, float]] = {}
    for renderer in renderers:
        images = [render(s, renderer) for s in probe.scenes]
        if image_transform is not None:
            images = [image_transform(im, k) for k, im in enumerate(images)]
        img_emb = encoder.encode_images(images, use_cache=use_cache)
        out[renderer] = score_retrieval(probe, img_emb, text_emb, ks)
    return out
