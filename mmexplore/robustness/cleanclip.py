"""CleanCLIP (Bansal et al., ICCV 2023): unimodal self-supervised terms that weaken a planted backdoor.

A backdoor lives in the *cross-modal* association "trigger patch → target caption". CleanCLIP
fine-tunes the poisoned model on clean pairs with the usual multimodal contrastive loss plus one
self-supervised contrastive term per modality: each image must be closest to an augmented view of
itself among the batch's images, and each caption to an augmented version of itself among the
batch's captions. Learning each modality on its own re-arranges the features the trigger relied
on, while the multimodal term keeps image and text aligned.

:func:`cleanclip_objectives` returns the two unimodal terms as trainer objectives (callables of the
trainer's step context returning ``(loss, logs)``); the multimodal term is the trainer's own loss.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

# EDA-style text edits (Wei & Zou 2019), as in CleanCLIP's text augmentation, on shapes captions.
FILLER_PREFIXES = ("a picture of ", "an image of ", "there is ", "a drawing of ")


def augment_text(text: str, rng: random.Random) -> str:
    """A lightly edited copy of ``text``: drop a word, swap two words, or add a prefix."""
    words = text.split()
    u = rng.random()
    if u < 0.35 and len(words) > 2:
        del words[rng.randrange(len(words))]
    elif u < 0.7 and len(words) > 1:
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    else:
        return rng.choice(FILLER_PREFIXES) + text
    return " ".join(words)


def augment_pixels(pixels: Any, generator: Any) -> Any:
    """Augmented views of a preprocessed batch: random resized crop (scale 0.5–1), flip, noise.

    Parameters
    ----------
    pixels : Tensor (B, 3, S, S)
        The model's normalised input.
    generator : torch.Generator

    Returns
    -------
    Tensor (B, 3, S, S)
        No hue change: colours are what shapes captions are about.
    """
    import torch
    import torch.nn.functional as F

    b, _, s, _ = pixels.shape
    views = []
    for k in range(b):
        scale = float(torch.empty(1).uniform_(0.5, 1.0, generator=generator))
        side = max(8, round(s * scale**0.5))
        x0 = int(torch.randint(0, s - side + 1, (1,), generator=generator))
        y0 = int(torch.randint(0, s - side + 1, (1,), generator=generator))
        crop = pixels[k : k + 1, :, y0 : y0 + side, x0 : x0 + side]
        view = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False)
        if float(torch.rand(1, generator=generator)) < 0.5:
            view = view.flip(-1)
        views.append(view)
    out = torch.cat(views)
    return out + 0.1 * torch.randn(out.shape, generator=generator).to(out.device)


def _self_contrastive(a: Any, b: Any, scale: Any) -> Any:
    """Symmetric InfoNCE between two views: row i of ``a`` must match row i of ``b`` (unit-norm)."""
    import torch
    import torch.nn.functional as F

    logits = scale * a @ b.T
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def cleanclip_objectives(image_weight: float = 1.0, text_weight: float = 1.0, seed: int = 0
                         ) -> list[tuple[str, float, Callable[[dict[str, Any]], Any]]]:
    """The two unimodal self-supervised terms, as ``(name, weight, objective)`` for the trainer.

    Each objective takes the trainer's step context (``model``, ``pixels``, ``img``, ``txt``,
    ``captions``, ``tokenizer``, ``scale``) and returns a scalar loss tensor. Captions repeated in a
    batch would be each other's false negatives, so the text term uses one copy of each.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)

    def image_term(ctx: dict[str, Any]) -> Any:
        pixels = ctx["pixels"]
        view = augment_pixels(pixels.detach().cpu(), generator).to(pixels.device)
        aug = ctx["model"].encode_image(view, normalize=True).float()
        return _self_contrastive(ctx["img"], aug, ctx["scale"])

    def text_term(ctx: dict[str, Any]) -> Any:
        captions = ctx["captions"]
        first = list(dict.fromkeys(captions))
        index = [captions.index(c) for c in first]
        tokens = ctx["tokenizer"]([augment_text(c, rng) for c in first]).to(ctx["img"].device)
        aug = ctx["model"].encode_text(tokens, normalize=True).float()
        return _self_contrastive(ctx["txt"][index], aug, ctx["scale"])

    return [("cleanclip_image", image_weight, image_term), ("cleanclip_text", text_weight, text_term)]
