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
from mmexplore.relation.features import pair_features
from mmexplore.relation.grounding import ATTRIBUTE_VALUES, VOCAB, ImageReading, read_images
from mmexplore.relation.metrics import score_labels

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "assets" / "relation"
CALIBRATION_VERSION = 1
DEFAULT_SPEC = "bundled"


def calibration_path(model_spec: str = DEFAULT_SPEC) -> Path:
    """Where the calibration of ``model_spec`` lives: ``assets/relation/calibration_<slug>.json``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model_spec)).strip("_") or "model"
    return CALIBRATION_DIR / f"calibration_{slug[-80:]}.json"


@dataclass
class Calibration:
    """Fitted values: the posterior's softmax scales (in place, zoomed) and the label classifier."""

    scale: float
    classifier: RelationClassifier
    meta: dict[str, Any] = field(default_factory=dict)
    zoom_scale: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"version": CALIBRATION_VERSION, "scale": self.scale, "zoom_scale": self.zoom_scale,
                "classifier": self.classifier.to_dict(), "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(float(d["scale"]), RelationClassifier.from_dict(d["classifier"]), dict(d.get("meta", {})),
                   float(d.get("zoom_scale", 0.0)))

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
                raise InputError(
                    f"{p}: not a usable relation calibration ({exc}); re-run `mmexplore relation calibrate`"
                ) from None
            cal.meta.setdefault("path", str(p))
            cal.meta["fallback"] = p != candidates[0]
            return cal
    raise InputError(
        f"{candidates[0]}: no relation calibration; run `mmexplore relation calibrate --model {model_spec}`"
    )


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# Label-noise rate assumed when fitting the posterior scales (see fit_scale).
SCALE_SMOOTHING = 0.01


def _smoothed_nll(logp: np.ndarray, target: np.ndarray) -> float:
    """Mean negative log-likelihood of ``target`` (n,) under ``logp`` (n, k), with label smoothing.

    Without smoothing, a model that reads every calibration object right drives the ML scale to
    infinity (hard 0/1 posteriors), and one misread on other drawings then counts as a certain
    contradiction. :data:`SCALE_SMOOTHING` plays a small label-noise rate.
    """
    rows = np.arange(len(target))
    return float(-((1 - SCALE_SMOOTHING) * logp[rows, target] + SCALE_SMOOTHING * logp.mean(axis=1)).mean())


def fit_scale(readings: list[ImageReading], scenes: list, grid: np.ndarray | None = None) -> dict[str, float]:
    """Maximum-likelihood softmax scales of the vocabulary posterior.

    Each proposal is matched to the nearest object of its scene (only images where the number of
    proposals equals the number of objects). ``scale`` minimises the negative log-likelihood of the
    objects' true (size, colour, shape) entries in the in-place view; ``zoom_scale`` then minimises
    that of their shapes when the zoomed view's cosines are added. Both likelihoods use targets
    smoothed by :data:`SCALE_SMOOTHING`, so that perfectly read objects give a finite scale.

    Returns
    -------
    dict
        ``scale``, ``zoom_scale`` and the per-attribute reading accuracy (``size``, ``color``,
        ``shape``) and ``object`` (all three right) at those scales, on these objects.
    """
    cos, zcos, target = [], [], []
    for rd, scene in zip(readings, scenes, strict=True):
        if rd.whole_image or len(rd.positions) != len(scene.objects):
            continue
        centres = np.array([[o.cx, o.cy] for o in scene.objects])
        for k, pos in enumerate(rd.positions):
            o = scene.objects[int(np.argmin(((centres - pos) ** 2).sum(axis=1)))]
            cos.append(rd.cosines[k])
            zcos.append(rd.zoom_cosines[k])
            target.append(VOCAB.index((o.size, o.color, o.shape)))
    if not cos:
        raise InputError("calibration: no object proposals matched the generated scenes; is the image renderer broken?")
    c, zc, t = np.asarray(cos), np.asarray(zcos), np.asarray(target)
    grid = np.geomspace(2.0, 2000.0, 80) if grid is None else grid
    nll = [_smoothed_nll(_log_softmax(c * s), t) for s in grid]
    scale = float(grid[int(np.argmin(nll))])
    shape_of = np.array([VOCAB[k][2] for k in range(len(VOCAB))])
    shape_t = shape_of[t]

    def shape_nll(b: float) -> float:
        p = np.exp(_log_softmax(c * scale + zc * b))
        p_shape = np.stack([p[:, shape_of == sh].sum(axis=1) for sh in ATTRIBUTE_VALUES["shape"]], axis=1)
        idx = np.array([ATTRIBUTE_VALUES["shape"].index(x) for x in shape_t])
        return _smoothed_nll(np.log(p_shape + 1e-12), idx)

    zgrid = np.concatenate([[0.0], grid])
    zoom_scale = float(zgrid[int(np.argmin([shape_nll(b) for b in zgrid]))])
    reading = ImageReading(np.zeros((len(t), 2)), c, zc, np.ones(len(t)))
    marg = reading.marginals(scale, zoom_scale)
    acc = {}
    right = np.ones(len(t), dtype=bool)
    for n, attr in enumerate(("size", "color", "shape")):
        truth = np.array([ATTRIBUTE_VALUES[attr].index(VOCAB[k][n]) for k in t])
        ok = marg[attr].argmax(axis=1) == truth
        acc[attr] = float(ok.mean())
        right &= ok
    return {"scale": scale, "zoom_scale": zoom_scale, **acc, "object": float(right.mean())}


