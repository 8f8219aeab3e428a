"""The registry of shapes-world renderers: name → description + drawing function.

Every place that draws held-out scenes by renderer name (``eval retrieval``, ``eval compositional``,
the relation data set, the trainer's ``--train-renderers``, the Probes page) lists and resolves names
here, so a new renderer is one entry.

=========  ==============================================================  =========
name       drawing                                                         trainable
=========  ==============================================================  =========
train      :func:`~mmexplore.data.shapes.render_scene`: PIL polygons       yes
alt        :func:`~mmexplore.data.shapes_alt.render_scene_alt`: numpy SDFs  yes
sketch     :func:`~mmexplore.data.shapes_sketch.render_scene_sketch`:       no
           hand-drawn look on paper
=========  ==============================================================  =========

The shipped models are trained on ``train`` only, so ``alt`` and ``sketch`` are both independent of
their training. A model trained with ``--train-renderers train alt`` has seen ``alt``; ``sketch`` is
never trainable, so it stays a held-out test for every model.

>>> renderer_names()
('train', 'alt', 'sketch')
>>> resolve_renderers("both"), resolve_renderers("sketch")
(('train', 'alt'), ('sketch',))
>>> from mmexplore.data.shapes import make_scene
>>> draw_scene(make_scene(1), "sketch", 64).size
(64, 64)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from mmexplore.data.shapes import Scene
from mmexplore.errors import InputError

DrawFn = Callable[[Scene, "int | None", int], Image.Image]


@dataclass(frozen=True)
class Renderer:
    """One registered renderer.

    Attributes
    ----------
    name : str
        The name on the command line and in results (``train``, ``alt``, ``sketch``).
    label : str
        A short label for pickers and table captions.
    description : str
        One sentence: how it draws.
    draw : callable
        ``draw(scene, size, style_seed) -> PIL.Image`` (RGB, ``size`` × ``size``; ``size`` None: the
        renderer's own canvas size, which may vary with the style).
    trainable : bool
        False for a held-out test renderer that training must never use.
    """

    name: str
    label: str
    description: str
    draw: DrawFn
    trainable: bool = True


def _train(scene: Scene, size: int | None, style_seed: int) -> Image.Image:
    from mmexplore.data.shapes import render_scene

    return render_scene(scene, size or 128)  # its style comes from the scene itself


def _alt(scene: Scene, size: int | None, style_seed: int) -> Image.Image:
    from mmexplore.data.shapes_alt import render_scene_alt

    return render_scene_alt(scene, size, style_seed=style_seed)


def _sketch(scene: Scene, size: int | None, style_seed: int) -> Image.Image:
    from mmexplore.data.shapes_sketch import render_scene_sketch

    return render_scene_sketch(scene, size, style_seed=style_seed)


RENDERERS: dict[str, Renderer] = {
    r.name: r
    for r in (
        Renderer("train", "training renderer",
                 "PIL polygons on a flat pale background, the training data's look (128 px).", _train),
        Renderer("alt", "independent renderer",
                 "numpy signed-distance shapes: gradients, dark outlines, other shades and canvas sizes.", _alt),
        Renderer("sketch", "hand-drawn sketches (never trained on)",
                 "a person's drawing on paper: wobbly outlines, hatched or crayon fills, ruled paper, "
                 "other shades and proportions.", _sketch, trainable=False),
    )
}
# Names that stand for several renderers on the command line ("both" is the two original ones).
RENDERER_GROUPS: dict[str, tuple[str, ...]] = {"all": tuple(RENDERERS), "both": ("train", "alt")}


def renderer_names(*, trainable: bool | None = None) -> tuple[str, ...]:
    """Registered renderer names in registry order (only trainable or held-out ones when asked)."""
    return tuple(n for n, r in RENDERERS.items() if trainable is None or r.trainable == trainable)


def get_renderer(name: str) -> Renderer:
    """The registered renderer ``name``; :class:`InputError` naming the known ones otherwise."""
    if name not in RENDERERS:
        raise InputError(f"unknown renderer '{name}'; choose one of {', '.join(RENDERERS)}")
    return RENDERERS[name]


def resolve_renderers(choice: str) -> tuple[str, ...]:
    """Renderer names from a command-line choice: a name, ``all``, ``both`` (train + alt) or ``a,b``."""
    if choice in RENDERER_GROUPS:
        return RENDERER_GROUPS[choice]
    names = tuple(dict.fromkeys(n.strip() for n in choice.split(",") if n.strip()))
    if not names:
        raise InputError(f"no renderer named in '{choice}'; choose from {', '.join([*RENDERERS, *RENDERER_GROUPS])}")
    for n in names:
        get_renderer(n)
    return names


def draw_scene(scene: Scene, renderer: str, size: int | None = None, style_seed: int | None = None) -> Image.Image:
    """Draw ``scene`` with the named renderer.

    Parameters
    ----------
    scene : Scene
    renderer : str
        A registered name (:func:`renderer_names`).
    size : int, optional
        Canvas side in pixels; None lets the renderer choose (``train``: 128; ``alt`` and ``sketch``:
        a size that varies with the style, as in every held-out evaluation).
    style_seed : int, optional
        The style of ``alt`` and ``sketch`` (default: the scene's seed, so a scene always looks the same).

    Returns
    -------
    PIL.Image.Image
        RGB.
    """
    return get_renderer(renderer).draw(scene, size, scene.seed if style_seed is None else style_seed)
