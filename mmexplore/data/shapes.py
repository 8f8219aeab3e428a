"""The shapes world: procedurally generated image–caption pairs with exact ground truth.

A :class:`Scene` is a plain description (objects with shape, colour, size, position); it is drawn by
:func:`render_scene` (PIL, the training renderer) or by :mod:`mmexplore.data.shapes_alt` (an
independent numpy renderer used to test generalisation). Captions come from the scene graph and
carry, for every object they mention, the phrase and its character and word span. Hard negatives
(NegCLIP / ARO style) perturb one thing at a time: swapped colours, swapped relation order, a wrong
shape, a wrong size or a wrong count.

Everything is deterministic by seed: ``make_scene(seed)`` always returns the same scene.

Coordinates are normalised to the canvas: ``cx, cy`` in [0, 1] (y grows downwards, as in images),
``radius`` as a fraction of the canvas width.

>>> scene = make_scene(7, n_objects=2)
>>> caption = canonical_caption(scene)
>>> len(caption.phrases)
2
>>> render_scene(scene, size=64).size
(64, 64)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (45, 85, 220),
    "yellow": (235, 200, 25),
}
SIZES: dict[str, tuple[float, float]] = {"small": (0.075, 0.10), "large": (0.15, 0.19)}
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
# The vocabulary by attribute, in the orders above (what the relation estimators read words into).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {"size": tuple(SIZES), "color": tuple(COLORS), "shape": SHAPES}
OPPOSITE_RELATION: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")
PLURALS: dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles"}
CAPTION_PREFIXES: tuple[str, ...] = ("", "a picture of ", "an image of ", "there is ", "a drawing of ")
NEGATIVE_KINDS: tuple[str, ...] = (
    "relation_swap",
    "color_swap",
    "shape_change",
    "size_swap",
    "count_change",
)
# Opt-in kinds (training only; not among the kinds every evaluation reports): ``relation_word``
# replaces the relation by its opposite ("A left of B" → "A right of B"), so the negative's bag of
# words differs from the caption's and a text tower tells them apart without reading word order.
EXTRA_NEGATIVE_KINDS: tuple[str, ...] = ("relation_word",)
# Held-out scenes use seeds at or above this value; training never draws them.
HELD_OUT_SEED_START = 1_000_000_000


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene.

    Attributes
    ----------
    shape, color, size : str
        Names from :data:`SHAPES`, :data:`COLORS` and :data:`SIZES`.
    cx, cy : float
        Centre in normalised canvas coordinates, in [0, 1] (y downwards).
    radius : float
        Circumradius as a fraction of the canvas width.
    rotation : float
        Rotation in degrees (squares and triangles), small so that a square stays a square.
    """

    shape: str
    color: str
    size: str
    cx: float
    cy: float
    radius: float
    rotation: float = 0.0

    @property
    def phrase(self) -> str:
        """The object's noun phrase without article, e.g. ``"small red circle"``."""
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A scene: its objects, its background colour and the seed it was made from."""

    objects: tuple[ShapeObject, ...]
    background: tuple[int, int, int] = (255, 255, 255)
    noise: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Phrase:
    """A mention of one object inside a caption.

    ``char_span`` is ``(start, end)`` into the caption text and ``word_span`` the matching
    ``(first, last + 1)`` word indices of ``caption.text.split()`` (punctuation stays attached to
    its word). ``object_index`` indexes ``scene.objects``.
    """

    text: str
    object_index: int
    char_span: tuple[int, int]
    word_span: tuple[int, int]


@dataclass(frozen=True)
class Caption:
    """A caption of a scene, with the ground-truth phrase of every object it mentions."""

    text: str
    phrases: tuple[Phrase, ...] = ()
    kind: str = "canonical"
    relation: tuple[int, str, int] | None = None  # (subject index, relation, object index)


@dataclass(frozen=True)
class Negative:
    """A hard negative: a caption that is false for the scene, and how it was made."""

    text: str
    kind: str
    of: str = field(default="", compare=False)  # the true caption it perturbs


# --------------------------------------------------------------------------- scene sampling


def _relation(a: ShapeObject, b: ShapeObject, dominance: float = 1.4) -> str | None:
    """The spatial relation of ``a`` to ``b`` ("left of", ...), or None when ambiguous.

    A relation holds when the centre offset along one axis is at least ``dominance`` times the
    offset along the other, so that people and models can agree on it.
    """
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= dominance * abs(dy) and abs(dx) > 0.08:
        return "left of" if dx > 0 else "right of"
    if abs(dy) >= dominance * abs(dx) and abs(dy) > 0.08:
        return "above" if dy > 0 else "below"
    return None


def relation_between(a: ShapeObject, b: ShapeObject) -> str | None:
    """Public form of the relation rule: the relation of ``a`` to ``b`` or None if ambiguous."""
    return _relation(a, b)


def _place_objects(rng: random.Random, specs: Sequence[tuple[str, str, str]]) -> list[ShapeObject]:
    objects: list[ShapeObject] = []
    for shape, color, size in specs:
        lo, hi = SIZES[size]
        for _ in range(200):
            r = rng.uniform(lo, hi)
            margin = r * 1.1 + 0.02
            cx, cy = rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin)
            # Heavy overlap would hide objects and make masks and captions ambiguous.
            if all(math.hypot(cx - o.cx, cy - o.cy) > (r + o.radius) * 1.05 for o in objects):
                rot = rng.uniform(-12, 12) if shape != "circle" else 0.0
                objects.append(ShapeObject(shape, color, size, cx, cy, r, rot))
                break
        else:
            raise RuntimeError("could not place objects without overlap")
    return objects


def make_scene(
    seed: int,
    n_objects: int | None = None,
    *,
    max_objects: int = 4,
    background: str = "random",
    noise: float | None = None,
) -> Scene:
    """Make the scene of ``seed`` (deterministic).

    Parameters
    ----------
    seed : int
        The scene's seed. Seeds >= :data:`HELD_OUT_SEED_START` are reserved for evaluation.
    n_objects : int, optional
        Number of objects (1–4); random in [1, max_objects] when None.
    background : {"random", "white"}
        "random" picks white or a pale colour (so models do not rely on a white background).
    noise : float, optional
        Standard deviation of additive pixel noise in [0, 255] units; random small when None.

    Returns
    -------
    Scene
        With at least one unambiguous spatial relation when it has two or more objects.
    """
    rng = random.Random(seed)
    n = n_objects if n_objects is not None else rng.randint(1, max_objects)
    if not 1 <= n <= 4:
        raise ValueError(f"n_objects must be in [1, 4], got {n}")
    for _ in range(100):
        specs = [(rng.choice(SHAPES), rng.choice(list(COLORS)), rng.choice(list(SIZES))) for _ in range(n)]
        try:
            objects = _place_objects(rng, specs)
        except RuntimeError:
            continue
        if n == 1 or _relation(objects[0], objects[1]) is not None:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError(f"could not make a scene for seed {seed}")
    if background == "white" or rng.random() < 0.4:
        bg = (255, 255, 255)
    else:
        bg = tuple(rng.randint(232, 255) for _ in range(3))
    sd = noise if noise is not None else (rng.choice([0.0, 0.0, 3.0, 6.0]))
    return Scene(tuple(objects), bg, sd, seed)  # type: ignore[arg-type]


def relaid(scene: Scene, seed: int) -> Scene:
    """The same objects (shape, colour, size) placed anew, deterministic by ``seed``.

    Objects 0 and 1 stand in an unambiguous relation, as in :func:`make_scene`; background, noise and
    the scene's seed (so its colour jitter) are kept, so only the layout differs.
    """
    rng = random.Random(seed)
    specs = [(o.shape, o.color, o.size) for o in scene.objects]
    for _ in range(100):
        try:
            objects = _place_objects(rng, specs)
        except RuntimeError:
            continue
        if len(objects) == 1 or _relation(objects[0], objects[1]) is not None:
            return replace(scene, objects=tuple(objects))
    raise RuntimeError(f"could not lay out the scene again (seed {seed})")  # pragma: no cover - practically unreachable


# --------------------------------------------------------------------------- rendering


def object_polygon(obj: ShapeObject, size: int) -> list[tuple[float, float]] | None:
    """Vertices of a square or triangle in pixel coordinates of a ``size`` canvas (None for circles)."""
    cx, cy, r = obj.cx * size, obj.cy * size, obj.radius * size
    if obj.shape == "square":
        angles = [45, 135, 225, 315]
    elif obj.shape == "triangle":
        angles = [-90, 30, 150]
        r *= 1.15  # equal visual area to a circle of the same radius, roughly
    else:
        return None
    return [
        (cx + r * math.cos(math.radians(a + obj.rotation)), cy + r * math.sin(math.radians(a + obj.rotation)))
        for a in angles
    ]


def _jitter_color(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.randint(-amount, amount), 0, 255)) for c in rgb)  # type: ignore[return-value]


def render_scene(scene: Scene, size: int = 128, *, supersample: int = 2) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size`` × ``size`` pixels (PIL, anti-aliased by supersampling).

    Colours get a small per-object jitter and the canvas the scene's pixel noise, both seeded by the
    scene's seed, so the same scene always renders to the same pixels.
    """
    rng = random.Random(scene.seed * 7 + 1)
    big = size * supersample
    img = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        fill = _jitter_color(COLORS[obj.color], rng, 18)
        poly = object_polygon(obj, big)
        if poly is None:
            r = obj.radius * big
            cx, cy = obj.cx * big, obj.cy * big
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    img = img.resize((size, size), Image.Resampling.LANCZOS) if supersample > 1 else img
    if scene.noise > 0:
        arr = np.asarray(img, dtype=np.float32)
        arr += np.random.default_rng(scene.seed).normal(0.0, scene.noise, arr.shape)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def object_masks(scene: Scene, size: int) -> np.ndarray:
    """Pixel masks of the scene's objects.

    Returns
    -------
    ndarray of shape (n_objects, size, size), dtype bool
        ``masks[k]`` is True where object ``k`` covers the pixel (geometry, before anti-aliasing).
    """
    masks = np.zeros((len(scene.objects), size, size), dtype=bool)
    for k, obj in enumerate(scene.objects):
        m = Image.new("L", (size, size), 0)
        d = ImageDraw.Draw(m)
        poly = object_polygon(obj, size)
        if poly is None:
            r, cx, cy = obj.radius * size, obj.cx * size, obj.cy * size
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        else:
            d.polygon(poly, fill=255)
        masks[k] = np.asarray(m) > 127
    return masks


