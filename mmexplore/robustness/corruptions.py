"""Image corruptions: a registry of name → config + function(image, strength).

Every corruption takes a PIL image and a strength in [0, 1] and returns an image of the same size and
mode. Strength 0 returns the input unchanged (the same pixels: tested); strength 1 is the strongest
level this lab reports. Each entry says what the strength means in physical units, so a chart's
x-axis can be read both ways.

>>> from PIL import Image
>>> im = Image.new("RGB", (32, 32), (200, 30, 30))
>>> sorted(CORRUPTIONS)
['blur', 'color_shift', 'downscale', 'gaussian_noise', 'jpeg', 'occlusion']
>>> corrupt(im, "gaussian_noise", 0.0) is im
True
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from mmexplore.errors import InputError

# Strengths reported on the page and by `mmexplore eval robustness` (0 is the clean reference).
DEFAULT_STRENGTHS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Corruption:
    """One corruption of the registry.

    Attributes
    ----------
    name : str
        Registry key (``gaussian_noise``, ...).
    label : str
        Short human name for charts.
    unit : str
        What strength 1 means, e.g. "σ = 80 (0–255 scale)".
    describe : callable float -> str
        The physical parameter at a strength, e.g. ``describe(0.5) == "σ = 40"``.
    apply : callable (PIL.Image, float, int) -> PIL.Image
        The corruption at a strength in (0, 1] with a seed (noise, patch position).
    """

    name: str
    label: str
    unit: str
    describe: Callable[[float], str]
    apply: Callable[[Image.Image, float, int], Image.Image]


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _back(arr: np.ndarray, like: Image.Image) -> Image.Image:
    out = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return out if like.mode == "RGB" else out.convert(like.mode)


NOISE_SIGMA = 80.0  # at strength 1, in 0–255 pixel units


def _noise(image: Image.Image, s: float, seed: int) -> Image.Image:
    arr = _rgb(image)
    arr = arr + np.random.default_rng(seed).normal(0.0, NOISE_SIGMA * s, arr.shape)
    return _back(arr, image)


BLUR_FRACTION = 0.04  # Gaussian radius at strength 1, as a fraction of the image side


def _blur_radius(image: Image.Image, s: float) -> float:
    return BLUR_FRACTION * s * max(image.size)


def _blur(image: Image.Image, s: float, seed: int) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(_blur_radius(image, s)))


def _jpeg_quality(s: float) -> int:
    # Quality 95 (barely visible) down to 2 (8×8 blocks of flat colour) at strength 1.
    return max(2, round(95 - 93 * s))


def _jpeg(image: Image.Image, s: float, seed: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=_jpeg_quality(s))
    buf.seek(0)
    out = Image.open(buf).convert("RGB")
    return out if image.mode == "RGB" else out.convert(image.mode)


OCCLUSION_AREA = 0.25  # share of the image a grey patch covers at strength 1


def occlusion_box(size: tuple[int, int], s: float, seed: int) -> tuple[int, int, int, int]:
    """The occluding patch ``(left, top, right, bottom)`` in pixels for an image of ``size`` (w, h).

    A square of area ``OCCLUSION_AREA · s`` of the image, at a position drawn from ``seed`` (the
    same seed always covers the same place, so curves are repeatable).
    """
    w, h = size
    side = max(1, round(math.sqrt(OCCLUSION_AREA * s * w * h)))
    side = min(side, w, h)
    rng = random.Random(seed)
    left, top = rng.randint(0, w - side), rng.randint(0, h - side)
    return left, top, left + side, top + side


def _occlude(image: Image.Image, s: float, seed: int) -> Image.Image:
    out = image.copy()
    out.paste((128, 128, 128) if image.mode == "RGB" else 128, occlusion_box(image.size, s, seed))
    return out


HUE_DEGREES = 90.0  # hue rotation at strength 1


def _hue_shift(image: Image.Image, s: float, seed: int) -> Image.Image:
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.int32)
    hsv = hsv.copy()
    hsv[..., 0] = (hsv[..., 0] + round(HUE_DEGREES * s / 360.0 * 256)) % 256
    out = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    return out if image.mode == "RGB" else out.convert(image.mode)


DOWNSCALE_MIN = 1 / 8  # side kept at strength 1


def _downscale_factor(s: float) -> float:
    return 1.0 - (1.0 - DOWNSCALE_MIN) * s


def _downscale(image: Image.Image, s: float, seed: int) -> Image.Image:
    w, h = image.size
    f = _downscale_factor(s)
    small = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.BILINEAR)


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", "Gaussian noise", f"σ = {NOISE_SIGMA:.0f} (0–255 scale)",
                   lambda s: f"σ = {NOISE_SIGMA * s:.0f}", _noise),
        Corruption("blur", "Blur", f"Gaussian radius {BLUR_FRACTION:.0%} of the side",
                   lambda s: f"radius {BLUR_FRACTION * s:.1%} of the side", _blur),
        Corruption("jpeg", "JPEG quality", "quality 95 → 2", lambda s: f"quality {_jpeg_quality(s)}" if s else "lossless", _jpeg),
        Corruption("occlusion", "Occlusion patch", f"grey square over {OCCLUSION_AREA:.0%} of the image",
                   lambda s: f"{OCCLUSION_AREA * s:.0%} covered", _occlude),
        Corruption("color_shift", "Colour shift", f"hue rotated by {HUE_DEGREES:.0f}°",
                   lambda s: f"hue +{HUE_DEGREES * s:.0f}°", _hue_shift),
        Corruption("downscale", "Downscaling", f"side × {DOWNSCALE_MIN:.3f}, then back up",
                   lambda s: f"side × {_downscale_factor(s):.2f}", _downscale),
    )
}


def check_corruption(name: str) -> Corruption:
    """The registry entry for ``name``; an unknown name raises :class:`InputError` listing the choices."""
    if name not in CORRUPTIONS:
        raise InputError(f"Unsupported corruption '{name}'. The available corruptions are {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def corrupt(image: Image.Image, name: str, strength: float, *, seed: int = 0) -> Image.Image:
    """``image`` corrupted by ``name`` at ``strength`` in [0, 1] (0: the input object itself).

    Parameters
    ----------
    image : PIL.Image.Image
    name : str
        A key of :data:`CORRUPTIONS`.
    strength : float
        In [0, 1]; see each entry's ``unit`` for the physical meaning.
    seed : int
        Noise draw and patch position (only those two corruptions are random).

    Returns
    -------
    PIL.Image.Image
        Same size and mode as ``image``.
    """
    entry = check_corruption(name)
    if not 0.0 <= float(strength) <= 1.0 or math.isnan(float(strength)):
        raise InputError(f"corruption strength must be in [0, 1], got {strength}")
    if strength == 0:
        return image
    return entry.apply(image, float(strength), seed)
