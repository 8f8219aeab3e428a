"""End-to-end computations shared by the CLI, the app and the benchmarks (one source per number)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.metrics.similarity import SimilarityReport, similarity_report


def compute_similarity(
    encoder: Any,
    images: Sequence[Any],
    texts: Sequence[str],
    pairs: np.ndarray | None = None,
    *,
    progress: Any = None,
) -> SimilarityReport:
    """Embed ``images`` (PIL) and ``texts`` with ``encoder`` and compute the similarity report.

    Parameters
    ----------
    encoder : Encoder
    images : sequence of PIL.Image.Image, length N
    texts : sequence of str, length M
    pairs : ndarray of shape (N, M), bool, optional
        True pairs; None pairs image k with text k when N == M.
    progress : callable(done, total), optional
        Called while encoding (images first, then texts, counted together).

    Raises
    ------
    InputError
        No images, no texts or an empty caption.
    """
    if len(images) == 0:
        raise InputError("no images given")
    texts = [str(t) for t in texts]
    if len(texts) == 0:
        raise InputError("no captions given")
    empty = [k for k, t in enumerate(texts) if not t.strip()]
    if empty:
        raise InputError(f"caption {empty[0] + 1} is empty")
    n, m = len(images), len(texts)

    def image_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done, n + m)

    def text_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(n + done, n + m)

    img = encoder.encode_images(images, progress=image_progress)
    txt = encoder.encode_texts(texts, progress=text_progress)
    return similarity_report(img, txt, logit_scale=encoder.logit_scale, logit_bias=encoder.logit_bias, pairs=pairs)
