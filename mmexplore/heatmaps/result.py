"""The heatmap result: maps at patch resolution plus the geometry to put them back on the image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RESIZE_MODES = ("shortest", "longest", "squash")


def crop_box(width: int, height: int, resize_mode: str = "shortest") -> tuple[float, float, float, float]:
    """The region of the original image that the model's input covers, in original pixels.

    open_clip's inference transform resizes the shortest side and centre-crops (``shortest``), pads the
    longest side (``longest``) or stretches (``squash``).

    Returns
    -------
    (left, top, right, bottom) : tuple of float
        May extend past the image for ``longest`` (the padding).
    """
    if resize_mode == "squash":
        return 0.0, 0.0, float(width), float(height)
    side = float(min(width, height) if resize_mode != "longest" else max(width, height))
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


@dataclass
class HeatmapResult:
    """Per-word (and per-phrase) maps of one image–caption pair.

    Attributes
    ----------
    text : str
    words : list of str
        The caption's words (BPE pieces merged; special tokens dropped).
    maps : ndarray of shape (n_words, grid_h, grid_w), float32
        One map per word at patch resolution; each sums to 1 (a distribution over patches).
    method : str
        ``attention`` or ``relevancy``.
    image_size : (width, height)
        Of the original image, in pixels.
    box : (left, top, right, bottom)
        Where the patch grid lies on the original image (see :func:`crop_box`).
    phrases : list of str
    phrase_maps : ndarray of shape (n_phrases, grid_h, grid_w), float32
    note : str
        User-facing remark (e.g. the caption was truncated), "" when none.
    params : dict
        Settings that produced the maps (temperature, start layer, ...).
    """

    text: str
    words: list[str]
    maps: np.ndarray
    method: str
    image_size: tuple[int, int]
    box: tuple[float, float, float, float]
    phrases: list[str] = field(default_factory=list)
    phrase_maps: np.ndarray | None = None
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.maps.shape[1]), int(self.maps.shape[2])

    def get(self, key: int | str) -> np.ndarray:
        """A map by word index, or by phrase text (phrases first, then the first word equal to ``key``)."""
        if isinstance(key, str):
            if key in self.phrases and self.phrase_maps is not None:
                return self.phrase_maps[self.phrases.index(key)]
            if key in self.words:
                return self.maps[self.words.index(key)]
            raise KeyError(f"no map for '{key}'; words: {self.words}, phrases: {self.phrases}")
        return self.maps[key]

    def upsampled(self, key: int | str, size: tuple[int, int] | None = None) -> np.ndarray:
        """The map on the original image's pixels (bilinear; zero outside the model's view).

        Parameters
        ----------
        key : int or str
            Word index, or phrase/word text.
        size : (width, height), optional
            Output size; default the original image size (the box is scaled accordingly).

        Returns
        -------
        ndarray of shape (height, width), float32, summing to 1 (unless the view lies outside)
        """
        return upsample(self.get(key), self.image_size, self.box, size)

    def patch_centres(self) -> np.ndarray:
        """(x, y) of every patch centre in original-image pixels: ndarray (grid_h * grid_w, 2), row-major.

        A peak is always one of these points, so an object that contains none of them cannot be hit
        at this patch resolution (the pointing game reports that ceiling).
        """
        gh, gw = self.grid
        left, top, right, bottom = self.box
        rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        x = left + (cols.reshape(-1) + 0.5) * (right - left) / gw
        y = top + (rows.reshape(-1) + 0.5) * (bottom - top) / gh
        w, h = self.image_size
        return np.stack([np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)], axis=1)

    def peak(self, key: int | str) -> tuple[float, float]:
        """(x, y) of the map's maximum in original-image pixels: the centre of the top patch."""
        m = self.get(key)
        x, y = self.patch_centres()[int(np.argmax(m))]
        return float(x), float(y)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (maps as nested lists, patch resolution)."""
        return {
            "text": self.text,
            "words": list(self.words),
            "maps": np.round(self.maps.astype(float), 6).tolist(),
            "method": self.method,
            "grid": list(self.grid),
            "image_size": list(self.image_size),
            "box": [float(v) for v in self.box],
            "phrases": list(self.phrases),
            "phrase_maps": None if self.phrase_maps is None else np.round(self.phrase_maps.astype(float), 6).tolist(),
            "peaks": [list(self.peak(i)) for i in range(len(self.words))],
            "note": self.note,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeatmapResult:
        grid = tuple(d.get("grid", (0, 0)))
        maps = np.asarray(d["maps"], dtype=np.float32).reshape(-1, *grid) if d["maps"] else np.zeros((0, *grid), np.float32)
        pm = d.get("phrase_maps")
        return cls(
            text=d["text"],
            words=list(d["words"]),
            maps=maps,
            method=d["method"],
            image_size=tuple(d["image_size"]),  # type: ignore[arg-type]
            box=tuple(d["box"]),  # type: ignore[arg-type]
            phrases=list(d.get("phrases", [])),
            phrase_maps=None if pm is None else np.asarray(pm, dtype=np.float32),
            note=d.get("note", ""),
            params=dict(d.get("params", {})),
        )


def upsample(
    grid_map: np.ndarray,
    image_size: tuple[int, int],
    box: tuple[float, float, float, float],
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Bilinear upsampling of a patch-grid map onto image pixels.

    Parameters
    ----------
    grid_map : ndarray of shape (grid_h, grid_w)
    image_size : (width, height)
        The original image's size, in which ``box`` is given.
    box : (left, top, right, bottom)
        Where the grid lies, in original pixels.
    size : (width, height), optional
        Output size (default ``image_size``).

    Returns
    -------
    ndarray of shape (height, width), float32
        Renormalised so its sum equals the grid map's sum (mass outside the image is lost).
    """
    from PIL import Image

    w0, h0 = image_size
    w, h = size or image_size
    sx, sy = w / w0, h / h0
    left, top, right, bottom = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    bw, bh = max(1, round(right - left)), max(1, round(bottom - top))
    patch = np.asarray(Image.fromarray(grid_map.astype(np.float32), mode="F").resize((bw, bh), Image.BILINEAR))
    out = np.zeros((h, w), dtype=np.float32)
    x0, y0 = round(left), round(top)
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(w, x0 + bw), min(h, y0 + bh)
    if xe > xs and ye > ys:
        out[ys:ye, xs:xe] = patch[ys - y0 : ye - y0, xs - x0 : xe - x0]
    total = float(patch.sum())
    if total > 0:
        out *= float(grid_map.sum()) / total
    return out