# --------------------------------------------------------------------------- captions


class _CaptionBuilder:
    """Builds a caption piece by piece while recording each object's character span."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: list[tuple[int, int, int]] = []  # (object index, start, end)

    def add(self, piece: str, object_index: int | None = None) -> _CaptionBuilder:
        start = len(self.text)
        self.text += piece
        if object_index is not None:
            self.spans.append((object_index, start, len(self.text)))
        return self

    def build(self, kind: str, relation: tuple[int, str, int] | None = None) -> Caption:
        phrases = []
        for idx, start, end in self.spans:
            first = len(self.text[:start].split())
            last = first + len(self.text[start:end].split())
            phrases.append(Phrase(self.text[start:end], idx, (start, end), (first, last)))
        return Caption(self.text, tuple(phrases), kind, relation)


def _object_words(obj: ShapeObject, with_size: bool = True) -> str:
    return obj.phrase if with_size else f"{obj.color} {obj.shape}"


def _relation_pair(scene: Scene) -> tuple[int, str, int] | None:
    n = len(scene.objects)
    for i in range(n):
        for j in range(n):
            if i != j:
                rel = _relation(scene.objects[i], scene.objects[j])
                if rel is not None:
                    return i, rel, j
    return None


def objects_named(scene: Scene, phrase: str) -> list[int]:
    """Indices of the objects of ``scene`` that a shapes-world phrase names.

    The phrase's words (articles "a", "an", "the" ignored, case-insensitive) must all be sizes,
    colours or shapes, and an object is named when it has every one of them: "triangle" names every
    triangle, "large red circle" only large red circles. Any other word (or none) names nothing.

    >>> s = Scene((ShapeObject("circle", "red", "small", 0.3, 0.5, 0.1), ShapeObject("triangle", "red", "large", 0.7, 0.5, 0.2)))
    >>> objects_named(s, "the red one"), objects_named(s, "Red"), objects_named(s, "large red triangle")
    ([], [0, 1], [1])
    """
    words = [w for w in phrase.lower().replace(",", " ").split() if w not in {"a", "an", "the"}]
    vocabulary = {*SHAPES, *COLORS, *SIZES}
    if not words or any(w not in vocabulary for w in words):
        return []
    return [k for k, o in enumerate(scene.objects) if all(w in (o.shape, o.color, o.size) for w in words)]


def canonical_caption(scene: Scene, *, with_size: bool = True, prefix: str = "") -> Caption:
    """The scene's full description.

    One object: ``"a small red circle"``. Two or more: the first unambiguous relation, then the rest
    left to right: ``"a small blue square left of a large yellow triangle and a small red circle"``.
    """
    b = _CaptionBuilder().add(prefix)
    objs = scene.objects
    pair = _relation_pair(scene) if len(objs) > 1 else None
    if pair is None:
        order = sorted(range(len(objs)), key=lambda k: objs[k].cx)
        return _list_caption(scene, order, with_size, prefix, kind="canonical")
    i, rel, j = pair
    b.add("a ").add(_object_words(objs[i], with_size), i).add(f" {rel} a ").add(_object_words(objs[j], with_size), j)
    rest = sorted((k for k in range(len(objs)) if k not in (i, j)), key=lambda k: objs[k].cx)
    for n, k in enumerate(rest):
        b.add(" and a " if n == len(rest) - 1 else ", a ").add(_object_words(objs[k], with_size), k)
    return b.build("canonical", pair)


def _list_caption(scene: Scene, order: Sequence[int], with_size: bool, prefix: str, kind: str) -> Caption:
    b = _CaptionBuilder().add(prefix)
    for n, k in enumerate(order):
        if n > 0:
            b.add(" and " if n == len(order) - 1 else ", ")
        b.add("a ").add(_object_words(scene.objects[k], with_size), k)
    return b.build(kind)


def count_caption(scene: Scene) -> Caption:
    """Objects grouped by colour and shape with counts: ``"two red circles and a blue square"``.

    Its phrases point at the first object of each group.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for k, o in enumerate(scene.objects):
        groups.setdefault((o.color, o.shape), []).append(k)
    b = _CaptionBuilder()
    for n, ((color, shape), members) in enumerate(groups.items()):
        if n > 0:
            b.add(" and " if n == len(groups) - 1 else ", ")
        if len(members) == 1:
            b.add("a ").add(f"{color} {shape}", members[0])
        else:
            b.add(f"{NUMBER_WORDS[len(members)]} ").add(f"{color} {PLURALS[shape]}", members[0])
    return b.build("count")


