"""Training-time image variation (``mmexplore train --augment NAME``): a registry of augmentations.

An augmentation changes how a training scene looks, never what its captions say. It has two parts:

- ``scene(scene, rng) -> Scene``, before drawing: may change what no caption mentions (the
  background, the pixel noise, an object's radius *within its size class*); never a centre (so no
  relation changes), a shape, a colour name or the number of objects;
- ``image(image, rng) -> Image``, after drawing: hue-preserving changes (each object's brightness and
  saturation, the background), a dark outline around the objects, blur, grain.

=========  ==================================================================================
name       what it does
=========  ==================================================================================
none       nothing (the drawing is the renderer's, pixel for pixel)
style      per-object scale within the size class, another pale background and noise level,
           per-object shade jitter (same hue), sometimes a dark outline, blur or grain
=========  ==================================================================================

The image part finds the objects by their difference from the background (the median of the
border), so it works on the output of any renderer.

>>> import random
>>> from mmexplore.data.shapes import make_scene, render_scene
>>> scene = make_scene(4)
>>> aug = get_augmentation("style")
>>> drawn = aug.scene(scene, random.Random(0))
>>> [(o.cx, o.cy) for o in drawn.objects] == [(o.cx, o.cy) for o in scene.objects]
True
>>> aug.image(render_scene(drawn, 64), random.Random(0)).size
(64, 64)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFilter

from mmexplore.data.shapes import SIZES, Scene
from mmexplore.errors import InputError


@dataclass(frozen=True)
class Augmentation:
    """One registered augmentation.

    Attributes
    ----------
    name, description : str
    scene : callable
        ``(scene, rng) -> Scene`` applied before drawing (keeps every caption true).
    image : callable
        ``(image, rng) -> PIL.Image`` applied to the drawing (RGB in, RGB of the same size out).
    """

    name: str
    description: str
    scene: Callable[[Scene, random.Random], Scene]
    image: Callable[[Image.Image, random.Random], Image.Image]


def _same_scene(scene: Scene, rng: random.Random) -> Scene:
    return scene


def _same_image(image: Image.Image, rng: random.Random) -> Image.Image:
    return image


def _restyle_scene(scene: Scene, rng: random.Random) -> Scene:
    """Rescale objects inside their size class, change the background and the noise (captions unchanged)."""
    objects = list(scene.objects)
    for k, obj in enumerate(objects):
        lo, hi = SIZES[obj.size]
        r = min(hi, max(lo, obj.radius * rng.uniform(0.88, 1.12)))
        margin = r * 1.1 + 0.02
        inside = margin <= obj.cx <= 1 - margin and margin <= obj.cy <= 1 - margin
        # The placement rule of the scene generator: no object closer than 1.05 × the sum of radii.
        apart = all(math.hypot(obj.cx - o.cx, obj.cy - o.cy) > (r + o.radius) * 1.05
                    for j, o in enumerate(objects) if j != k)
        if inside and apart:
            objects[k] = replace(obj, radius=r)
    background = tuple(rng.randint(212, 255) for _ in range(3)) if rng.random() < 0.7 else scene.background
    noise = rng.choice([0.0, 0.0, 2.0, 4.0, 7.0])
    return replace(scene, objects=tuple(objects), background=background, noise=noise)  # type: ignore[arg-type]


def object_mask(arr: np.ndarray, threshold: float = 45.0) -> np.ndarray:
    """Pixels of ``arr`` (H, W, 3) that differ from the background (the border's median) by > ``threshold``.

    Returns
    -------
    ndarray of shape (H, W), bool
    """
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).astype(np.float32)
    bg = np.median(border, axis=0)
    return np.abs(arr.astype(np.float32) - bg).max(axis=-1) > threshold


def _restyle_image(image: Image.Image, rng: random.Random) -> Image.Image:
    """Per-object shade jitter (same hue), then sometimes an outline, a blur and grain."""
    from scipy import ndimage

    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    mask = object_mask(arr)
    labels, n = ndimage.label(mask)
    out = arr.copy()
    for k in range(1, n + 1):
        where = labels == k
        px = out[where]
        grey = px.mean(axis=1, keepdims=True)
        # Saturation and brightness move together on all channels: the hue (the colour's name) stays.
        px = (grey + (px - grey) * rng.uniform(0.8, 1.15)) * rng.uniform(0.9, 1.1)
        out[where] = px
    if rng.random() < 0.4 and n:
        # A dark outline: the objects' mask grown by one or two pixels, minus the mask.
        grow = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(rng.choice((3, 5))))
        ring = (np.asarray(grow) > 0) & ~mask
        out[ring] = rng.uniform(15, 90)
    result = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:
        result = result.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.3:
        grain = np.random.default_rng(rng.getrandbits(32)).normal(0.0, rng.uniform(2.0, 8.0), arr.shape)
        result = Image.fromarray(np.clip(np.asarray(result, dtype=np.float32) + grain, 0, 255).astype(np.uint8), "RGB")
    return result


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation("none", "no change: the renderer's drawing as it is", _same_scene, _same_image),
        Augmentation("style", "per-object scale within the size class, other backgrounds, shades (same hue), "
                     "outlines, blur and grain; every caption stays true", _restyle_scene, _restyle_image),
    )
}


def get_augmentation(name: str) -> Augmentation:
    """The registered augmentation ``name``; :class:`InputError` naming the known ones otherwise."""
    if name not in AUGMENTATIONS:
        raise InputError(f"unknown augmentation '{name}'; choose one of {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]
