"""Precomputed paired embeddings from ``.npz`` or ``.parquet`` files (for data sets too big to encode live).

- ``.npz`` (read with ``allow_pickle=False``): arrays ``image`` (N × d) and ``text`` (M × d); row k
  of one is paired with row k of the other when N == M, or an int array ``pairs`` (P × 2) of
  (image row, text row) says which go together. Optional string arrays ``captions`` (M,) and
  ``image_names`` (N,) label the points.
- ``.parquet``: one row per pair, list/array columns ``image_embedding`` and ``text_embedding``;
  optional ``text`` (or ``caption``) and ``image`` columns label them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.projection.gap import pair_indices


@dataclass
class EmbeddingSet:
    """Image and text embeddings with their pairs and labels.

    Attributes
    ----------
    image : ndarray of shape (N, d), float32
    text : ndarray of shape (M, d), float32
    pairs : ndarray of shape (P, 2), int
        (image row, text row) of each true pair.
    image_names : list of str, length N
    captions : list of str, length M
    source : str
    """

    image: np.ndarray
    text: np.ndarray
    pairs: np.ndarray
    image_names: list[str]
    captions: list[str]
    source: str

    def paired_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` with row p of each from pair p: (P, d) image and (P, d) text rows (for CCA)."""
        return self.image[self.pairs[:, 0]], self.text[self.pairs[:, 1]]


def _finish(image: Any, text: Any, pairs: Any, names: Any, captions: Any, source: str) -> EmbeddingSet:
    try:
        img = np.asarray(image, dtype=np.float32)
        txt = np.asarray(text, dtype=np.float32)
    except (ValueError, TypeError):  # strings, bytes, ragged rows: the message would quote the data
        raise InputError(f"{source}: 'image' and 'text' must hold numbers (rows × dims)") from None
    if img.ndim != 2 or txt.ndim != 2:
        raise InputError(f"{source}: 'image' and 'text' must be 2-D (rows × dims); got {img.shape} and {txt.shape}")
    if img.shape[1] != txt.shape[1]:
        raise InputError(f"{source}: image embeddings have {img.shape[1]} dims but text embeddings {txt.shape[1]}")
    if not (np.isfinite(img).all() and np.isfinite(txt).all()):
        raise InputError(f"{source}: embeddings contain NaN or infinite values")
    ii, tt = pair_indices(pairs, len(img), len(txt))
    names = [str(s) for s in names] if names is not None else [f"image {k}" for k in range(len(img))]
    caps = [str(s) for s in captions] if captions is not None else [f"text {k}" for k in range(len(txt))]
    if len(names) != len(img) or len(caps) != len(txt):
        raise InputError(f"{source}: {len(names)} image names / {len(caps)} captions for {len(img)} / {len(txt)} rows")
    return EmbeddingSet(img, txt, np.stack([ii, tt], axis=1), names, caps, source)


def parse_embeddings(data: bytes, name: str) -> EmbeddingSet:
    """Parse ``.npz`` or ``.parquet`` bytes (``name``'s suffix picks the format)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".npz":
        if not data.startswith(b"PK"):  # every .npz is a zip archive; np.load would guess "pickled data"
            raise InputError(f"{name}: not an .npz file (an .npz is a zip archive of .npy arrays; "
                             "save one with numpy.savez)")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except ValueError as exc:
            raise InputError(f"{name}: not a readable .npz without pickled objects ({exc})") from None
        except Exception as exc:
            raise InputError(f"{name}: not a readable .npz file ({type(exc).__name__})") from None
        missing = [k for k in ("image", "text") if k not in arrays]
        if missing:
            raise InputError(f"{name}: not an embeddings file: no {'/'.join(missing)} array(s) (need 'image' and 'text')")
        return _finish(arrays["image"], arrays["text"], arrays.get("pairs"), arrays.get("image_names"),
                       arrays.get("captions", arrays.get("texts")), name)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except Exception as exc:
            raise InputError(f"{name}: not a readable parquet file ({type(exc).__name__})") from None
        cols = set(table.column_names)
        missing = [c for c in ("image_embedding", "text_embedding") if c not in cols]
        if missing:
            raise InputError(f"{name}: not an embeddings file: no {'/'.join(missing)} column(s)")
        try:
            img = np.stack(table.column("image_embedding").to_numpy(zero_copy_only=False))
            txt = np.stack(table.column("text_embedding").to_numpy(zero_copy_only=False))
        except ValueError:
            raise InputError(f"{name}: embedding columns must hold equal-length number lists") from None
        cap_col = "text" if "text" in cols else ("caption" if "caption" in cols else None)
        caps = table.column(cap_col).to_pylist() if cap_col else None
        names = table.column("image").to_pylist() if "image" in cols else None
        return _finish(img, txt, None, names, caps, name)
    raise InputError(f"{name}: unsupported embeddings file type {suffix or '(none)'}; use .npz or .parquet")


def read_embeddings(path: str | os.PathLike) -> EmbeddingSet:
    """Read a ``.npz`` / ``.parquet`` embeddings file (see the module docstring for the layout)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    return parse_embeddings(p.read_bytes(), str(p))


