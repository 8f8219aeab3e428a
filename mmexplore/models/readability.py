"""Which words of a text a model can read, before anyone trusts a score computed from it.

A contrastive text tower returns a vector for any string, so a French, Japanese or emoji caption gets
a cosine, a rank and a relation label like any other. :func:`read_text` says how much of the text the
model actually reads:

- **unknown words.** For a compact-vocabulary model (the bundled shapes models,
  :class:`~mmexplore.models.tokenizer.CompactTokenizer`) a word is unknown when any of its BPE pieces
  maps to ``<unk>``: the model sees one shared "unknown" vector in its place. For a full BPE model
  (CLIP's 49k tokens) every string has tokens, so "unknown" is defined by script: a word with letters
  outside the Latin script, or with emoji and other symbols, is unknown, because English-trained CLIP
  BPE models met such text only as rare byte pieces. (A multilingual text tower would need its own
  rule; none is offered in this project.)
- **negation.** Contrastive models are known to read "not", "no", "without" weakly or not at all:
  "a circle not left of a square" scores like "a circle left of a square". Any negation word is reported.
- **truncation.** Tokens past the model's context length are cut, as open_clip does.

Pages and CLI commands report :attr:`Readability.unknown_share` with every result and warn from
:data:`HIGH_UNKNOWN_SHARE` on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

# Share of unknown words from which a result is flagged as unreliable (and Relation says "cannot tell").
HIGH_UNKNOWN_SHARE = 0.5
NEGATIONS = frozenset({"not", "no", "never", "without", "nor", "neither", "none", "nothing", "nobody", "cannot",
                       "isn't", "aren't", "wasn't", "weren't", "doesn't", "don't", "didn't", "can't", "won't", "n't"})
_WORD = re.compile(r"\S+")
_EDGE_PUNCT = ".,;:!?\"'()[]{}«»“”‘’"


@dataclass(frozen=True)
class Readability:
    """How much of one text a model reads.

    Attributes
    ----------
    text : str
    words : tuple of str
        The text's words, lower-cased, surrounding punctuation removed (pure punctuation dropped).
    unknown : tuple of str
        The words the model cannot read (see the module notes), in order, repeats kept.
    negations : tuple of str
        Negation words found ("not", "no", "without", ...).
    n_tokens : int
        Tokens of the text including start and end tokens; -1 when the tokenizer cannot tell.
    context_length : int
        The model's context length in tokens.
    """

    text: str
    words: tuple[str, ...]
    unknown: tuple[str, ...]
    negations: tuple[str, ...]
    n_tokens: int
    context_length: int

    @property
    def unknown_share(self) -> float:
        """Share of the words the model cannot read, in [0, 1]; 1.0 for a text with no words at all."""
        return len(self.unknown) / len(self.words) if self.words else 1.0

    @property
    def truncated(self) -> bool:
        """True when the text has more tokens than the context length (the end is cut)."""
        return self.n_tokens > self.context_length > 0

    @property
    def unreadable(self) -> bool:
        """True when at least :data:`HIGH_UNKNOWN_SHARE` of the words are unknown: scores mean little."""
        return self.unknown_share >= HIGH_UNKNOWN_SHARE

    def notes(self) -> list[str]:
        """User-facing sentences about what the model does not read (empty when it reads everything)."""
        out = []
        if self.unknown:
            shown = ", ".join(f"'{w}'" for w in dict.fromkeys(self.unknown[:8]))
            out.append(f"The model cannot read {len(self.unknown)} of {len(self.words)} words "
                       f"({self.unknown_share:.0%}): {shown}" + (
                           "; scores for this text mean little." if self.unreadable else "."))
        elif not self.words:
            out.append("The text has no words the model reads.")
        if self.negations:
            out.append(f"The text negates ('{self.negations[0]}'): contrastive models largely ignore negation, "
                       "so it scores about like the text without it.")
        if self.truncated:
            out.append(f"The text has {self.n_tokens} tokens; the model reads only the first {self.context_length} "
                       "(the rest is cut).")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"unknown_share": round(self.unknown_share, 4), "unknown_words": list(self.unknown),
                "negations": list(self.negations), "truncated": self.truncated, "n_tokens": self.n_tokens,
                "context_length": self.context_length, "unreadable": self.unreadable, "notes": self.notes()}


def split_words(text: str) -> list[str]:
    """The words of ``text``: whitespace-separated, lower-cased, edge punctuation removed."""
    out = []
    for raw in _WORD.findall(text or ""):
        w = raw.strip(_EDGE_PUNCT).lower()
        if w and not all(unicodedata.category(c).startswith("P") for c in w):
            out.append(w)
    return out


def _outside_latin(word: str) -> bool:
    for ch in word:
        cat = unicodedata.category(ch)
        if cat.startswith("L") and not unicodedata.name(ch, "").startswith("LATIN"):
            return True
        if cat in ("So", "Sk", "Co", "Cn") or (cat == "Cf" and ch not in "\u200b"):
            return True
    return False


def read_text(tokenizer: Any, text: str, context_length: int | None = None) -> Readability:
    """What ``tokenizer``'s model reads of ``text`` (see the module notes for the rules).

    Parameters
    ----------
    tokenizer : CompactTokenizer, open_clip tokenizer, or an Encoder
        An :class:`~mmexplore.models.encoder.Encoder` is accepted for convenience (its ``tokenizer`` is used).
    text : str
    context_length : int, optional
        Default: the tokenizer's (or encoder's) own.
    """
    if hasattr(tokenizer, "encode_texts"):  # an Encoder
        context_length = context_length or tokenizer.context_length
        tokenizer = tokenizer.tokenizer
    context_length = int(context_length or getattr(tokenizer, "context_length", 77))
    words = split_words(text)
    base = getattr(tokenizer, "base", tokenizer)
    lut = getattr(tokenizer, "_lut", None)
    unk = getattr(tokenizer, "unk_id", None)
    unknown = []
    for w in words:
        if lut is not None and unk is not None:
            ids = base.encode(w)
            bad = not ids or bool(np.any(lut[ids] == unk))
        else:
            bad = _outside_latin(w)
        if bad:
            unknown.append(w)
    try:
        n_tokens = len(base.encode(text)) + 2 if hasattr(base, "encode") else -1
    except Exception:  # a tokenizer without a plain encode(): length unknown, nothing claimed
        n_tokens = -1
    negations = tuple(w for w in words if w in NEGATIONS or w.endswith("n't"))
    return Readability(text, tuple(words), tuple(unknown), negations, n_tokens, context_length)
