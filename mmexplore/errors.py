"""Exception types shared by the core, the CLI and the app.

Every error a user can cause derives from :class:`MMExploreError`; its message is one line that
names the file, value or spec at fault and, where possible, what to do about it. The CLI turns these
into exit status 2 and the app into an on-screen message, so no traceback reaches a user.
"""

from __future__ import annotations


class MMExploreError(Exception):
    """Base class of user-facing errors (one-line message, no traceback needed)."""


class InputError(MMExploreError, ValueError):
    """Bad user input: a corrupt image, a wrong CSV, an empty caption list, ..."""


class ModelLoadError(MMExploreError, RuntimeError):
    """A model spec that cannot be resolved or loaded (unknown, offline and not cached, bad file)."""
