"""Small architectures of real model families, for tests and benchmarks that run offline.

open_clip names an architecture by a JSON config (``mmexplore/models/configs``). Two of the project's
configs stand for families whose real checkpoints cannot be fetched here:

* ``mmexplore-shapes-siglip-xs`` — SigLIP's design at toy size: a timm ViT without a class token
  whose pooling is an attention head with one learned query (timm's ``map`` head, as in
  ``ViT-B-16-SigLIP``), a bidirectional text tower pooled at its last position, and a sigmoid
  objective (``init_logit_bias``). Its vision trunk is the timm model registered here
  (``mmexplore_vit_siglip_xs``), built by the same timm class as the real SigLIP towers.
* ``mmexplore-shapes-rn-xs`` — a ResNet CLIP (open_clip ``ModifiedResNet`` with its QKV attention
  pool) at toy size.

Both use the compact shapes-world tokenizer (open_clip's BPE behind it), so nothing needs a download.
"""

from __future__ import annotations

from typing import Any

SIGLIP_XS = "mmexplore_vit_siglip_xs"


def _vit_siglip_xs(pretrained: bool = False, **kwargs: Any) -> Any:
    """A 2-block, width-64 ViT with SigLIP's attention-pool (``map``) head, 64 px input, 8 px patches."""
    from timm.models.vision_transformer import VisionTransformer

    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    args = {"img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2,
            "class_token": False, "global_pool": "map"}
    return VisionTransformer(**{**args, **kwargs})


def register_timm_archs() -> None:
    """Register the timm vision trunks the project's configs name (idempotent)."""
    from timm.models import is_model, register_model

    if not is_model(SIGLIP_XS):
        fn = _vit_siglip_xs
        fn.__name__ = SIGLIP_XS  # timm registers a builder under its function name
        register_model(fn)
