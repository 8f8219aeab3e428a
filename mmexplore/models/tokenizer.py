"""A compact-vocabulary wrapper around open_clip's BPE tokenizer.

The shapes world uses a few dozen words, yet a CLIP token embedding has 49,408 rows (most of the
text tower's size). The bundled model keeps only the rows it needs: text is tokenised by open_clip's
own :class:`SimpleTokenizer`, then each BPE id is mapped to a compact id. Unknown tokens map to one
``<unk>`` id. The end-of-text token keeps the largest id, because open_clip pools the text at the
argmax token id.

The original BPE ids stay available (:meth:`CompactTokenizer.bpe_ids`) so word ↔ token alignment works
exactly as for a full CLIP model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class CompactTokenizer:
    """Callable ``texts -> LongTensor (n, context_length)`` with a reduced vocabulary.

    Parameters
    ----------
    kept_bpe_ids : sequence of int
        Original BPE ids, in compact-id order, starting with the pad id 0. The compact vocabulary is
        ``kept_bpe_ids + [<unk>, <start_of_text>, <end_of_text>]``, so EOT is the largest id.
    context_length : int
        Tokens per text, including start and end tokens (longer texts are truncated, as open_clip does).
    """

    def __init__(self, kept_bpe_ids: Sequence[int], context_length: int = 32) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self.base = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.kept_bpe_ids = [int(i) for i in kept_bpe_ids]
        n = len(self.kept_bpe_ids)
        self.unk_id, self.sot_id, self.eot_id = n, n + 1, n + 2
        self.vocab_size = n + 3
        lut = np.full(len(self.base.encoder), self.unk_id, dtype=np.int64)
        lut[self.kept_bpe_ids] = np.arange(n)
        lut[self.base.sot_token_id] = self.sot_id
        lut[self.base.eot_token_id] = self.eot_id
        self._lut = lut

    @classmethod
    def from_words(cls, words: Sequence[str], context_length: int = 32) -> CompactTokenizer:
        """Build the vocabulary that covers ``words`` (each may split into several BPE pieces)."""
        from open_clip.tokenizer import SimpleTokenizer

        base = SimpleTokenizer(context_length=context_length)
        ids: list[int] = [0]
        for w in words:
            for i in base.encode(w):
                if i not in ids:
                    ids.append(i)
        return cls(ids, context_length)

    def bpe_ids(self, texts: str | Sequence[str]):
        """open_clip's own token ids (LongTensor (n, context_length)), before compaction."""
        return self.base(texts, context_length=self.context_length)

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None):
        import torch

        bpe = self.bpe_ids(texts).numpy()
        return torch.from_numpy(self._lut[bpe])

    def coverage(self, text: str) -> float:
        """Fraction of the text's BPE tokens inside the vocabulary (1.0: nothing maps to <unk>)."""
        ids = self.base.encode(text)
        if not ids:
            return 1.0
        return float(np.mean(self._lut[ids] != self.unk_id))


def shapes_tokenizer(context_length: int = 32) -> CompactTokenizer:
    """The compact tokenizer of the project's shapes-world architectures (``mmexplore-shapes-*``).

    Its vocabulary is :func:`mmexplore.data.shapes.vocabulary`; a model folder saved by training
    stores the same ids in its ``open_clip_config.json``, so loading never needs the training code.
    """
    from mmexplore.data.shapes import vocabulary

    return CompactTokenizer.from_words(vocabulary(), context_length)
