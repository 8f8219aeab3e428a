"""The feature stage of the relation label: parse the texts, read the images, ground each text in its image.

:func:`pair_features` is shared by the label (:mod:`mmexplore.relation.api`), calibration and the
supervised ``relation fit``: one place turns (image, text) pairs into the feature matrix the
estimators read.
"""

from __future__ import annotations

import numpy as np

from mmexplore.relation.chunker import parse_text
from mmexplore.relation.grounding import ground, read_images, whole_text_scores


def pair_features(encoder, images: list, texts: list[str], scale: float | None = None, readings=None, zoom_scale: float = 0.0):
    """Readings, groundings and the feature matrix (n_pairs, n_features) for aligned image/text lists."""
    readings = readings if readings is not None else read_images(encoder, images)
    s = float(scale if scale is not None else encoder.logit_scale)
    parsed = [parse_text(t) for t in texts]
    whole = whole_text_scores(encoder, readings, parsed)
    groundings = [ground(p, rd, s, zoom_scale, w) for p, rd, w in zip(parsed, readings, whole, strict=True)]
    X = np.stack([g.vector() for g in groundings]) if groundings else np.zeros((0, 0))
    return readings, groundings, X
