"""CMI, SC and STAT estimators (scikit-learn style) and the eight-class relation classifier.

Each component estimator is a standardised multinomial logistic regression on a named subset of
the pair features (:data:`mmexplore.relation.grounding.FEATURE_NAMES`): its decision boundaries are
the fitted thresholds. Fitted state is plain arrays, stored as JSON (never pickled) so that a
calibration file in ``assets/relation/`` is readable and diffable.

>>> import numpy as np
>>> from mmexplore.relation.grounding import FEATURE_NAMES
>>> X = np.zeros((4, len(FEATURE_NAMES))); X[2:, FEATURE_NAMES.index("dep_max")] = 1.0
>>> est = CMIEstimator().fit(X, [0, 0, 1, 1])
>>> est.predict(X).tolist()
[0, 0, 1, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mmexplore.relation.grounding import FEATURE_NAMES
from mmexplore.relation.taxonomy import CLASSES, COMPONENTS, class_probabilities


def _check_fitted(est: Any, attr: str = "coef_") -> None:
    if not hasattr(est, attr):
        raise RuntimeError(f"{type(est).__name__} is not fitted yet: call fit() or load a calibration first")


def _columns(features: Sequence[str]) -> list[int]:
    return [FEATURE_NAMES.index(f) for f in features]


class _Params:
    """scikit-learn's estimator protocol without importing scikit-learn (its import costs seconds):
    ``get_params``/``set_params`` over the constructor's keyword arguments, so ``sklearn.base.clone``,
    ``cross_val_score`` and grid searches take these estimators as they are."""

    _param_names: ClassVar[tuple[str, ...]] = ()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (``deep`` is accepted for scikit-learn; there are no sub-estimators)."""
        return {name: getattr(self, name) for name in self._param_names}

    def set_params(self, **params: Any) -> _Params:
        """Set constructor parameters by name; unknown names raise ValueError, as in scikit-learn."""
        for name, value in params.items():
            if name not in self._param_names:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: a classifier that needs ``y`` (scikit-learn is imported only when it asks)."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True), classifier_tags=ClassifierTags())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


