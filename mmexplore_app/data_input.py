"""Getting user data into the shared :class:`~mmexplore_app.state.Dataset` (no Streamlit calls here).

Each function takes the current data set and returns a *new* one plus messages, so a failure
half-way never damages what is loaded: the Home page swaps the data set only after a call returns.
Every bad file gets its own one-line message naming it; good files in the same batch are kept.

Limits: the per-file upload size is Streamlit's ``server.maxUploadSize`` (``.streamlit/config.toml``);
the number of images and captions is capped by :data:`MAX_IMAGES` and :data:`MAX_TEXTS`
(environment variables ``MMEXPLORE_MAX_IMAGES`` / ``MMEXPLORE_MAX_TEXTS`` override them); images
larger than ``Settings.max_stored_side`` are kept downscaled, and one data set holds at most
``Settings.max_session_megapixels`` million pixels, so no session can hold gigabytes of pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from mmexplore.errors import MMExploreError
from mmexplore.settings import get_settings
from mmexplore_app.state import Dataset

MAX_IMAGES = get_settings().max_images
MAX_TEXTS = get_settings().max_texts
MAX_CAPTION_CHARS = get_settings().max_caption_chars
MAX_STORED_SIDE = get_settings().max_stored_side
MAX_SESSION_PIXELS = get_settings().max_session_megapixels * 1_000_000
IMAGE_TYPES = ("png", "jpg", "jpeg", "webp", "bmp", "gif")
PAIR_TYPES = ("csv", "tsv", "jsonl", "ndjson")
# The uploader also takes SVG so that its refusal is listed with the other messages, not hidden in a chip's tooltip.
UPLOAD_TYPES = (*IMAGE_TYPES, "svg")


@dataclass
class Outcome:
    """What an ingest step did: the new data set, how many items it added, and one message per problem."""

    dataset: Dataset
    added: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    base, ext = (stem, f".{suffix}") if dot else (name, "")
    k = 2
    while f"{base} ({k}){ext}" in taken:
        k += 1
    return f"{base} ({k}){ext}"


def _with_source(ds: Dataset, what: str) -> str:
    if ds.is_empty or ds.source in ("", "empty"):
        return what
    return ds.source if what in ds.source else f"{ds.source} + {what}"


def add_image_files(ds: Dataset, files: Iterable[tuple[str, bytes]], *, max_images: int = MAX_IMAGES,
                    max_side: int = MAX_STORED_SIDE, max_pixels: int = MAX_SESSION_PIXELS) -> Outcome:
    """Decode uploaded image files and append the good ones.

    Parameters
    ----------
    ds : Dataset
        Not modified.
    files : iterable of (name, bytes)
    max_images : int
        Files beyond this many images in the data set are skipped with a message.
    max_side : int
        An image whose longer side exceeds this is kept downscaled to it (a note says so).
    max_pixels : int
        Pixels the whole data set may hold; an image that would pass it is skipped with a message.

    Returns
    -------
    Outcome
        ``errors`` has one "name: reason" line per file that was skipped.
    """
    from mmexplore.data.images import decode_image

    out = ds.copy()
    images, names, errors, notes = [], [], [], []
    taken = set(out.image_names)
    held = sum(im.width * im.height for im in out.images)
    for name, data in files:
        if out.n_images + len(images) >= max_images:
            errors.append(f"{name}: skipped, the data set is at its limit of {max_images} images")
            continue
        try:
            image = decode_image(data, name)
        except MMExploreError as exc:
            errors.append(str(exc))
            continue
        except Exception as exc:  # a decoder failure Pillow does not classify: still one line per file
            errors.append(f"{name}: could not be read ({type(exc).__name__})")
            continue
        if max(image.size) > max_side:
            old = image.size
            image.thumbnail((max_side, max_side))
            notes.append(f"{name}: {old[0]}×{old[1]} pixels, kept downscaled to {image.width}×{image.height}")
        if held + image.width * image.height > max_pixels:
            errors.append(f"{name}: skipped, the data set is at its limit of {max_pixels / 1e6:.0f} megapixels")
            continue
        held += image.width * image.height
        unique = _unique_name(name, taken)
        taken.add(unique)
        images.append(image)
        names.append(unique)
    if images:
        out.add_images(images, names)
        out.source = _with_source(ds, "uploads")
    return Outcome(out, len(images), errors, notes)


def split_captions(text: str) -> list[str]:
    """Captions from typed text: one per line, blank lines dropped, whitespace trimmed, duplicates once."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def add_captions(ds: Dataset, captions: Sequence[str], *, max_texts: int = MAX_TEXTS) -> Outcome:
    """Append captions (already present ones are not duplicated)."""
    out = ds.copy()
    errors: list[str] = []
    fresh: list[str] = []
    present = set(out.texts)
    for k, cap in enumerate(captions, 1):
        if len(cap) > MAX_CAPTION_CHARS:
            errors.append(f"caption {k}: {len(cap)} characters, over the {MAX_CAPTION_CHARS}-character limit; skipped")
            continue
        if cap in present:
            continue
        if out.n_texts + len(fresh) >= max_texts:
            errors.append(f"caption {k}: skipped, the data set is at its limit of {max_texts} captions")
            continue
        fresh.append(cap)
        present.add(cap)
    if fresh:
        out.add_texts(fresh)
        out.source = _with_source(ds, "captions")
    return Outcome(out, len(fresh), errors)


