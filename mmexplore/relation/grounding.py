"""Grounding concept phrases in an image with the model, and the pair features built on it.

The image is split into object proposals (:mod:`mmexplore.relation.regions`); the model scores each
isolated object against a closed vocabulary of shapes-world phrases ("a small red circle", all 24
combinations), and a softmax with a *fitted* scale turns those cosines into a calibrated posterior
over (size, colour, shape) per object. A text phrase then grounds as

- ``p_depicted``  = max over objects of Π P(attribute = the phrase's value), the probability that some
  object is what the phrase says;
- ``p_contradicted`` = (1 − p_depicted) · max over objects of P(exactly one attribute differs), i.e.
  the text's own version loses to a one-attribute perturbation of it (the free-text form of
  ``hard_negative``'s colour/shape/size perturbations); counts ("two red circles") and spatial
  relations ("A left of B", from the grounded objects' positions) contradict as well.

Coverage both ways — the share of the text's phrases that are about the image and the share of the
image's objects the text names — and the text's length and structure complete the feature vector
(:data:`FEATURE_NAMES`) the CMI / SC / STAT estimators read.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmexplore.data import shapes
from mmexplore.relation.chunker import ConceptPhrase, ParsedText, parse_text
from mmexplore.relation.regions import Region, propose_regions

# The shapes world's vocabulary, from its one definition (mmexplore.data.shapes), in its order: the
# calibrated classifier's features follow VOCAB's order.
SIZES, COLORS, SHAPES = (shapes.ATTRIBUTE_VALUES[a] for a in ("size", "color", "shape"))
VOCAB: tuple[tuple[str, str, str], ...] = tuple(itertools.product(SIZES, COLORS, SHAPES))
VOCAB_TEXTS: tuple[str, ...] = tuple(f"a {z} {c} {s}" for z, c, s in VOCAB)
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = shapes.ATTRIBUTE_VALUES
_ATTR_INDEX = {"size": 0, "color": 1, "shape": 2}
# Offset (normalised canvas units) along the stated axis below which a stated relation counts as false.
RELATION_MARGIN = 0.04
RELATION_SOFTNESS = 0.02

FEATURE_NAMES: tuple[str, ...] = (
    "has_phrases", "n_phrases", "deictic", "dep_max", "dep_mean", "about_max", "about_mean",
    "contra_max", "contra_attr", "contra_relation", "contra_count", "image_coverage", "n_regions",
    "log_words", "n_sentences", "concept_sentence_share", "concept_word_share", "other_word_share",
    "whole_image", "whole_margin",
)
# Logit difference (own − best perturbation) below which the whole-text check reports a contradiction.
WHOLE_MARGIN_REPORT = -1.0


@dataclass
class ImageReading:
    """What the model sees in one image: its object proposals and their vocabulary scores.

    Attributes
    ----------
    positions : ndarray of shape (n_objects, 2)
        Centroids (x, y) in normalised coordinates; NaN when the whole image is the only "object".
    cosines : ndarray of shape (n_objects, 24)
        Cosine of each object, isolated in place, with each :data:`VOCAB_TEXTS` phrase.
    zoom_cosines : ndarray of shape (n_objects, 24)
        The same for the object centred and enlarged (its shape is easier to see; its size is not).
    whole_image : bool
        True when no proposals were found and the whole image stands in for one object.
    """

    positions: np.ndarray
    cosines: np.ndarray
    zoom_cosines: np.ndarray
    areas: np.ndarray
    whole_image: bool = False
    embedding: np.ndarray | None = None  # the whole image's embedding, shape (embed_dim,)

    def marginals(self, scale: float, zoom_scale: float = 0.0) -> dict[str, np.ndarray]:
        """Calibrated attribute posteriors per object: ``{"size": (n, 2), "color": (n, 4), "shape": (n, 3)}``.

        Size and colour come from the in-place view, ``softmax(scale · cosines)`` marginalised; shape
        from ``softmax(scale · cosines + zoom_scale · zoom_cosines)``, both scales fitted by calibration.
        """
        place = marginals(_softmax(self.cosines * scale))
        both = marginals(_softmax(self.cosines * scale + self.zoom_cosines * zoom_scale))
        return {"size": place["size"], "color": place["color"], "shape": both["shape"]}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def _vocab_embeddings(encoder) -> np.ndarray:
    cache = getattr(encoder, "_relation_vocab", None)
    if cache is None:
        cache = encoder.encode_texts(list(VOCAB_TEXTS), use_cache=False)
        with contextlib.suppress(AttributeError):  # an encoder that takes no attributes just re-encodes
            encoder._relation_vocab = cache
    return cache


def read_images(encoder, images: list, *, batch_size: int = 128) -> list[ImageReading]:
    """Propose objects in each image and score every object (in place and zoomed) against the vocabulary.

    Parameters
    ----------
    encoder : mmexplore.models.Encoder
    images : list of PIL.Image.Image

    Returns
    -------
    list of ImageReading, one per image
    """
    vocab = _vocab_embeddings(encoder)
    per_image: list[tuple[list[Region], bool]] = []
    crops = []
    for im in images:
        regions = propose_regions(im)
        whole = not regions
        per_image.append((regions, whole))
        if whole:
            crops += [im.convert("RGB"), im.convert("RGB")]
        else:
            crops += [v for r in regions for v in (r.isolated, r.zoomed)]
        crops.append(im.convert("RGB"))
    emb = encoder.encode_images(crops, batch_size=batch_size, use_cache=False) if crops else np.zeros((0, vocab.shape[1]))
    cos = emb @ vocab.T
    out, at = [], 0
    for regions, whole in per_image:
        n = 1 if whole else len(regions)
        pos = np.full((1, 2), np.nan) if whole else np.array([[r.cx, r.cy] for r in regions])
        areas = np.ones(1) if whole else np.array([r.area for r in regions])
        block = cos[at : at + 2 * n]
        out.append(ImageReading(pos, block[0::2], block[1::2], areas, whole, emb[at + 2 * n]))
        at += 2 * n + 1
    return out


def marginals(post: np.ndarray) -> dict[str, np.ndarray]:
    """Per-attribute marginals of a vocabulary posterior (n_objects, 24): attribute → (n_objects, n_values)."""
    grid = post.reshape(post.shape[0], len(SIZES), len(COLORS), len(SHAPES))
    return {"size": grid.sum(axis=(2, 3)), "color": grid.sum(axis=(1, 3)), "shape": grid.sum(axis=(1, 2))}


def object_reading(marg: dict[str, np.ndarray], k: int) -> tuple[str, float]:
    """The most probable (size, colour, shape) of object ``k`` as a phrase, and its probability."""
    vals = {a: ATTRIBUTE_VALUES[a][int(np.argmax(marg[a][k]))] for a in ("size", "color", "shape")}
    p = float(np.prod([marg[a][k].max() for a in ("size", "color", "shape")]))
    return f"a {vals['size']} {vals['color']} {vals['shape']}", p


def _attribute_probs(phrase: ConceptPhrase, marg: dict[str, np.ndarray]) -> np.ndarray:
    """P(object's attribute = the phrase's value), shape (n_objects, n_specified_attributes)."""
    cols = [marg[a][:, ATTRIBUTE_VALUES[a].index(v)] for a, v in phrase.attributes.items()]
    n = next(iter(marg.values())).shape[0]
    return np.stack(cols, axis=1) if cols else np.ones((n, 0))


def _poisson_binomial(p: np.ndarray) -> np.ndarray:
    """P(number of successes = k) for independent Bernoulli(p_i), k = 0..len(p)."""
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for q in p:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return dist


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


@dataclass
class Grounding:
    """Evidence for one image–text pair and the features derived from it."""

    parsed: ParsedText
    phrases: list[dict[str, Any]] = field(default_factory=list)
    contradictions: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)

    def vector(self) -> np.ndarray:
        """The features in :data:`FEATURE_NAMES` order, shape (n_features,)."""
        return np.array([self.features[k] for k in FEATURE_NAMES], dtype=np.float64)


def whole_text_scores(encoder, readings: list[ImageReading], parsed: list[ParsedText]) -> list[dict[str, Any] | None]:
    """Each text's own canonical version vs its one-step perturbations, scored against its whole image.

    Returns
    -------
    list of dict or None
        Per pair: ``own`` (logit of the canonical text), ``best`` (highest perturbed logit) and
        ``best_text`` / ``best_change``; None when the text has no specific phrase.
    """
    from mmexplore.relation.perturb import canonical_text, perturbations

    jobs = []
    for p in parsed:
        own = canonical_text(p)
        jobs.append((own, perturbations(p)) if own else None)
    texts = sorted({t for j in jobs if j for t in [j[0], *(x for x, _ in j[1])]})
    if not texts:
        return [None] * len(parsed)
    emb = encoder.encode_texts(texts, use_cache=False)
    index = {t: k for k, t in enumerate(texts)}
    scale = float(getattr(encoder, "logit_scale", 1.0))
    out: list[dict[str, Any] | None] = []
    for j, rd in zip(jobs, readings, strict=True):
        if j is None or rd.embedding is None:
            out.append(None)
            continue
        own_text, perts = j
        own = scale * float(emb[index[own_text]] @ rd.embedding)
        if not perts:
            out.append({"own": own, "best": None, "best_text": None, "best_change": None, "text": own_text})
            continue
        logits = [scale * float(emb[index[t]] @ rd.embedding) for t, _ in perts]
        k = int(np.argmax(logits))
        out.append({"own": own, "best": logits[k], "best_text": perts[k][0], "best_change": perts[k][1], "text": own_text})
    return out


def _phrase_matches(parsed: ParsedText, marg: dict[str, np.ndarray], n_obj: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stage 1. Per phrase, per object: P(the object is what the phrase says) and P(exactly one stated
    attribute differs), each an ndarray (n_obj,) in [0, 1]."""
    rows = []
    for ph in parsed.phrases:
        q = _attribute_probs(ph, marg)
        match = q.prod(axis=1)
        if q.shape[1] >= 2:
            # P(exactly one specified attribute differs): the phrase is a one-attribute perturbation of the object.
            one_off = sum((1 - q[:, a]) * np.prod(np.delete(q, a, axis=1), axis=1) for a in range(q.shape[1]))
        else:
            one_off = np.zeros(n_obj)
        rows.append((match, one_off))
    return rows


