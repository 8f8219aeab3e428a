"""A small rule-based chunker for the shapes world and plain English.

It finds *concept phrases* — noun phrases with their attributes ("a small blue square", "two red
circles", "the yellow shape") — the spatial relations between them ("left of", "to the right of",
"under", ...) and whether the text is *deictic* (refers to the image without naming anything:
"this is the pattern to copy"). Synonyms map onto the shapes-world vocabulary ("ball" → circle,
"big" → large, "crimson" → red), so a phrase can be rewritten in words the model knows
(:attr:`ConceptPhrase.canonical`).

>>> parsed = parse_text("A small blue square left of a large yellow triangle.")
>>> [p.canonical for p in parsed.phrases]
['a small blue square', 'a large yellow triangle']
>>> parsed.relations[0].relation
'left of'
>>> parse_text("This is the pattern to copy.").deictic
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SHAPE_WORDS: dict[str, str] = {
    "circle": "circle", "circles": "circle", "disc": "circle", "discs": "circle", "disk": "circle",
    "disks": "circle", "dot": "circle", "dots": "circle", "ball": "circle", "balls": "circle",
    "ring": "circle", "rings": "circle",
    "square": "square", "squares": "square", "box": "square", "boxes": "square", "tile": "square",
    "tiles": "square", "block": "square", "blocks": "square",
    "triangle": "triangle", "triangles": "triangle", "pyramid": "triangle", "pyramids": "triangle",
    "wedge": "triangle", "wedges": "triangle",
}
# The shapes world's own nouns; the other shape words are synonyms that count only with a colour or
# size ("a red ball"), since alone they are too often something else ("the box", "tile a floor").
CORE_SHAPE_WORDS: frozenset[str] = frozenset({"circle", "circles", "square", "squares", "triangle", "triangles"})
# Nouns that head a phrase without naming a shape ("a red shape").
GENERIC_NOUNS: frozenset[str] = frozenset(
    {"shape", "shapes", "object", "objects", "thing", "things", "one", "ones", "figure", "figures", "item", "items",
     "form", "forms"}
)
PLURAL_NOUNS: frozenset[str] = frozenset(
    w for w in list(SHAPE_WORDS) + list(GENERIC_NOUNS) if (w.endswith("s") and w not in {"ones"}) or w == "ones"
)
COLOR_WORDS: dict[str, str] = {
    "red": "red", "crimson": "red", "scarlet": "red", "reddish": "red",
    "green": "green", "greenish": "green", "lime": "green",
    "blue": "blue", "navy": "blue", "bluish": "blue", "azure": "blue",
    "yellow": "yellow", "golden": "yellow", "gold": "yellow", "yellowish": "yellow", "lemon": "yellow",
}
# Adjectives that name a shape, used with a generic noun ("a round red shape").
SHAPE_ADJECTIVES: dict[str, str] = {"round": "circle", "circular": "circle", "triangular": "triangle"}
SIZE_WORDS: dict[str, str] = {
    "small": "small", "little": "small", "tiny": "small", "smaller": "small",
    "large": "large", "big": "large", "huge": "large", "larger": "large", "bigger": "large",
}
COUNT_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "both": 2,
}
DETERMINERS: frozenset[str] = frozenset({"the", "this", "that", "these", "those", "another", "some", "its", "their"})
# Multi-word relation expressions, longest first; each maps to a shapes-world relation.
RELATION_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("to", "the", "left", "of"), "left of"), (("on", "the", "left", "of"), "left of"),
    (("to", "the", "right", "of"), "right of"), (("on", "the", "right", "of"), "right of"),
    (("on", "top", "of"), "above"), (("left", "of"), "left of"), (("right", "of"), "right of"),
    (("above",), "above"), (("over",), "above"), (("atop",), "above"),
    (("below",), "below"), (("under",), "below"), (("underneath",), "below"), (("beneath",), "below"),
)
# Words and phrases that point at an accompanying image without naming its content.
DEICTIC_PATTERNS: tuple[tuple[str, ...], ...] = (
    ("this",), ("these",), ("here",), ("shown",), ("pictured",), ("depicted",), ("illustrated",),
    ("above",), ("below",), ("the", "image"), ("the", "picture"), ("the", "photo"), ("the", "figure"),
    ("the", "drawing"), ("see",), ("look",), ("like", "that"), ("that", "one"), ("that", "is"), ("the", "one"),
    ("pictured",), ("copy",),
)
# Words the chunker knows as grammar or shapes-world content (everything else counts as "other").
FUNCTION_WORDS: frozenset[str] = frozenset(
    {"and", "with", "of", "to", "the", "on", "in", "is", "are", "there", "picture", "image", "drawing", "an",
     "a", "next", "beside", "near", "left", "right", "top", "at", "it", "its", "has", "have", "shows", "show"}
)

_TOKEN = re.compile(r"[a-z]+|\d+|[.!?;]")


@dataclass(frozen=True)
class ConceptPhrase:
    """A noun phrase naming a (kind of) object.

    Attributes
    ----------
    text : str
        The phrase as written (from the first modifier or count word to the noun).
    char_span : tuple of int
        ``(start, end)`` into the original text.
    shape, color, size : str or None
        Shapes-world values; None where the phrase does not say.
    count : int or None
        The number stated (1 for "a"/"the"/singular nouns), None for a bare plural ("circles").
    sentence : int
        Index of the sentence the phrase is in.
    """

    text: str
    char_span: tuple[int, int]
    shape: str | None
    color: str | None
    size: str | None
    count: int | None
    sentence: int

    @property
    def generic(self) -> bool:
        """A bare plural naming a kind in general ("circles have no corners"), not a depicted object."""
        return self.count is None and self.color is None and self.size is None

    @property
    def attributes(self) -> dict[str, str]:
        """The attributes the phrase specifies: a subset of ``{"shape", "color", "size"}`` → value."""
        return {k: v for k, v in (("shape", self.shape), ("color", self.color), ("size", self.size)) if v}

    @property
    def canonical(self) -> str:
        """The phrase in the shapes-world vocabulary, e.g. ``"two red circles"`` or ``"a small blue shape"``."""
        noun = self.shape or "shape"
        words = [w for w in (self.size, self.color) if w]
        if self.count is not None and self.count > 1:
            number = {2: "two", 3: "three", 4: "four", 5: "five"}.get(self.count, str(self.count))
            return " ".join([number, *words, noun + "s"])
        if self.count is None:
            return " ".join([*words, noun + "s"])
        return " ".join(["a", *words, noun])


@dataclass(frozen=True)
class RelationMention:
    """A spatial relation the text states: ``phrases[subject] relation phrases[object]``."""

    subject: int
    relation: str
    object: int
    text: str


@dataclass(frozen=True)
class ParsedText:
    """What the chunker found in a text.

    ``n_words`` counts word tokens, ``concept_words`` those inside concept phrases or relation
    expressions, ``other_words`` words outside the shapes-world vocabulary and grammar.
    """

    text: str
    phrases: tuple[ConceptPhrase, ...] = ()
    relations: tuple[RelationMention, ...] = ()
    deictic: bool = False
    n_words: int = 0
    n_sentences: int = 0
    concept_words: int = 0
    other_words: int = 0
    sentence_of_word: tuple[int, ...] = field(default=(), repr=False)

    @property
    def concept_sentences(self) -> int:
        """Number of sentences that contain at least one concept phrase."""
        return len({p.sentence for p in self.phrases})


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text.lower())]


def _match(words: list[str], i: int, pattern: tuple[str, ...]) -> bool:
    return tuple(words[i : i + len(pattern)]) == pattern


def parse_text(text: str) -> ParsedText:
    """Chunk ``text`` into concept phrases, relations and a deictic flag.

    Parameters
    ----------
    text : str
        Any English text; case and punctuation are ignored, sentences end at ``.``, ``!``, ``?``, ``;``.

    Returns
    -------
    ParsedText
    """
    toks = _tokens(str(text))
    words = [t for t, _, _ in toks]
    phrases: list[ConceptPhrase] = []
    phrase_end_word: list[int] = []  # token index just after each phrase
    phrase_start_word: list[int] = []
    in_concept = [False] * len(words)
    sentence = 0
    sentence_of_tok: list[int] = []
    for t in words:
        sentence_of_tok.append(sentence)
        if t in {".", "!", "?", ";"}:
            sentence += 1
    i = 0
    while i < len(words):
        # A phrase: [count/determiner] (size|colour|"and"-joined modifiers)* noun
        j = i
        count: int | None = None
        if words[j] in COUNT_WORDS or words[j] in DETERMINERS:
            count = COUNT_WORDS.get(words[j])
            j += 1
        size = color = hint = None
        k = j
        modifiers = set(SIZE_WORDS) | set(COLOR_WORDS) | set(SHAPE_ADJECTIVES) | {","}
        while k < len(words) and words[k] in modifiers:
            if words[k] in SIZE_WORDS:
                size = SIZE_WORDS[words[k]]
            elif words[k] in COLOR_WORDS:
                color = COLOR_WORDS[words[k]]
            elif words[k] in SHAPE_ADJECTIVES:
                hint = SHAPE_ADJECTIVES[words[k]]
            k += 1
        noun = words[k] if k < len(words) else None
        is_shape = noun in CORE_SHAPE_WORDS or (noun in SHAPE_WORDS and bool(size or color))
        is_generic = noun in GENERIC_NOUNS and bool(size or color or hint) and not (noun == "one" and k == j)
        if (is_shape or is_generic) and (k > j or count is not None or is_shape):
            shape = SHAPE_WORDS.get(noun, hint) if noun else hint
            plural = noun in PLURAL_NOUNS
            start_tok = i if (words[i] in COUNT_WORDS or words[i] in DETERMINERS) else j
            if (count is None and words[i] not in DETERMINERS) or count is None:
                count = None if plural else 1
            elif count == 1 and plural and words[i] in {"a", "an"}:
                count = None
            start = toks[start_tok][1]
            end = toks[k][2]
            phrases.append(ConceptPhrase(str(text)[start:end], (start, end), shape, color, size, count, sentence_of_tok[k]))
            phrase_start_word.append(start_tok)
            phrase_end_word.append(k + 1)
            for w in range(start_tok, k + 1):
                in_concept[w] = True
            i = k + 1
            continue
        i += 1
    relations: list[RelationMention] = []
    for a in range(len(phrases) - 1):
        b = a + 1
        if phrases[a].sentence != phrases[b].sentence:
            continue
        gap = range(phrase_end_word[a], phrase_start_word[b])
        for w in gap:
            for pattern, rel in RELATION_PATTERNS:
                if _match(words, w, pattern) and w + len(pattern) <= phrase_start_word[b]:
                    # Only the words between the two phrases, and no other clause in between.
                    rest = [x for x in words[w + len(pattern) : phrase_start_word[b]] if x not in {"is", "are"}]
                    if rest:
                        continue
                    for q in range(w, w + len(pattern)):
                        in_concept[q] = True
                    relations.append(RelationMention(a, rel, b, " ".join(pattern)))
                    break
            else:
                continue
            break
    word_idx = [n for n, t in enumerate(words) if t not in {".", "!", "?", ";"}]
    n_words = len(word_idx)
    concept_words = sum(1 for n in word_idx if in_concept[n])
    known = set(FUNCTION_WORDS) | set(COUNT_WORDS) | set(DETERMINERS)
    other = sum(1 for n in word_idx if not in_concept[n] and words[n] not in known)
    deictic = False
    if not phrases:
        deictic = any(_match(words, n, p) for n in range(len(words)) for p in DEICTIC_PATTERNS)
    n_sent = len({sentence_of_tok[n] for n in word_idx}) if word_idx else 0
    return ParsedText(
        str(text), tuple(phrases), tuple(relations), deictic, n_words, n_sent, concept_words, other,
        tuple(sentence_of_tok[n] for n in word_idx),
    )
