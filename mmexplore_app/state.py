"""The one data set every page shares, kept in ``st.session_state["dataset"]``.

:class:`Dataset` is plain data (PIL images, strings, a boolean pairs matrix) with a few methods that
keep its parts consistent: adding or removing an image or a caption also grows or shrinks ``pairs``
and ``scenes``. Pages read it through :func:`mmexplore_app.widgets.current_dataset`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DATASET_KEY = "dataset"


@dataclass
class Dataset:
    """Images, captions and which of them belong together.

    Attributes
    ----------
    images : list of PIL.Image.Image, length N
        RGB images as decoded (not resized).
    image_names : list of str, length N
        File names (uploads) or sample names, shown as labels.
    texts : list of str, length M
    pairs : ndarray of shape (N, M), bool
        True where image i and caption j belong together (many-to-many).
    scenes : list of Scene or None, length N
        Shapes-world ground truth for generated samples; None for other images.
    source : str
        Where the data came from, e.g. "shapes samples", "uploads", "empty".
    text_notes : dict of str to str
        Optional note per caption, e.g. ``"hard negative: relation_swap"`` (shown in the pairs table).
    """

    images: list[Any] = field(default_factory=list)
    image_names: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    scenes: list[Any] = field(default_factory=list)
    source: str = "empty"
    text_notes: dict[str, str] = field(default_factory=dict)
    # Pixel digest of each image, computed once when it enters the data set: hashing a megapixel photo
    # takes ~2 ms, and every page rerun asks for embedding_key(). Kept beside the image rather than in
    # image.info, because PIL copies info through convert/resize and the copy would carry a stale digest.
    _image_digests: list[str] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_samples(cls, samples: Any) -> Dataset:
        """A data set from a :class:`mmexplore.data.samples.SampleSet`."""
        notes = {}
        for text, kind in zip(samples.texts, samples.text_kinds or [], strict=False):
            if kind.startswith("negative:"):
                notes[text] = "hard negative: " + kind.split(":", 1)[1].replace("_", " ")
            elif kind == "distractor":
                notes[text] = "distractor (matches no image)"
        return cls(
            list(samples.images),
            list(samples.names),
            list(samples.texts),
            np.asarray(samples.pairs, dtype=bool).copy(),
            list(samples.scenes),
            samples.source,
            notes,
        )

    # ------------------------------------------------------------------ reading
    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_texts(self) -> int:
        return len(self.texts)

    @property
    def is_empty(self) -> bool:
        return not self.images and not self.texts

    def summary(self) -> str:
        """One line for the sidebar: counts and source."""
        return f"{self.n_images} images · {self.n_texts} captions · {int(self.pairs.sum())} true pairs ({self.source})"

    def embedding_key(self) -> str:
        """A hash of the images' pixels and the captions, in order (cache key for embeddings)."""
        from mmexplore.models.cache import text_digest

        h = hashlib.sha256()
        for digest in self.image_digests():
            h.update(digest.encode())
        h.update(b"|texts|")
        for t in self.texts:
            h.update(text_digest(t).encode())
        return h.hexdigest()[:32]

    def image_digests(self) -> list[str]:
        """The pixel digest of each image (length N), hashed once per image and then reused."""
        if len(self._image_digests) != len(self.images):
            # Images were set without going through add_images (e.g. the constructor): hash them all once.
            from mmexplore.models.cache import image_digest

            self._image_digests = [image_digest(im) for im in self.images]
        return self._image_digests

    def content_key(self) -> str:
        """A hash of the images' pixels, the captions and the pairs (cache key for derived results)."""
        h = hashlib.sha256(self.embedding_key().encode())
        h.update(b"|pairs|")
        h.update(np.packbits(self.pairs.astype(bool)).tobytes())
        h.update(str(self.pairs.shape).encode())
        return h.hexdigest()[:32]

    # ------------------------------------------------------------------ editing
    def _check(self) -> None:
        if self.pairs.shape != (len(self.images), len(self.texts)):
            # Repair a pairs matrix of the wrong shape instead of failing later in a page.
            fixed = np.zeros((len(self.images), len(self.texts)), dtype=bool)
            n, m = min(self.pairs.shape[0], fixed.shape[0]), min(self.pairs.shape[1], fixed.shape[1])
            fixed[:n, :m] = self.pairs[:n, :m]
            self.pairs = fixed
        if len(self.scenes) != len(self.images):
            self.scenes = (list(self.scenes) + [None] * len(self.images))[: len(self.images)]

    def add_images(self, images: Sequence[Any], names: Sequence[str], scenes: Sequence[Any] | None = None) -> None:
        """Append images (and their ground-truth scenes, if any); new rows of ``pairs`` are False."""
        if len(images) != len(names):
            raise ValueError("images and names differ in length")
        self._check()
        from mmexplore.models.cache import image_digest

        digests = [*self.image_digests(), *(image_digest(im) for im in images)]
        self.images = [*self.images, *images]
        self._image_digests = digests
        self.image_names = [*self.image_names, *names]
        self.scenes = [*self.scenes, *(scenes if scenes is not None else [None] * len(images))]
        self.pairs = np.vstack([self.pairs, np.zeros((len(images), self.pairs.shape[1]), dtype=bool)])

    def add_texts(self, texts: Sequence[str]) -> list[int]:
        """Append captions not already present; returns the column index of each given caption."""
        self._check()
        index = {t: j for j, t in enumerate(self.texts)}
        new = [t for t in dict.fromkeys(texts) if t not in index]
        self.texts = [*self.texts, *new]
        self.pairs = np.hstack([self.pairs, np.zeros((self.pairs.shape[0], len(new)), dtype=bool)])
        index.update({t: len(self.texts) - len(new) + k for k, t in enumerate(new)})
        return [index[t] for t in texts]

    def remove_images(self, indices: Sequence[int]) -> None:
        """Drop images (and their rows of ``pairs``)."""
        self._check()
        keep = [i for i in range(len(self.images)) if i not in set(indices)]
        digests = self.image_digests()
        self._image_digests = [digests[i] for i in keep]
        self.images = [self.images[i] for i in keep]
        self.image_names = [self.image_names[i] for i in keep]
        self.scenes = [self.scenes[i] for i in keep]
        self.pairs = self.pairs[keep, :]

    def remove_texts(self, indices: Sequence[int]) -> None:
        """Drop captions (and their columns of ``pairs``)."""
        self._check()
        keep = [j for j in range(len(self.texts)) if j not in set(indices)]
        self.texts = [self.texts[j] for j in keep]
        self.pairs = self.pairs[:, keep]

    def copy(self) -> Dataset:
        """A shallow copy (images shared, lists and pairs copied)."""
        return Dataset(
            list(self.images),
            list(self.image_names),
            list(self.texts),
            self.pairs.copy(),
            list(self.scenes),
            self.source,
            dict(self.text_notes),
            list(self._image_digests),
        )


# ---------------------------------------------------------------------------- page state
# Pages keep their own small values (the query typed, messages to show after a rerun, what a widget
# picked) through these helpers rather than touching ``st.session_state``: one place that knows where
# page state lives, and the data set above stays plain data, importable without Streamlit.


def value(key: str, default: Any = None) -> Any:
    """The page value stored under ``key`` (prefix keys with the page's name), else ``default``."""
    import streamlit as st

    return st.session_state.get(key, default)


def set_value(key: str, val: Any) -> None:
    """Store a page value under ``key`` for the rest of the session (until :func:`forget`)."""
    import streamlit as st

    st.session_state[key] = val


def forget(*keys: str) -> None:
    """Drop page values (a widget's key included: it starts from its default on the next run)."""
    import streamlit as st

    for key in keys:
        st.session_state.pop(key, None)


def session_set(key: str) -> set:
    """A set kept for the session under ``key`` (e.g. the upload ids already read), created empty."""
    import streamlit as st

    return st.session_state.setdefault(key, set())