def _assign_objects(parsed: ParsedText, match_rows: list, n_obj: int) -> tuple[np.ndarray, list, np.ndarray, list]:
    """Stage 2. Objects to phrases, most confident phrase first, so one object is not counted twice.

    Returns (covered (n_obj,), named_by (phrase text or None per object), about (n_phrases,), best object per phrase).
    """
    order = sorted(range(len(parsed.phrases)), key=lambda i: -float(match_rows[i][0].max()) if n_obj else 0.0)
    covered = np.zeros(n_obj)
    named_by: list[str | None] = [None] * n_obj
    taken = np.zeros(n_obj, dtype=bool)
    about = np.zeros(len(parsed.phrases))
    best_obj: list[int | None] = [None] * len(parsed.phrases)
    for i in order:
        ph = parsed.phrases[i]
        if ph.generic:  # "circles have no corners" speaks of circles in general, not of these objects
            continue
        match, one_off = match_rows[i]
        s = np.maximum(match, one_off)
        want = ph.count if ph.count else max(1, int((match > 0.5).sum()))
        free = [k for k in np.argsort(-s) if not taken[k]] or list(np.argsort(-s))
        chosen = free[: max(1, want)]
        for k in chosen:
            if s[k] > covered[k]:
                covered[k], named_by[k] = float(s[k]), ph.text
            taken[k] = True
        about[i] = float(s[chosen].max()) if len(chosen) else 0.0
        best_obj[i] = int(chosen[0]) if len(chosen) else None
    return covered, named_by, about, best_obj


