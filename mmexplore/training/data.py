"""Training batches from the shapes world: true captions, hard negatives, counterfactual twins.

A batch is a :class:`Batch`. The trainer asks a *data stream* — any callable ``(step) -> Batch`` —
for the batch of each step; :class:`ShapesStream` is the default. Each step's batch is drawn from
its own generator seeded by ``(seed, step)``, so a run resumed at step k sees exactly the batches it
would have seen, and a custom stream (e.g. a poisoned one) can replace this one without touching
the trainer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from PIL import Image

from mmexplore.data.renderers import draw_scene, get_renderer, renderer_names
from mmexplore.data.shapes import (
    EXTRA_NEGATIVE_KINDS,
    HELD_OUT_SEED_START,
    NEGATIVE_KINDS,
    Scene,
    canonical_caption,
    count_caption,
    hard_negative,
    make_scene,
    relaid,
    render_scene,
    sample_caption,
    scene_captions,
)
from mmexplore.errors import InputError
from mmexplore.training.augment import get_augmentation

# Words outside the vocabulary (they map to <unk>): seen in training so the model learns to ignore them.
UNK_PREFIXES = ("here is ", "look at this: ", "we see ")
# How often each hard-negative kind is drawn (relation order most: it is the hardest to learn).
NEGATIVE_WEIGHTS = {"relation_swap": 0.45, "color_swap": 0.25, "shape_change": 0.1, "size_swap": 0.1, "count_change": 0.1}
# Kinds drawn only when asked for (``--negative-kinds``), with their weight among the chosen ones.
OPT_IN_NEGATIVE_WEIGHTS = {"relation_word": 0.45}
# Counterfactual twins: how often the twin swaps the two objects' places (relation order) or their colours.
TWIN_WEIGHTS = {"relation_swap": 0.75, "color_swap": 0.25}
# Draws a training scene: the image and the scene as drawn (an augmentation may rescale objects).
Drawer = Callable[[Scene], tuple[Image.Image, Scene]]
# The kinds under the names the page uses.
NEGATIVE_LABELS = {"relation_swap": "relation order", "color_swap": "colour binding", "shape_change": "attribute: shape",
                   "size_swap": "attribute: size", "count_change": "count"}


@dataclass
class Batch:
    """One training batch.

    Attributes
    ----------
    images : list of PIL.Image (B)
    captions : list of str (B)
        The (first) true caption of each image.
    negatives : list of list of str (B × k)
        Hard-negative captions of each image (k may be 0).
    positives : list of list of str (B × (p − 1))
        Further true captions of each image (multi-positive; empty lists otherwise).
    scenes : list of Scene or None
        Scene graphs (the dense term needs the masks); None when the stream has none.
    words : list of tuple of str or None
        The words a batch transform wrote into each image (empty tuple: none), for the reading
        term; None when no transform reports them.
    """

    images: list
    captions: list[str]
    negatives: list[list[str]]
    positives: list[list[str]] = field(default_factory=list)
    scenes: list | None = None
    words: list | None = None

    def __len__(self) -> int:
        return len(self.images)


def counterfactual_pair(
    scene: Scene, rng: random.Random, weights: dict[str, float] | None = None,
) -> tuple[Scene, str, Scene, str] | None:
    """A scene and its counterfactual twin that differ only in layout or in colour binding.

    ``relation_swap`` (3 in 4 by default): the two related objects trade places, so "a A left of a B"
    becomes true of the twin as "a B left of a A" (the original's relation-swap negative).
    ``color_swap``: two objects of different shapes trade colours, and the twin's caption is the
    original's colour-swap negative. ``weights`` (default :data:`TWIN_WEIGHTS`) sets how often each
    kind is made; ``{"relation_swap": 1.0}`` makes only order twins. Both images and both captions go
    into the same batch, so each is the other's hard negative in both directions (images as well as
    texts), which a text-only negative cannot do.
    """
    weights = weights or TWIN_WEIGHTS
    relation_share = weights.get("relation_swap", 0.0) / max(1e-12, sum(weights.values()))
    cap = canonical_caption(scene)
    if cap.relation is None:
        return None
    i, _, j = cap.relation
    objs = list(scene.objects)
    a, b = objs[i], objs[j]
    if rng.random() < relation_share:
        objs[i], objs[j] = replace(a, cx=b.cx, cy=b.cy), replace(b, cx=a.cx, cy=a.cy)
        kind = "relation_swap"
    else:
        if a.shape == b.shape or a.color == b.color:
            return None
        objs[i], objs[j] = replace(a, color=b.color), replace(b, color=a.color)
        kind = "color_swap"
    twin = replace(scene, objects=tuple(objs))
    neg = hard_negative(cap, kind, rng)
    if neg is None:
        return None
    return scene, cap.text, twin, neg.text


def _other_positives(scene: Scene, caption: str, n: int, rng: random.Random) -> list[str]:
    """``n`` further true captions of ``scene`` (distinct from ``caption`` when the scene has enough)."""
    pool = [c.text for c in scene_captions(scene) if c.text != caption]
    rng.shuffle(pool)
    out = pool[:n]
    while len(out) < n:  # one-object scenes have few captions: repeat (the loss masks duplicates)
        out.append(pool[len(out) % len(pool)] if pool else caption)
    return out


def make_batch(
    rng: random.Random,
    batch_size: int,
    negatives: int,
    render_size: int,
    with_scenes: bool = False,
    pair_fraction: float = 0.0,
    *,
    negative_weights: dict[str, float] | None = None,
    positives: int = 1,
    twin_weights: dict[str, float] | None = None,
    relations_only: bool = False,
    twin_group: int = 2,
    draw: Drawer | None = None,
) -> Batch:
    """One training batch of shapes scenes.

    Scenes come from seeds below :data:`HELD_OUT_SEED_START`; 1–4 objects, two-object scenes most
    often (they carry the relations). A ``pair_fraction`` of the batch is made of counterfactual
    pairs (:func:`counterfactual_pair`), each image's negative being its twin's caption.
    ``negative_weights`` picks the kinds of hard negative (default :data:`NEGATIVE_WEIGHTS`); when the
    drawn kind does not apply to the caption another kind is used. ``positives`` > 1 adds that many
    − 1 further true captions per image. ``twin_weights`` picks the kinds of counterfactual twin
    (default :data:`TWIN_WEIGHTS`). ``relations_only`` (a curriculum's first phase) makes every scene a
    two-object scene described by its relation caption ("a A left of a B"). ``twin_group`` > 2 makes
    the counterfactual part of groups of that many scenes of the same two objects in different places
    (each with its relation caption and its order swap as negative): inside a group only the layout
    tells the captions apart, so a bag of objects cannot lower the loss there. ``draw`` draws each
    scene (default: the training renderer at ``render_size``; see :func:`make_drawer`); it never
    touches ``rng``, so the scenes and captions of a batch do not depend on how they are drawn.
    """
    weights = negative_weights or NEGATIVE_WEIGHTS
    draw = draw or make_drawer(render_size)
    images, captions, negs, scenes = [], [], [], []
    group = max(2, int(twin_group))
    n_twins = (int(batch_size * pair_fraction) // group) * group if negatives > 0 else 0
    while group > 2 and len(images) < n_twins:
        base = make_scene(rng.randrange(HELD_OUT_SEED_START), n_objects=2)
        for scene in [base, *(relaid(base, rng.randrange(HELD_OUT_SEED_START)) for _ in range(group - 1))]:
            cap = canonical_caption(scene)
            neg = hard_negative(cap, "relation_swap", rng)
            image, drawn = draw(scene)
            images.append(image)
            captions.append(cap.text)
            negs.append([neg.text if neg is not None else cap.text] * negatives)  # equal: masked by the loss
            scenes.append(drawn)
    while len(images) < n_twins:
        pair = counterfactual_pair(make_scene(rng.randrange(HELD_OUT_SEED_START), n_objects=2), rng, twin_weights)
        if pair is None:
            continue
        for scene, text, other in ((pair[0], pair[1], pair[3]), (pair[2], pair[3], pair[1])):
            image, drawn = draw(scene)
            images.append(image)
            captions.append(text)
            negs.append([other] * negatives)
            scenes.append(drawn)
    while len(images) < batch_size:
        n = 2 if relations_only else rng.choices([1, 2, 3, 4], weights=[0.15, 0.45, 0.25, 0.15])[0]
        scene = make_scene(rng.randrange(HELD_OUT_SEED_START), n_objects=n)
        kinds = rng.choices(list(weights), weights=list(weights.values()), k=negatives)
        if relations_only or (("relation_swap" in kinds or "relation_word" in kinds) and n > 1):
            caption = canonical_caption(scene, with_size=rng.random() < 0.8)
        elif "count_change" in kinds:
            caption = count_caption(scene)
        else:
            caption = sample_caption(scene, rng)
        # An unknown lead-in goes on the negatives too: a negative differs from its caption only in
        # what its kind changes, never in a prefix the image cannot show.
        lead = rng.choice(UNK_PREFIXES) if rng.random() < 0.05 else ""
        text = lead + caption.text
        mine = []
        for kind in kinds:
            neg = hard_negative(caption, kind, rng)
            for other in (k for k in (*NEGATIVE_KINDS, *EXTRA_NEGATIVE_KINDS) if k in weights):
                if neg is not None:
                    break
                neg = hard_negative(caption, other, rng)
            mine.append(lead + neg.text if neg is not None else text)  # masked by the loss when equal
        image, drawn = draw(scene)
        images.append(image)
        captions.append(text)
        negs.append(mine)
        scenes.append(drawn)
    pos = [_other_positives(s, c, positives - 1, rng) for s, c in zip(scenes, captions, strict=True)] \
        if positives > 1 else [[] for _ in images]
    return Batch(images, captions, negs, pos, scenes if with_scenes else None)


def make_drawer(
    render_size: int, renderers: tuple[str, ...] = ("train",), augment: str = "none",
    rng: random.Random | None = None,
) -> Drawer:
    """How a training scene is drawn: a renderer from ``renderers``, then the augmentation ``augment``.

    With one renderer the choice draws nothing from ``rng``; with the default (``train``, ``none``) the
    image is :func:`~mmexplore.data.shapes.render_scene`'s, so older runs' batches are unchanged.
    ``rng`` (seeded by the stream per step) chooses the renderer, the style seed and the augmentation.

    Returns
    -------
    callable
        ``draw(scene) -> (image, drawn scene)``: a ``render_size`` × ``render_size`` RGB image and the
        scene as drawn (the dense term's masks follow a rescaled object).
    """
    check_train_renderers(renderers)
    aug = get_augmentation(augment)
    if tuple(renderers) == ("train",) and augment == "none":
        return lambda scene: (render_scene(scene, render_size), scene)
    rng = rng or random.Random(0)

    def draw(scene: Scene) -> tuple[Image.Image, Scene]:
        name = renderers[0] if len(renderers) == 1 else rng.choice(renderers)
        drawn = aug.scene(scene, rng)
        image = draw_scene(drawn, name, render_size, style_seed=rng.getrandbits(31))
        return aug.image(image, rng), drawn

    return draw


def check_train_renderers(renderers: tuple[str, ...] | list[str]) -> None:
    """Raise :class:`InputError` unless ``renderers`` is a non-empty list of trainable renderers."""
    if not renderers:
        raise InputError("train_renderers is empty; name at least one renderer, e.g. train")
    for name in renderers:
        if not get_renderer(name).trainable:
            raise InputError(f"renderer '{name}' is a held-out test renderer and is never trained on; "
                             f"train on any of {', '.join(renderer_names(trainable=True))}")


@dataclass
class ShapesStream:
    """The default data stream: :func:`make_batch` with a generator seeded by ``(seed, step)``.

    Parameters mirror :class:`~mmexplore.training.trainer.TrainConfig`.
    """

    seed: int
    batch_size: int
    negatives: int
    render_size: int
    with_scenes: bool = False
    pair_fraction: float = 0.0
    negative_weights: dict[str, float] | None = None
    positives: int = 1
    twin_weights: dict[str, float] | None = None
    curriculum_steps: int = 0  # steps < this draw only two-object scenes with relation captions
    twin_group: int = 2  # counterfactual scenes per group of the same two objects (2: a scene and its swap)
    renderers: tuple[str, ...] = ("train",)  # each image drawn by one of these (registered, trainable)
    augment: str = "none"  # a registered augmentation (training/augment.py)

    def __call__(self, step: int) -> Batch:
        """The batch of ``step`` (the same for the same seed and step, in any process)."""
        rng = random.Random(f"{self.seed}:{step}")
        # Drawing has its own generator: the same scenes and captions whatever the renderers and augmentation.
        draw = make_drawer(self.render_size, tuple(self.renderers), self.augment, random.Random(f"{self.seed}:{step}:draw"))
        return make_batch(rng, self.batch_size, self.negatives, self.render_size, self.with_scenes,
                          self.pair_fraction, negative_weights=self.negative_weights, positives=self.positives,
                          twin_weights=self.twin_weights, relations_only=step < self.curriculum_steps,
                          twin_group=self.twin_group, draw=draw)


def negative_weights_for(kinds: list[str] | tuple[str, ...] | None) -> dict[str, float] | None:
    """The drawing weights restricted to ``kinds`` (None or empty: all kinds, default weights)."""
    if not kinds:
        return None
    every = {**NEGATIVE_WEIGHTS, **OPT_IN_NEGATIVE_WEIGHTS}
    unknown = [k for k in kinds if k not in every]
    if unknown:
        raise ValueError(f"unknown hard-negative kind(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    return {k: every[k] for k in kinds}


def twin_weights_for(kinds: list[str] | tuple[str, ...] | None) -> dict[str, float] | None:
    """The counterfactual-twin weights restricted to ``kinds`` (None or empty: both kinds, 3 : 1)."""
    if not kinds:
        return None
    unknown = [k for k in kinds if k not in TWIN_WEIGHTS]
    if unknown:
        raise ValueError(f"unknown counterfactual-twin kind(s) {', '.join(unknown)}; choose from {', '.join(TWIN_WEIGHTS)}")
    return {k: TWIN_WEIGHTS[k] for k in kinds}
