"""Device choice and mixed precision, in one place.

``auto`` picks CUDA, then Apple's MPS, then the CPU. On CUDA, inference runs under autocast in
bfloat16 where the GPU supports it (float16 otherwise); outputs are always returned as float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mmexplore.errors import ModelLoadError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> str:
    """Map a device request to a torch device string ("cpu", "cuda", "cuda:1", "mps").

    Raises :class:`ModelLoadError` when the requested accelerator is not present.
    """
    import torch

    req = (device or "auto").strip().lower()
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device '{device}' requested but CUDA is not available here; use 'auto' or 'cpu'")
        return req
    if req == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ModelLoadError("device 'mps' requested but Apple MPS is not available here; use 'auto' or 'cpu'")
        return req
    if req == "cpu":
        return req
    raise ModelLoadError(f"unknown device '{device}'; choose one of {', '.join(DEVICE_CHOICES)}")


def autocast_dtype(device: str) -> str:
    """The compute dtype used for inference on ``device``: "bfloat16"/"float16" on CUDA, else "float32"."""
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


@contextlib.contextmanager
def inference_context(device: str) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast on CUDA (reduced precision matmuls, float32 outputs)."""
    import torch

    with torch.inference_mode():
        if device.startswith("cuda"):
            with torch.autocast("cuda", dtype=getattr(torch, autocast_dtype(device))):
                yield
        else:
            yield