def _phrase_evidence(g: Grounding, reading: ImageReading, marg: dict[str, np.ndarray], match_rows: list,
                     about: np.ndarray, best_obj: list, n_obj: int) -> tuple[float, float]:
    """Stage 3. One record per phrase in ``g.phrases``; attribute and count contradictions into
    ``g.contradictions``. Returns the strongest attribute and count contradiction probabilities."""
    parsed = g.parsed
    contra_attr = contra_count = 0.0
    for i, ph in enumerate(parsed.phrases):
        match, one_off = match_rows[i]
        if ph.generic:
            g.phrases.append({"phrase": ph.text, "canonical": ph.canonical, "attributes": ph.attributes, "count": None,
                              "generic": True, "p_depicted": None, "p_contradicted": None, "p_about": None, "object": None})
            continue
        p_dep = float(match.max()) if n_obj else 0.0
        p_con = (1.0 - p_dep) * float(one_off.max()) if n_obj else 0.0
        k_alt = int(np.argmax(one_off)) if n_obj else 0
        k_best = int(np.argmax(match)) if n_obj else 0
        reads, reads_p = object_reading(marg, k_alt if p_con > p_dep else k_best)
        rec = {
            "phrase": ph.text, "canonical": ph.canonical, "attributes": ph.attributes, "count": ph.count,
            "p_depicted": p_dep, "p_contradicted": p_con, "p_about": float(about[i]),
            "object": best_obj[i], "image_reads": reads, "image_reads_p": reads_p, "generic": False,
        }
        g.phrases.append(rec)
        if p_con > 0.5:
            differ = [a for a, v in ph.attributes.items() if ATTRIBUTE_VALUES[a][int(np.argmax(marg[a][k_alt]))] != v]
            g.contradictions.append({
                "kind": "attribute", "phrase": ph.text, "p": p_con, "attributes": differ,
                "image_reads": reads, "image_reads_p": reads_p,
                "detail": f"'{ph.text}' contradicts the image: the closest object reads as '{reads}'",
            })
        contra_attr = max(contra_attr, p_con)
        if ph.count and ph.count >= 2 and n_obj and not reading.whole_image:
            dist = _poisson_binomial(np.clip(match, 0, 1))
            p_exact = float(dist[ph.count]) if ph.count < len(dist) else 0.0
            seen = int(np.argmax(dist))
            p_cc = (1 - float(np.prod(1 - match))) * (1 - p_exact)
            contra_count = max(contra_count, p_cc)
            if p_cc > 0.5:
                g.contradictions.append({
                    "kind": "count", "phrase": ph.text, "p": p_cc,
                    "detail": f"'{ph.text}' says {ph.count}, the image shows {seen}",
                })
    return contra_attr, contra_count


