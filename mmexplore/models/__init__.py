"""The model layer: the only code in mmexplore that calls open_clip to build models.

>>> from mmexplore.models import parse_spec
>>> parse_spec("bundled").kind
'bundled'

``load_model(spec, device)`` returns an :class:`~mmexplore.models.encoder.Encoder`; see docs/design.md §2
for the spec strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmexplore.models.specs import ModelSpec, parse_spec
from mmexplore.settings import DEFAULT_SPEC

if TYPE_CHECKING:  # pragma: no cover
    from mmexplore.models.encoder import Encoder

__all__ = ["DEFAULT_SPEC", "Encoder", "ModelSpec", "clear_loaded_models", "folder_model_id", "forget_model", "load_model",
           "parse_spec"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package must not import torch (Streamlit pages import it cheaply).
    if name in {"load_model", "clear_loaded_models", "forget_model", "hub_reachable", "folder_model_id"}:
        from mmexplore.models import loader

        return getattr(loader, name)
    if name == "Encoder":
        from mmexplore.models.encoder import Encoder

        return Encoder
    raise AttributeError(name)
