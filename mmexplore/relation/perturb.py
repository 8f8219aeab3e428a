"""Whole-text perturbations: the text's concepts rewritten in the model's words, and every one-step change of them.

This is :func:`mmexplore.data.shapes.hard_negative` generalised to free text: from the chunker's
phrases, :func:`canonical_text` writes what the text claims ("a small red circle left of a blue
square"); :func:`perturbations` changes one attribute of one phrase (colour, shape, size) or swaps a
relation's two sides. When a perturbation scores clearly higher against the image than the text's own
version, the image contradicts the text.

>>> from mmexplore.relation.chunker import parse_text
>>> p = parse_text("A red circle left of a blue square.")
>>> canonical_text(p)
'a red circle left of a blue square'
>>> len(perturbations(p))
13
"""

from __future__ import annotations

from dataclasses import replace

from mmexplore.data.shapes import ATTRIBUTE_VALUES
from mmexplore.relation.chunker import ConceptPhrase, ParsedText

VALUES: dict[str, tuple[str, ...]] = ATTRIBUTE_VALUES  # the shapes world's vocabulary (mmexplore.data.shapes)
MAX_PHRASES = 4


def canonical_text(parsed: ParsedText, phrases: list[ConceptPhrase] | None = None, swap: int | None = None) -> str:
    """The text's specific phrases (and relations) in shapes-world words; ``""`` when it has none.

    ``phrases`` replaces the parsed phrases (same order); ``swap`` names a relation whose sides trade places.
    """
    phs = list(phrases if phrases is not None else parsed.phrases)
    keep = [i for i, p in enumerate(phs) if not p.generic][:MAX_PHRASES]
    if not keep:
        return ""
    rel_of = {r.subject: (n, r) for n, r in enumerate(parsed.relations) if r.subject in keep and r.object in keep}
    parts, used = [], set()
    for i in keep:
        if i in used:
            continue
        if i in rel_of:
            n, r = rel_of[i]
            a, b = (r.object, r.subject) if swap == n else (r.subject, r.object)
            parts.append(f"{phs[a].canonical} {r.relation} {phs[b].canonical}")
            used.update({r.subject, r.object})
        else:
            parts.append(phs[i].canonical)
            used.add(i)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def perturbations(parsed: ParsedText) -> list[tuple[str, str]]:
    """Every one-step change of :func:`canonical_text`: ``(text, description)`` pairs, without duplicates."""
    own = canonical_text(parsed)
    if not own:
        return []
    out: dict[str, str] = {}
    phs = list(parsed.phrases)
    keep = [i for i, p in enumerate(phs) if not p.generic][:MAX_PHRASES]
    for i in keep:
        for attr, value in phs[i].attributes.items():
            for alt in VALUES[attr]:
                if alt == value:
                    continue
                changed = list(phs)
                changed[i] = replace(phs[i], **{attr: alt})
                text = canonical_text(parsed, changed)
                if text != own:
                    out.setdefault(text, f"'{phs[i].canonical}' → '{changed[i].canonical}'")
    for n, r in enumerate(parsed.relations):
        text = canonical_text(parsed, swap=n)
        if text != own:
            out.setdefault(text, f"'{phs[r.subject].canonical}' and '{phs[r.object].canonical}' trade places")
    return list(out.items())
