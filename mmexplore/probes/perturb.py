"""Perturbed captions for compositional probes (ARO-style), on free text as well as shapes captions.

For a caption, each *kind* of perturbation makes at most one altered caption:

- ``attribute_swap`` — two objects exchange an attribute ("a **red** circle left of a **blue** square"
  → "a **blue** circle left of a **red** square"; ARO's VG-Attribution). Colours first, then sizes,
  then other known adjectives; the first pair of differing values of one category is swapped.
- ``relation_swap`` — the two noun phrases around an asymmetric relation trade places ("A left of B"
  → "B left of A"; ARO's VG-Relation). Symmetric relations ("next to", "and") are not swapped.
- ``word_shuffle`` — the words in a random order.
- ``word_drop`` — about a third of the words removed (at least one).
- ``negation`` — "not" inserted before the relation or after "is"/"are", or "a"/"an"/"the" → "no";
  a caption that already holds a negation loses it instead.

A perturbation that leaves the text unchanged (same words in the same order, ignoring case) is
dropped, never counted: "a red circle above a red square" has no colour swap. Word order and the
bag of words of ``attribute_swap``, ``relation_swap`` and ``word_shuffle`` are those of the caption,
which is what makes them a test of word order.

>>> [p.text for p in perturb_caption("a red circle left of a blue square", kinds=("attribute_swap", "relation_swap"))]
['a blue circle left of a red square', 'a blue square left of a red circle']
>>> perturb_caption("a red circle above a red square", kinds=("attribute_swap",))
[]
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PERTURBATION_KINDS: tuple[str, ...] = ("attribute_swap", "relation_swap", "word_shuffle", "word_drop", "negation")
# Word-order kinds: the perturbed caption has exactly the caption's bag of words.
ORDER_KINDS: tuple[str, ...] = ("attribute_swap", "relation_swap", "word_shuffle")

ATTRIBUTE_WORDS: dict[str, tuple[str, ...]] = {
    "color": ("red", "green", "blue", "yellow", "black", "white", "orange", "purple", "pink", "brown",
              "gray", "grey", "golden", "silver"),
    "size": ("small", "large", "big", "tiny", "huge", "little", "tall", "short"),
    "material": ("wooden", "metal", "plastic", "glass", "stone"),
    "state": ("open", "closed", "empty", "full", "wet", "dry", "old", "new", "young"),
}
# Asymmetric relations, longest first so that "to the left of" wins over "left of".
RELATIONS: tuple[str, ...] = tuple(sorted(
    ("left of", "right of", "to the left of", "to the right of", "above", "below", "under", "underneath",
     "beneath", "over", "on top of", "behind", "in front of", "inside", "on", "in", "holding", "riding",
     "eating", "wearing", "carrying", "chasing", "pushing", "pulling", "watching", "bigger than",
     "smaller than", "taller than"),
    key=lambda r: -len(r.split()),
))
DETERMINERS = ("a", "an", "the", "some", "one", "two", "three", "four", "five", "this", "that", "his", "her", "their")
LINKING = ("is", "are", "was", "were", "sits", "sitting", "stands", "standing", "lies", "lying", "located", "placed")
CLAUSE_BREAKS = ("and", "while", "but", "with", "where", "which")
NEGATIONS = ("not", "no", "never", "isn't", "aren't", "doesn't", "don't", "nothing")
LEAD_INS = ("a picture of", "an image of", "a photo of", "a drawing of", "there is", "there are")


@dataclass(frozen=True)
class Perturbation:
    """A perturbed caption: its ``kind`` (one of :data:`PERTURBATION_KINDS`) and ``text``."""

    kind: str
    text: str


def _bare(word: str) -> str:
    """Lower-case word without surrounding punctuation (for matching)."""
    return re.sub(r"^[^\w']+|[^\w']+$", "", word.lower())


def _same(a: str, b: str) -> bool:
    return [_bare(w) for w in a.split()] == [_bare(w) for w in b.split()]


def _recase(template: str, word: str) -> str:
    """``word`` with ``template``'s surrounding punctuation and capitalisation."""
    m = re.match(r"^([^\w']*)(.*?)([^\w']*)$", template)
    pre, core, post = m.groups() if m else ("", template, "")
    new = word.capitalize() if core[:1].isupper() else word
    return f"{pre}{new}{post}"


def attribute_swap(words: list[str]) -> list[str] | None:
    """Swap the first two differing attribute words of one category (colour, then size, ...)."""
    bare = [_bare(w) for w in words]
    for vocab in ATTRIBUTE_WORDS.values():
        at = [i for i, w in enumerate(bare) if w in vocab]
        for a_pos, i in enumerate(at):
            j = next((j for j in at[a_pos + 1:] if bare[j] != bare[i]), None)
            if j is not None:
                out = list(words)
                out[i], out[j] = _recase(words[i], bare[j]), _recase(words[j], bare[i])
                return out
    return None


def _find_relation(bare: list[str]) -> tuple[int, int] | None:
    """(start, end) word span of the first relation phrase with words on both sides."""
    for start in range(1, len(bare) - 1):
        for rel in RELATIONS:
            parts = rel.split()
            if bare[start:start + len(parts)] == parts and start + len(parts) < len(bare):
                return start, start + len(parts)
    return None


