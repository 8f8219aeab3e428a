"""Content-addressed embedding cache: re-encoding the same image or caption is a lookup.

Keys are ``sha256(model id | cache version | kind | content hash)``: the content hash of an image is
taken over its decoded pixels (mode, size, bytes), of a text over its UTF-8 bytes. Entries live in
memory and, optionally, as ``.npz`` files under a directory, written atomically (temporary file +
rename) and read with ``allow_pickle=False``. Each file carries a checksum over its key and vector
bytes; a file that fails it, or whose vector has the wrong dimension or is not finite, is a miss
(and is rewritten), never used. A directory that cannot be written (read-only, full) turns the
cache into a memory-only one with one logged warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

CACHE_VERSION = 2  # 2: .npz entries with a checksum (version 1's bare .npy files are not read)
_log = logging.getLogger("mmexplore.cache")


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
        self.rejected = 0  # disk entries refused (checksum, dimension, NaN)
        self.disk_error: str | None = None  # why the directory was given up, when it was

    @staticmethod
    def key(model_id: str, kind: str, digest: str) -> str:
        return hashlib.sha256(f"{model_id}|v{CACHE_VERSION}|{kind}|{digest}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.npz"

    @staticmethod
    def checksum(key: str, vec: np.ndarray) -> np.ndarray:
        """SHA-256 over the key and the vector's float32 bytes, as 32 uint8 (stored beside the vector)."""
        h = hashlib.sha256(key.encode())
        h.update(np.ascontiguousarray(vec, dtype=np.float32).tobytes())
        return np.frombuffer(h.digest(), dtype=np.uint8)

    def _read(self, path: Path, key: str, dim: int | None) -> np.ndarray | None:
        """The vector stored at ``path`` if it passes its checksum, dimension and finiteness checks."""
        try:
            with np.load(path, allow_pickle=False) as z:
                vec, check = np.asarray(z["vec"]), np.asarray(z["check"])
        except (OSError, ValueError, KeyError, EOFError) as exc:  # truncated, not a zip, missing array
            why = type(exc).__name__
        else:
            if vec.dtype != np.float32 or vec.ndim != 1 or (dim is not None and vec.shape[0] != dim):
                why = f"vector of shape {vec.shape} ({vec.dtype})"
            elif not np.isfinite(vec).all():
                why = "non-finite values"
            elif not np.array_equal(check, self.checksum(key, vec)):
                why = "checksum mismatch"
            else:
                return vec
        with self._lock:
            self.rejected += 1
        _log.warning("embedding cache entry %s refused (%s); it is computed again", path, why)
        return None

    def get(self, key: str, dim: int | None = None) -> np.ndarray | None:
        """The cached vector for ``key`` (None on a miss); disk entries must have dimension ``dim``."""
        with self._lock:
            vec = self._mem.get(key)
            if vec is not None:
                self._mem.move_to_end(key)
                self.hits += 1
                return vec
        if self.directory is not None:
            path = self._path(key)
            if path.exists():
                vec = self._read(path, key, dim)
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
        """Remember ``vec`` for ``key`` in memory and, while the directory is writable, on disk."""
        vec = np.asarray(vec, dtype=np.float32)
        self._remember(key, vec)
        directory = self.directory
        if directory is None:
            return
        path = self._path(key)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, vec=vec, check=self.checksum(key, vec))
            os.replace(tmp, path)
        except OSError as exc:  # read-only, full, gone: keep working from memory
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            with self._lock:
                if self.directory is not None:
                    self.directory = None
                    self.disk_error = f"the embedding cache folder {directory} cannot be written ({exc.strerror or exc})"
                    _log.warning("%s; embeddings are kept in memory only from now on", self.disk_error)
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Forget the in-memory entries (disk entries stay)."""
        with self._lock:
            self._mem.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._mem)
