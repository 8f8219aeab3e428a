"""Overlay rendering: a heatmap over its image, and a small-multiples grid of them (Pillow only).

Colour scales come from plotly's named scales (already a dependency of the app), sampled into a
256-entry lookup table.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.heatmaps.result import HeatmapResult

COLORMAPS = ("inferno", "viridis", "magma", "plasma", "jet", "turbo", "hot", "greys")
_PLOTLY_NAMES = {"jet": "Jet", "turbo": "Turbo", "hot": "Hot", "greys": "Greys_r"}


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> np.ndarray:
    """A colour scale as a lookup table: ndarray (256, 3), uint8, low values first."""
    if name not in COLORMAPS:
        raise InputError(f"Unsupported colour map '{name}'. The available colour maps are {list(COLORMAPS)}")
    from plotly.colors import get_colorscale, sample_colorscale, unlabel_rgb

    scale = get_colorscale(_PLOTLY_NAMES.get(name, name.capitalize()))
    colors = sample_colorscale(scale, list(np.linspace(0, 1, 256)), colortype="rgb")
    return np.array([unlabel_rgb(c) for c in colors], dtype=float).clip(0, 255).astype(np.uint8)


def colorbar_image(cmap: str = "inferno", width: int = 320, height: int = 12) -> Any:
    """The colour scale ``cmap`` as a horizontal strip (PIL RGB image, width × height): low left, high right.

    Shown beside overlays, which map each map's lowest weight to the left end and its highest to the right.
    """
    from PIL import Image

    row = colormap_lut(cmap)[np.linspace(0, 255, width).round().astype(int)]
    return Image.fromarray(np.repeat(row[None, :, :], height, axis=0), "RGB")


def _normalised(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def overlay(
    image: Any,
    result: HeatmapResult,
    key: int | str,
    *,
    cmap: str = "inferno",
    opacity: float = 0.5,
    smooth: float = 0.0,
    size: tuple[int, int] | None = None,
) -> Any:
    """One map drawn over its image.

    Parameters
    ----------
    image : PIL.Image.Image
        The original image the result was computed on.
    result : HeatmapResult
    key : int or str
        Word index, or phrase/word text.
    cmap : str
        One of :data:`COLORMAPS`.
    opacity : float
        Weight of the heatmap colour in [0, 1] (0: image only).
    smooth : float
        Gaussian blur, in patches (0: none).
    size : (width, height), optional
        Output size (default the image's).

    Returns
    -------
    PIL.Image.Image (RGB)
    """
    from PIL import Image

    from mmexplore.data.images import to_rgb

    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"opacity must be in [0, 1], got {opacity}")
    rgb = to_rgb(image)
    if size is not None:
        rgb = rgb.resize(size, Image.BILINEAR)
    w, h = rgb.size
    m = result.upsampled(key, (w, h))
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        patch_px = w * (result.box[2] - result.box[0]) / result.image_size[0] / result.grid[1]
        m = gaussian_filter(m, sigma=smooth * patch_px)
    lut = colormap_lut(cmap)
    colour = lut[(_normalised(m) * 255).astype(np.uint8)].astype(np.float32)
    base = np.asarray(rgb, dtype=np.float32)
    return Image.fromarray(((1 - opacity) * base + opacity * colour).round().clip(0, 255).astype(np.uint8), "RGB")


def overlay_grid(
    image: Any,
    result: HeatmapResult,
    keys: Sequence[int | str] | None = None,
    *,
    ncols: int = 4,
    cell: int = 160,
    with_image: bool = True,
    **overlay_kwargs: Any,
) -> Any:
    """Small multiples: the image, then one labelled overlay per word (or per given key).

    Parameters
    ----------
    image : PIL.Image.Image
    result : HeatmapResult
    keys : sequence of (int or str), optional
        Default every word, then every phrase.
    ncols : int
    cell : int
        Side of each square tile, in pixels.
    with_image : bool
        Put the plain image first.
    **overlay_kwargs
        ``cmap``, ``opacity``, ``smooth`` (see :func:`overlay`).

    Returns
    -------
    PIL.Image.Image (RGB)
    """
    from PIL import Image, ImageDraw

    from mmexplore.data.images import to_rgb

    keys = list(keys) if keys is not None else [*range(len(result.words)), *result.phrases]
    tiles: list[tuple[str, Any]] = []
    if with_image:
        tiles.append(("image", to_rgb(image).resize((cell, cell), Image.BILINEAR)))
    for k in keys:
        label = result.words[k] if isinstance(k, int) else f'"{k}"'
        tiles.append((label, overlay(image, result, k, size=(cell, cell), **overlay_kwargs)))
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    label_h = 16
    sheet = Image.new("RGB", (ncols * cell, nrows * (cell + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n, (label, tile) in enumerate(tiles):
        r, c = divmod(n, ncols)
        x, y = c * cell, r * (cell + label_h)
        draw.text((x + 3, y + 2), label[:28], fill=(0, 0, 0))
        sheet.paste(tile, (x, y + label_h))
    return sheet
