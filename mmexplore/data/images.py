"""Loading user images safely: one clear message per bad file, correct pixels for unusual ones.

Valid but unusual images load correctly: RGBA and LA are composited on white (a transparent
background would otherwise turn black), palette images through RGBA, 16-bit greyscale is scaled to
8 bits, CMYK converts to RGB, EXIF orientation is applied, and animated images give their first
frame. Corrupt, truncated, unsupported or oversized files raise :class:`InputError` naming the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmexplore.errors import InputError

# Decompression-bomb guard: more pixels than this is refused (Pillow warns at ~89 Mpx by default).
MAX_PIXELS = 64_000_000
MAX_FILE_BYTES = 50 * 2**20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB (alpha composited on white, 16-bit scaled, CMYK converted)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, name: str = "<image>", *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image bytes to an RGB PIL image.

    Parameters
    ----------
    data : bytes
        The file's contents.
    name : str
        Shown in error messages.
    max_pixels : int
        Larger images are refused as possible decompression bombs.

    Raises
    ------
    InputError
        Empty, unreadable, truncated, unsupported or too large, with ``name`` in the message.
    """
    if not data:
        raise InputError(f"{name}: empty file")
    if str(name).lower().endswith((".svg", ".svgz")):
        raise InputError(f"{name}: SVG is a vector format, not supported; export it as PNG")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{name}: file is {len(data) / 2**20:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
            if w * h > max_pixels:
                raise InputError(
                    f"{name}: {w}×{h} pixels is over the {max_pixels // 1_000_000} Mpx limit (possible decompression bomb)"
                )
            fmt = probe.format
        image = Image.open(io.BytesIO(data))
        image.seek(0)  # animated GIF/WebP/PNG: the first frame
        image.load()
        image = ImageOps.exif_transpose(image) or image
        rgb = to_rgb(image)
        rgb.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image Pillow can read (unsupported format or not an image)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: corrupt or truncated image ({reason})") from None
    rgb.info["source_format"] = fmt
    return rgb


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read and decode an image file (see :func:`decode_image`); a missing file raises InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(p))


@dataclass
class LoadResult:
    """Images loaded from several sources: what worked and, per bad file, why not."""

    images: list[Image.Image]
    names: list[str]
    errors: list[str]


def load_images(paths: Iterable[str | os.PathLike]) -> LoadResult:
    """Load many files, collecting one message per bad file instead of stopping at the first."""
    images, names, errors = [], [], []
    for path in paths:
        try:
            images.append(load_image(path))
            names.append(str(path))
        except InputError as exc:
            errors.append(str(exc))
    return LoadResult(images, names, errors)


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly or recursively under ``folder`` (by suffix), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
