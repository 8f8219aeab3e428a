"""What a loaded model *is*, read from its modules: family, scoring rule, pooling, token grid.

Pages, the CLI and the heatmap methods decide what to show from these facts, never from a model's
name: a SigLIP checkpoint under any name scores with a sigmoid because its ``logit_bias`` exists,
and a ResNet tower has no patch tokens because it is a ResNet.

>>> from mmexplore.models.facts import family_label
>>> family_label("siglip-vit")
'SigLIP-style ViT'

Families (``ModelFacts.family``): ``clip-vit`` (softmax objective, ViT image tower), ``siglip-vit``
(sigmoid objective, ViT), ``clip-resnet`` (softmax, ResNet), ``siglip-resnet``; ``*-other`` when the
image tower is neither.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

FAMILY_LABELS = {
    "clip-vit": "CLIP ViT",
    "siglip-vit": "SigLIP-style ViT",
    "clip-resnet": "ResNet CLIP",
    "siglip-resnet": "SigLIP-style ResNet",
    "clip-other": "CLIP (other image tower)",
    "siglip-other": "SigLIP-style (other image tower)",
}

SCORING_RULES = {
    "softmax": "softmax over the batch of s·cos (InfoNCE objective)",
    "sigmoid": "independent sigmoid per pair, σ(s·cos + b) (sigmoid objective)",
}


def family_label(family: str) -> str:
    """A readable name for a family id (the id itself when unknown)."""
    return FAMILY_LABELS.get(family, family)


@dataclass(frozen=True)
class ModelFacts:
    """Structural facts of a loaded open_clip model.

    Attributes
    ----------
    family : str
        ``{clip|siglip}-{vit|resnet|other}``: the scoring rule and the image tower's kind.
    scoring : {"softmax", "sigmoid"}
        ``sigmoid`` exactly when the model has a ``logit_bias`` parameter (SigLIP's objective).
    logit_scale : float
        s = exp(learned log scale), clamped at 100 as open_clip does.
    logit_bias : float or None
        b of σ(s·cos + b); None for softmax models.
    vision : {"vit", "resnet", "other"}
    vision_impl : str
        ``open_clip.VisionTransformer``, ``timm.VisionTransformer``, ``open_clip.ModifiedResNet``, ...
    pooling : {"class-token", "average", "attention-pool", "other"}
        How the image tower turns its grid of tokens into one vector.
    pooling_detail : str
        One sentence on the pooling (e.g. SigLIP's one-query attention head).
    grid : (int, int) or None
        Spatial grid of the last feature map (patches for a ViT, the last stage for a ResNet).
    text_pooling : str
        open_clip's text pool type (``argmax``: end-of-text token, ``last``, ``eos``, ...).
    text_causal : bool
        Whether the text tower masks attention to later tokens.
    tokenizer : str
        ``clip-bpe`` (open_clip's SimpleTokenizer), ``compact-bpe`` (the shapes models' wrapper of
        it) or the tokenizer's class name.
    word_alignment : bool
        True when the tokenizer's pieces map back to words (CLIP BPE), which per-word text features
        need; leave-one-word-out works without it.
    """

    family: str
    scoring: str
    logit_scale: float
    logit_bias: float | None
    vision: str
    vision_impl: str
    pooling: str
    pooling_detail: str
    grid: tuple[int, int] | None
    text_pooling: str
    text_causal: bool
    tokenizer: str
    word_alignment: bool

    @property
    def family_label(self) -> str:
        return family_label(self.family)

    @property
    def scoring_rule(self) -> str:
        """The scoring rule in words."""
        return SCORING_RULES[self.scoring]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = list(self.grid) if self.grid else None
        d["family_label"] = self.family_label
        return d


def _vision_facts(visual: Any) -> tuple[str, str, str, str, tuple[int, int] | None]:
    """(vision, impl, pooling, pooling detail, grid) of an open_clip image tower."""
    name = type(visual).__name__
    if name == "VisionTransformer" and hasattr(visual, "conv1"):
        grid = tuple(int(g) for g in visual.grid_size)
        if getattr(visual, "attn_pool", None) is not None:
            pooling, detail = "attention-pool", "attentional pooler over the patch tokens (CoCa-style)"
        elif getattr(visual, "pool_type", "tok") == "tok":
            pooling, detail = "class-token", "the class token after the last block"
        elif visual.pool_type == "avg":
            pooling, detail = "average", "the mean of the patch tokens"
        else:
            pooling, detail = "other", f"pool type '{visual.pool_type}'"
        return "vit", "open_clip.VisionTransformer", pooling, detail, grid  # type: ignore[return-value]
    if name == "ModifiedResNet":
        side = int(visual.image_size) // 32
        return ("resnet", "open_clip.ModifiedResNet", "attention-pool",
                "QKV attention pool: the mean of the last stage's grid queries every position", (side, side))
    if name == "TimmModel":
        trunk = visual.trunk
        tname = type(trunk).__name__
        if tname == "VisionTransformer":
            grid = tuple(int(g) for g in trunk.patch_embed.grid_size)
            gp = getattr(trunk, "global_pool", "")
            if getattr(trunk, "attn_pool", None) is not None and gp == "map":
                heads = trunk.attn_pool.num_heads
                latent = trunk.attn_pool.latent_len
                pooling = "attention-pool"
                queries = "1 learned query" if latent == 1 else f"{latent} learned queries"
                detail = f"attention head with {queries} ({heads} heads) over the patch tokens (SigLIP's MAP head)"
            elif gp == "token":
                pooling, detail = "class-token", "the class token after the last block"
            elif gp == "avg":
                pooling, detail = "average", "the mean of the patch tokens"
            else:
                pooling, detail = "other", f"timm global pool '{gp}'"
            return "vit", "timm.VisionTransformer", pooling, detail, grid  # type: ignore[return-value]
        if "ResNet" in tname:
            return "resnet", f"timm.{tname}", "other", "timm pooling", None
        return "other", f"timm.{tname}", "other", "timm pooling", None
    return "other", name, "other", "unknown", None


def text_tower(model: Any) -> Any:
    """The module holding the text tower's parts (the CLIP model itself, or ``model.text``)."""
    return model if hasattr(model, "token_embedding") else getattr(model, "text", model)


def _tokenizer_kind(tokenizer: Any) -> tuple[str, bool]:
    base = getattr(tokenizer, "base", None)
    if base is not None and type(tokenizer).__name__ == "CompactTokenizer":
        return "compact-bpe", True
    name = type(tokenizer).__name__
    if name == "SimpleTokenizer":
        return "clip-bpe", True
    if name == "HFTokenizer":
        return "hf", False
    return name, hasattr(tokenizer, "decoder") and hasattr(tokenizer, "byte_decoder")


def read_facts(model: Any, tokenizer: Any) -> ModelFacts:
    """Read :class:`ModelFacts` from an open_clip model (``CLIP``/``CustomTextCLIP``) and its tokenizer."""
    scale = float(model.logit_scale.detach().exp().clamp(max=100).item())
    bias_param = getattr(model, "logit_bias", None)
    bias = None if bias_param is None else float(bias_param.detach().reshape(-1)[0].item())
    if bias is not None and not math.isfinite(bias):
        bias = None
    scoring = "sigmoid" if bias is not None else "softmax"
    vision, impl, pooling, detail, grid = _vision_facts(model.visual)
    text = text_tower(model)
    text_pool = str(getattr(text, "text_pool_type", getattr(text, "pool_type", "argmax")))
    causal = getattr(text, "attn_mask", None) is not None
    tok, align = _tokenizer_kind(tokenizer)
    family = f"{'siglip' if scoring == 'sigmoid' else 'clip'}-{vision}"
    return ModelFacts(family, scoring, scale, bias, vision, impl, pooling, detail, grid, text_pool, causal, tok, align)
