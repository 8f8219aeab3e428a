"""One entry point: the relation label of image–text pairs with components, probabilities and evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mmexplore.models.readability import Readability, read_text
from mmexplore.relation.calibration import Calibration, load_calibration
from mmexplore.relation.estimators import CMIEstimator, SCEstimator, STATEstimator
from mmexplore.relation.features import pair_features
from mmexplore.relation.grounding import Grounding
from mmexplore.relation.taxonomy import CLASSES, COMPONENTS, USE_CASES

# The label given instead of a class when the evidence cannot carry one (see cannot_tell_reasons).
CANNOT_TELL = "cannot tell"


@dataclass
class RelationResult:
    """The label of one pair (DESIGN §7/§8 fields) and how it was reached.

    ``label`` is one of the eight classes, or :data:`CANNOT_TELL` when the model cannot read the text
    or finds nothing it knows in the image (``extra["cannot_tell"]`` lists why); ``model_label`` is
    always the classifier's most probable class, and ``cmi``/``sc``/``stat`` are its components.
    """

    label: str
    cmi: int
    sc: int
    stat: str
    probabilities: dict[str, float]
    components: dict[str, dict[str, Any]]
    evidence: dict[str, Any]
    explanation: str
    use_case: str = ""
    text: str = ""
    image: str = ""
    model_label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d


def _fmt_phrase(rec: dict[str, Any]) -> str:
    return f"'{rec['phrase']}'"


def explain(g: Grounding, label: str) -> str:
    """A plain-language account of the evidence and the label, one paragraph."""
    parts: list[str] = []
    if not g.parsed.phrases:
        if g.parsed.deictic:
            parts.append("the text names nothing but points at the image ('this', 'here', ...)")
        else:
            parts.append("the text names no shapes-world concept")
    for rec in g.phrases:
        if rec["generic"]:
            parts.append(f"{_fmt_phrase(rec)} speaks of a kind in general")
            continue
        if rec["p_contradicted"] > 0.5:
            continue
        if rec["p_depicted"] >= 0.5:
            parts.append(f"{_fmt_phrase(rec)} is depicted (p={rec['p_depicted']:.2f})")
        else:
            parts.append(f"{_fmt_phrase(rec)} is not depicted (p={rec['p_depicted']:.2f})")
    for c in g.contradictions:
        parts.append(f"{c['detail']} (p={c['p']:.2f})")
    n_obj = len(g.objects)
    if g.features.get("whole_image"):
        parts.append("no separate objects were found, so the whole image was read as one")
    elif n_obj:
        named = sum(1 for o in g.objects if o["covered"] > 0.5)
        parts.append(f"the text covers {named} of {n_obj} object{'s' if n_obj != 1 else ''}")
    if g.parsed.n_sentences > 1:
        about = round(g.features["concept_sentence_share"] * g.parsed.n_sentences)
        parts.append(f"{g.parsed.n_sentences} sentences, {about} about the image")
    text = "; ".join(parts) if parts else "no evidence"
    return f"{text[:1].upper()}{text[1:]} → {label}."


def cannot_tell_reasons(read: Readability, g: Grounding) -> list[str]:
    """Why a pair gets :data:`CANNOT_TELL` instead of a class (empty: the class stands).

    The estimator's features come from the words the model reads and the objects it finds: with most
    words unknown, a negation (which neither the model nor the chunker reads) or no object found,
    they describe a different pair than the one shown, and a confident class would be invented.
    """
    reasons = []
    # A pointer with no concept ("This is the pattern to copy.") is read by the chunker, not the model,
    # and is evidence in itself (Interdependent), however few of its words the model knows.
    if read.unreadable and not g.parsed.deictic:
        shown = ", ".join(f"'{w}'" for w in dict.fromkeys(read.unknown[:5]))
        reasons.append(f"the model cannot read {len(read.unknown)} of {len(read.words)} words of the text "
                       f"({read.unknown_share:.0%}: {shown})" if read.words else "the text has no words the model reads")
    if read.negations:
        reasons.append(f"the text negates ('{read.negations[0]}'), and neither the model nor the relation "
                       "estimator reads negation")
    if g.features.get("whole_image"):
        reasons.append("the model finds no object it knows in the image (the bundled models know only the "
                       "shapes world)")
    return reasons


def relate(
    encoder,
    images: list,
    texts: list[str],
    *,
    calibration: Calibration | None = None,
    model_spec: str = "bundled",
) -> list[RelationResult]:
    """Label image–text pairs with the eight-class taxonomy.

    Parameters
    ----------
    encoder : mmexplore.models.Encoder
    images : list of PIL.Image.Image
        Image k pairs with text k.
    texts : list of str
    calibration : Calibration, optional
        Loaded from ``assets/relation/`` for ``model_spec`` when None.

    Returns
    -------
    list of RelationResult, one per pair
    """
    if len(images) != len(texts):
        raise ValueError(f"{len(images)} images but {len(texts)} texts: give one text per image")
    cal = calibration or load_calibration(model_spec)
    _, groundings, X = pair_features(encoder, images, texts, cal.scale, zoom_scale=cal.zoom_scale)
    if not groundings:
        return []
    clf = cal.classifier
    made_for = cal.meta.get("model_id")
    cal_note = {
        "path": cal.meta.get("path"), "mode": clf.mode,
        # A calibration fitted on other weights still runs, but its thresholds may be off.
        "stale": bool(made_for) and made_for != getattr(encoder, "model_id", made_for),
    }
    probs = clf.predict_proba(X)
    comp = clf.component_proba(X)
    out = []
    for i, g in enumerate(groundings):
        model_label = CLASSES[int(np.argmax(probs[i]))]
        cmi, sc, stat = COMPONENTS[model_label]
        read = read_text(encoder, texts[i])
        reasons = cannot_tell_reasons(read, g)
        label = CANNOT_TELL if reasons else model_label
        components = {
            name: {
                "value": {"cmi": cmi, "sc": sc, "stat": stat}[name],
                "probabilities": {str(v): float(p) for v, p in zip(est.values, comp[name][i], strict=True)},
            }
            for name, est in (("cmi", CMIEstimator), ("sc", SCEstimator), ("stat", STATEstimator))
        }
        for c in components.values():
            c["confidence"] = c["probabilities"][str(c["value"])]
        evidence = {
            "phrases": g.phrases,
            "relations": [{"subject": g.parsed.phrases[r.subject].text, "relation": r.relation,
                           "object": g.parsed.phrases[r.object].text} for r in g.parsed.relations],
            "contradictions": g.contradictions,
            "image_objects": g.objects,
            "deictic": g.parsed.deictic,
            "coverage": {"text": g.features["about_mean"], "image": g.features["image_coverage"]},
            "features": g.features,
        }
        out.append(RelationResult(
            label=label, cmi=cmi, sc=sc, stat=stat,
            probabilities={c: float(p) for c, p in zip(CLASSES, probs[i], strict=True)},
            components=components, evidence=evidence,
            explanation=(f"Cannot tell: {'; '.join(reasons)}. The classifier alone would say {model_label} "
                         f"(p={probs[i].max():.2f}), from evidence that does not describe this pair."
                         if reasons else explain(g, label)),
            use_case=USE_CASES.get(label, ""), text=texts[i], model_label=model_label,
            extra={"calibration": cal_note, "readability": read.to_dict(), "cannot_tell": reasons},
        ))
    return out