def _relation_evidence(g: Grounding, reading: ImageReading, match_rows: list, n_obj: int) -> float:
    """Stage 4. Stated spatial relations against the objects' positions; contradictions into
    ``g.contradictions``. Returns the strongest relation contradiction probability."""
    parsed = g.parsed
    contra_rel = 0.0
    if reading.whole_image or n_obj < 2:
        return contra_rel
    for rel in parsed.relations:
        if parsed.phrases[rel.subject].generic or parsed.phrases[rel.object].generic:
            continue
        ma = match_rows[rel.subject][0]
        mb = match_rows[rel.object][0]
        ka = int(np.argmax(ma))
        rest = [k for k in np.argsort(-mb) if k != ka]
        if not rest:
            continue
        kb = int(rest[0])
        (xa, ya), (xb, yb) = reading.positions[ka], reading.positions[kb]
        along = {"left of": xb - xa, "right of": xa - xb, "above": yb - ya, "below": ya - yb}[rel.relation]
        p_false = _sigmoid((-along - RELATION_MARGIN) / RELATION_SOFTNESS)
        p_rc = float(ma[ka] * mb[kb]) * p_false
        contra_rel = max(contra_rel, p_rc)
        if p_rc > 0.5:
            sa, sb = parsed.phrases[rel.subject].text, parsed.phrases[rel.object].text
            g.contradictions.append({
                "kind": "relation", "phrase": f"{sa} {rel.text} {sb}", "p": p_rc,
                "detail": f"'{sa}' is not {rel.relation} '{sb}' in the image",
            })
    return contra_rel


def _whole_text_evidence(g: Grounding, whole: dict[str, Any] | None) -> float:
    """Stage 5. The whole-text perturbation check: margin (logits) of the text over its best perturbation."""
    margin = 0.0
    if whole is not None and whole.get("best") is not None:
        margin = whole["own"] - whole["best"]
        if margin < WHOLE_MARGIN_REPORT:
            g.contradictions.append({
                "kind": "whole_text", "phrase": whole["text"], "p": _sigmoid(-margin), "change": whole["best_change"],
                "detail": f"the whole image matches '{whole['best_text']}' better than the text's "
                          f"'{whole['text']}' ({whole['best_change']}; logit {whole['best']:.1f} vs {whole['own']:.1f})",
            })
    return margin