def match_pair_rows(ds: Dataset, rows: Sequence[dict[str, Any]]) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The pairs-file rows whose image is loaded, with its index; and the names of the others, in row order.

    A row's ``image`` matches a loaded image by file name (the last path component). When two loaded
    images share a file name, the first one loaded wins (the one rule for every page).

    Returns
    -------
    (found, missing) : (list of (image index, row), list of str)
    """
    by_name: dict[str, int] = {}
    for i, nm in enumerate(ds.image_names):
        by_name.setdefault(PurePath(nm).name, i)
    found = [(by_name[PurePath(r["image"]).name], r) for r in rows if PurePath(r["image"]).name in by_name]
    missing = [PurePath(r["image"]).name for r in rows if PurePath(r["image"]).name not in by_name]
    return found, missing


def add_pairs_file(ds: Dataset, name: str, data: bytes, *, max_texts: int = MAX_TEXTS) -> Outcome:
    """Read a CSV/TSV/JSONL pairs file (``image``, ``text`` columns) and mark its pairs.

    Images are matched to the data set's images by file name (the last path component). Captions
    are added if new. Rows naming an image that is not loaded are skipped and reported in one message.
    """
    from mmexplore.data.pairs import parse_pairs

    try:
        table = parse_pairs(data, name)
    except MMExploreError as exc:
        return Outcome(ds, 0, [str(exc)])
    except Exception as exc:
        return Outcome(ds, 0, [f"{name}: could not be read ({type(exc).__name__})"])
    found, missing = match_pair_rows(ds, table.rows)
    matched = [r for _, r in found]
    # Only captions of rows whose image is loaded are added: re-reading the file after uploading
    # the missing images then marks the rest.
    captions = list(dict.fromkeys(r["text"] for r in matched if len(r["text"]) <= MAX_CAPTION_CHARS))
    too_long = [k for k, r in enumerate(table.rows, 1) if len(r["text"]) > MAX_CAPTION_CHARS]
    step = add_captions(ds, captions, max_texts=max_texts)
    out = step.dataset
    col = {t: j for j, t in enumerate(out.texts)}
    marked = 0
    for i, row in found:
        j = col.get(row["text"])
        if j is None:
            continue  # caption skipped above (too long or over the limit)
        if not out.pairs[i, j]:
            out.pairs[i, j] = True
            marked += 1
    errors = list(step.errors)
    if too_long:
        rows = ", ".join(map(str, too_long[:5])) + (f" and {len(too_long) - 5} more" if len(too_long) > 5 else "")
        errors.append(f"{name}: {len(too_long)} row(s) dropped, caption over the {MAX_CAPTION_CHARS}-character "
                      f"limit (row {rows})")
    if missing:
        uniq = list(dict.fromkeys(missing))
        shown = ", ".join(uniq[:5]) + (f" and {len(uniq) - 5} more" if len(uniq) > 5 else "")
        errors.append(f"{name}: {len(missing)} row(s) name images that are not loaded ({shown}); upload those images first")
    notes = [f"{name}: {len(table.rows)} rows, {step.added} new captions, {marked} pairs marked"
             + (f", {len(too_long)} dropped" if too_long else "")]
    out.source = _with_source(ds, "pairs file")
    return Outcome(out, marked, errors, notes)


def pair_in_order(ds: Dataset) -> Dataset:
    """Mark image k ↔ caption k for k < min(N, M) (the usual case after typing one caption per image)."""
    out = ds.copy()
    k = min(out.n_images, out.n_texts)
    out.pairs[np.arange(k), np.arange(k)] = True
    return out


# ---------------------------------------------------------------------------- the editable table
CAPTION_COL = "caption"
NOTE_COL = "note"


def image_column_labels(ds: Dataset) -> list[str]:
    """Unique column labels for the images in the pairs table: "1: name", "2: name", ..."""
    return [f"{i + 1}: {nm}" for i, nm in enumerate(ds.image_names)]


def pairs_frame(ds: Dataset) -> Any:
    """The pairs table: one row per caption, a note column, and one True/False column per image."""
    import pandas as pd

    labels = image_column_labels(ds)
    # Built in one go: adding 256 image columns one by one fragments the frame (pandas warns per column).
    ticks = pd.DataFrame(np.asarray(ds.pairs, dtype=bool).T.reshape(ds.n_texts, ds.n_images), columns=labels)
    head = pd.DataFrame(
        {
            CAPTION_COL: pd.Series(ds.texts, dtype="string"),
            NOTE_COL: pd.Series([ds.text_notes.get(t, "") for t in ds.texts], dtype="string"),
        }
    )
    return pd.concat([head, ticks], axis=1)


def apply_pairs_frame(ds: Dataset, df: Any, *, max_texts: int = MAX_TEXTS) -> Outcome:
    """A new data set from an edited pairs table (captions added, edited, removed; pairs ticked).

    Rows with an empty caption are dropped; a caption that appears twice keeps its first row, with
    the ticks of both rows.
    """
    import pandas as pd

    def missing(v: Any) -> bool:
        return v is None or (not isinstance(v, (list, tuple, np.ndarray)) and bool(pd.isna(v)))

    labels = image_column_labels(ds)
    texts: list[str] = []
    rows: dict[str, np.ndarray] = {}
    errors: list[str] = []
    for k, rec in enumerate(df.to_dict("records"), 1):
        cap = rec.get(CAPTION_COL)
        cap = "" if missing(cap) else str(cap).strip()
        if not cap:
            continue
        if len(cap) > MAX_CAPTION_CHARS:
            errors.append(f"row {k}: caption over {MAX_CAPTION_CHARS} characters; dropped")
            continue
        ticks = np.array([False if missing(rec.get(lab)) else bool(rec.get(lab)) for lab in labels], dtype=bool)
        if cap in rows:
            rows[cap] |= ticks
            continue
        if len(texts) >= max_texts:
            errors.append(f"row {k}: over the limit of {max_texts} captions; dropped")
            continue
        texts.append(cap)
        rows[cap] = ticks
    out = ds.copy()
    out.texts = texts
    out.pairs = np.stack([rows[t] for t in texts], axis=1) if texts else np.zeros((ds.n_images, 0), dtype=bool)
    if out.pairs.shape != (ds.n_images, len(texts)):
        out.pairs = out.pairs.reshape(ds.n_images, len(texts))
    out.text_notes = {t: n for t, n in ds.text_notes.items() if t in rows}
    return Outcome(out, len(texts), errors)


def thumbnails(ds: Dataset, size: int = 96) -> list[Any]:
    """Small copies of the images (aspect kept) for display."""
    thumbs = []
    for im in ds.images:
        t = im.copy()
        t.thumbnail((size, size))
        thumbs.append(t)
    return thumbs
