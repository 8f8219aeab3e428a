"""Dense features in the joint space: patch features (MaskCLIP) and per-token text features.

open_clip's towers return one pooled vector each. Heatmaps need one vector per image patch and one
per caption token, *in the same joint space*. Both come from re-running the towers with the model's
own weights (no copy of the architecture, no hooks):

* **Image.** The vision transformer is unrolled block by block. For the last block, MaskCLIP (Zhou et
  al., 2022) keeps only the *value path*: ``out_proj(W_v · ln_1(x))`` for every patch token, skipping
  the query–key mixing that makes every output token look like the class token. That vector goes
  through ``ln_post`` and the visual projection, exactly as the class token does, so a patch feature
  can be compared with a text embedding by cosine. The unrolled forward also computes every block's
  attention matrix explicitly (softmax(q kᵀ/√d)), which gradient relevancy needs, and reproduces
  ``encode_image`` (a test checks it).
* **Text.** The text tower's token states after ``ln_final`` projected by ``text_projection`` (open_clip
  projects only the end-of-text token; here every position is).

Supports open_clip ``VisionTransformer`` towers with class-token or average pooling whose blocks use
``nn.MultiheadAttention`` or open_clip's plain ``Attention``; other designs raise :class:`ModelLoadError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmexplore.errors import ModelLoadError

DENSE_MODES = ("value", "value_residual")


@dataclass
class VisualPass:
    """What one unrolled pass of the vision tower returns (torch tensors, batch first).

    Attributes
    ----------
    pooled : Tensor (B, d)
        The image embedding (unnormalised), equal to ``model.encode_image``.
    last_input : Tensor (B, 1 + m, width)
        Input of the last block (class token first, then m patch tokens).
    attentions : list of Tensor (B, heads, 1 + m, 1 + m)
        Attention probabilities of blocks ``attn_from ..`` (empty unless asked for).
    tokens : Tensor (B, 1 + m, width)
        Output of the last block, before ``ln_post`` (what the tower pools).
    """

    pooled: Any
    last_input: Any
    attentions: list
    tokens: Any = None


def check_visual(visual: Any) -> None:
    """Raise ModelLoadError naming what the unrolled ViT pass does not support in ``visual``."""
    name = type(visual).__name__
    if not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
        raise ModelLoadError(f"heatmaps need an open_clip VisionTransformer image tower; this model has {name}")
    if getattr(visual, "attn_pool", None) is not None:
        raise ModelLoadError("heatmaps do not support vision towers with attentional pooling (CoCa-style)")
    for blk in visual.transformer.resblocks:
        attn = blk.attn
        if not hasattr(attn, "in_proj_weight") or attn.in_proj_weight is None:
            raise ModelLoadError(f"heatmaps need packed q/k/v projections; block attention is {type(attn).__name__}")
        if getattr(attn, "scaled_cosine", False) or getattr(attn, "head_scale", None) is not None:
            raise ModelLoadError("heatmaps do not support scaled-cosine or head-scaled attention blocks")


def _qkv(blk: Any, y: Any):
    import torch.nn.functional as F

    attn = blk.attn
    return F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)


def _attention(blk: Any, x: Any, keep: list | None):
    """One block's attention sub-layer on ``x`` (B, L, width), written out so the map is a tensor."""
    import torch

    attn = blk.attn
    b, n, w = x.shape
    heads = attn.num_heads
    q, k, v = _qkv(blk, blk.ln_1(x))
    q, k, v = (t.reshape(b, n, heads, w // heads).transpose(1, 2) for t in (q, k, v))
    q = getattr(attn, "ln_q", torch.nn.Identity())(q)
    k = getattr(attn, "ln_k", torch.nn.Identity())(k)
    probs = torch.softmax((q * (w // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
    if keep is not None:
        if probs.requires_grad:
            probs.retain_grad()
        keep.append(probs)
    out = (probs @ v).transpose(1, 2).reshape(b, n, w)
    out = getattr(attn, "ln_inner", torch.nn.Identity())(out)
    return attn.out_proj(out)


def visual_pass(visual: Any, pixels: Any, *, attn_from: int | None = None) -> VisualPass:
    """Run the vision tower block by block.

    Parameters
    ----------
    visual : open_clip VisionTransformer
    pixels : Tensor (B, 3, S, S)
        Preprocessed images.
    attn_from : int or None
        Keep the attention probabilities of blocks ``attn_from, ..., last`` (negative: from the end).
        With gradients enabled they retain their gradient (for relevancy).

    Returns
    -------
    VisualPass
    """
    check_visual(visual)
    blocks = list(visual.transformer.resblocks)
    if attn_from is not None and attn_from < 0:
        attn_from = max(0, len(blocks) + attn_from)
    x = visual._embeds(pixels)
    attentions: list = []
    last_input = x
    for i, blk in enumerate(blocks):
        if i == len(blocks) - 1:
            last_input = x
        keep = attentions if attn_from is not None and i >= attn_from else None
        x = x + blk.ls_1(_attention(blk, x, keep))
        x = x + blk.ls_2(blk.mlp(blk.ln_2(x)))
    pooled, _ = visual._pool(x)
    if visual.proj is not None:
        pooled = pooled @ visual.proj
    return VisualPass(pooled, last_input, attentions, x)


def dense_from_last_input(visual: Any, last_input: Any, mode: str = "value"):
    """MaskCLIP patch features from the last block's input.

    Parameters
    ----------
    visual : open_clip VisionTransformer
    last_input : Tensor (B, 1 + m, width)
    mode : {"value", "value_residual"}
        ``value``: ``out_proj(v)`` alone (MaskCLIP's value path, as ClearCLIP keeps it);
        ``value_residual``: plus the residual stream and the block's MLP, as the full block would add.

    Returns
    -------
    Tensor (B, m, d)
        Patch features in the joint space (unnormalised), in row-major grid order.
    """
    if mode not in DENSE_MODES:
        raise ValueError(f"Unsupported dense mode '{mode}'. The available modes are {list(DENSE_MODES)}")
    blk = visual.transformer.resblocks[-1]
    _, _, v = _qkv(blk, blk.ln_1(last_input))
    v = blk.ls_1(blk.attn.out_proj(getattr(blk.attn, "ln_inner", lambda t: t)(v)))
    if mode == "value_residual":
        v = last_input + v
        v = v + blk.ls_2(blk.mlp(blk.ln_2(v)))
    tokens = visual.ln_post(v[:, 1:])
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    return tokens


def dense_from_average_pool(visual: Any, tokens: Any):
    """Patch features of an average-pooled ViT: ``ln_post(x_k) · proj`` for every patch token x_k.

    Such a tower's embedding is the mean of exactly these vectors (open_clip applies ``ln_post``
    token by token before pooling and projects linearly), so the features decompose the embedding
    without approximation: a patch's cosine with a caption is its share of the image's score, like a
    class-activation map. No value-path surgery is needed, so there is only one mode.

    Parameters
    ----------
    visual : open_clip VisionTransformer with ``pool_type == "avg"``
    tokens : Tensor (B, 1 + m, width), the last block's output (:attr:`VisualPass.tokens`)

    Returns
    -------
    Tensor (B, m, d), unnormalised, row-major grid order.
    """
    if getattr(visual, "final_ln_after_pool", False):
        raise ModelLoadError("this average-pooled tower normalises after pooling, so its patch tokens do not "
                             "decompose its embedding")
    out = visual.ln_post(tokens[:, 1:])
    return out @ visual.proj if visual.proj is not None else out


def dense_from_pass(visual: Any, res: VisualPass, mode: str = "value"):
    """Patch features of an open_clip ViT from one unrolled pass, by how the tower pools.

    The one place that decides between the two recipes, for the heatmaps
    (:func:`dense_patch_features`) and the dense training term alike: an average-pooled tower's own
    patch tokens (:func:`dense_from_average_pool`; ``mode`` must be ``value``), otherwise MaskCLIP's
    value path of the last block (:func:`dense_from_last_input`).

    Returns
    -------
    Tensor (B, m, d), unnormalised, row-major grid order.
    """
    if getattr(visual, "pool_type", "tok") == "avg":
        if mode != "value":
            raise ModelLoadError(f"dense mode '{mode}' needs a class-token ViT; this model averages its patch tokens")
        return dense_from_average_pool(visual, res.tokens)
    return dense_from_last_input(visual, res.last_input, mode)


def encode_text_from_embeddings(model: Any, ids: Any, embeddings: Any):
    """The text tower run from token embeddings (so gradients can reach them).

    Parameters
    ----------
    model : open_clip CLIP or CustomTextCLIP (built-in ``TextTransformer`` text tower)
    ids : LongTensor (n, context_length)
        Token ids (pooling reads them: the end-of-text position for ``argmax`` pooling).
    embeddings : Tensor (n, context_length, width)
        ``token_embedding(ids)``, possibly a leaf that requires grad.

    Returns
    -------
    (tokens, pooled) : Tensor (n, context_length, d) and Tensor (n, d)
        Every position's state after ``ln_final`` and the text projection (open_clip projects only
        the pooled one), and the pooled embedding, equal to ``encode_text`` (unnormalised).
    """
    import torch
    from open_clip.transformer import text_global_pool

    from mmexplore.models.facts import text_tower

    t = text_tower(model)
    if not hasattr(t, "token_embedding") or getattr(t, "cls_emb", None) is not None:
        raise ModelLoadError("text features need an open_clip text transformer (token_embedding, ln_final, projection) "
                             "without an appended class token")
    cast = t.transformer.get_cast_dtype()
    x = embeddings.to(cast) + t.positional_embedding[: ids.shape[1]].to(cast)
    mask = t.attn_mask
    if getattr(t, "use_pad_mask", False):
        add = t._build_additive_mask(ids, ids.shape[1], x.dtype)
        mask = add if mask is None else mask[: ids.shape[1], : ids.shape[1]].unsqueeze(0) + add
    x = t.ln_final(t.transformer(x, attn_mask=mask))
    pool = getattr(t, "text_pool_type", None) or getattr(t, "pool_type", "argmax")
    eos = getattr(t, "text_eos_id", getattr(t, "eos_id", None))
    pooled = text_global_pool(x, ids, pool, eos_token_id=eos)
    proj = t.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
        pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj
    return x, pooled


def token_features(encoder: Any, texts: list[str]):
    """Per-token text features in the joint space.

    Parameters
    ----------
    encoder : mmexplore Encoder
    texts : list of str

    Returns
    -------
    (tokens, pooled) : Tensor (n, context_length, d) and Tensor (n, d), float32, L2-normalised
        ``pooled`` equals ``encode_text`` (the end-of-text token for CLIP models, the last position
        for SigLIP-style ones).
    """
    import torch

    from mmexplore.models.facts import text_tower

    tower = text_tower(encoder.model)
    if not hasattr(tower, "token_embedding"):
        raise ModelLoadError("heatmaps need an open_clip text tower (token_embedding, ln_final, text_projection)")
    ids = encoder.tokenizer(texts).to(encoder.device)
    with torch.inference_mode():
        x, pooled = encode_text_from_embeddings(encoder.model, ids, tower.token_embedding(ids))
    norm = torch.nn.functional.normalize
    return norm(x.float(), dim=-1), norm(pooled.float(), dim=-1)


def _timm_map_dense(visual: Any, pixels: Any):
    """Value path of SigLIP's attention-pool (MAP) head, token by token: (B, m, d).

    The head pools the patch tokens x_k as ``y = proj(Σ_k a_k v_k)``, ``y ← y + mlp(norm(y))``. Applying
    the same head to one token at a time (attention replaced by "all weight on token k") gives a
    vector per patch in the joint space, as MaskCLIP does for a class-token ViT.
    """
    trunk = visual.trunk
    pool = trunk.attn_pool
    x = trunk.forward_features(pixels)
    if not getattr(trunk, "pool_include_prefix", False):
        x = x[:, trunk.num_prefix_tokens:]
    if pool.pos_embed is not None:
        x = x + pool.pos_embed.unsqueeze(0).to(x.dtype)
    b, n, c = x.shape
    v = pool.kv(x).reshape(b, n, 2, c)[:, :, 1]  # heads are contiguous channel blocks, as the head concatenates them
    y = pool.proj(v)
    if pool.mlp is not None:
        y = y + pool.mlp(pool.norm(y))
    y = trunk.head(trunk.fc_norm(y))
    return visual.head(y)


def resnet_last_stage(visual: Any, pixels: Any):
    """The last stage's feature map of an open_clip ModifiedResNet: (B, C, h, w)."""
    x = visual.stem(pixels)
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
    return x


def resnet_attnpool_dense(visual: Any, feature_map: Any):
    """Value path of the ResNet's QKV attention pool at every grid position: (B, h·w, d).

    The pool returns ``c_proj(Σ_k a_k v_k)`` over the mean token and the h·w positions (each plus its
    position embedding); ``c_proj(v_k)`` alone is position k's vector in the joint space (MaskCLIP's
    original recipe for ResNet CLIPs).
    """
    ap = visual.attnpool
    t = feature_map.flatten(2).transpose(1, 2)  # (B, h·w, C), row-major like the ViT grids
    t = t + ap.positional_embedding[1:].to(t.dtype)
    return ap.c_proj(ap.v_proj(t))


def dense_patch_features(encoder: Any, pixels: Any, mode: str = "value"):
    """Patch features in the joint space for any supported image tower (no gradients).

    Parameters
    ----------
    encoder : mmexplore Encoder
        Image tower per :attr:`Encoder.facts`: a class-token open_clip ViT (MaskCLIP on the last
        block, ``mode`` as in :func:`dense_from_last_input`), an average-pooled open_clip ViT (its
        pooled patch tokens, :func:`dense_from_average_pool`; ``mode`` must be ``value``), a timm ViT
        with SigLIP's attention-pool head, or an open_clip ResNet with its attention pool (value path
        of the pool; ``mode`` must be ``value``: these towers have no residual around their pool).
    pixels : Tensor (B, 3, S, S) on the model's device

    Returns
    -------
    Tensor (B, m, d), float32, unnormalised; m = grid_h · grid_w in row-major order.
    """
    import torch

    if mode not in DENSE_MODES:
        raise ValueError(f"Unsupported dense mode '{mode}'. The available modes are {list(DENSE_MODES)}")
    facts = encoder.facts
    visual = encoder.model.visual
    with torch.inference_mode():
        if facts.vision_impl == "open_clip.VisionTransformer":
            return dense_from_pass(visual, visual_pass(visual, pixels), mode).float()
        if mode != "value":
            raise ModelLoadError(f"dense mode '{mode}' needs a class-token ViT; this model's pooling is {facts.pooling_detail}")
        if facts.vision_impl == "timm.VisionTransformer" and facts.pooling == "attention-pool":
            return _timm_map_dense(visual, pixels).float()
        if facts.vision_impl == "open_clip.ModifiedResNet":
            return resnet_attnpool_dense(visual, resnet_last_stage(visual, pixels)).float()
    raise ModelLoadError(f"no dense patch features for a {facts.vision_impl} image tower ({facts.pooling} pooling)")
