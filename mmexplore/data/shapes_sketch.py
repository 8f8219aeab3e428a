"""A third, independent drawing routine for shapes-world scenes: as if a person drew them on paper.

The training renderer (:func:`mmexplore.data.shapes.render_scene`) fills exact polygons with PIL on a
flat background; the alternative one (:mod:`mmexplore.data.shapes_alt`) rasterises exact signed
distance functions with numpy. This one shares nothing with either but the scene description, and
differs from both in the ways drawings by people or other programs differ:

- **edges**: wobbly hand-drawn outlines (a perturbed contour that overshoots where it closes), in
  pencil grey, in a dark shade of the fill or in marker; sometimes traced twice;
- **fills**: hatched, cross-hatched, crayon-like (streaky, with gaps), scribbled, or a flat wash
  that misses the outline;
- **background**: paper (off-white, cream, grey or tinted), uneven light, grain, and sometimes
  faint ruled lines, a margin or a grid;
- **shades**: another palette for each colour name (still plainly that colour to a person);
- **proportions**: ellipses instead of circles, rounded-corner rectangles instead of squares,
  triangles that are not equilateral, every shape a little squashed or stretched.

What it keeps exact is the scene's meaning: each object's area centroid is its ``(cx, cy)`` (so every
relation holds as stated), its size stays within a few per cent of its radius (small stays small,
large stays large) and its colour keeps its name. The drawing is deterministic by ``(scene.seed,
style_seed)``; nothing trains on it (:mod:`mmexplore.data.renderers` marks it held out).

>>> from mmexplore.data.shapes import make_scene
>>> img = render_scene_sketch(make_scene(3), 128, style_seed=1)
>>> img.size, img.mode
((128, 128), 'RGB')
>>> img.tobytes() == render_scene_sketch(make_scene(3), 128, style_seed=1).tobytes()
True
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from mmexplore.data.shapes import Scene, ShapeObject

# Felt-pen and crayon shades: none is a shade of the other renderers' palettes, each reads as its name.
SKETCH_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((205, 32, 48), (226, 66, 52), (178, 34, 36), (214, 46, 78)),
    "green": ((58, 150, 70), (88, 158, 48), (28, 128, 88), (76, 182, 92)),
    "blue": ((38, 88, 204), (28, 58, 168), (58, 120, 214), (62, 72, 196)),
    "yellow": ((246, 208, 42), (240, 194, 24), (250, 222, 72), (236, 188, 36)),
}
# Paper: off-white, cream, recycled grey, a cool tint and a pale yellow pad.
PAPERS: tuple[tuple[int, int, int], ...] = (
    (250, 248, 241), (246, 239, 218), (233, 231, 226), (236, 240, 244), (250, 244, 212),
)
FILLS: tuple[str, ...] = ("hatch", "crosshatch", "crayon", "scribble", "wash")
SUPERSAMPLE = 2  # ink is drawn at twice the size, then box-filtered down (smooth strokes)


def _contour(obj: ShapeObject, rng: random.Random, scale: float) -> np.ndarray:
    """A closed hand-drawn contour of ``obj`` in pixels of a canvas of side ``scale``.

    Returns
    -------
    ndarray of shape (n, 2), float
        Points around the outline (not repeating the first), whose polygon area centroid is the
        object's centre exactly.
    """
    r = obj.radius * scale * rng.uniform(0.94, 1.06)
    # Squash or stretch, keeping the area: aspect a ∈ [0.86, 1.16] on the x axis, 1/a on the y axis.
    a = math.sqrt(rng.uniform(0.86, 1.16))
    n = 72
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    if obj.shape == "circle":
        x, y = r * np.cos(t), r * np.sin(t)
    elif obj.shape == "square":
        # A superellipse |x|^p + |y|^p = h^p: a square with rounded corners (p → ∞ is the sharp square).
        p = rng.uniform(3.5, 9.0)
        h = r / math.sqrt(2) * 1.06
        c, s = np.cos(t), np.sin(t)
        x = h * np.sign(c) * np.abs(c) ** (2 / p)
        y = h * np.sign(s) * np.abs(s) ** (2 / p)
    else:
        # Three corners near the equilateral ones, each moved: apex off-centre, base tilted, sides unequal.
        big = r * 1.12
        corners = [(big * rng.uniform(0.9, 1.06), math.radians(base + rng.uniform(-13, 13)))
                   for base in (-90.0, 30.0, 150.0)]
        pts = [(d * math.cos(ang), d * math.sin(ang)) for d, ang in corners]
        per = n // 3
        xs, ys = [], []
        for k in range(3):
            (x0, y0), (x1, y1) = pts[k], pts[(k + 1) % 3]
            u = np.linspace(0.0, 1.0, per, endpoint=False)
            xs.append(x0 + (x1 - x0) * u)
            ys.append(y0 + (y1 - y0) * u)
        x, y = np.concatenate(xs), np.concatenate(ys)
        t = np.arctan2(y, x)
    x, y = x * a, y / a
    # Hand tremor: low harmonics of the radius (k ≥ 2, so the outline does not drift) plus jitter.
    rad = np.ones_like(t)
    for k in (2, 3, 4, 5):
        rad += rng.uniform(0.0, 0.022) * np.sin(k * t + rng.uniform(0, 2 * math.pi))
    jitter = np.array([rng.gauss(0.0, 0.006) for _ in range(len(t))])
    rad += np.convolve(np.concatenate([jitter[-2:], jitter, jitter[:2]]), np.ones(5) / 5, "valid")
    x, y = x * rad, y * rad
    rot = math.radians(obj.rotation + rng.uniform(-6, 6))
    xr, yr = x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)
    pts = np.stack([xr, yr], axis=1)
    pts -= _centroid(pts)
    return pts + np.array([obj.cx * scale, obj.cy * scale])


def _centroid(pts: np.ndarray) -> np.ndarray:
    """Area centroid of the closed polygon ``pts`` (n, 2) (shoelace formula)."""
    x, y = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return pts.mean(axis=0)
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)


def _shade(name: str, rng: random.Random) -> tuple[int, int, int]:
    if name not in SKETCH_COLORS:
        raise ValueError(f"the sketch renderer has no shades for colour '{name}'; known: {', '.join(SKETCH_COLORS)}")
    base = rng.choice(SKETCH_COLORS[name])
    k = rng.uniform(0.94, 1.04)  # one factor on all channels: brighter or darker, same hue
    return tuple(int(min(255, max(0, c * k))) for c in base)  # type: ignore[return-value]


def _hatch(big: int, box: tuple[float, float, float, float], angle: float, gap: float, width: int,
           rng: random.Random, draw: ImageDraw.ImageDraw) -> None:
    """Parallel, slightly uneven strokes at ``angle`` (radians) over ``box``, ``gap`` px apart."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = math.hypot(x1 - x0, y1 - y0) / 2 + width
    d = (math.cos(angle), math.sin(angle))
    nrm = (-d[1], d[0])
    off = -half + rng.uniform(0, gap)
    while off < half:
        o = off + rng.uniform(-0.25, 0.25) * gap
        tilt = rng.uniform(-0.06, 0.06)
        dd = (d[0] - tilt * d[1], d[1] + tilt * d[0])
        px, py = cx + nrm[0] * o, cy + nrm[1] * o
        # A stroke can stop short of either side: hand hatching rarely meets the outline.
        a, b = -half * rng.uniform(0.8, 1.0), half * rng.uniform(0.8, 1.0)
        draw.line([(px + dd[0] * a, py + dd[1] * a), (px + dd[0] * b, py + dd[1] * b)], fill=255, width=width)
        off += gap


