"""Fitting the relation estimators' thresholds on the generated training split, and loading them.

``calibrate`` generates the labelled training split (:mod:`mmexplore.relation.dataset`), reads the
pictures with the model once, fits the vocabulary posterior's softmax scale (maximum likelihood of
each object's true (size, colour, shape)), then the CMI / SC / STAT estimators on the pairs'
features, and writes everything to ``assets/relation/calibration_<model>.json``. One command re-runs
it after a model changes: ``mmexplore relation calibrate``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.relation.estimators import RelationClassifier
from mmexplore.relation.grounding import VOCAB, ImageReading, ground, read_images

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "assets" / "relation"
CALIBRATION_VERSION = 1
DEFAULT_SPEC = "bundled"


def calibration_path(model_spec: str = DEFAULT_SPEC) -> Path:
    """Where the calibration of ``model_spec`` lives: ``assets/relation/calibration_<slug>.json``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model_spec)).strip("_") or "model"
    return CALIBRATION_DIR / f"calibration_{slug[-80:]}.json"


@dataclass
class Calibration:
    """Fitted values: the posterior's softmax ``scale`` and the label classifier."""

    scale: float
    classifier: RelationClassifier
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": CALIBRATION_VERSION, "scale": self.scale, "classifier": self.classifier.to_dict(), "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(float(d["scale"]), RelationClassifier.from_dict(d["classifier"]), dict(d.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path


def load_calibration(model_spec: str = DEFAULT_SPEC, path: str | Path | None = None) -> Calibration:
    """The calibration for ``model_spec`` (or from ``path``); falls back to the bundled model's file.

    Raises
    ------
    InputError
        When no calibration file exists or it cannot be read, saying how to make one.
    """
    candidates = [Path(path)] if path else [calibration_path(model_spec), calibration_path(DEFAULT_SPEC)]
    for p in candidates:
        if p.exists():
            try:
                cal = Calibration.from_dict(json.loads(p.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{p}: not a usable relation calibration ({exc}); re-run `mmexplore relation calibrate`") from None
            cal.meta.setdefault("path", str(p))
            cal.meta["fallback"] = p != candidates[0]
            return cal
    raise InputError(
        f"{candidates[0]}: no relation calibration; run `mmexplore relation calibrate --model {model_spec}`"
    )


def fit_scale(readings: list[ImageReading], scenes: list, grid: np.ndarray | None = None) -> tuple[float, float]:
    """Maximum-likelihood softmax scale for the vocabulary posterior.

    Each proposal is matched to the nearest object of its scene (only images where the number of
    proposals equals the number of objects); the scale minimises the mean negative log-likelihood of
    the objects' true vocabulary entries.

    Returns
    -------
    (scale, accuracy) : tuple of float
        The fitted scale and the share of objects whose most probable entry is right.
    """
    cos, target = [], []
    for rd, scene in zip(readings, scenes, strict=True):
        if rd.whole_image or len(rd.positions) != len(scene.objects):
            continue
        centres = np.array([[o.cx, o.cy] for o in scene.objects])
        for k, pos in enumerate(rd.positions):
            o = scene.objects[int(np.argmin(((centres - pos) ** 2).sum(axis=1)))]
            cos.append(rd.cosines[k])
            target.append(VOCAB.index((o.size, o.color, o.shape)))
    if not cos:
        raise InputError("calibration: no object proposals matched the generated scenes; is the image renderer broken?")
    c, t = np.asarray(cos), np.asarray(target)
    grid = np.geomspace(2.0, 2000.0, 80) if grid is None else grid
    best, best_nll = float(grid[0]), np.inf
    for s in grid:
        z = c * s
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(len(t)), t].mean()
        if nll < best_nll:
            best, best_nll = float(s), nll
    acc = float((c.argmax(axis=1) == t).mean())
    return best, acc


def pair_features(encoder, images: list, texts: list[str], scale: float | None = None, readings=None):
    """Readings, groundings and the feature matrix (n_pairs, n_features) for aligned image/text lists."""
    readings = readings if readings is not None else read_images(encoder, images)
    s = float(scale if scale is not None else encoder.logit_scale)
    groundings = [ground(t, rd, s) for t, rd in zip(texts, readings, strict=True)]
    X = np.stack([g.vector() for g in groundings]) if groundings else np.zeros((0, 0))
    return readings, groundings, X


def calibrate(
    encoder,
    *,
    model_spec: str = DEFAULT_SPEC,
    n_per_class: int = 60,
    renderer: str = "mixed",
    out: str | Path | None = None,
    log=None,
) -> dict[str, Any]:
    """Fit the scale and the estimators on the generated training split and save them.

    Parameters
    ----------
    encoder : mmexplore.models.Encoder
    model_spec : str
        Names the file (``calibration_<model_spec>.json``) unless ``out`` is given.
    n_per_class : int
        Training pairs per class (8 × this in all).
    renderer : {"train", "alt", "mixed"}
        Drawing routine of the training pictures; "mixed" uses both so the fit is not tied to one style.

    Returns
    -------
    dict
        ``path``, ``scale``, ``object_accuracy``, ``train_accuracy``, ``n_pairs``, ``seconds``.
    """
    from mmexplore.relation.dataset import generate_pairs

    t0 = time.time()
    log = log or (lambda s: None)
    pairs = generate_pairs("train", n_per_class, renderer=renderer)
    log(f"generated {len(pairs)} training pairs")
    readings = read_images(encoder, [p.image for p in pairs])
    scale, obj_acc = fit_scale(readings, [p.scene for p in pairs])
    log(f"posterior scale {scale:.1f} (object reading accuracy {obj_acc:.3f})")
    _, _, X = pair_features(encoder, [], [p.text for p in pairs], scale, readings)
    labels = [p.label for p in pairs]
    clf = RelationClassifier().fit(X, labels)
    train_acc = float(np.mean([a == b for a, b in zip(clf.predict(X), labels, strict=True)]))
    meta = {
        "model": model_spec, "model_id": getattr(encoder, "model_id", ""), "n_pairs": len(pairs),
        "renderer": renderer, "object_accuracy": obj_acc, "train_accuracy": train_acc,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cal = Calibration(scale, clf, meta)
    path = cal.save(out or calibration_path(model_spec))
    return {"path": str(path), "scale": scale, "object_accuracy": obj_acc, "train_accuracy": train_acc,
            "n_pairs": len(pairs), "seconds": round(time.time() - t0, 1)}
