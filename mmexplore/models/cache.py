"""Content-addressed embedding cache: re-encoding the same image or caption is a lookup.

Keys are ``sha256(model id | cache version | kind | content hash)``: the content hash of an image is
taken over its decoded pixels (mode, size, bytes), of a text over its UTF-8 bytes. Entries live in
memory and, optionally, as ``.npy`` files under a directory, written atomically (temporary file +
rename) and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def image_digest(image) -> str:
    """Content hash of a PIL image's decoded pixels (so a re-saved identical image hits the cache)."""
    h = hashlib.sha256()
    h.update(f"{image.mode}|{image.size}|".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def text_digest(text: str) -> str:
    """Content hash of a caption."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """An LRU map ``(model id, kind, content digest) -> float32 vector`` with optional disk storage.

    Parameters
    ----------
    max_items : int
        In-memory capacity (vectors); the least recently used go first.
    directory : str or Path, optional
        Where to persist vectors across processes; None keeps them in memory only.
    """

    def __init__(self, max_items: int = 200_000, directory: str | os.PathLike | None = None) -> None:
        self.max_items = max_items
        self.directory = Path(directory) if directory else None
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model_id: str, kind: str, digest: str) -> str:
        return hashlib.sha256(f"{model_id}|v{CACHE_VERSION}|{kind}|{digest}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vec = self._mem.get(key)
            if vec is not None:
                self._mem.move_to_end(key)
                self.hits += 1
                return vec
        if self.directory is not None:
            path = self._path(key)
            if path.exists():
                try:
                    vec = np.load(path, allow_pickle=False)
                except (OSError, ValueError):
                    vec = None  # a damaged entry is a miss, rewritten on the next put
                if vec is not None:
                    self._remember(key, vec)
                    with self._lock:
                        self.hits += 1
                    return vec
        with self._lock:
            self.misses += 1
        return None

    def _remember(self, key: str, vec: np.ndarray) -> None:
        with self._lock:
            self._mem[key] = vec
            self._mem.move_to_end(key)
            while len(self._mem) > self.max_items:
                self._mem.popitem(last=False)

    def put(self, key: str, vec: np.ndarray) -> None:
        vec = np.asarray(vec, dtype=np.float32)
        self._remember(key, vec)
        if self.directory is not None:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, vec, allow_pickle=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def clear(self) -> None:
        """Forget the in-memory entries (disk entries stay)."""
        with self._lock:
            self._mem.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._mem)
