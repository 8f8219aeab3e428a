"""Object proposals: where the separate things in a simple drawing are.

A shapes-world picture is saturated shapes on a pale background. Pixels far from the background
(low minimum channel: saturated or dark) are foreground; its connected components are the
proposals. Each proposal is also returned *isolated*: the picture with everything else painted in
the background colour, so that the model can name that one object at its own place and size. When
the picture does not look like that (no proposals, too many, or most of the canvas foreground, as
in a photograph), :func:`propose_regions` returns nothing and callers fall back to the whole image.

>>> from mmexplore.data.shapes import make_scene, render_scene
>>> regions = propose_regions(render_scene(make_scene(3, n_objects=2), size=128))
>>> len(regions)
2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# A pixel is foreground when its darkest channel is this far below the background's (0–255 units):
# the shapes' colours have a channel under ~90, pale backgrounds none under ~220.
FOREGROUND_DROP = 70.0
MIN_AREA_FRACTION = 0.002  # of the canvas; smaller components are noise or stray anti-aliasing
MAX_REGIONS = 8
MAX_FOREGROUND_FRACTION = 0.6
ZOOM_DIAMETER = 0.36  # object's extent as a share of the zoomed canvas: a "large" object's size


@dataclass(frozen=True)
class Region:
    """One object proposal.

    Attributes
    ----------
    cx, cy : float
        Centroid in normalised image coordinates, in [0, 1] (y downwards), like ``ShapeObject``.
    area : float
        Share of the canvas it covers, in [0, 1].
    bbox : tuple of int
        ``(left, top, right, bottom)`` in pixels of the analysed image.
    isolated : PIL.Image.Image
        The image with everything but this region painted over in the background colour.
    zoomed : PIL.Image.Image
        The isolated object centred and scaled to a fixed share of the canvas (:data:`ZOOM_DIAMETER`),
        so that its shape can be read at the resolution the model sees large objects with.
    """

    cx: float
    cy: float
    area: float
    bbox: tuple[int, int, int, int]
    isolated: Image.Image
    zoomed: Image.Image | None = None


def background_color(arr: np.ndarray) -> np.ndarray:
    """Median colour of the image border (1/16 of the side), shape (3,), float 0–255."""
    h, w = arr.shape[:2]
    b = max(1, min(h, w) // 16)
    border = np.concatenate(
        [arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3), arr[:, :b].reshape(-1, 3), arr[:, -b:].reshape(-1, 3)]
    )
    return np.median(border, axis=0)


def propose_regions(image: Image.Image, *, max_side: int = 160) -> list[Region]:
    """Connected foreground components of a simple drawing, largest first (at most :data:`MAX_REGIONS`).

    Parameters
    ----------
    image : PIL.Image.Image
        Any size; analysed at most ``max_side`` pixels on its longer side.

    Returns
    -------
    list of Region
        Empty when the image does not look like shapes on a plain background.
    """
    from scipy import ndimage

    img = image.convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    h, w = arr.shape[:2]
    bg = background_color(arr)
    # Compare darkest channels: a pale tint or gradient background stays close to its own minimum.
    drop = float(bg.min()) - arr.min(axis=2)
    fg = (drop > FOREGROUND_DROP) | (np.abs(arr - bg).max(axis=2) > 2 * FOREGROUND_DROP)
    if fg.mean() > MAX_FOREGROUND_FRACTION or bg.min() < 150:
        return []
    fg = ndimage.binary_opening(fg, iterations=1)
    labels, n = ndimage.label(fg)
    if n == 0:
        return []
    areas = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
    keep = [k + 1 for k in np.argsort(-areas) if areas[k] >= MIN_AREA_FRACTION * h * w]
    if not keep or len(keep) > MAX_REGIONS:
        return []
    fill = np.clip(bg, 0, 255).astype(np.uint8)
    base = np.asarray(img)
    out = []
    for lab in keep:
        mask = labels == lab
        grown = ndimage.binary_dilation(mask, iterations=2)  # keep the anti-aliased rim
        iso = np.where(grown[..., None], base, fill)
        ys, xs = np.nonzero(mask)
        out.append(
            Region(
                cx=float((xs.mean() + 0.5) / w),
                cy=float((ys.mean() + 0.5) / h),
                area=float(mask.mean()),
                bbox=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
                isolated=Image.fromarray(iso.astype(np.uint8), "RGB"),
                zoomed=_zoom(iso.astype(np.uint8), xs, ys, fill),
            )
        )
    return out


def _zoom(iso: np.ndarray, xs: np.ndarray, ys: np.ndarray, fill: np.ndarray, out_size: int = 128) -> Image.Image:
    """Centre the object on a background canvas and scale it to :data:`ZOOM_DIAMETER` of the side."""
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    side = max(4, round(extent / ZOOM_DIAMETER))
    canvas = Image.new("RGB", (side, side), tuple(int(v) for v in fill))
    src = Image.fromarray(iso, "RGB")
    left, top = round(cx - side / 2), round(cy - side / 2)
    crop = src.crop((max(0, left), max(0, top), min(src.width, left + side), min(src.height, top + side)))
    canvas.paste(crop, (max(0, -left), max(0, -top)))
    return canvas.resize((out_size, out_size), Image.Resampling.BICUBIC)