def relation_swap(words: list[str]) -> list[str] | None:
    """Swap the noun phrases on either side of the first asymmetric relation."""
    bare = [_bare(w) for w in words]
    span = _find_relation(bare)
    if span is None:
        return None
    r0, r1 = span
    # Subject: from the last determiner before the relation (else after a lead-in, else the start),
    # minus trailing linking verbs ("the cat is on the mat": "the cat").
    s0 = max((i for i in range(r0) if bare[i] in DETERMINERS), default=None)
    if s0 is None:
        s0 = 0
        for lead in LEAD_INS:
            n = len(lead.split())
            if bare[:n] == lead.split():
                s0 = n
                break
    s1 = r0
    while s1 > s0 and bare[s1 - 1] in LINKING:
        s1 -= 1
    # Object: up to the next clause break or punctuation that ends the phrase.
    o0, o1 = r1, r1
    while o1 < len(words) and bare[o1] not in CLAUSE_BREAKS:
        o1 += 1
        if re.search(r"[,.;:!?]$", words[o1 - 1]):
            break
    if s1 <= s0 or o1 <= o0:
        return None
    subject, obj = words[s0:s1], words[o0:o1]
    tail_punct = re.search(r"[,.;:!?]+$", obj[-1])
    obj_clean = [*obj[:-1], obj[-1][:tail_punct.start()]] if tail_punct else list(obj)
    new_obj = [*subject[:-1], subject[-1] + (tail_punct.group() if tail_punct else "")]
    if s0 == 0 and subject[0][:1].isupper():
        obj_clean[0] = obj_clean[0].capitalize()
        new_obj[0] = new_obj[0][:1].lower() + new_obj[0][1:]
    return words[:s0] + obj_clean + words[s1:o0] + new_obj + words[o1:]


def word_shuffle(words: list[str], rng: random.Random, tries: int = 20) -> list[str] | None:
    """A random order of the words that differs from the original (None if none found)."""
    if len(words) < 2:
        return None
    for _ in range(tries):
        out = list(words)
        rng.shuffle(out)
        if [_bare(w) for w in out] != [_bare(w) for w in words]:
            return out
    return None


def word_drop(words: list[str], rng: random.Random, fraction: float = 1 / 3) -> list[str] | None:
    """The caption with about ``fraction`` of its words removed (at least one, at least one kept)."""
    if len(words) < 2:
        return None
    n_drop = min(len(words) - 1, max(1, round(len(words) * fraction)))
    drop = set(rng.sample(range(len(words)), n_drop))
    return [w for i, w in enumerate(words) if i not in drop]


def negation(words: list[str]) -> list[str] | None:
    """Negate: remove an existing negation, else insert "not" / turn the first article into "no"."""
    bare = [_bare(w) for w in words]
    neg = [i for i, w in enumerate(bare) if w in NEGATIONS]
    if neg:
        i = neg[0]
        contracted = {"isn't": "is", "aren't": "are", "doesn't": "does", "don't": "do"}
        if bare[i] in contracted:
            return [*words[:i], _recase(words[i], contracted[bare[i]]), *words[i + 1:]]
        if bare[i] == "no":
            return [*words[:i], _recase(words[i], "a"), *words[i + 1:]]
        return words[:i] + words[i + 1:] or None
    span = _find_relation(bare)
    if span is not None:
        link = next((i for i in range(span[0] - 1, -1, -1) if bare[i] in ("is", "are")), None)
        at = link + 1 if link is not None and link >= span[0] - 1 else span[0]
        return [*words[:at], "not", *words[at:]]
    link = next((i for i, w in enumerate(bare) if w in ("is", "are")), None)
    if link is not None:
        return [*words[:link + 1], "not", *words[link + 1:]]
    art = next((i for i, w in enumerate(bare) if w in ("a", "an", "the")), None)
    if art is not None:
        return [*words[:art], _recase(words[art], "no"), *words[art + 1:]]
    return ["not", *words]


def perturb_caption(
    text: str, kinds: tuple[str, ...] = PERTURBATION_KINDS, seed: int = 0
) -> list[Perturbation]:
    """The perturbations of ``text`` of each kind in ``kinds`` that change it (at most one per kind).

    Parameters
    ----------
    text : str
        Any caption.
    kinds : tuple of str
        From :data:`PERTURBATION_KINDS`.
    seed : int
        For the random kinds (shuffle, drop); the same seed gives the same perturbations.

    Returns
    -------
    list of Perturbation
        In the order of ``kinds``; kinds that do not apply or would not change the caption are absent.
    """
    unknown = [k for k in kinds if k not in PERTURBATION_KINDS]
    if unknown:
        from mmexplore.errors import InputError

        raise InputError(f"unknown perturbation kind(s) {unknown}; the available kinds are {list(PERTURBATION_KINDS)}")
    words = str(text).split()
    rng = random.Random(f"{seed}:{' '.join(words)}")
    makers = {
        "attribute_swap": lambda: attribute_swap(words),
        "relation_swap": lambda: relation_swap(words),
        "word_shuffle": lambda: word_shuffle(words, rng),
        "word_drop": lambda: word_drop(words, rng),
        "negation": lambda: negation(words),
    }
    out: list[Perturbation] = []
    for kind in kinds:
        new = makers[kind]() if words else None
        if new is None:
            continue
        new_text = " ".join(w for w in new if w)
        if new_text.strip() and not _same(new_text, text):
            out.append(Perturbation(kind, new_text))
    return out
