"""Scoring the relation label: macro accuracy, per-component accuracy and the 8×8 confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmexplore.relation.taxonomy import CLASSES, COMPONENTS


def score_labels(truth: list[str], predicted: list[str]) -> dict[str, Any]:
    """Macro accuracy (mean per-class recall), accuracy, per-component accuracy and the confusion matrix.

    Returns
    -------
    dict
        ``n_pairs``, ``macro_accuracy``, ``accuracy``, ``per_class`` (class → recall, None when absent),
        ``components`` (``cmi``/``sc``/``stat`` → accuracy), ``classes`` and ``confusion``
        (8×8 counts, rows = true class, columns = predicted, in ``classes`` order).
    """
    idx = {c: k for k, c in enumerate(CLASSES)}
    conf = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        conf[idx[t], idx[p]] += 1
    support = conf.sum(axis=1)
    recall = {c: (float(conf[k, k] / support[k]) if support[k] else None) for k, c in enumerate(CLASSES)}
    present = [v for v in recall.values() if v is not None]
    comps = {}
    for n, name in enumerate(("cmi", "sc", "stat")):
        same = [COMPONENTS[t][n] == COMPONENTS[p][n] for t, p in zip(truth, predicted, strict=True)]
        comps[name] = float(np.mean(same)) if same else 0.0
    return {
        "n_pairs": len(truth),
        "macro_accuracy": float(np.mean(present)) if present else 0.0,
        "accuracy": float(np.trace(conf) / max(1, conf.sum())),
        "per_class": recall,
        "components": comps,
        "classes": list(CLASSES),
        "confusion": conf.tolist(),
    }
