"""Typographic attacks: a written word that contradicts what is drawn ("red" on a blue circle).

:func:`draw_word` writes a word into an image at a size and position and returns the word's box
(always inside the image: the font shrinks and the box is moved in when needed). :func:`attack_cases`
builds the attack on one-object held-out scenes: for each scene, a colour word or a shape word
different from the object's, the true caption ("a small blue circle") and the caption the written
word claims ("a small red circle"). :func:`TextInImage` is the batch transform used to fine-tune
with words in the images: ``"agree"`` writes a word the caption confirms (as web images with text
teach CLIP to read), ``"random"`` writes any word (the text-in-image augmentation defence: the
written word then predicts nothing, so the model learns to ignore it); ``"web"`` is the web-like
data that makes a model read: an exact share of the images carries a word the caption confirms, and
in part of them the word is the only clear cue (the named object drawn in neutral grey, or blurred
into a blob), with the caption that contradicts the word as its hard negative.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mmexplore.data.shapes import (
    COLORS,
    HELD_OUT_SEED_START,
    SHAPES,
    Scene,
    ShapeObject,
    canonical_caption,
    make_scene,
    object_masks,
    render_scene,
)

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
NEUTRAL_GREY = (128, 128, 128)
# The text-in-image training modes (``mmexplore train --text-in-image MODE``): name → what it writes.
TEXT_MODES: dict[str, str] = {
    "agree": "a colour or shape word of an object in the scene (the caption confirms it)",
    "random": "any colour or shape word (it predicts nothing: the text-in-image defence)",
    "web": "web-like: an exact share of images carry a word the caption confirms, in part of them the only "
           "clear cue (the object drawn grey or blurred), with the caption the word contradicts as hard negative",
}


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
    stroke: int | None = None,
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
    stroke : int, optional
        Extra stroke width in pixels (PIL's ``stroke_width``, in the text colour). None: 1 px per
        128 px of the shorter side, so that the letters keep a stroke about 1 px wide at the
        bundled model's 64 px input (the plain font's 1 px strokes at 128 px fade to grey when the
        image is halved, and a model hardly learns to read them). 0: the plain font.

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
    sw = max(1, round(min(w, h) / 128)) if stroke is None else max(0, int(stroke))
    draw = ImageDraw.Draw(out)
    while True:
        font = ImageFont.load_default(size=px)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font, stroke_width=sw)
        tw, th = right - left, bottom - top
        if (tw <= w - 2 and th <= h - 2) or px <= 4:
            break
        px -= 1
    x0 = min(max(1, round(cx * w - tw / 2)), max(1, w - 1 - tw))
    y0 = min(max(1, round(cy * h - th / 2)), max(1, h - 1 - th))
    draw.text((x0 - left, y0 - top), word, fill=color, font=font, stroke_width=sw, stroke_fill=color)
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


def hide_attribute(image: Image.Image, scene: Scene, index: int, attribute: str, *,
                   tint: float | None = None) -> Image.Image:
    """``image`` with what the pixels say about one attribute of object ``index`` removed or made unreliable.

    ``attribute="color"``: the object (its mask, grown by a pixel for the anti-aliased edge) is
    painted :data:`NEUTRAL_GREY`, or, with ``tint`` (a hue rotation in turns, e.g. 0.5), drawn in
    that rotated hue, as under coloured light: the picture then shows another colour than the one the
    caption names. ``"shape"``: it is blurred into a blob of its colour (Gaussian radius equal to its
    radius), so a circle, a square and a triangle look alike. Pixels away from the object are unchanged.
    """
    size = image.size[0]
    mask = Image.fromarray((object_masks(scene, size)[index] * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))
    out = image.convert("RGB").copy()
    obj: ShapeObject = scene.objects[index]
    if attribute == "color" and tint is None:
        out.paste(Image.new("RGB", out.size, NEUTRAL_GREY), mask=mask)
    elif attribute == "color":
        hsv = np.asarray(out.convert("HSV"), dtype=np.int32).copy()
        hsv[..., 0] = (hsv[..., 0] + round(tint * 256)) % 256
        out.paste(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), mask=mask)
    elif attribute == "shape":
        radius = max(1.0, obj.radius * size)
        blurred = out.filter(ImageFilter.GaussianBlur(radius))
        region = _dilate(mask, round(radius))
        out.paste(blurred, mask=region)
    else:
        raise ValueError(f"attribute must be 'color' or 'shape', got {attribute!r}")
    return out


def _dilate(mask: Image.Image, r: int) -> Image.Image:
    """``mask`` (mode L) grown by a square of half-side ``r`` px: the same as ``MaxFilter(2r + 1)``.

    Counted with an integral image, O(1) per pixel: the rank filter costs O(r²) per pixel and was
    most of the time of a ``web`` training batch at 128 px.
    """
    on = np.asarray(mask) > 0
    h, w = on.shape
    ii = np.zeros((h + 1, w + 1), dtype=np.int32)
    ii[1:, 1:] = on.cumsum(0).cumsum(1)
    y0 = np.clip(np.arange(h) - r, 0, h)[:, None]
    y1 = np.clip(np.arange(h) + r + 1, 0, h)[:, None]
    x0 = np.clip(np.arange(w) - r, 0, w)[None, :]
    x1 = np.clip(np.arange(w) + r + 1, 0, w)[None, :]
    count = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    return Image.fromarray(np.where(count > 0, 255, 0).astype(np.uint8), "L")


def contradicted_caption(caption: str, obj: ShapeObject, attribute: str, rng: random.Random) -> str | None:
    """``caption`` with ``obj``'s colour (or shape) changed to another value; None when it does not name ``obj``."""
    phrase = f"{obj.color} {obj.shape}"
    if phrase not in caption:
        return None
    if attribute == "color":
        other = f"{rng.choice([c for c in COLORS if c != obj.color])} {obj.shape}"
    else:
        other = f"{obj.color} {rng.choice([s for s in SHAPES if s != obj.shape])}"
    return caption.replace(phrase, other, 1)


