"""Linear readouts of the embedding, shared by the trainer's auxiliary terms (layout, reading).

A readout is a ``torch.nn.Linear`` owned by the trainer (checkpointed with the run, never saved
into the model folder, which stays plain open_clip).
"""

from __future__ import annotations

from typing import Any

# Unit-norm embeddings are scaled by this before a readout, so that a linear map with weights of
# order one can reach confident logits.
INPUT_SCALE = 8.0


def linear_readout(dim: int, n_out: int, device: str) -> Any:
    """``torch.nn.Linear(dim, n_out)`` on ``device``."""
    import torch

    return torch.nn.Linear(dim, n_out).to(device)


def readout_logits(readout: Any, features: Any) -> Any:
    """The readout applied to unit-norm ``features`` (B, d) scaled by :data:`INPUT_SCALE`: (B, n_out), float32."""
    return readout(features.float() * INPUT_SCALE)
