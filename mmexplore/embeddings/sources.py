"""What to embed: a folder of images, a glob, or a captions table, listed as one Arrow table.

Every source becomes rows ``(id, row, path, caption, image_caption, image_first, text_first)``:

- ``row`` is the position in the listing (folders and globs sorted by path; tables in file order),
  which fixes the order of the index built later, whatever order the workers finish in;
- ``id`` identifies the item by content (a hash of path and caption): a re-run skips ids already
  written, so resuming never duplicates a row;
- ``image_first`` / ``text_first`` mark the first row of each distinct image / caption, so the index
  holds each image and each caption once without keeping a set of every path in memory;
- ``image_caption`` is every caption of that image joined with `` | `` (as the folder build shows).

Captions tables are read with pyarrow (CSV, TSV, JSONL or Parquet with ``image`` and ``text``
columns), so millions of rows list in seconds; relative image paths are resolved against the table's
folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from mmexplore.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
ITEM_COLUMNS = ("id", "row", "path", "caption", "image_caption", "image_first", "text_first")


def item_id(path: str, caption: str) -> str:
    """Stable 16-hex-digit id of one (image path, caption) item."""
    return hashlib.sha1(f"{path}\n{caption}".encode()).hexdigest()[:16]


def _read_table(src: Path) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = src.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pq.read_table(src)
        elif suffix in (".jsonl", ".ndjson"):
            table = pajson.read_json(src)
        else:
            opts = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            conv = pacsv.ConvertOptions(column_types={"image": pa.string(), "text": pa.string()})
            table = pacsv.read_csv(src, parse_options=opts, convert_options=conv)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{src}: not a readable captions table ({str(exc).splitlines()[0][:200]})") from None
    missing = [c for c in ("image", "text") if c not in table.column_names]
    if missing:
        raise InputError(f"{src}: missing column(s) {', '.join(missing)}; found {', '.join(table.column_names)}")
    return table


def _first_flags(values: list[str]) -> np.ndarray:
    seen: set[str] = set()
    out = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if v not in seen:
            seen.add(v)
            out[i] = True
    return out


def list_items(source: str | os.PathLike) -> pa.Table:
    """List ``source`` as an items table (columns :data:`ITEM_COLUMNS`), one row per (image, caption).

    Parameters
    ----------
    source : path or glob
        A folder of images (searched recursively), a glob such as ``photos/*.jpg``, or a captions
        table (``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``) with ``image`` and ``text`` columns.

    Raises
    ------
    InputError
        Nothing to embed, no such path, or a table without the two columns.
    """
    from mmexplore.data.images import IMAGE_SUFFIXES, list_image_files

    text = str(source)
    src = Path(text).expanduser()
    if src.is_dir():
        paths = [str(p.resolve()) for p in list_image_files(src)]
        captions = [""] * len(paths)
        if not paths:
            raise InputError(f"{src}: no image files in the folder")
    elif src.is_file():
        if src.suffix.lower() not in TABLE_SUFFIXES:
            raise InputError(f"{src}: expected a folder, a glob or a captions table ({', '.join(TABLE_SUFFIXES)})")
        table = _read_table(src)
        base = src.resolve().parent
        raw = table.column("image").to_pylist()
        captions = ["" if t is None else str(t) for t in table.column("text").to_pylist()]
        paths = [str(p if Path(p).is_absolute() else (base / p)) for p in ("" if x is None else str(x) for x in raw)]
        if not paths:
            raise InputError(f"{src}: the table has no rows")
    elif glob.has_magic(text):
        matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        paths = [str(Path(p).resolve()) for p in matches if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        captions = [""] * len(paths)
        if not paths:
            raise InputError(f"{text}: the pattern matches no image files")
    else:
        raise InputError(f"{src}: no such file or folder")
    joined: dict[str, list[str]] = {}
    for p, c in zip(paths, captions, strict=True):
        if c:
            joined.setdefault(p, []).append(c)
    return pa.table({
        "id": [item_id(p, c) for p, c in zip(paths, captions, strict=True)],
        "row": np.arange(len(paths), dtype=np.int64),
        "path": paths,
        "caption": captions,
        "image_caption": [" | ".join(dict.fromkeys(joined.get(p, []))) for p in paths],
        "image_first": _first_flags(paths),
        "text_first": _first_flags(captions) & np.array([bool(c) for c in captions]),
    })