class _LogisticOnFeatures(_Params):
    """Standardise the chosen feature columns, then multinomial logistic regression."""

    values: ClassVar[tuple[Any, ...]] = ()
    features: ClassVar[tuple[str, ...]] = FEATURE_NAMES
    _param_names = ("C",)

    def __init__(self, *, C: float = 1.0) -> None:
        self.C = C

    @property
    def classes_(self) -> np.ndarray:
        """The values predicted, in ``predict_proba``'s column order (scikit-learn's ``classes_``)."""
        return np.asarray(self.values, dtype=object)

    def fit(self, X: np.ndarray, y: Sequence[Any]) -> _LogisticOnFeatures:
        """Fit on features ``X`` of shape (n_pairs, len(FEATURE_NAMES)) and targets ``y`` (values of ``self.values``)."""
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)[:, _columns(self.features)]
        y = np.asarray([self.values.index(v) for v in y])
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ < 1e-9] = 1.0
        present = np.unique(y)
        lr = LogisticRegression(C=self.C, max_iter=2000)
        lr.fit((X - self.mean_) / self.scale_, y)
        coef = np.zeros((len(self.values), X.shape[1]))
        intercept = np.full(len(self.values), -30.0)  # values never seen in training get ~0 probability
        if len(present) == 2:  # binary: sklearn keeps one row; expand to two logits
            coef[present[1]], intercept[present[1]] = lr.coef_[0] / 2, lr.intercept_[0] / 2
            coef[present[0]], intercept[present[0]] = -lr.coef_[0] / 2, -lr.intercept_[0] / 2
        else:
            coef[present], intercept[present] = lr.coef_, lr.intercept_
        self.coef_ = coef
        self.intercept_ = intercept
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of shape (n_pairs, len(self.values)), columns in ``self.values`` order."""
        _check_fitted(self)
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))[:, _columns(self.features)]
        z = ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable value per pair, shape (n_pairs,)."""
        return np.asarray(self.values, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    def to_dict(self) -> dict[str, Any]:
        _check_fitted(self)
        return {
            "features": list(self.features), "values": list(self.values), "C": self.C,
            "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(), "intercept": self.intercept_.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _LogisticOnFeatures:
        est = cls(C=float(d.get("C", 1.0)))
        if list(d["features"]) != list(cls.features) or [str(v) for v in d["values"]] != [str(v) for v in cls.values]:
            raise ValueError(f"{cls.__name__}: calibration was made for other features; re-run `mmexplore relation calibrate`")
        est.mean_ = np.asarray(d["mean"], dtype=np.float64)
        est.scale_ = np.asarray(d["scale"], dtype=np.float64)
        est.coef_ = np.asarray(d["coef"], dtype=np.float64)
        est.intercept_ = np.asarray(d["intercept"], dtype=np.float64)
        return est


_GROUNDING = ("has_phrases", "deictic", "dep_max", "dep_mean", "about_max", "about_mean",
              "contra_max", "contra_attr", "contra_relation", "contra_count", "whole_image", "whole_margin")


class CMIEstimator(_LogisticOnFeatures):
    """CMI: does the pair share depicted concepts? Values (0, 1), from the phrases' grounding."""

    values = (0, 1)
    features = _GROUNDING


class SCEstimator(_LogisticOnFeatures):
    """SC: agree (1), unrelated (0) or contradict (−1), from grounding, contradictions and deixis."""

    values = (1, 0, -1)
    features = _GROUNDING


class STATEstimator(_LogisticOnFeatures):
    """STAT: equal ("0"), text primary ("T") or image primary ("I"), from coverage both ways and text structure."""

    values = ("0", "T", "I")
    features = ("has_phrases", "deictic", "n_phrases", "dep_mean", "about_mean", "image_coverage", "n_regions",
                "log_words", "n_sentences", "concept_sentence_share", "concept_word_share", "other_word_share")


class LabelEstimator(_LogisticOnFeatures):
    """Supervised mode: one logistic regression straight onto the eight classes (``relation fit``)."""

    values = CLASSES
    features = FEATURE_NAMES


class RelationClassifier(_Params):
    """The eight-class label from the three component estimators (or one supervised classifier).

    A scikit-learn estimator by protocol (``get_params``, ``fit``, ``predict``), so calibration
    cross-validates it with ``sklearn.model_selection.cross_val_score``.

    Parameters
    ----------
    mode : {"components", "supervised"}
        "components": CMI, SC and STAT estimators, combined by the table (DESIGN §7);
        "supervised": one 8-class logistic regression on the same features.
    C : float
        Inverse regularisation strength of the logistic regressions.
    """

    _param_names = ("mode", "C")

    def __init__(self, *, mode: str = "components", C: float = 1.0) -> None:
        self.mode = mode
        self.C = C

    @property
    def classes_(self) -> np.ndarray:
        """The eight classes, in ``predict_proba``'s column order (scikit-learn's ``classes_``)."""
        return np.asarray(CLASSES)

    def fit(self, X: np.ndarray, labels: Sequence[str]) -> RelationClassifier:
        """Fit on features of shape (n_pairs, n_features) and class names."""
        if self.mode not in {"components", "supervised"}:
            raise ValueError(f"mode must be 'components' or 'supervised', got {self.mode!r}")
        comps = [COMPONENTS[lab] for lab in labels]
        if self.mode == "supervised":
            self.label_ = LabelEstimator(C=self.C).fit(X, labels)
        self.cmi_ = CMIEstimator(C=self.C).fit(X, [c[0] for c in comps])
        self.sc_ = SCEstimator(C=self.C).fit(X, [c[1] for c in comps])
        self.stat_ = STATEstimator(C=self.C).fit(X, [c[2] for c in comps])
        return self

    def component_proba(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """``{"cmi": (n, 2), "sc": (n, 3), "stat": (n, 3)}`` probabilities in each estimator's ``values`` order."""
        _check_fitted(self, "cmi_")
        return {"cmi": self.cmi_.predict_proba(X), "sc": self.sc_.predict_proba(X), "stat": self.stat_.predict_proba(X)}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of shape (n_pairs, 8), columns in :data:`CLASSES` order."""
        _check_fitted(self, "cmi_")
        if self.mode == "supervised":
            return self.label_.predict_proba(X)
        comp = self.component_proba(X)
        rows = []
        for i in range(comp["cmi"].shape[0]):
            probs = class_probabilities(
                dict(zip(CMIEstimator.values, comp["cmi"][i], strict=True)),
                dict(zip(SCEstimator.values, comp["sc"][i], strict=True)),
                dict(zip(STATEstimator.values, comp["stat"][i], strict=True)),
            )
            rows.append([probs[c] for c in CLASSES])
        return np.asarray(rows)

    def predict(self, X: np.ndarray) -> list[str]:
        """The most probable class per pair."""
        return [CLASSES[k] for k in self.predict_proba(X).argmax(axis=1)]

    def to_dict(self) -> dict[str, Any]:
        _check_fitted(self, "cmi_")
        d = {"mode": self.mode, "C": self.C, "cmi": self.cmi_.to_dict(), "sc": self.sc_.to_dict(), "stat": self.stat_.to_dict()}
        if self.mode == "supervised":
            d["label"] = self.label_.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RelationClassifier:
        clf = cls(mode=d.get("mode", "components"), C=float(d.get("C", 1.0)))
        clf.cmi_ = CMIEstimator.from_dict(d["cmi"])
        clf.sc_ = SCEstimator.from_dict(d["sc"])
        clf.stat_ = STATEstimator.from_dict(d["stat"])
        if clf.mode == "supervised":
            clf.label_ = LabelEstimator.from_dict(d["label"])
        return clf
