"""Typographic attacks: a written word that contradicts what is drawn ("red" on a blue circle).

:func:`draw_word` writes a word into an image at a size and position and returns the word's box
(always inside the image: the font shrinks and the box is moved in when needed). :func:`attack_cases`
builds the attack on one-object held-out scenes: for each scene, a colour word or a shape word
different from the object's, the true caption ("a small blue circle") and the caption the written
word claims ("a small red circle"). :func:`TextInImage` is the batch transform used to fine-tune
with words in the images: ``"agree"`` writes a word the caption confirms (as web images with text
teach CLIP to read), ``"random"`` writes any word (the text-in-image augmentation defence: the
written word then predicts nothing, so the model learns to ignore it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from mmexplore.data.shapes import COLORS, HELD_OUT_SEED_START, SHAPES, Scene, canonical_caption, make_scene

WORDS: tuple[str, ...] = (*COLORS, *SHAPES)
# Where a word goes: centre of its box in normalised image coordinates.
POSITIONS: dict[str, tuple[float, float]] = {
    "top-left": (0.25, 0.12),
    "top-right": (0.75, 0.12),
    "bottom-left": (0.25, 0.88),
    "bottom-right": (0.75, 0.88),
    "centre": (0.5, 0.5),
}
# Text height as a share of the image side.
SIZES: tuple[float, ...] = (0.12, 0.18, 0.25)
ATTACK_SEED_OFFSET = 40_000  # held-out seeds of the attack scenes: HELD_OUT_SEED_START + offset + i
TEXT_COLOR = (20, 20, 20)


@dataclass(frozen=True)
class WrittenWord:
    """An image with a word written into it, and where.

    ``box`` is ``(left, top, right, bottom)`` in pixels, inside the image; ``font_px`` the font size.
    """

    image: Image.Image
    word: str
    box: tuple[int, int, int, int]
    font_px: int


def draw_word(
    image: Image.Image,
    word: str,
    *,
    size: float = 0.18,
    position: str | tuple[float, float] = "top-left",
    color: tuple[int, int, int] = TEXT_COLOR,
) -> WrittenWord:
    """Write ``word`` into a copy of ``image``.

    Parameters
    ----------
    image : PIL.Image.Image
    word : str
    size : float
        Font size as a share of the image's shorter side (0.18 on a 128 px image: 23 px).
    position : str or (float, float)
        A key of :data:`POSITIONS` or the box centre ``(x, y)`` in [0, 1] image coordinates.
    color : (int, int, int)

    Returns
    -------
    WrittenWord
        The box lies inside the image: a word too wide for the image is drawn smaller, and a box
        that would cross an edge is moved in.
    """
    out = image.convert("RGB").copy()
    w, h = out.size
    cx, cy = POSITIONS[position] if isinstance(position, str) else position
    px = max(4, round(size * min(w, h)))
    draw = ImageDraw.Draw(out)
    while True:
        font = ImageFont.load_default(size=px)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        tw, th = right - left, bottom - top
        if (tw <= w - 2 and th <= h - 2) or px <= 4:
            break
        px -= 1
    x0 = min(max(1, round(cx * w - tw / 2)), max(1, w - 1 - tw))
    y0 = min(max(1, round(cy * h - th / 2)), max(1, h - 1 - th))
    draw.text((x0 - left, y0 - top), word, fill=color, font=font)
    box = (x0, y0, min(w, x0 + tw), min(h, y0 + th))
    return WrittenWord(out if image.mode == "RGB" else out.convert(image.mode), word, box, px)


@dataclass(frozen=True)
class AttackCase:
    """One typographic attack: a scene, the word written, the true and the claimed caption."""

    scene: Scene
    attribute: str  # "color" or "shape"
    word: str
    true_caption: str
    attacked_caption: str


def attack_case(scene: Scene, attribute: str, rng: random.Random) -> AttackCase:
    """The attack on a one-object scene: a ``attribute`` word ("color" or "shape") other than the object's."""
    obj = scene.objects[0]
    true_caption = canonical_caption(scene).text
    if attribute == "color":
        word = rng.choice([c for c in COLORS if c != obj.color])
        claimed = f"{obj.size} {word} {obj.shape}"
    elif attribute == "shape":
        word = rng.choice([s for s in SHAPES if s != obj.shape])
        claimed = f"{obj.size} {obj.color} {word}"
    else:
        raise ValueError(f"attribute must be 'color' or 'shape', got {attribute!r}")
    return AttackCase(scene, attribute, word, true_caption, true_caption.replace(obj.phrase, claimed))


