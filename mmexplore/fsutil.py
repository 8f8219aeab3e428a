"""File-system helpers for data several processes share: locks, checksums, atomic writes.

Index folders and the embedding cache are read and written by every session of a shared server and
by CLI runs at the same time. :func:`file_lock` serialises writers (and lets readers wait for a
publish to finish), :func:`sha256_file` gives the checksum stored beside each file, and
:func:`write_atomic` makes a file appear whole or not at all.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
>>> write_atomic(p, "hello")
>>> sha256_file(p)[:12]
'2cf24dba5fb0'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mmexplore.errors import InputError

try:  # POSIX; elsewhere locks are no-ops (one user per machine there)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks, so any size in bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A reader sees the old file or the new one, never a half-written one; an interrupted write
    leaves only a ``.tmp`` file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, shared: bool = False, timeout_s: float | None = None,
              what: str = "this folder") -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    path : path
        The lock file (e.g. ``INDEX/.build.lock``).
    shared : bool
        A shared (reader) lock: many at once, none while an exclusive one is held.
    timeout_s : float, optional
        Give up after this many seconds with an :class:`InputError` saying ``what`` is busy;
        None waits as long as it takes.
    what : str
        Named in the timeout message.

    The lock belongs to the open file, so it is released when the block ends or the process dies
    (a killed build never leaves a stale lock behind).
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if shared:  # a read-only folder (a data root): nobody can publish into it, so no lock is needed
            yield
            return
        raise
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        if timeout_s is None:
            fcntl.flock(fd, mode)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise InputError(f"{what} is busy (another build is writing it); try again shortly") from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
