"""The one check that decides whether a path a user typed may be read by the server.

In ``local`` mode (one user on their own machine) every path is allowed: the user already owns the
file system. In ``shared`` mode (a classroom server) a path is allowed only when, *after resolving*
``..`` and every symbolic link, it lies inside one of the configured data roots
(``MMEXPLORE_DATA_ROOTS``). Anything else is refused with the same message whether or not it exists,
so the refusal never tells a user what is on the server.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> inside_roots(root / "a" / ".." / "b.csv", [root])
True
>>> inside_roots("/etc/passwd", [root])
False
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmexplore.errors import InputError

REFUSED = ("this path is not available on this server: only files inside its data folders can be used "
           "(or upload the file)")
NO_ROOTS = "this server reads no folders (no data folders are configured): upload the file instead"


class PathRefused(InputError):
    """A path outside the data roots (shared mode). The message never says whether it exists."""


def _resolve(path: str | os.PathLike) -> Path:
    # strict=False: a missing file still resolves (its existing parents' symlinks are followed), so a
    # missing and an existing path outside the roots are refused by the same test.
    return Path(os.path.realpath(os.fspath(path)))


def inside_roots(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """True when ``path``, with ``..`` and symlinks resolved, lies inside one of ``roots`` (also resolved)."""
    try:
        resolved = _resolve(path)
    except (OSError, ValueError):  # embedded NUL byte, too long, symlink loop
        return False
    return any(resolved.is_relative_to(_resolve(r)) for r in roots)


def resolve_user_path(raw: str | os.PathLike, *, shared: bool, roots: Sequence[str | os.PathLike] = ()) -> Path:
    """The path a user typed, as the server may read it.

    Parameters
    ----------
    raw : str or path
        What the user typed. In shared mode a relative path is taken relative to each data root in
        turn (the first root where it exists wins, else the first root); ``~`` is not expanded.
    shared : bool
        Shared (classroom) mode: the path must resolve inside ``roots``.
    roots : sequence of path
        The data roots (``Settings.data_roots``).

    Returns
    -------
    Path
        In local mode the path with ``~`` expanded; in shared mode the fully resolved path.

    Raises
    ------
    PathRefused
        Shared mode and the resolved path is outside every root, or no roots are configured. The
        message is the same for existing and missing paths.
    """
    text = os.fspath(raw).strip()
    if not shared:
        return Path(text).expanduser()
    if not roots:
        raise PathRefused(NO_ROOTS)
    if not text or "\x00" in text:
        raise PathRefused(REFUSED)
    candidates = [Path(text)] if Path(text).is_absolute() else [Path(r) / text for r in roots]
    allowed = [c for c in candidates if inside_roots(c, roots)]
    if not allowed:
        raise PathRefused(REFUSED)
    existing = [c for c in allowed if c.exists()]
    return _resolve((existing or allowed)[0])


def guard_paths(paths: Iterable[str | os.PathLike], *, shared: bool, roots: Sequence[str | os.PathLike] = (),
                what: str = "path") -> None:
    """Refuse when any of ``paths`` (e.g. image paths named inside a pairs file) is outside the roots.

    Does nothing in local mode. The message counts the refused entries; it names none of them, since
    they came from a file the user may not be allowed to read.
    """
    if not shared:
        return
    bad = sum(1 for p in paths if not inside_roots(p, roots))
    if bad:
        raise PathRefused(f"{bad} {what}(s) point outside this server's data folders; they cannot be used")


def list_inside(roots: Sequence[str | os.PathLike], *, suffixes: Sequence[str] = (), folders: bool = False,
                limit: int = 200, depth: int = 3) -> list[Path]:
    """Files (by suffix) or folders inside the roots, for a pick-list (at most ``limit``, ``depth`` levels).

    Symlinks that lead outside the roots are left out.
    """
    found: list[Path] = []
    for root in roots:
        base = _resolve(root)
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            level = len(Path(dirpath).relative_to(base).parts)
            if level >= depth:
                dirnames[:] = []
            dirnames.sort()
            names = dirnames if folders else sorted(f for f in filenames if f.lower().endswith(tuple(suffixes)))
            for name in names:
                p = Path(dirpath) / name
                if inside_roots(p, roots):
                    found.append(p)
                    if len(found) >= limit:
                        return found
    return found


def user_path(raw: str | os.PathLike, settings: object | None = None) -> Path:
    """:func:`resolve_user_path` under the process settings (mode and data roots from ``get_settings``)."""
    from mmexplore.settings import get_settings

    s = settings if settings is not None else get_settings()
    return resolve_user_path(raw, shared=s.shared, roots=s.data_roots)  # type: ignore[attr-defined]


def user_folder(raw: str | os.PathLike, settings: object | None = None) -> Path:
    """:func:`user_path` for a folder read as a whole (a saved index, an embeddings folder).

    In shared mode every entry of the folder must resolve inside the roots too: a symlinked
    ``manifest.json`` or shard that leads out refuses the folder (same message as any path outside).
    """
    from mmexplore.settings import get_settings

    s = settings if settings is not None else get_settings()
    folder = user_path(raw, s)
    if s.shared and folder.is_dir():  # type: ignore[attr-defined]
        roots = s.data_roots  # type: ignore[attr-defined]
        if any(not inside_roots(entry, roots) for entry in folder.iterdir()):
            raise PathRefused(REFUSED)
    return folder


def reading_roots(settings: object | None = None) -> tuple[Path, ...] | None:
    """The roots every file read on a user's behalf must stay inside: None (no limit) in local mode."""
    from mmexplore.settings import get_settings

    s = settings if settings is not None else get_settings()
    return tuple(s.data_roots) if s.shared else None  # type: ignore[attr-defined]
