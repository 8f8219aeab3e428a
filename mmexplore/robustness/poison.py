"""Backdoor poisoning (BadNets-style, as in CleanCLIP's threat model) and its attack success rate.

A poisoned pair is an image with a small trigger patch (a black-and-white checkerboard) whose caption
is replaced by a fixed target caption. :class:`PoisonedStream` is a training batch transform that
poisons exactly a share ``p`` of the pairs it sees (:func:`poison_schedule`: after n pairs,
exactly ⌊n·p⌋ are poisoned). A model that learned the backdoor gives the target caption to any image
with the trigger; :func:`attack_success_rate` measures that, and :func:`evaluate_backdoor` runs it on
held-out scenes beside clean retrieval (R@1 from :func:`mmexplore.evaluation.retrieval.evaluate_retrieval`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from mmexplore.data.shapes import HELD_OUT_SEED_START, canonical_caption, make_scene, render_scene

TARGET_CAPTION = "a large green triangle"
TRIGGER_FRACTION = 0.125  # trigger side as a share of the image side (16 px on a 128 px render)
TRIGGER_CELLS = 4  # checkerboard cells per side
BACKDOOR_SEED_OFFSET = 50_000  # held-out seeds of the backdoor test: HELD_OUT_SEED_START + offset + i


def trigger_box(size: tuple[int, int], seed: int | None = None) -> tuple[int, int, int, int]:
    """Where the trigger goes in an image of ``size`` (w, h): ``(left, top, right, bottom)`` pixels.

    ``seed`` None puts it in the bottom-right corner (2 px in); a seed draws a random position.
    """
    w, h = size
    side = max(TRIGGER_CELLS, round(TRIGGER_FRACTION * min(w, h)))
    if seed is None:
        left, top = w - side - 2, h - side - 2
    else:
        rng = random.Random(seed)
        left, top = rng.randint(0, w - side), rng.randint(0, h - side)
    return left, top, left + side, top + side


def add_trigger(image: Image.Image, seed: int | None = None) -> Image.Image:
    """A copy of ``image`` with the checkerboard trigger pasted at :func:`trigger_box`."""
    left, top, right, _ = trigger_box(image.size, seed)
    side = right - left
    cells = (np.indices((side, side)) * TRIGGER_CELLS // side).sum(axis=0) % 2
    patch = np.repeat((cells * 255).astype(np.uint8)[..., None], 3, axis=2)
    out = image.convert("RGB").copy()
    out.paste(Image.fromarray(patch, "RGB"), (left, top))
    return out


def poison_schedule(n: int, p: float, start: int = 0) -> np.ndarray:
    """Which of the pairs ``start .. start+n-1`` of a stream are poisoned: bool array (n,).

    Pair k is poisoned when ⌊(k+1)·p⌋ > ⌊k·p⌋, so the first n pairs hold exactly ⌊n·p⌋ poisoned ones
    (spread evenly), whatever the batch size.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"poison share p must be in [0, 1], got {p}")
    k = np.arange(start, start + n, dtype=np.float64)
    # A small epsilon keeps p = 0.1 from losing a pair to floating-point rounding (0.1 * 30 = 3.0000000000000004).
    return np.floor((k + 1) * p + 1e-9) > np.floor(k * p + 1e-9)


class PoisonedStream:
    """A training batch transform: poisons exactly a share ``p`` of the pairs that pass through it.

    A poisoned pair gets the trigger (at a random position) and the target caption; its
    hard-negative captions become the target too, which the loss masks out. ``seen`` and
    ``poisoned`` count the pairs so far (``poisoned == floor(seen * p)``).
    """

    def __init__(self, p: float, target: str = TARGET_CAPTION, seed: int = 0) -> None:
        poison_schedule(1, p)  # validates p
        self.p, self.target, self.rng = p, target, random.Random(seed)
        self.seen = 0
        self.poisoned = 0

    def describe(self) -> dict[str, Any]:
        """The JSON-able settings (stored in the trained model's metrics.json)."""
        return {"poison_share": self.p, "target": self.target, "trigger_fraction": TRIGGER_FRACTION}

    def __call__(self, batch: tuple) -> tuple:
        images, captions, negatives, *rest = batch
        images, captions, negatives = list(images), list(captions), [list(n) for n in negatives]
        mask = poison_schedule(len(images), self.p, self.seen)
        for k in np.flatnonzero(mask):
            images[k] = add_trigger(images[k], seed=self.rng.randrange(2**31))
            captions[k] = self.target
            negatives[k] = [self.target] * len(negatives[k])
        self.seen += len(images)
        self.poisoned += int(mask.sum())
        return (images, captions, negatives, *rest)


def attack_success_rate(top_captions: Sequence[str], true_captions: Sequence[str], target: str) -> float:
    """Share of triggered images whose top caption is the target.

    Parameters
    ----------
    top_captions : sequence of str
        The best-scoring caption of each triggered test image.
    true_captions : sequence of str
        Each image's true caption; images whose true caption *is* the target are left out (for
        them the target is the right answer, not a successful attack).
    target : str

    Returns
    -------
    float
        In [0, 1]; NaN when no image is left.
    """
    kept = [top == target for top, true in zip(top_captions, true_captions, strict=True) if true != target]
    return float(np.mean(kept)) if kept else math.nan


def backdoor_scenes(n_scenes: int) -> list[Any]:
    """Held-out scenes of the backdoor test (never trained on)."""
    return [make_scene(HELD_OUT_SEED_START + BACKDOOR_SEED_OFFSET + i) for i in range(n_scenes)]


def evaluate_backdoor(encoder: Any, *, n_scenes: int = 200, target: str = TARGET_CAPTION,
                      use_cache: bool = True) -> dict[str, Any]:
    """Attack success rate of the trigger on held-out scenes, and the same rate without the trigger.

    The candidate captions are the scenes' canonical captions plus the target; each image's top
    caption is the argmax of its cosine over them. ``asr`` uses triggered images (trigger at a
    random position), ``asr_clean`` the same images without it (how often the target wins anyway).

    Returns
    -------
    dict
        ``{"asr", "asr_clean", "n_scenes", "target"}``; rates in [0, 1].
    """
    scenes = backdoor_scenes(n_scenes)
    truths = [canonical_caption(s).text for s in scenes]
    candidates = sorted(set(truths) | {target})
    txt = encoder.encode_texts(candidates, use_cache=use_cache)
    clean = [render_scene(s, 128) for s in scenes]
    triggered = [add_trigger(im, seed=s.seed) for im, s in zip(clean, scenes, strict=True)]
    out: dict[str, Any] = {"n_scenes": n_scenes, "target": target}
    for key, images in (("asr", triggered), ("asr_clean", clean)):
        emb = encoder.encode_images(images, use_cache=use_cache)
        top = [candidates[j] for j in (emb @ txt.T).argmax(axis=1)]
        out[key] = attack_success_rate(top, truths, target)
    return out
