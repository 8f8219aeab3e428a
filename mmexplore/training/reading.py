"""Optional reading readout term for training with words in the images (``--read-weight``).

Why it exists: web-trained CLIP reads because hundreds of millions of its images carry text, and
the caption often transcribes it; a model trained here for a few thousand CPU steps sees far fewer
letters, and contrastive training alone taught it to read a label at 0.42 at best (README,
*Typographic attack*). This term stands in for that OCR-heavy data, and says so: it is direct
supervision that web CLIP never gets. One linear readout (d → V, owned by the trainer, not saved
with the model) is applied to the image embedding, and must tell which of the V colour and shape
words (:data:`READ_WORDS`) are written in the image (none, one, or two for a label "red circle").
The pooled embedding then has to carry the written word, where the contrastive term can use it.

The words come from the batch transform that wrote them (``TextInImage(..., report_words=True)``
returns them as a fifth element of the batch tuple; the trainer keeps them in ``Batch.words``).
The loss is the mean binary cross-entropy over the V words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmexplore.data.shapes import COLORS, SHAPES
from mmexplore.training.readouts import linear_readout, readout_logits

READ_WORDS: tuple[str, ...] = (*COLORS, *SHAPES)


def reading_targets(words: Sequence[Sequence[str]]) -> Any:
    """Which of :data:`READ_WORDS` is written in each image.

    Parameters
    ----------
    words : sequence (B) of sequences of str
        The words written into each image (empty: none). A multi-word string ("red circle") counts
        each of its words; words outside :data:`READ_WORDS` are ignored.

    Returns
    -------
    Tensor (B, V) of 0/1, V = len(READ_WORDS)
    """
    import torch

    index = {w: k for k, w in enumerate(READ_WORDS)}
    out = torch.zeros(len(words), len(READ_WORDS))
    for i, written in enumerate(words):
        for phrase in written:
            for w in phrase.split():
                if w in index:
                    out[i, index[w]] = 1.0
    return out


def make_readout(dim: int, device: str) -> Any:
    """The readout: ``torch.nn.Linear(dim, len(READ_WORDS))`` on ``device``."""
    return linear_readout(dim, len(READ_WORDS), device)


def reading_loss(readout: Any, features: Any, targets: Any) -> Any:
    """The reading term: mean BCE of the readout's logits against :func:`reading_targets`.

    Parameters
    ----------
    readout : torch.nn.Linear (d → V)
    features : Tensor (B, d), unit-norm image embeddings
    targets : Tensor (B, V) of 0/1

    Returns
    -------
    Tensor ()
    """
    import torch.nn.functional as F

    logits = readout_logits(readout, features)
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.device))