def attack_cases(n_scenes: int = 60, *, seed_offset: int = ATTACK_SEED_OFFSET) -> list[AttackCase]:
    """Attacks on ``n_scenes`` held-out one-object scenes, alternating colour and shape words."""
    rng = random.Random(seed_offset)
    cases = []
    for i in range(n_scenes):
        scene = make_scene(HELD_OUT_SEED_START + seed_offset + i, n_objects=1)
        cases.append(attack_case(scene, "color" if i % 2 == 0 else "shape", rng))
    return cases


class TextInImage:
    """A training batch transform that writes a word into a share of the images.

    Parameters
    ----------
    mode : {"agree", "random"}
        ``agree``: a colour or shape of an object in the scene (the caption confirms the word);
        ``random``: any word of :data:`WORDS` (it predicts nothing about the caption).
    share : float
        Share of the images that get a word, in [0, 1].
    seed : int
    text_only : float
        ``agree`` only: share of the written images that show *only* text: the scene's first object
        named in words ("red circle") on its blank background, captioned "a red circle". Words
        that merely repeat what is drawn teach nothing (the picture already tells the caption);
        pictures of words, like signs and labels among web images, are what make CLIP read.

    Calling it on a batch ``(images, captions, negatives[, scenes])`` returns the same tuple with
    images replaced; ``written`` counts the images written so far.
    """

    def __init__(self, mode: str, share: float = 0.5, seed: int = 0, text_only: float = 0.0) -> None:
        if mode not in ("agree", "random"):
            raise ValueError(f"mode must be 'agree' or 'random', got {mode!r}")
        if not 0.0 <= share <= 1.0 or not 0.0 <= text_only <= 1.0:
            raise ValueError(f"share and text_only must be in [0, 1], got {share}, {text_only}")
        self.mode, self.share, self.text_only, self.rng = mode, share, text_only, random.Random(seed)
        self.written = 0

    def describe(self) -> dict[str, Any]:
        """The JSON-able settings (stored in the trained model's metrics.json)."""
        return {"text_in_image": self.mode, "share": self.share, "text_only": self.text_only}

    def __call__(self, batch: tuple) -> tuple:
        images, captions, negatives, *rest = batch
        scenes = rest[0] if rest else None
        images, captions, negatives = list(images), list(captions), [list(n) for n in negatives]
        for k, image in enumerate(images):
            if self.rng.random() >= self.share:
                continue
            if self.mode == "agree" and scenes is not None and self.rng.random() < self.text_only:
                obj = scenes[k].objects[0]
                words = self.rng.choice([f"{obj.color} {obj.shape}", obj.color, obj.shape])
                blank = Image.new("RGB", image.size, scenes[k].background)
                images[k] = draw_word(blank, words, size=self.rng.uniform(0.15, 0.3),
                                      position=(self.rng.uniform(0.3, 0.7), self.rng.uniform(0.2, 0.8))).image
                captions[k] = "a " + words
                negatives[k] = [captions[k]] * len(negatives[k])  # masked out by the loss
                self.written += 1
                continue
            if self.mode == "agree" and scenes is not None:
                obj = self.rng.choice(scenes[k].objects)
                word = obj.color if self.rng.random() < 0.5 else obj.shape
            else:
                word = self.rng.choice(WORDS)
            pos = (self.rng.uniform(0.2, 0.8), self.rng.uniform(0.1, 0.9))
            images[k] = draw_word(image, word, size=self.rng.uniform(0.12, 0.28), position=pos).image
            self.written += 1
        return (images, captions, negatives, *rest)
