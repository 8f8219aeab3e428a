"""A labelled set of shapes-world image–text pairs for all eight relation classes, by construction.

Each class is built from a scene's ground truth (docs/design.md §7):

- **Anchorage** (1, 1, I): one sentence naming every object correctly (canonical, list or count form);
- **Illustration** (1, 1, T): a passage of 3–5 sentences, one of which names the (one or two)
  objects of the picture; the rest is general text the picture does not show;
- **Complementary** (1, 1, 0): a short text naming some but not all objects, plus content the
  picture does not show (another sentence or an absent object);
- **Uncorrelated** (0, 0, 0): off-topic text, or shapes far from everything in the picture;
- **Interdependent** (0, 1, 0): deictic text that names nothing ("this is the pattern to copy");
- **Bad Anchorage**, **Bad Illustration**, **Contrasting** (1, −1, ·): the same three with one
  contradiction — an attribute changed so that no object matches, the relation swapped or the count off.

Training and test splits use disjoint seed ranges; the test split's scenes are held out
(``seed >= HELD_OUT_SEED_START``), so no test scene is ever seen in calibration or in model training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

from mmexplore.data.renderers import draw_scene
from mmexplore.data.shapes import (
    COLORS,
    HELD_OUT_SEED_START,
    NUMBER_WORDS,
    PLURALS,
    SHAPES,
    SIZES,
    Scene,
    ShapeObject,
    make_scene,
    relation_between,
)
from mmexplore.relation.taxonomy import CLASSES, COMPONENTS

TRAIN_SEED_START = 40_000_000
TEST_SEED_START = HELD_OUT_SEED_START + 40_000_000
SEEDS_PER_SPLIT = 1_000_000

FILLER_SENTENCES: tuple[str, ...] = (
    "Simple figures are everywhere in everyday design.",
    "Teachers use them to explain basic geometry to children.",
    "Colour helps people tell things apart at a glance.",
    "Road signs rely on the same idea to warn drivers early.",
    "Designers often start a logo from a plain outline.",
    "Most flags combine only a few strong colours.",
    "Children learn to sort toys by colour before they can read.",
    "A good diagram leaves out everything that does not matter.",
    "Printers once mixed every colour from a handful of inks.",
    "Triangles are the most rigid form a builder can use.",
    "Circles have no corners, which makes them feel friendly.",
    "Squares tile a floor without leaving any gaps.",
    "Artists of the last century reduced paintings to basic forms.",
    "Some people remember pictures far better than words.",
    "The same symbol can mean different things in different countries.",
)
OFF_TOPIC: tuple[str, ...] = (
    "The stock market closed slightly lower on Friday.",
    "Preheat the oven before you put the bread in.",
    "Heavy rain is expected over the weekend in the north.",
    "The committee will meet again next Tuesday to vote.",
    "Our train was delayed by almost forty minutes.",
    "Remember to water the tomatoes every other day.",
    "The concert sold out within an hour of opening.",
    "He finally finished reading the novel last night.",
    "Interest rates are likely to stay where they are.",
    "The museum is closed on Mondays during winter.",
    "She scored twice in the second half of the match.",
    "Please bring your passport and a printed ticket.",
)
DEICTIC: tuple[str, ...] = (
    "This is the pattern to copy.",
    "Look at this one carefully.",
    "Here is what we will build next.",
    "Make yours look exactly like this.",
    "The picture shows the layout I mean.",
    "See the example here before you start.",
    "This is how it should look when you are done.",
    "Like this, but do it on your own sheet.",
    "These go on the top shelf.",
    "That is the one I was talking about.",
)
ILLUSTRATION_LEADS: tuple[str, ...] = (
    "Take {x}, for example.",
    "{X} is a typical case.",
    "Think of {x}.",
    "Picture {x} on a blank page.",
    "Consider {x}.",
    "One example is {x}.",
)
EXTRA_CLAUSES: tuple[str, ...] = (
    "and the rest of the set is still in the box",
    "which marks where the meeting starts",
    "and the next one arrives tomorrow",
    "as the teacher asked",
    "and we still need to find the missing piece",
)
PREFIXES: tuple[str, ...] = ("", "", "", "a picture of ", "an image of ", "there is ", "a drawing of ")


@dataclass(frozen=True)
class LabelledPair:
    """One generated pair: the scene, its picture, the text and the label with its components."""

    image: Image.Image
    text: str
    label: str
    scene: Scene
    kind: str  # how the text was made (e.g. "caption", "color", "relation", "offtopic")

    @property
    def components(self) -> tuple[int, int, str]:
        """(CMI, SC, STAT) of the label."""
        return COMPONENTS[self.label]


def _words(obj: ShapeObject, with_size: bool) -> str:
    return f"{obj.size} {obj.color} {obj.shape}" if with_size else f"{obj.color} {obj.shape}"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _matches(attrs: dict[str, str], obj: ShapeObject) -> bool:
    return all(getattr(obj, k) == v for k, v in attrs.items())


def _perturb(obj: ShapeObject, scene: Scene, with_size: bool, rng: random.Random) -> ShapeObject | None:
    """``obj`` with one attribute changed so that no object of ``scene`` matches the written phrase."""
    kinds = ["color", "shape"] + (["size"] if with_size else [])
    rng.shuffle(kinds)
    for kind in kinds:
        values = {"color": list(COLORS), "shape": list(SHAPES), "size": list(SIZES)}[kind]
        options = [v for v in values if v != getattr(obj, kind)]
        rng.shuffle(options)
        for v in options:
            new = ShapeObject(**{**obj.__dict__, kind: v})
            attrs = {"color": new.color, "shape": new.shape, **({"size": new.size} if with_size else {})}
            if not any(_matches(attrs, o) for o in scene.objects):
                return new
    return None


def _far_object(scene: Scene, rng: random.Random) -> ShapeObject | None:
    """An object whose colour and shape both differ from every object of the scene (two edits away)."""
    cols = [c for c in COLORS if all(o.color != c for o in scene.objects)]
    shapes = [s for s in SHAPES if all(o.shape != s for o in scene.objects)]
    if not cols or not shapes:
        return None
    return ShapeObject(rng.choice(shapes), rng.choice(cols), rng.choice(list(SIZES)), 0.5, 0.5, 0.1)


def _describe(objs: list[ShapeObject], scene: Scene, rng: random.Random, with_size: bool) -> str:
    """One sentence naming ``objs``: with a relation when one holds, else a list or counts."""
    u = rng.random()
    if len(objs) >= 2 and u < 0.5:
        for i, j in itertools_pairs(len(objs), rng):
            rel = relation_between(objs[i], objs[j])
            if rel is not None and objs[i].phrase != objs[j].phrase:
                rest = [o for k, o in enumerate(objs) if k not in (i, j)]
                s = f"{_article(_words(objs[i], with_size))} {rel} {_article(_words(objs[j], with_size))}"
                if rest:
                    s += " and " + _join([_article(_words(o, with_size)) for o in rest])
                return s
    if len(objs) >= 2 and u < 0.7:
        groups: dict[tuple[str, str], int] = {}
        for o in objs:
            groups[(o.color, o.shape)] = groups.get((o.color, o.shape), 0) + 1
        if any(n > 1 for n in groups.values()):
            return _join([
                f"{NUMBER_WORDS[n]} {c} {PLURALS[s]}" if n > 1 else _article(f"{c} {s}") for (c, s), n in groups.items()
            ])
    order = list(objs)
    rng.shuffle(order)
    return _join([_article(_words(o, with_size)) for o in order])


def itertools_pairs(n: int, rng: random.Random) -> list[tuple[int, int]]:
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    rng.shuffle(pairs)
    return pairs


def _relation_swapped(objs: list[ShapeObject]) -> str | None:
    for i in range(len(objs)):
        for j in range(len(objs)):
            if i != j and (rel := relation_between(objs[i], objs[j])) is not None:
                if (objs[i].color, objs[i].shape) == (objs[j].color, objs[j].shape):
                    continue
                rest = [_article(_words(o, True)) for k, o in enumerate(objs) if k not in (i, j)]
                text = f"{_article(_words(objs[j], True))} {rel} {_article(_words(objs[i], True))}"
                return text + (" and " + _join(rest) if rest else "")
    return None


def _count_changed(objs: list[ShapeObject], rng: random.Random) -> str | None:
    groups: dict[tuple[str, str], int] = {}
    for o in objs:
        groups[(o.color, o.shape)] = groups.get((o.color, o.shape), 0) + 1
    key = rng.choice(list(groups))
    groups[key] = groups[key] + 1 if groups[key] == 1 or rng.random() < 0.5 else groups[key] - 1
    return _join([f"{NUMBER_WORDS[n]} {c} {PLURALS[s]}" if n > 1 else _article(f"{c} {s}") for (c, s), n in groups.items()])


def _named_text(objs: list[ShapeObject], scene: Scene, rng: random.Random, bad: bool) -> tuple[str, str] | None:
    """A phrase list naming ``objs`` (true), or with one contradiction when ``bad``; (text, kind)."""
    with_size = rng.random() < 0.6
    if not bad:
        return _describe(objs, scene, rng, with_size), "caption"
    u = rng.random()
    if u < 0.15 and len(objs) >= 2 and (s := _relation_swapped(objs)) is not None:
        return s, "relation"
    if u < 0.25 and len(objs) >= 2:
        return _count_changed(objs, rng), "count"
    k = rng.randrange(len(objs))
    new = _perturb(objs[k], scene, with_size, rng)
    if new is None:
        return None
    changed = list(objs)
    changed[k] = new
    kind = next(a for a in ("color", "shape", "size") if getattr(new, a) != getattr(objs[k], a))
    # No relation here: a relation between the changed and a true object could be true or false.
    order = list(changed)
    rng.shuffle(order)
    return _join([_article(_words(o, with_size)) for o in order]), kind


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def make_pair(label: str, seed: int, *, renderer: str = "train", size: int = 128) -> LabelledPair | None:
    """The pair of class ``label`` built from scene ``seed``, or None when this scene cannot give one."""
    rng = random.Random(seed * 31 + CLASSES.index(label))
    _cmi, sc, stat = COMPONENTS[label]
    bad = sc == -1
    if stat == "T" or label in {"Uncorrelated", "Interdependent"}:
        n = rng.choice([1, 1, 2])
    elif stat == "0":
        n = rng.choice([2, 3, 3, 4])
    else:
        n = rng.choice([1, 2, 2, 3, 4])
    scene = make_scene(seed, n_objects=n)
    objs = list(scene.objects)
    kind = "caption"
    if label == "Uncorrelated":
        far = _far_object(scene, rng)
        if far is not None and rng.random() < 0.3:
            text, kind = _capital(_article(_words(far, rng.random() < 0.5))) + ".", "far"
        else:
            text = " ".join(rng.sample(OFF_TOPIC, rng.randint(1, 3)))
            kind = "offtopic"
    elif label == "Interdependent":
        text, kind = rng.choice(DEICTIC), "deictic"
    elif stat == "I":
        made = _named_text(objs, scene, rng, bad)
        if made is None:
            return None
        body, kind = made
        text = rng.choice(PREFIXES) + body
        text = text if rng.random() < 0.5 else _capital(text) + "."
    elif stat == "T":
        made = _named_text(objs, scene, rng, bad)
        if made is None:
            return None
        body, kind = made
        lead = rng.choice(ILLUSTRATION_LEADS)
        sentence = lead.replace("{x}", body).replace("{X}", _capital(body))
        fill = rng.sample(FILLER_SENTENCES, rng.randint(2, 4))
        fill.insert(rng.randint(0, len(fill)), sentence)
        text = " ".join(fill)
    else:  # Complementary / Contrasting: a strict subset of the objects plus content not shown
        m = rng.randint(1, len(objs) - 1)
        subset = rng.sample(objs, m)
        made = _named_text(subset, scene, rng, bad)
        if made is None:
            return None
        body, kind = made
        u = rng.random()
        far = _far_object(scene, rng)
        if u < 0.4:
            text = _capital(body) + ", " + rng.choice(EXTRA_CLAUSES) + "."
        elif u < 0.7 and far is not None:
            text = _capital(body) + ". " + _capital(_article(_words(far, False))) + " is missing from it."
        else:
            text = _capital(body) + ". " + rng.choice(FILLER_SENTENCES)
    image = draw_scene(scene, renderer, size, style_seed=seed)
    return LabelledPair(image, text, label, scene, kind)


def generate_pairs(
    split: str = "train", n_per_class: int = 40, *, renderer: str = "train", size: int = 128
) -> list[LabelledPair]:
    """``n_per_class`` pairs of each of the eight classes from the split's seed range.

    Parameters
    ----------
    split : {"train", "test"}
        "test" draws held-out scenes (seeds >= ``HELD_OUT_SEED_START``), disjoint from "train".
    n_per_class : int
    renderer : str
        A registered renderer (:mod:`mmexplore.data.renderers`: train, alt, sketch) or "mixed" (every
        other pair drawn by the alternative one).

    Returns
    -------
    list of LabelledPair, class by class
    """
    if split not in {"train", "test"}:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    start = TRAIN_SEED_START if split == "train" else TEST_SEED_START
    out: list[LabelledPair] = []
    for c, label in enumerate(CLASSES):
        seed = start + c * 100_000
        made = 0
        while made < n_per_class:
            r = renderer if renderer != "mixed" else ("alt" if (seed + made) % 2 else "train")
            pair = make_pair(label, seed, renderer=r, size=size)
            seed += 1
            if pair is not None:
                out.append(pair)
                made += 1
    return out
