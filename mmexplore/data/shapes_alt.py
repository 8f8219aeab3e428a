"""A second, independent drawing routine for shapes-world scenes.

The training renderer (:func:`mmexplore.data.shapes.render_scene`) fills polygons with PIL. This
one rasterises signed distance functions with numpy, so nothing is shared but the scene
description: different canvas sizes, gradient or tinted backgrounds, dark outlines of varying width,
analytic anti-aliasing, other colour shades and slightly different object sizes. A model that only
learned the training renderer's pixels does badly here; one that learned shapes and colours does not.

>>> from mmexplore.data.shapes import make_scene
>>> img = render_scene_alt(make_scene(3), style_seed=1)
>>> img.mode
'RGB'
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image

from mmexplore.data.shapes import Scene, ShapeObject

# Other shades than the training palette, so exact colour values cannot be memorised.
_ALT_COLORS: dict[str, list[tuple[int, int, int]]] = {
    "red": [(200, 30, 50), (230, 60, 40), (180, 20, 20)],
    "green": [(30, 140, 40), (70, 180, 80), (20, 120, 70)],
    "blue": [(30, 60, 190), (60, 110, 230), (20, 40, 160)],
    "yellow": [(245, 215, 40), (225, 185, 10), (250, 225, 70)],
}


def _sdf(obj: ShapeObject, xs: np.ndarray, ys: np.ndarray, scale: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of ``obj`` at pixel centres ``xs, ys``."""
    cx, cy, r = obj.cx * xs.shape[1], obj.cy * xs.shape[0], obj.radius * xs.shape[1] * scale
    x, y = xs - cx, ys - cy
    if obj.shape == "circle":
        return np.hypot(x, y) - r
    t = math.radians(obj.rotation)
    # Rotate the sample points into the shape's frame.
    xr, yr = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    if obj.shape == "square":
        h = r / math.sqrt(2)
        qx, qy = np.abs(xr) - h, np.abs(yr) - h
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        return outside + np.minimum(np.maximum(qx, qy), 0)
    # Upward equilateral triangle of circumradius 1.15 r, as a max of three half-plane distances.
    R = r * 1.15
    d = np.full_like(xr, -np.inf)
    for a in (-90.0, 30.0, 150.0):
        # Edge normal points away from the vertex opposite: the mid-angle between two vertices.
        n = math.radians(a + 180.0)
        d = np.maximum(d, xr * math.cos(n) + yr * math.sin(n) - R / 2)
    return d


def render_scene_alt(scene: Scene, size: int | None = None, *, style_seed: int = 0) -> Image.Image:
    """Draw ``scene`` with the alternative style.

    Parameters
    ----------
    scene : Scene
    size : int, optional
        Canvas side in pixels; random in [80, 320] (from ``style_seed``) when None.
    style_seed : int
        Chooses the background, outline, shades and size jitter.

    Returns
    -------
    PIL.Image.Image
        RGB, ``size`` × ``size``.
    """
    rng = random.Random(style_seed * 1_000_003 + scene.seed)
    size = size or rng.randint(80, 320)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    # Background: vertical gradient between two pale colours, or a flat tint.
    top = np.array([rng.randint(225, 255) for _ in range(3)], dtype=np.float32)
    bottom = np.array([rng.randint(225, 255) for _ in range(3)], dtype=np.float32)
    w = (ys / size)[..., None]
    canvas = top * (1 - w) + bottom * w
    outline = rng.random() < 0.6
    outline_px = rng.uniform(0.6, 2.0) * size / 100 if outline else 0.0
    outline_rgb = np.array([rng.randint(0, 60)] * 3, dtype=np.float32)
    scale = rng.uniform(0.9, 1.1)
    for obj in scene.objects:
        d = _sdf(obj, xs, ys, scale)
        fill = np.array(rng.choice(_ALT_COLORS[obj.color]), dtype=np.float32)
        # Analytic anti-aliasing: coverage falls linearly over one pixel at the edge.
        cover = np.clip(0.5 - d, 0.0, 1.0)[..., None]
        if outline:
            inner = np.clip(0.5 - (d + outline_px), 0.0, 1.0)[..., None]
            colour = fill * inner + outline_rgb * (1 - inner)
        else:
            colour = fill
        canvas = canvas * (1 - cover) + colour * cover
    if rng.random() < 0.5:
        canvas += np.random.default_rng(style_seed).normal(0, rng.uniform(1, 5), canvas.shape)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