def _features(g: Grounding, reading: ImageReading, covered: np.ndarray, about: np.ndarray,
              contra: tuple[float, float, float], margin: float, n_obj: int) -> dict[str, float]:
    """Stage 6. The feature dict the estimators read (names and order are the calibration's contract)."""
    parsed = g.parsed
    contra_attr, contra_count, contra_rel = contra
    specific = [i for i, ph in enumerate(parsed.phrases) if not ph.generic]
    n_ph = len(specific)
    deps = [g.phrases[i]["p_depicted"] for i in specific]
    about = about[specific]
    about_sent = {parsed.phrases[i].sentence for i, a in zip(specific, about, strict=True) if a > 0.5}
    n_words = max(1, parsed.n_words)
    return {
        "has_phrases": float(n_ph > 0),
        "n_phrases": float(min(n_ph, 8)),
        "deictic": float(parsed.deictic),
        "dep_max": max(deps, default=0.0),
        "dep_mean": float(np.mean(deps)) if deps else 0.0,
        "about_max": float(about.max()) if n_ph else 0.0,
        "about_mean": float(about.mean()) if n_ph else 0.0,
        "contra_max": max(contra_attr, contra_count, contra_rel),
        "contra_attr": contra_attr,
        "contra_relation": contra_rel,
        "contra_count": contra_count,
        "image_coverage": float(covered.mean()) if n_obj else 0.0,
        "n_regions": float(0 if reading.whole_image else n_obj),
        "log_words": math.log1p(parsed.n_words),
        "n_sentences": float(min(parsed.n_sentences, 10)),
        "concept_sentence_share": len(about_sent) / max(1, parsed.n_sentences),
        "concept_word_share": parsed.concept_words / n_words,
        "other_word_share": parsed.other_words / n_words,
        "whole_image": float(reading.whole_image),
        "whole_margin": float(np.clip(margin, -10.0, 10.0)),
    }


def ground(
    parsed: ParsedText | str,
    reading: ImageReading,
    scale: float,
    zoom_scale: float = 0.0,
    whole: dict[str, Any] | None = None,
) -> Grounding:
    """Ground a parsed text in an image reading, in six named stages.

    1. :func:`_phrase_matches` — each phrase against each object read in the image;
    2. :func:`_assign_objects` — objects to phrases, most confident first;
    3. :func:`_phrase_evidence` — per-phrase records, attribute and count contradictions;
    4. :func:`_relation_evidence` — stated spatial relations against positions;
    5. :func:`_whole_text_evidence` — the whole text against its perturbations;
    6. :func:`_features` — the feature dict the estimators read.

    Parameters
    ----------
    parsed : ParsedText or str
    reading : ImageReading
    scale, zoom_scale : float
        Softmax scales (inverse temperatures) of the in-place and zoomed views, fitted by calibration.
    whole : dict, optional
        The pair's entry of :func:`whole_text_scores` (the whole-text perturbation check).

    Returns
    -------
    Grounding
        With per-phrase ``p_depicted`` / ``p_contradicted``, the contradictions found, the objects
        read in the image and which phrase names them, and the feature dict.
    """
    if isinstance(parsed, str):
        parsed = parse_text(parsed)
    marg = reading.marginals(scale, zoom_scale)
    n_obj = reading.cosines.shape[0]
    g = Grounding(parsed)
    match_rows = _phrase_matches(parsed, marg, n_obj)
    covered, named_by, about, best_obj = _assign_objects(parsed, match_rows, n_obj)
    contra_attr, contra_count = _phrase_evidence(g, reading, marg, match_rows, about, best_obj, n_obj)
    contra_rel = _relation_evidence(g, reading, match_rows, n_obj)
    margin = _whole_text_evidence(g, whole)
    for k in range(n_obj):
        reads, p = object_reading(marg, k)
        pos = None if reading.whole_image else [float(v) for v in reading.positions[k]]
        g.objects.append({"object": k, "reads": reads, "p": p, "position": pos, "named_by": named_by[k],
                          "covered": float(covered[k])})
    g.features = _features(g, reading, covered, about, (contra_attr, contra_count, contra_rel), margin, n_obj)
    return g
