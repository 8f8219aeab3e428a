"""Optional dense (phrase ↔ patch) alignment term for shapes-world training (``--dense-weight``).

CLIP's loss only aligns the pooled image embedding with the caption, so nothing asks a *patch*
feature to match the words that describe it; on a small model trained from scratch the MaskCLIP patch
features (:mod:`mmexplore.heatmaps.features`) then localise poorly. The shapes world knows every
object's mask, so training can ask for it directly: for one object per image, a description of it
("small red circle", "red circle", "circle" or "red") is embedded by the text tower, the attention
α_i = softmax_i(s · ⟨P_i, t⟩) over the image's patch features P_i is computed exactly as the heatmap
does, and the term is −log Σ_i c_i α_i, where c_i is the fraction of patch i covered by the objects
that the description fits. It is zero when all the attention lies on them.

The term shares the vision pass with the contrastive loss (one unrolled forward gives both the pooled
embedding and the patch features), so it costs one extra text batch per step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

# How an object is described: (probability, attributes named).
DESCRIPTIONS = ((0.45, ("size", "color", "shape")), (0.25, ("color", "shape")), (0.15, ("shape",)), (0.15, ("color",)))


def describe(scene: Any, rng: random.Random) -> tuple[str, list[int]]:
    """A description of one random object of ``scene`` and the indices of every object it fits."""
    obj = scene.objects[rng.randrange(len(scene.objects))]
    attrs = rng.choices([a for _, a in DESCRIPTIONS], weights=[p for p, _ in DESCRIPTIONS])[0]
    text = " ".join(getattr(obj, a) for a in attrs)
    fits = [k for k, o in enumerate(scene.objects) if all(getattr(o, a) == getattr(obj, a) for a in attrs)]
    return text, fits


def patch_coverage(scene: Any, objects: Sequence[int], grid: int, patch_px: int = 8) -> np.ndarray:
    """Fraction of each patch covered by the given objects: ndarray (grid * grid,), float32 in [0, 1]."""
    from mmexplore.data.shapes import object_masks

    masks = object_masks(scene, grid * patch_px)[list(objects)].any(axis=0)
    return masks.reshape(grid, patch_px, grid, patch_px).mean(axis=(1, 3)).reshape(-1).astype(np.float32)


def dense_step(model: Any, pixels: Any, scenes: Sequence[Any], tokenizer: Any, rng: random.Random):
    """Image embeddings and the dense alignment term for one batch.

    Parameters
    ----------
    model : open_clip CLIP (ViT image tower)
    pixels : Tensor (B, 3, S, S)
    scenes : sequence of Scene, one per image
    tokenizer : callable texts -> LongTensor
    rng : random.Random
        Chooses the described object and the description's form.

    Returns
    -------
    (image_features, loss) : Tensor (B, d) unit-norm, Tensor ()
    """
    import torch
    import torch.nn.functional as F

    from mmexplore.heatmaps.features import dense_from_pass, visual_pass

    visual = model.visual
    grid = int(visual.grid_size[0])
    res = visual_pass(visual, pixels)
    img = F.normalize(res.pooled, dim=-1)
    patches = F.normalize(dense_from_pass(visual, res), dim=-1)  # (B, m, d): what the attention heatmap reads
    texts, cover = [], []
    for scene in scenes:
        text, fits = describe(scene, rng)
        texts.append(text)
        cover.append(patch_coverage(scene, fits, grid))
    txt = model.encode_text(tokenizer(texts).to(pixels.device), normalize=True)  # (B, d)
    scale = model.logit_scale.exp().clamp(max=100).detach()
    alpha = torch.softmax(scale * torch.einsum("bmd,bd->bm", patches.float(), txt.float()), dim=-1)
    c = torch.from_numpy(np.stack(cover)).to(alpha.device)
    loss = -torch.log((alpha * c).sum(-1) + 1e-6).mean()
    return img, loss
