"""Measured quality of a model on held-out shapes-world scenes (``mmexplore eval retrieval``).

For ``n_scenes`` held-out scenes (seeds from :data:`~mmexplore.data.shapes.HELD_OUT_SEED_START`), drawn
by the training renderer ("train") and by the independent renderer ("alt"):

- image→text and text→image recall@K against the scenes' canonical captions; identical caption
  strings count as the same pair (two scenes with "a small red circle" both match it);
- hard-negative accuracy per kind: the share of scenes where the true caption scores above its
  perturbed version (``color_swap`` is "colour binding", ``relation_swap`` "relation order").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from mmexplore.data.shapes import (
    HELD_OUT_SEED_START,
    NEGATIVE_KINDS,
    canonical_caption,
    count_caption,
    hard_negative,
    make_scene,
    render_scene,
)
from mmexplore.data.shapes_alt import render_scene_alt
from mmexplore.metrics.similarity import cosine_matrix, recall_at_k

RENDERERS = ("train", "alt")


def held_out_scenes(n_scenes: int = 200, seed_offset: int = 0) -> list:
    """The ``n_scenes`` held-out scenes (deterministic)."""
    return [make_scene(HELD_OUT_SEED_START + seed_offset + i) for i in range(n_scenes)]


def render(scene, renderer: str, size: int = 128):
    """Draw a scene with the named renderer ("train" or "alt")."""
    if renderer == "train":
        return render_scene(scene, size)
    if renderer == "alt":
        return render_scene_alt(scene, style_seed=scene.seed)
    raise ValueError(f"unknown renderer '{renderer}'; choose one of {RENDERERS}")


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
    scenes = held_out_scenes(n_scenes)
    captions = [canonical_caption(s) for s in scenes]
    texts = [c.text for c in captions]
    rng = random.Random(0)
    # Hard negatives: one per kind and scene where the kind applies (count changes use count captions).
    neg_items: list[tuple[int, str, str, str]] = []  # (scene index, kind, true text, negative text)
    for i, (scene, cap) in enumerate(zip(scenes, captions, strict=True)):
        for kind in NEGATIVE_KINDS:
            base = count_caption(scene) if kind == "count_change" else cap
            neg = hard_negative(base, kind, rng)
            if neg is not None:
                neg_items.append((i, kind, base.text, neg.text))
    all_texts = sorted(set(texts) | {t for _, _, t, _ in neg_items} | {n for *_, n in neg_items})
    text_index = {t: k for k, t in enumerate(all_texts)}
    text_emb = encoder.encode_texts(all_texts, use_cache=use_cache)
    cap_emb = text_emb[[text_index[t] for t in texts]]
    pairs = np.array([[a == b for b in texts] for a in texts])
    out: dict[str, dict[str, float]] = {}
    for renderer in renderers:
        images = [render(s, renderer) for s in scenes]
        if image_transform is not None:
            images = [image_transform(im, k) for k, im in enumerate(images)]
        img_emb = encoder.encode_images(images, use_cache=use_cache)
        cos = cosine_matrix(img_emb, cap_emb)
        res: dict[str, float] = {"n_scenes": float(n_scenes)}
        for k in ks:
            res[f"i2t@{k}"] = recall_at_k(cos, pairs, k)
            res[f"t2i@{k}"] = recall_at_k(cos.T, pairs.T, k)
        per_kind: dict[str, list[bool]] = {k: [] for k in NEGATIVE_KINDS}
        for i, kind, true_text, neg_text in neg_items:
            s_true = float(img_emb[i] @ text_emb[text_index[true_text]])
            s_neg = float(img_emb[i] @ text_emb[text_index[neg_text]])
            per_kind[kind].append(s_true > s_neg)
        names = {"color_swap": "color_binding", "relation_swap": "relation_order"}
        for kind, wins in per_kind.items():
            res[names.get(kind, kind)] = float(np.mean(wins)) if wins else float("nan")
            res[f"n_{names.get(kind, kind)}"] = float(len(wins))
        out[renderer] = res
    return out
