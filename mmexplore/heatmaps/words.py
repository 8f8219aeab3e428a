"""Words ↔ tokens: merge a caption's BPE pieces back into words.

CLIP tokenisers (open_clip's :class:`SimpleTokenizer`, and the bundled model's compact wrapper around
it) split text into byte-level BPE pieces; a piece that ends a word carries the ``</w>`` suffix.
Punctuation becomes its own word ("circle," → "circle", ","). Start, end and padding tokens are
special and get no word. A caption longer than the context length is truncated exactly as the model
truncates it, and the alignment says so in :attr:`WordAlignment.note`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mmexplore.errors import ModelLoadError

WORD_END = "</w>"


@dataclass(frozen=True)
class WordAlignment:
    """A caption's words and the token positions that make each of them.

    Attributes
    ----------
    text : str
        The caption as given.
    words : list of str
        Words in caption order, as the tokenizer sees them (lower case, cleaned whitespace).
    token_positions : list of list of int
        ``token_positions[k]`` are the positions (in the model's token sequence, start token = 0) of
        word k's BPE pieces.
    eot_position : int
        Position of the end-of-text token (where open_clip pools the caption).
    truncated : bool
        True when the caption did not fit the context length and its tail was dropped.
    dropped_words : int
        Words (approximately, by whitespace) lost to truncation.
    """

    text: str
    words: list[str]
    token_positions: list[list[int]]
    eot_position: int
    truncated: bool = False
    dropped_words: int = 0
    context_length: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """A user-facing sentence about truncation ("" when the caption fit)."""
        if not self.truncated:
            return ""
        return (
            f"caption truncated to the model's context length ({self.context_length} tokens): "
            f"kept {len(self.words)} words, dropped the last ~{self.dropped_words}"
        )

    @property
    def last_positions(self) -> list[int]:
        """Position of each word's last piece (in a causal text tower it has read the whole word)."""
        return [pos[-1] for pos in self.token_positions]


def _base_tokenizer(tokenizer: Any) -> Any:
    """The open_clip SimpleTokenizer behind ``tokenizer`` (itself, or ``.base`` of a compact wrapper)."""
    base = getattr(tokenizer, "base", tokenizer)
    if not (hasattr(base, "decoder") and hasattr(base, "byte_decoder") and hasattr(base, "encode")):
        raise ModelLoadError(
            f"heatmaps need a CLIP BPE tokenizer (open_clip SimpleTokenizer); this model uses "
            f"{type(base).__name__}, whose tokens cannot be mapped back to words"
        )
    return base


def bpe_token_ids(tokenizer: Any, texts: Sequence[str]):
    """open_clip BPE ids (LongTensor (n, context_length)) of ``texts``, before any vocabulary compaction."""
    if hasattr(tokenizer, "bpe_ids"):
        return tokenizer.bpe_ids(list(texts))
    return tokenizer(list(texts))


def _decode_piece(base: Any, pieces: list[str]) -> str:
    text = "".join(pieces).replace(WORD_END, "")
    raw = bytearray(base.byte_decoder[c] for c in text if c in base.byte_decoder)
    return raw.decode("utf-8", errors="replace")


def align_words(tokenizer: Any, texts: Sequence[str]) -> list[WordAlignment]:
    """Align each caption's words with the model's token positions.

    Parameters
    ----------
    tokenizer : callable
        The encoder's tokenizer: a :class:`~mmexplore.models.tokenizer.CompactTokenizer` (its
        ``bpe_ids`` give the original BPE ids) or an open_clip ``SimpleTokenizer``.
    texts : sequence of str

    Returns
    -------
    list of WordAlignment
        One per caption. Special tokens (start, end, padding) belong to no word; a word cut in half by
        truncation is dropped.
    """
    base = _base_tokenizer(tokenizer)
    ids = bpe_token_ids(tokenizer, texts)
    context_length = int(ids.shape[1])
    special = {int(base.sot_token_id), int(base.eot_token_id), 0}
    out = []
    for text, row in zip(texts, ids.tolist(), strict=True):
        eot = row.index(int(base.eot_token_id)) if int(base.eot_token_id) in row else len(row) - 1
        words: list[str] = []
        positions: list[list[int]] = []
        pieces: list[str] = []
        piece_pos: list[int] = []
        for pos, tid in enumerate(row[:eot]):
            if tid in special:
                continue
            piece = base.decoder[tid]
            pieces.append(piece)
            piece_pos.append(pos)
            if piece.endswith(WORD_END):
                words.append(_decode_piece(base, pieces))
                positions.append(piece_pos)
                pieces, piece_pos = [], []
        # Leftover pieces without </w>: a word cut by truncation (dropped), never a whole word.
        n_tokens = len(base.encode(text))
        truncated = n_tokens + 2 > context_length
        dropped = 0
        if truncated:
            kept_chars = sum(len(w) for w in words)
            total = text.split()
            seen = 0
            kept_ws = 0
            for w in total:
                seen += len(w)
                if seen > kept_chars:
                    break
                kept_ws += 1
            dropped = max(1, len(total) - kept_ws)
        out.append(WordAlignment(text, words, positions, eot, truncated, dropped, context_length))
    return out


def find_phrase(alignment: WordAlignment, phrase: str, tokenizer: Any) -> list[int] | None:
    """Indices of the words of ``phrase`` inside the aligned caption (first occurrence), or None.

    The phrase is tokenised the same way, so case, spacing and punctuation match the caption's words.
    """
    target = align_words(tokenizer, [phrase])[0].words
    if not target:
        return None
    words = alignment.words
    for start in range(len(words) - len(target) + 1):
        if words[start : start + len(target)] == target:
            return list(range(start, start + len(target)))
    return None