def scene_captions(scene: Scene) -> list[Caption]:
    """Several true captions of a scene: canonical, without sizes, as a list, counts, one object."""
    caps = [canonical_caption(scene), canonical_caption(scene, with_size=False)]
    if len(scene.objects) > 1:
        caps.append(_list_caption(scene, list(range(len(scene.objects))), True, "", kind="list"))
        caps.append(count_caption(scene))
        b = _CaptionBuilder().add("a ").add(scene.objects[0].phrase, 0)
        caps.append(b.build("single"))
    seen: set[str] = set()
    return [c for c in caps if not (c.text in seen or seen.add(c.text))]


def sample_caption(scene: Scene, rng: random.Random) -> Caption:
    """One true caption for training: mostly canonical, sometimes a variant or with a prefix."""
    u = rng.random()
    prefix = rng.choice(CAPTION_PREFIXES) if rng.random() < 0.2 else ""
    if u < 0.6 or len(scene.objects) == 1:
        return canonical_caption(scene, with_size=rng.random() < 0.8, prefix=prefix)
    if u < 0.75:
        order = list(range(len(scene.objects)))
        rng.shuffle(order)
        return _list_caption(scene, order, rng.random() < 0.7, prefix, kind="list")
    if u < 0.9:
        return count_caption(scene)
    k = rng.randrange(len(scene.objects))
    return _CaptionBuilder().add(prefix + "a ").add(scene.objects[k].phrase, k).build("single")