def _scribble(box: tuple[float, float, float, float], width: int, rng: random.Random,
              draw: ImageDraw.ImageDraw) -> None:
    """A back-and-forth zigzag over ``box``, the way a child colours in."""
    x0, y0, x1, y1 = box
    step = max(2.0, width * rng.uniform(0.9, 1.4))
    pts, y, left = [], y0 - width, True
    while y < y1 + width:
        pts.append((x0 - width + rng.uniform(-2, 2) if left else x1 + width + rng.uniform(-2, 2), y))
        y += step
        left = not left
    if len(pts) > 1:
        draw.line(pts, fill=255, width=width, joint="curve")


def _paper(size: int, rng: random.Random, noise: np.random.Generator) -> np.ndarray:
    """The paper as float32 (size, size, 3) in [0, 255]: tint, uneven light, lines, grain."""
    tint = np.array(rng.choice(PAPERS), dtype=np.float32) + np.array([rng.uniform(-4, 4) for _ in range(3)],
                                                                   dtype=np.float32)
    # Uneven light: a smooth random field (a coarse grid, upsampled) and a slope across the sheet.
    coarse = Image.fromarray(noise.integers(0, 256, (4, 4), dtype=np.uint8), "L")
    field = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0 - 0.5
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 1.0 + rng.uniform(0.02, 0.06) * field + rng.uniform(-0.04, 0.04) * (xx - 0.5) \
        + rng.uniform(-0.04, 0.04) * (yy - 0.5)
    paper = tint[None, None, :] * light[..., None]
    ruling = rng.random()
    if ruling < 0.55:
        # Faint ruled lines (pale blue-grey, multiplied like ink), sometimes a grid, sometimes a margin.
        gap = size / rng.uniform(6.5, 10.0)
        first = rng.uniform(0, gap)
        line = np.array([rng.uniform(0.84, 0.92), rng.uniform(0.88, 0.94), 0.97], dtype=np.float32)
        rows = np.zeros(size, dtype=bool)
        rows[np.clip(np.arange(first, size, gap).astype(int), 0, size - 1)] = True
        paper[rows] *= line
        if ruling < 0.15:
            paper[:, rows] *= line
        elif ruling > 0.4:
            paper[:, int(size * rng.uniform(0.06, 0.12))] *= np.array([0.97, 0.86, 0.88], dtype=np.float32)
    return paper


