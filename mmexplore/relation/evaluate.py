"""Evaluating the relation label on the generated test split and the hand-written set (scores: :mod:`.metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmexplore.errors import InputError
from mmexplore.relation.api import relate
from mmexplore.relation.calibration import load_calibration
from mmexplore.relation.metrics import score_labels
from mmexplore.relation.taxonomy import CLASSES, canonical_label

HANDSET_DIR = Path(__file__).resolve().parents[2] / "assets" / "relation" / "handset"


def read_handset(folder: str | Path = HANDSET_DIR) -> tuple[list, list[str], list[str], list[str]]:
    """The hand-written set: ``pairs.csv`` with ``image``, ``text`` and ``label`` columns next to its PNGs.

    Returns
    -------
    (images, texts, labels, image_paths)
    """
    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs

    path = Path(folder) / "pairs.csv"
    if not path.exists():
        raise InputError(f"{path}: hand-written relation set not found")
    table = read_pairs(path)
    rows = table.rows
    if any("label" not in r for r in rows):
        raise InputError(f"{path}: needs a 'label' column with one of {list(CLASSES)}")
    try:
        labels = [canonical_label(r["label"]) for r in rows]
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    images = [load_image(r["image"]) for r in rows]
    return images, [r["text"] for r in rows], labels, [r["image"] for r in rows]


def evaluate_relation(
    encoder,
    *,
    calibration=None,
    model_spec: str = "bundled",
    n_per_class: int = 40,
    renderer: str = "mixed",
    handset: str | Path | None = HANDSET_DIR,
) -> dict[str, Any]:
    """Evaluate the label on the generated test split (held-out scenes) and on the hand-written set.

    Returns
    -------
    dict
        ``{"generated_test": score_labels(...), "handset": score_labels(...) or None, "calibration": meta}``.
    """
    from mmexplore.relation.dataset import generate_pairs

    cal = calibration or load_calibration(model_spec)
    pairs = generate_pairs("test", n_per_class, renderer=renderer)
    results = relate(encoder, [p.image for p in pairs], [p.text for p in pairs], calibration=cal)
    report: dict[str, Any] = {
        "generated_test": score_labels([p.label for p in pairs], [r.model_label for r in results]),
        "calibration": {k: v for k, v in cal.meta.items()} | {"scale": cal.scale},
    }
    report["generated_test"]["renderer"] = renderer
    # Scored on the classifier's class; how often the page would have said "cannot tell" instead.
    report["generated_test"]["cannot_tell"] = sum(r.label != r.model_label for r in results)
    report["handset"] = None
    if handset is not None and (Path(handset) / "pairs.csv").exists():
        images, texts, labels, _ = read_handset(handset)
        hres = relate(encoder, images, texts, calibration=cal)
        report["handset"] = score_labels(labels, [r.model_label for r in hres])
    return report