class TextInImage:
    """A training batch transform that writes a word into a share of the images.

    Parameters
    ----------
    mode : {"agree", "random", "web"}
        ``agree``: a colour or shape of an object in the scene (the caption confirms the word);
        ``random``: any word of :data:`WORDS` (it predicts nothing about the caption);
        ``web``: a colour or shape of an object the caption names; the share is exact (after n
        images, exactly ⌊n·share⌋ are written, at random places in each batch); a ``cue`` share of
        the written images hides that attribute in the pixels (:func:`hide_attribute`), so the word
        is the only clear cue; the image's hard negatives become the caption the word contradicts
        (:func:`contradicted_caption`). See :data:`TEXT_MODES`.
    share : float
        Share of the images that get a word, in [0, 1].
    seed : int
    text_only : float
        ``agree`` and ``web``: share of the written images that show *only* text: the scene's first
        object named in words ("red circle") on its blank background, captioned "a red circle". Words
        that merely repeat what is drawn teach nothing (the picture already tells the caption);
        pictures of words, like signs and labels among web images, are what make CLIP read.
    cue : float
        ``web`` only: share of the (non-label) written images whose pixels no longer show the
        written attribute, in [0, 1].
    tint : float
        ``web`` only: share of those colour cues drawn in a rotated hue (¼ to ¾ of a turn, as under
        coloured light) instead of grey: the picture shows a wrong colour and the word the right one,
        as on web images whose colours are unreliable and whose text is not.
    swap : float
        ``web`` only: share of the (non-label) written images whose named object is drawn with
        another colour or shape *of the palette* (before any ``cue``), while the caption and the word
        keep the true one: images whose caption transcribes the writing rather than the picture, as
        web captions of signs, posters and packaging do. The picture then contradicts the caption
        in a way the model cannot tell from a clean image, so only reading solves the batch; the
        image's hard negative is the caption of what is drawn (the word's claim against the picture's).
    lie : float
        ``web`` only: share of the (non-label) written images whose word *contradicts* the caption
        (chosen first, before ``swap`` and ``cue``): the picture is drawn as it is and the caption stays
        true to it, and the caption the word claims is the image's hard negative. This is the
        text-in-image defence at the same recipe: a clearly drawn attribute must beat a written word,
        while the word stays the cue where the picture hides the attribute.
    report_words : bool
        Return the words written into each image as a fifth element of the batch tuple (a tuple of
        str per image, empty for none), for the trainer's reading term (``--read-weight``).
    sizes : (float, float)
        Range of the text height as a share of the image side.

    Calling it on a batch ``(images, captions, negatives[, scenes])`` returns the same tuple with
    images replaced; ``seen`` counts the images seen, ``written`` those written, ``cued`` those whose
    attribute was hidden (``tinted`` of them in a wrong hue), ``swapped`` those drawn with another
    palette value, ``lied`` those whose word contradicts the caption, ``labels`` the label-only pictures.
    """

    def __init__(self, mode: str, share: float = 0.5, seed: int = 0, text_only: float = 0.0, cue: float = 0.0,
                 tint: float = 0.0, swap: float = 0.0, sizes: tuple[float, float] = (0.12, 0.28), lie: float = 0.0,
                 report_words: bool = False) -> None:
        if mode not in TEXT_MODES:
            raise ValueError(f"mode must be one of {', '.join(TEXT_MODES)}, got {mode!r}")
        for name, v in (("share", share), ("text_only", text_only), ("cue", cue), ("tint", tint), ("swap", swap), ("lie", lie)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if not 0 < sizes[0] <= sizes[1] <= 1:
            raise ValueError(f"sizes must be 0 < low <= high <= 1, got {sizes}")
        self.mode, self.share, self.text_only, self.cue, self.tint, self.swap = mode, share, text_only, cue, tint, swap
        self.lie, self.report_words = lie, report_words
        self.sizes = tuple(sizes)
        self.rng = random.Random(seed)
        self.seen = self.written = self.cued = self.tinted = self.swapped = self.lied = self.labels = 0

    def describe(self) -> dict[str, Any]:
        """The JSON-able settings (stored in the trained model's metrics.json)."""
        out: dict[str, Any] = {"text_in_image": self.mode, "share": self.share, "text_only": self.text_only}
        if self.mode == "web":
            out.update(cue=self.cue, tint=self.tint, swap=self.swap, sizes=list(self.sizes))
            if self.lie:
                out["lie"] = self.lie
        return out

    def _web_chosen(self, n: int) -> set[int]:
        """Which of the next ``n`` images get a word in ``web`` mode: exactly ⌊n·share⌋ overall, at random places."""
        due = int((self.seen + n) * self.share + 1e-9) - int(self.seen * self.share + 1e-9)
        return set(self.rng.sample(range(n), due))

    def _label(self, image: Image.Image, scene: Scene) -> tuple[Image.Image, str]:
        obj = scene.objects[0]
        words = self.rng.choice([f"{obj.color} {obj.shape}", obj.color, obj.shape])
        blank = Image.new("RGB", image.size, scene.background)
        out = draw_word(blank, words, size=self.rng.uniform(0.15, 0.3),
                        position=(self.rng.uniform(0.3, 0.7), self.rng.uniform(0.2, 0.8))).image
        return out, "a " + words

    def _web(self, image: Image.Image, caption: str, scene: Scene,
             n_neg: int) -> tuple[Image.Image, list[str] | None, str]:
        """One ``web`` image: a word the caption confirms, the attribute hidden in a ``cue`` share.

        Returns the image, its hard negatives (None: keep the stream's) and the word written.
        """
        attribute = "color" if self.rng.random() < 0.5 else "shape"
        named = [i for i, o in enumerate(scene.objects) if f"{o.color} {o.shape}" in caption]
        i = self.rng.choice(named) if named else 0
        obj = scene.objects[i]
        phrase = f"{obj.color} {obj.shape}"
        if named and self.lie > 0 and self.rng.random() < self.lie:
            # A word that contradicts caption and picture; the caption it claims is the hard negative.
            word = self.rng.choice([v for v in (COLORS if attribute == "color" else SHAPES) if v != getattr(obj, attribute)])
            claimed = replace(obj, **{attribute: word})
            negatives = [caption.replace(phrase, f"{claimed.color} {claimed.shape}", 1)] * n_neg
            self.lied += 1
        elif named and self.swap > 0 and self.rng.random() < self.swap:
            # The object drawn with another colour (shape) of the palette; caption and word keep the true one.
            other = self.rng.choice([v for v in (COLORS if attribute == "color" else SHAPES) if v != getattr(obj, attribute)])
            drawn = replace(obj, **{attribute: other})
            image = render_scene(replace(scene, objects=(*scene.objects[:i], drawn, *scene.objects[i + 1:])), image.size[0])
            word = getattr(obj, attribute)
            # The hard negative is the caption of what is drawn, the exact contest of the attack (the
            # word against the picture); a random other value would rarely be the pictured one.
            negatives = [caption.replace(phrase, f"{drawn.color} {drawn.shape}", 1)] * n_neg
            self.swapped += 1
        else:
            if named and self.rng.random() < self.cue:
                tinted = attribute == "color" and self.rng.random() < self.tint
                image = hide_attribute(image, scene, i, attribute, tint=self.rng.uniform(0.25, 0.75) if tinted else None)
                self.cued += 1
                self.tinted += tinted
            word = getattr(obj, attribute)
            wrong = contradicted_caption(caption, obj, attribute, self.rng)
            negatives = None if wrong is None else [wrong] * n_neg
        size = self.rng.uniform(*self.sizes)
        pos = (self.rng.uniform(0.2, 0.8), self.rng.uniform(0.1, 0.9))
        return draw_word(image, word, size=size, position=pos).image, negatives, word

    def __call__(self, batch: tuple) -> tuple:
        images, captions, negatives, *rest = batch
        scenes = rest[0] if rest else None
        images, captions, negatives = list(images), list(captions), [list(n) for n in negatives]
        web = self.mode == "web"
        if web and scenes is None:
            raise ValueError("text-in-image 'web' needs the batch's scenes (which object the caption names)")
        chosen = self._web_chosen(len(images)) if web else None
        self.seen += len(images)
        words: list[tuple[str, ...]] = [() for _ in images]
        for k, image in enumerate(images):
            # agree/random draw from the generator in the order they always did (the shipped runs replay).
            if (k not in chosen) if web else (self.rng.random() >= self.share):
                continue
            self.written += 1
            if self.mode in ("agree", "web") and scenes is not None and self.rng.random() < self.text_only:
                images[k], captions[k] = self._label(image, scenes[k])
                negatives[k] = [captions[k]] * len(negatives[k])  # masked out by the loss
                words[k] = (captions[k].removeprefix("a "),)
                self.labels += 1
                continue
            if web and scenes is not None:
                images[k], wrong, word = self._web(image, captions[k], scenes[k], len(negatives[k]))
                negatives[k] = wrong if wrong is not None else negatives[k]
                words[k] = (word,)
                continue
            if self.mode == "agree" and scenes is not None:
                obj = self.rng.choice(scenes[k].objects)
                word = obj.color if self.rng.random() < 0.5 else obj.shape
            else:
                word = self.rng.choice(WORDS)
            pos = (self.rng.uniform(0.2, 0.8), self.rng.uniform(0.1, 0.9))
            images[k] = draw_word(image, word, size=self.rng.uniform(*self.sizes), position=pos).image
            words[k] = (word,)
        return (images, captions, negatives, *rest, words) if self.report_words else (images, captions, negatives, *rest)