def render_scene_sketch(scene: Scene, size: int | None = None, *, style_seed: int = 0) -> Image.Image:
    """Draw ``scene`` as a hand-made sketch on paper.

    Parameters
    ----------
    scene : Scene
        Only the objects (shape, colour, size, centre, radius, rotation) and the seed are read; the
        scene's background and noise belong to the training renderer's style and are not used.
    size : int, optional
        Canvas side in pixels; random in [96, 176] (from the style) when None.
    style_seed : int
        Chooses the paper, pens, fills, shades and the hand's wobble.

    Returns
    -------
    PIL.Image.Image
        RGB, ``size`` × ``size``; same pixels for the same ``(scene.seed, style_seed, size)``.
    """
    rng = random.Random(f"sketch:{scene.seed}:{style_seed}")
    size = int(size) if size else rng.randint(96, 176)
    noise = np.random.default_rng(rng.getrandbits(63))
    paper = _paper(size, rng, noise)
    big = size * SUPERSAMPLE
    ink = Image.new("RGB", (big, big), (255, 255, 255))
    pen = ImageDraw.Draw(ink)
    unit = big / 128  # stroke widths are chosen for a 128-px drawing and scale with the canvas
    # One streaky wax texture per drawing, for crayon fills: noise stretched along one direction.
    wax = Image.fromarray(noise.integers(0, 256, (big // 6, big), dtype=np.uint8), "L")
    wax = wax.resize((big, big), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        wax = wax.transpose(Image.Transpose.TRANSPOSE)
    pencil = rng.random() < 0.5  # one pen for the outlines of the whole drawing, as people do
    pencil_grey = rng.randint(55, 95)
    for obj in scene.objects:
        colour = _shade(obj.color, rng)
        pts = _contour(obj, rng, big)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        # The fill: its region (the outline, or a wash that misses it) times its pattern.
        fill = rng.choice(FILLS)
        region = Image.new("L", (big, big), 0)
        shape = pts
        if fill == "wash":
            centre = pts.mean(axis=0)
            shift = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1)]) * obj.radius * big * 0.06
            shape = (pts - centre) * rng.uniform(0.8, 0.92) + centre + shift
        ImageDraw.Draw(region).polygon([tuple(p) for p in shape], fill=255)
        if fill == "wash":
            pattern = None
        elif fill == "crayon":
            lo_cut = rng.randint(70, 110)
            pattern = wax.point(lambda v, c=lo_cut: 255 if v > c else int(255 * v / c))
        else:
            pattern = Image.new("L", (big, big), 0)
            strokes = ImageDraw.Draw(pattern)
            width = max(1, round(unit * rng.uniform(1.8, 2.8)))
            if fill == "scribble":
                _scribble(box, max(2, round(unit * rng.uniform(2.4, 3.4))), rng, strokes)
            else:
                angle = math.radians(rng.choice((35, 45, 60, 120, 135, 150)) + rng.uniform(-8, 8))
                gap = unit * rng.uniform(3.2, 4.6)
                _hatch(big, box, angle, gap, width, rng, strokes)
                if fill == "crosshatch":
                    _hatch(big, box, angle + math.radians(rng.uniform(70, 100)), gap * 1.2, width, rng, strokes)
        mask = region if pattern is None else ImageChops.multiply(region, pattern)
        ink.paste(colour, (0, 0, big, big), mask)
        # The outline: pencil grey, a dark shade of the fill, or the fill's own marker colour.
        if pencil:
            line_rgb, width = (pencil_grey,) * 3, max(1, round(unit * rng.uniform(1.2, 2.2)))
        elif rng.random() < 0.5:
            line_rgb, width = tuple(int(c * 0.55) for c in colour), max(1, round(unit * rng.uniform(1.6, 2.8)))
        else:
            line_rgb, width = colour, max(2, round(unit * rng.uniform(2.6, 3.6)))
        passes = 2 if rng.random() < 0.35 else 1
        for k in range(passes):
            trace = pts if k == 0 else _contour(obj, rng, big)
            start = rng.randrange(len(trace))
            loop = np.roll(trace, -start, axis=0)
            # Overshoot: the hand goes a little past where it started, slightly outwards.
            over = loop[: rng.randint(3, 10)] * 1.0
            over += (over - np.array([obj.cx * big, obj.cy * big])) * rng.uniform(0.0, 0.05)
            path = np.concatenate([loop, over])
            pen.line([tuple(p) for p in path], fill=line_rgb, width=width if k == 0 else max(1, width - 1),
                     joint="curve")
    ink_small = np.asarray(ink.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    # Ink multiplies the paper (as on real paper the tint and the lines show through), then grain.
    canvas = paper * ink_small
    canvas += noise.normal(0.0, rng.uniform(1.5, 5.0), (size, size, 1)).astype(np.float32)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