def find_pairs_file(path: str | os.PathLike) -> Path:
    """A captions file given directly, or the single CSV/TSV/JSONL captions file inside a folder."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise InputError(f"{p}: no such file or folder")
    found = sorted(q for q in p.iterdir() if q.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson"))
    if len(found) != 1:
        # A count, not the names: the folder may be anyone's on a shared server.
        raise InputError(f"{p}: expected one captions file (CSV/TSV/JSONL with image,text columns) in the folder, "
                         f"found {len(found)}")
    return found[0]


def encode_pairs_file(encoder: Any, path: str | os.PathLike, *, chunk: int = 256, progress: Any = None,
                      roots: Sequence[str | os.PathLike] | None = None) -> EmbeddingSet:
    """Embed every image and caption of a captions file (or a folder holding one), a chunk at a time.

    Images are decoded ``chunk`` at a time, so a folder of 100k images never sits in memory at once.

    Parameters
    ----------
    encoder : Encoder
    path : path
        CSV/TSV/JSONL with ``image`` and ``text`` columns (paths relative to the file), or its folder.
    chunk : int
        Images decoded and encoded per batch.
    progress : callable(done, total), optional
        Called after each chunk (images, then captions, counted together).
    roots : sequence of path, optional
        Shared mode's data roots: the file and every image it names must lie inside them
        (:mod:`mmexplore.pathguard`); None reads anything (local mode).
    """
    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs
    from mmexplore.pathguard import guard_paths

    shared = roots is not None
    pairs_file = find_pairs_file(path)
    guard_paths([pairs_file], shared=shared, roots=roots or (), what="captions file")
    table = read_pairs(pairs_file)
    guard_paths(table.images, shared=shared, roots=roots or (), what="image path")
    n, m = len(table.images), len(table.texts)
    parts = []
    for start in range(0, n, chunk):
        batch = [load_image(p) for p in table.images[start : start + chunk]]
        parts.append(encoder.encode_images(batch))
        if progress is not None:
            progress(min(start + chunk, n), n + m)
    img = np.vstack(parts)
    txt = encoder.encode_texts(table.texts)
    if progress is not None:
        progress(n + m, n + m)
    ii, tt = np.nonzero(table.pairs)
    names = [Path(p).name for p in table.images]
    return _finish(img, txt, np.stack([ii, tt], axis=1), names, table.texts, str(path))


def read_embeddings_folder(folder: str | os.PathLike) -> EmbeddingSet:
    """An :class:`EmbeddingSet` from an embeddings folder written by ``mmexplore embed``.

    Images are the distinct images, captions the distinct captions, in listing order; a pair joins
    each (image, caption) row of the source. Every vector is loaded (N × d float32 per modality):
    1M × 512 images take 2 GB.
    """
    from mmexplore.embeddings.shards import EmbeddingShards

    shards = EmbeddingShards(folder)
    image, text = shards.load_all("image"), shards.load_all("text")
    img_recs, txt_recs = shards.records("image"), shards.records("text")
    names = img_recs.column("path").to_pylist()
    captions = txt_recs.column("caption").to_pylist()
    where_img = {p: k for k, p in enumerate(names)}
    where_txt = {c: k for k, c in enumerate(captions)}
    pairs = []
    for i in range(len(shards.files)):
        t = shards.table(i, ["path", "caption", "text_embedding"])
        has_text = t.column("text_embedding").is_valid().to_numpy(zero_copy_only=False)
        for path, cap, ok in zip(t.column("path").to_pylist(), t.column("caption").to_pylist(), has_text, strict=True):
            if ok and path in where_img and cap in where_txt:
                pairs.append((where_img[path], where_txt[cap]))
    if len(text) == 0:
        raise InputError(f"{folder}: the embeddings have no captions; the joint space needs images and captions")
    pair_arr = np.unique(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=0)
    short = [Path(n).name for n in names]
    return EmbeddingSet(image, text, pair_arr, short, captions, f"embeddings folder {Path(folder).name}")