# --------------------------------------------------------------------------- hard negatives


def _replace_spans(text: str, replacements: Sequence[tuple[tuple[int, int], str]]) -> str:
    for (start, end), new in sorted(replacements, key=lambda r: -r[0][0]):
        text = text[:start] + new + text[end:]
    return text


def _phrase_words(phrase: Phrase) -> list[str]:
    return phrase.text.split()


def hard_negative(caption: Caption, kind: str, rng: random.Random) -> Negative | None:
    """A false caption made from ``caption`` by one perturbation of ``kind``, or None if not possible.

    Kinds: ``relation_swap`` (the two related objects trade places: "A left of B" → "B left of A"),
    ``color_swap`` (two mentioned objects of different colours trade colours), ``shape_change``
    (one object gets another shape), ``size_swap`` (two objects of different sizes trade sizes, or
    one changes size), ``count_change`` (a count caption's number goes up or down by one).
    A perturbation that would leave the text unchanged returns None.
    """
    ph = caption.phrases
    text = caption.text
    new: str | None = None
    if kind == "relation_swap" and caption.relation is not None and len(ph) >= 2:
        new = _replace_spans(text, [(ph[0].char_span, ph[1].text), (ph[1].char_span, ph[0].text)])
    elif kind == "relation_word" and caption.relation is not None and len(ph) >= 2:
        rel = caption.relation[1]
        start, end = ph[0].char_span[1], ph[1].char_span[0]  # the words between the two phrases
        between = text[start:end]
        if f" {rel} " in between:
            new = text[:start] + between.replace(f" {rel} ", f" {OPPOSITE_RELATION[rel]} ", 1) + text[end:]
    elif kind == "color_swap" and len(ph) >= 2:
        pairs = [(a, b) for a in range(len(ph)) for b in range(a + 1, len(ph))]
        rng.shuffle(pairs)
        for a, b in pairs:
            wa, wb = _phrase_words(ph[a]), _phrase_words(ph[b])
            ca, cb = wa[-2], wb[-2]  # colour is the word before the shape noun
            # Only objects of different shapes: trading colours between two squares only reorders.
            if ca != cb and ca in COLORS and cb in COLORS and wa[-1] != wb[-1]:
                wa[-2], wb[-2] = cb, ca
                new = _replace_spans(text, [(ph[a].char_span, " ".join(wa)), (ph[b].char_span, " ".join(wb))])
                break
    elif kind == "shape_change" and ph:
        p = rng.choice(ph)
        words = _phrase_words(p)
        noun = words[-1]
        singular = {v: k for k, v in PLURALS.items()}.get(noun, noun)
        others = [s for s in SHAPES if s != singular]
        repl = rng.choice(others)
        words[-1] = PLURALS[repl] if noun in PLURALS.values() else repl
        new = _replace_spans(text, [(p.char_span, " ".join(words))])
    elif kind == "size_swap" and ph:
        sized = [p for p in ph if _phrase_words(p)[0] in SIZES]
        if (
            len(sized) >= 2
            and _phrase_words(sized[0])[0] != _phrase_words(sized[1])[0]
            and _phrase_words(sized[0])[1:] != _phrase_words(sized[1])[1:]
        ):
            a, b = sized[0], sized[1]
            wa, wb = _phrase_words(a), _phrase_words(b)
            wa[0], wb[0] = wb[0], wa[0]
            new = _replace_spans(text, [(a.char_span, " ".join(wa)), (b.char_span, " ".join(wb))])
        elif sized:
            p = rng.choice(sized)
            words = _phrase_words(p)
            words[0] = "large" if words[0] == "small" else "small"
            new = _replace_spans(text, [(p.char_span, " ".join(words))])
    elif kind == "count_change" and caption.kind == "count" and ph:
        p = rng.choice(ph)
        start = p.char_span[0]
        before = text[:start].rstrip().split()
        count_word = before[-1] if before else "a"
        count = 1 if count_word == "a" else NUMBER_WORDS.index(count_word)
        new_count = count + 1 if count == 1 or rng.random() < 0.5 else count - 1
        words = _phrase_words(p)
        singular = {v: k for k, v in PLURALS.items()}.get(words[-1], words[-1])
        words[-1] = PLURALS[singular] if new_count > 1 else singular
        new_count_word = "a" if new_count == 1 else NUMBER_WORDS[new_count]
        count_start = len(text[:start].rstrip()) - len(count_word)
        new = text[:count_start] + new_count_word + " " + " ".join(words) + text[p.char_span[1]:]
    if new is None or new == text:
        return None
    return Negative(new, kind, text)


def hard_negatives(caption: Caption, rng: random.Random | None = None) -> list[Negative]:
    """Every kind of hard negative that applies to ``caption`` (at most one per kind)."""
    rng = rng or random.Random(0)
    out = [hard_negative(caption, kind, rng) for kind in NEGATIVE_KINDS]
    return [n for n in out if n is not None]


def scene_with(scene: Scene, **changes: object) -> Scene:
    """A copy of ``scene`` with fields replaced (dataclasses.replace, re-exported for callers)."""
    return replace(scene, **changes)  # type: ignore[arg-type]


def vocabulary() -> list[str]:
    """Every word the shapes world's captions and negatives can use (for compact tokenizers)."""
    words = set(SHAPES) | set(COLORS) | set(SIZES) | set(PLURALS.values()) | set(NUMBER_WORDS)
    for r in RELATIONS:
        words.update(r.split())
    for p in CAPTION_PREFIXES:
        words.update(p.split())
    words.update({"a", "an", "and", ","})
    return sorted(words)
