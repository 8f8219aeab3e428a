"""Caption and pair files: CSV, TSV or JSONL with ``image`` and ``text`` columns.

Each row pairs one image with one caption; an image may appear on several rows (several captions)
and a caption on several rows (several images), so pairs are many-to-many. Relative image paths are
resolved against the file's folder. Extra columns (e.g. ``phrase``) are kept per row.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "p.csv").write_text("image,text\\na.png,a red circle\\na.png,a circle\\nb.png,a square\\n")
>>> t = read_pairs(d / "p.csv")
>>> len(t.images), len(t.texts), int(t.pairs.sum())
(2, 3, 3)
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmexplore.errors import InputError

REQUIRED_COLUMNS = ("image", "text")
MAX_ROWS = 200_000


@dataclass
class PairTable:
    """Rows of (image, text) pairs and the unique images and texts they use.

    Attributes
    ----------
    rows : list of dict
        One dict per row with at least ``image`` (resolved path as str) and ``text``.
    images : list of str
        Unique image paths, in first-seen order.
    texts : list of str
        Unique captions, in first-seen order.
    pairs : ndarray of shape (len(images), len(texts)), bool
        True where a row pairs that image with that text.
    """

    rows: list[dict[str, str]]
    images: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    @classmethod
    def from_rows(cls, rows: list[dict[str, str]]) -> PairTable:
        images = list(dict.fromkeys(r["image"] for r in rows))
        texts = list(dict.fromkeys(r["text"] for r in rows))
        ii = {p: k for k, p in enumerate(images)}
        tt = {t: k for k, t in enumerate(texts)}
        pairs = np.zeros((len(images), len(texts)), dtype=bool)
        for r in rows:
            pairs[ii[r["image"]], tt[r["text"]]] = True
        return cls(rows, images, texts, pairs)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (the byte at position {exc.start} is not UTF-8); save it as UTF-8") from None


def parse_pairs(data: bytes, name: str, base_dir: str | os.PathLike | None = None) -> PairTable:
    """Parse pair-file bytes; ``name``'s suffix picks the format (.jsonl/.json lines, .tsv, else CSV).

    Parameters
    ----------
    data : bytes
    name : str
        File name, shown in errors and used to choose the format.
    base_dir : path, optional
        Folder that relative image paths are resolved against; None keeps them as written.

    Raises
    ------
    InputError
        Not UTF-8, malformed JSON, missing ``image``/``text`` columns (lists the columns found), no
        rows, empty fields.
    """
    text = _decode(data, name)
    suffix = Path(name).suffix.lower()
    rows: list[dict[str, str]] = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{name}: line {lineno} is not a JSON object")
            rows.append({str(k): "" if v is None else str(v) for k, v in obj.items()})
            if len(rows) > MAX_ROWS:
                raise InputError(f"{name}: more than {MAX_ROWS} rows")
        columns = set().union(*(r.keys() for r in rows)) if rows else set()
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        if suffix not in (".tsv", ".csv", ".txt", ""):
            raise InputError(f"{name}: unsupported pairs file type '{suffix}'; use .csv, .tsv or .jsonl")
        try:
            reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
            columns = {c.strip() for c in (reader.fieldnames or []) if c}
            for row in reader:
                rows.append({(k or "").strip(): (v or "") for k, v in row.items()})
                if len(rows) > MAX_ROWS:
                    raise InputError(f"{name}: more than {MAX_ROWS} rows")
        except csv.Error as exc:
            raise InputError(f"{name}: malformed CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        # Never echo the header: the "file" may be any file on the server (/proc/self/environ, .env).
        raise InputError(f"{name}: not a pairs file: no {'/'.join(missing)} column(s) (need 'image' and 'text')")
    if not rows:
        raise InputError(f"{name}: no rows")
    base = Path(base_dir) if base_dir is not None else None
    clean: list[dict[str, str]] = []
    for k, r in enumerate(rows, 1):
        image, caption = r.get("image", "").strip(), r.get("text", "").strip()
        if not image or not caption:
            raise InputError(f"{name}: row {k} has an empty 'image' or 'text'")
        if base is not None and not Path(image).is_absolute():
            image = str((base / image).resolve())
        clean.append({**r, "image": image, "text": caption})
    return PairTable.from_rows(clean)


def read_pairs(path: str | os.PathLike) -> PairTable:
    """Read a pairs file; image paths are resolved relative to the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    return parse_pairs(p.read_bytes(), str(p), base_dir=p.parent)


def read_texts(path: str | os.PathLike) -> list[str]:
    """Captions from a text file, one per line (blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    lines = [ln.strip() for ln in _decode(p.read_bytes(), str(p)).splitlines()]
    texts = [ln for ln in lines if ln]
    if not texts:
        raise InputError(f"{p}: no captions in the file")
    return texts
