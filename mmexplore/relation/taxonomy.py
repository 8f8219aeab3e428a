"""The eight image–text relation classes of Otto et al. (2020) and the exact (CMI, SC, STAT) table.

docs/design.md §7. CMI (cross-modal mutual information) is 0 or 1, SC (semantic correlation) is 1, 0 or −1,
STAT (status) is ``"0"`` (equal), ``"T"`` (text primary, the image illustrates it) or ``"I"``
(image primary, the text anchors it). Only eight of the 18 combinations are classes; the others are
invalid and :func:`label_for` says so.

>>> label_for(1, -1, "I")
'Bad Anchorage'
>>> class_probabilities({1: 0.9, 0: 0.1}, {1: 0.8, 0: 0.1, -1: 0.1}, {"0": 0.2, "T": 0.1, "I": 0.7})["Anchorage"] > 0.5
True
"""

from __future__ import annotations

from collections.abc import Mapping

CMI_VALUES: tuple[int, ...] = (0, 1)
SC_VALUES: tuple[int, ...] = (1, 0, -1)
STAT_VALUES: tuple[str, ...] = ("0", "T", "I")

# (class, CMI, SC, STAT, use case) in the table's order.
TABLE: tuple[tuple[str, int, int, str, str], ...] = (
    ("Uncorrelated", 0, 0, "0", "unrelated text and image, e.g. an ad next to an article"),
    ("Interdependent", 0, 1, "0", "text that only makes sense with the image: 'this is the pattern to copy'"),
    ("Complementary", 1, 1, "0", "each adds what the other lacks: a diagram with an explanatory paragraph"),
    ("Illustration", 1, 1, "T", "an exchangeable image illustrating one part of a text: a textbook figure"),
    ("Anchorage", 1, 1, "I", "a caption that describes and pins down the image: alt text, a figure caption"),
    ("Contrasting", 1, -1, "0", "overlapping but contradicting content: irony, satire, a deliberate contrast"),
    ("Bad Illustration", 1, -1, "T", "an image that illustrates the text wrongly: a mismatched stock photo"),
    ("Bad Anchorage", 1, -1, "I", "a caption that describes the image wrongly: a wrong alt text or caption"),
)
CLASSES: tuple[str, ...] = tuple(row[0] for row in TABLE)
USE_CASES: dict[str, str] = {row[0]: row[4] for row in TABLE}
COMPONENTS: dict[str, tuple[int, int, str]] = {row[0]: (row[1], row[2], row[3]) for row in TABLE}
_BY_COMPONENTS: dict[tuple[int, int, str], str] = {v: k for k, v in COMPONENTS.items()}


def normalize_stat(stat: object) -> str:
    """``0``/``"0"``/``"equal"`` → ``"0"``, ``"t"`` → ``"T"``, ``"i"`` → ``"I"``; anything else raises ValueError."""
    s = str(stat).strip().upper()
    if s in {"0", "EQUAL"}:
        return "0"
    if s in {"T", "I"}:
        return s
    raise ValueError(f"STAT must be 0, T or I, got {stat!r}")


def label_for(cmi: int, sc: int, stat: object) -> str:
    """The class of a (CMI, SC, STAT) triple (the exact table).

    Raises
    ------
    ValueError
        For the ten combinations the table does not contain (e.g. CMI=0 with SC=−1), naming them.
    """
    key = (int(cmi), int(sc), normalize_stat(stat))
    if key not in _BY_COMPONENTS:
        raise ValueError(
            f"(CMI={key[0]}, SC={key[1]}, STAT={key[2]}) is not a class of the taxonomy; "
            f"valid triples: {sorted(_BY_COMPONENTS)}"
        )
    return _BY_COMPONENTS[key]


def components_for(label: str) -> tuple[int, int, str]:
    """(CMI, SC, STAT) of a class name (case-insensitive); unknown names raise ValueError listing the classes."""
    for name, comp in COMPONENTS.items():
        if name.lower() == str(label).strip().lower():
            return comp
    raise ValueError(f"unknown relation class {label!r}; the classes are {list(CLASSES)}")


def canonical_label(label: str) -> str:
    """The table's spelling of a class name given in any case."""
    return _BY_COMPONENTS[components_for(label)]


def class_probabilities(
    p_cmi: Mapping[int, float], p_sc: Mapping[int, float], p_stat: Mapping[str, float]
) -> dict[str, float]:
    """A probability over the eight classes from the three components' probabilities.

    Treats the components as independent, multiplies, keeps the eight valid triples and
    renormalises (the mass on invalid triples is dropped, i.e. we condition on validity).

    Returns
    -------
    dict
        Class name → probability, in the table's order, summing to 1.
    """
    raw = {}
    for name, (c, s, t) in COMPONENTS.items():
        raw[name] = float(p_cmi.get(c, 0.0)) * float(p_sc.get(s, 0.0)) * float(p_stat.get(t, 0.0))
    total = sum(raw.values())
    if total <= 0:
        return {name: 1.0 / len(raw) for name in raw}
    return {name: v / total for name, v in raw.items()}
