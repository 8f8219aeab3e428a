"""The hand-drawn "sketch" renderer and the renderer registry (issue 15, item 3).

The sketch must look different from both other renderers and keep the scene's meaning: each object's
colour nameable where it is drawn, its centre where the scene says, small objects smaller than large ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmexplore.data.renderers import (
    RENDERER_GROUPS,
    RENDERERS,
    draw_scene,
    get_renderer,
    renderer_names,
    resolve_renderers,
)
from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene
from mmexplore.data.shapes_alt import render_scene_alt
from mmexplore.data.shapes_sketch import _centroid, _contour, render_scene_sketch
from mmexplore.errors import InputError

SIZE = 128
# Hue ranges (degrees) a person would call each colour name.
HUES = {"red": [(0, 22), (330, 360)], "yellow": [(38, 70)], "green": [(80, 170)], "blue": [(200, 255)]}


def hue_names(rgb: np.ndarray) -> np.ndarray:
    """Per pixel of ``rgb`` (..., 3) uint8: the colour name of its hue, "" when unsaturated or no name."""
    x = rgb.astype(float) / 255
    mx, mn = x.max(-1), x.min(-1)
    sat = (mx - mn) / np.maximum(mx, 1e-9)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    d = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, (g - b) / d % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) * 60
    out = np.full(h.shape, "", dtype=object)
    for name, ranges in HUES.items():
        for lo, hi in ranges:
            out[(h >= lo) & (h < hi) & (sat > 0.3) & (mx > 0.25)] = name
    return out


def owner_map(scene, size: int) -> np.ndarray:
    """Pixel → index of the object it lies nearest (in units of each object's radius), -1 when far from all."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([np.hypot(xs - o.cx * size, ys - o.cy * size) / (o.radius * size) for o in scene.objects])
    own = d.argmin(0)
    return np.where(d.min(0) < 1.4, own, -1)


SCENES = [make_scene(HELD_OUT_SEED_START + 500 + i) for i in range(40)]


def test_sketch_draws_each_object_in_its_named_colour_at_its_centre():
    worst = 0.0
    for scene in SCENES:
        img = np.asarray(render_scene_sketch(scene, SIZE, style_seed=scene.seed))
        names, own = hue_names(img), owner_map(scene, SIZE)
        ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
        for k, obj in enumerate(scene.objects):
            mine = own == k
            votes = {c: int(((names == c) & mine).sum()) for c in HUES}
            assert max(votes, key=votes.get) == obj.color, (scene.seed, k, obj, votes)
            hit = mine & (names == obj.color)
            assert hit.sum() >= 0.1 * np.pi * (obj.radius * SIZE) ** 2, (scene.seed, k, votes)
            # The coloured ink's centroid sits at the object's centre (relations are about centres).
            off = np.hypot(xs[hit].mean() - obj.cx * SIZE, ys[hit].mean() - obj.cy * SIZE) / (obj.radius * SIZE)
            worst = max(worst, off)
    assert worst < 0.3, worst


def test_sketch_contour_keeps_centre_and_size_class():
    import random

    small: dict[str, list[float]] = {"circle": [], "square": [], "triangle": []}
    large: dict[str, list[float]] = {"circle": [], "square": [], "triangle": []}
    for scene in SCENES:
        for obj in scene.objects:
            pts = _contour(obj, random.Random(scene.seed), 1000.0)
            assert np.allclose(_centroid(pts), [obj.cx * 1000, obj.cy * 1000], atol=1e-6)
            x, y = pts[:, 0], pts[:, 1]
            area = abs((x * np.roll(y, -1) - np.roll(x, -1) * y).sum()) / 2
            (small if obj.size == "small" else large)[obj.shape].append(area)
    for shape in small:  # per shape: a small one of any proportions stays well below a large one
        assert small[shape] and large[shape] and max(small[shape]) < 0.75 * min(large[shape]), shape


def test_sketch_is_deterministic_and_styles_differ():
    scene = SCENES[3]
    a = render_scene_sketch(scene, SIZE, style_seed=7)
    assert a.tobytes() == render_scene_sketch(scene, SIZE, style_seed=7).tobytes()
    b = np.asarray(render_scene_sketch(scene, SIZE, style_seed=8), dtype=float)
    assert np.abs(np.asarray(a, dtype=float) - b).mean() > 1.0
    sizes = {render_scene_sketch(s, None, style_seed=s.seed).size[0] for s in SCENES[:12]}
    assert len(sizes) > 3 and all(96 <= s <= 176 for s in sizes)


def test_sketch_differs_from_both_other_renderers():
    """Pixel distance to the training and alternative drawings of the same scenes, far above noise."""
    d_train, d_alt, d_self = [], [], []
    for scene in SCENES[:12]:
        sk = np.asarray(render_scene_sketch(scene, SIZE, style_seed=scene.seed), dtype=float)
        d_train.append(np.abs(sk - np.asarray(render_scene(scene, SIZE), dtype=float)).mean())
        d_alt.append(np.abs(sk - np.asarray(render_scene_alt(scene, SIZE, style_seed=scene.seed), dtype=float)).mean())
        d_self.append(np.abs(np.asarray(render_scene(scene, SIZE), dtype=float)
                             - np.asarray(render_scene_alt(scene, SIZE, style_seed=scene.seed), dtype=float)).mean())
    # Paper, strokes and fills move more pixels than the alternative renderer does from the training one.
    assert np.mean(d_train) > 8 and np.mean(d_alt) > 8, (np.mean(d_train), np.mean(d_alt))
    assert np.mean(d_train) > np.mean(d_self)


def test_sketch_rejects_an_unknown_colour_by_name():
    from dataclasses import replace

    scene = SCENES[0]
    odd = replace(scene, objects=(replace(scene.objects[0], color="purple"),))
    with pytest.raises(ValueError, match="purple"):
        render_scene_sketch(odd, 64)


def test_registry_lists_draws_and_resolves():
    assert renderer_names() == ("train", "alt", "sketch") == tuple(RENDERERS)
    assert renderer_names(trainable=True) == ("train", "alt")
    assert renderer_names(trainable=False) == ("sketch",)
    assert resolve_renderers("all") == renderer_names() and resolve_renderers("both") == RENDERER_GROUPS["both"]
    assert resolve_renderers("sketch,train,sketch") == ("sketch", "train")
    for bad in ("nosuch", "train,nosuch", " , "):
        with pytest.raises(InputError, match="renderer"):
            resolve_renderers(bad)
    with pytest.raises(InputError, match="train, alt, sketch"):
        get_renderer("crayon")
    scene = SCENES[1]
    # The registry draws exactly what each renderer draws (held-out style: seeded by the scene).
    assert draw_scene(scene, "train").tobytes() == render_scene(scene, 128).tobytes()
    assert draw_scene(scene, "alt").tobytes() == render_scene_alt(scene, style_seed=scene.seed).tobytes()
    assert draw_scene(scene, "sketch", 96).tobytes() == render_scene_sketch(scene, 96, style_seed=scene.seed).tobytes()
    assert all(r.description and r.label for r in RENDERERS.values())