def choose_C(X: np.ndarray, labels: list[str], grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0), folds: int = 5):
    """The logistic regressions' C with the best ``folds``-fold cross-validated macro accuracy on (X, labels).

    Returns
    -------
    (C, scores) : tuple of (float, dict)
        The chosen C and the mean macro accuracy of every C tried.
    """
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray(labels)
    macro = make_scorer(lambda truth, pred: score_labels(list(truth), list(pred))["macro_accuracy"])
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    scores: dict[float, float] = {
        C: float(np.mean(cross_val_score(RelationClassifier(C=C), X, y, cv=cv, scoring=macro))) for C in grid
    }
    best = max(grid, key=lambda c: (round(scores[c], 3), -abs(np.log10(c))))
    return best, scores


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
    fitted = fit_scale(readings, [p.scene for p in pairs])
    scale, zoom_scale, obj_acc = fitted["scale"], fitted["zoom_scale"], fitted["object"]
    log(f"posterior scales {scale:.1f} / zoom {zoom_scale:.1f}; object reading accuracy {obj_acc:.3f} "
        f"(size {fitted['size']:.3f}, colour {fitted['color']:.3f}, shape {fitted['shape']:.3f})")
    _, _, X = pair_features(encoder, [], [p.text for p in pairs], scale, readings, zoom_scale)
    labels = [p.label for p in pairs]
    C, cv_scores = choose_C(X, labels)
    log(f"regularisation C={C} (cross-validated macro accuracy {cv_scores[C]:.3f})")
    clf = RelationClassifier(C=C).fit(X, labels)
    train_acc = float(np.mean([a == b for a, b in zip(clf.predict(X), labels, strict=True)]))
    meta = {
        "model": model_spec, "model_id": getattr(encoder, "model_id", ""), "n_pairs": len(pairs),
        "renderer": renderer, "object_accuracy": obj_acc,
        "attribute_accuracy": {k: fitted[k] for k in ("size", "color", "shape")},
        "train_accuracy": train_acc, "C": C, "cv_macro_accuracy": cv_scores,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cal = Calibration(scale, clf, meta, zoom_scale)
    path = cal.save(out or calibration_path(model_spec))
    return {"path": str(path), "scale": scale, "zoom_scale": zoom_scale, "object_accuracy": obj_acc, "train_accuracy": train_acc,
            "n_pairs": len(pairs), "seconds": round(time.time() - t0, 1)}
