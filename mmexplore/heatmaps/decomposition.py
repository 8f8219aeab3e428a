"""An exact word × patch decomposition of one image–caption pair's score.

The pair's score is the model's logit y = s·⟨I, T⟩/(‖I‖‖T‖) + b (b = 0 for softmax models). Each
embedding is read at one position whose state is built by attention over the tokens: the class token
of a CLIP ViT and the pooled position of the text tower (through every block of the residual stream:
the *direct effects* of Gandelsman et al., 2024), or the single query of SigLIP's attention-pool head
or of a ResNet's QKV attention pool. Every attention output is a sum over key positions t of
``W_o · concat_h(a_h,t · v_h,t)``, plus terms that belong to no position (the query's own input
embedding, biases, the MLPs). A final LayerNorm is linear once its mean and scale are fixed at their
actual values, so

    I = Σ_k c_k + c_rest   (c_k: patch k's share),    T = Σ_j e_j + e_rest   (e_j: word j's pieces)

hold exactly, and

    y = Σ_jk M_jk + R,   M_jk = s·⟨c_k, e_j⟩ / (‖I‖‖T‖),
    R = s·⟨Σ_k c_k, e_rest⟩/(‖I‖‖T‖)  [patches × the caption's other tokens and residual]
      + s·⟨c_rest, T⟩/(‖I‖‖T‖)          [the image's residual × the caption]
      + b.

The remainder is stated, part by part, never hidden; the MLPs are its largest part in a ViT. What
"patch k" carries is position k's state where it was read: after the first block the positions have
mixed, so a patch's share includes what it gathered from other patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmexplore.errors import InputError, ModelLoadError

REMAINDER_PARTS = {
    "patches_x_other_text": "patches × the caption's other tokens (start, end, padding) and its residual stream",
    "image_rest_x_text": "the image's residual stream (class token / pool query, MLP, biases) × the caption",
    "bias": "the model's logit bias b",
}


@dataclass
class ScoreDecomposition:
    """Word × patch contributions to one pair's score, with the remainder stated.

    Attributes
    ----------
    words : list of str
    grid : (int, int)
    contributions : ndarray of shape (n_words, grid_h * grid_w), float64
        M_jk in logit units (row-major patches).
    score : float
        The pair's score from the model's own forward pass, y = s·cos + b.
    remainder : dict of str to float
        The parts of R (see ``REMAINDER_PARTS``), in logit units.
    """

    words: list[str]
    grid: tuple[int, int]
    contributions: np.ndarray
    score: float
    remainder: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Σ_jk M_jk."""
        return float(self.contributions.sum())

    @property
    def remainder_total(self) -> float:
        return float(sum(self.remainder.values()))

    @property
    def error(self) -> float:
        """|Σ M + R − y|: float rounding only (the decomposition is exact)."""
        return abs(self.total + self.remainder_total - self.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": list(self.words),
            "grid": list(self.grid),
            "contributions": np.round(self.contributions, 6).tolist(),
            "sum": self.total,
            "remainder": {k: float(v) for k, v in self.remainder.items()},
            "remainder_total": self.remainder_total,
            "score": self.score,
            "error": self.error,
        }


def _split_block(blk: Any, x: Any, q_pos: Any, attn_mask: Any = None):
    """One open_clip residual block at one query position, its attention split by key position.

    x: (B, L, W) the block's input; q_pos: LongTensor (B,).
    Returns (contrib (B, L, W): ls_1(W_o concat_h(a_h,t v_h,t)) without bias, one row per key position t;
    extra (B, W): the out-projection bias and the MLP term). The block's output at q_pos is
    x[q_pos] + contrib.sum(1) + extra.
    """
    import torch
    import torch.nn.functional as F

    attn = blk.attn
    b, n, w = x.shape
    heads = attn.num_heads
    hd = w // heads
    q, k, v = F.linear(blk.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, heads, hd).transpose(1, 2) for t in (q, k, v))  # (B, H, L, hd)
    rows = torch.arange(b, device=x.device)
    scores = torch.einsum("bhd,bhld->bhl", q[rows, :, q_pos], k) * hd**-0.5
    if attn_mask is not None:
        scores = scores + attn_mask.to(scores.dtype)[q_pos][:, None, :]
    probs = torch.softmax(scores, dim=-1)  # (B, H, L)
    weighted = (probs[..., None] * v).transpose(1, 2).reshape(b, n, w)  # heads concatenated per key position
    contrib = blk.ls_1(F.linear(weighted, attn.out_proj.weight))
    bias = blk.ls_1(attn.out_proj.bias) if attn.out_proj.bias is not None else torch.zeros_like(x[:, 0])
    xq = x[rows, q_pos] + contrib.sum(1) + bias
    return contrib, bias + blk.ls_2(blk.mlp(blk.ln_2(xq)))


def _direct_effects(blocks: list, x: Any, q_pos: Any, attn_mask: Any = None):
    """Every block's attention at q_pos, summed per key position (direct effects, Gandelsman et al. 2024).

    Returns (per_position (B, L, W), rest (B, W): the query's input embedding plus every block's bias and
    MLP terms, out (B, W): the last block's output at q_pos = per_position.sum(1) + rest).
    """
    import torch

    rows = torch.arange(x.shape[0], device=x.device)
    per_position = torch.zeros_like(x)
    rest = x[rows, q_pos].clone()
    for blk in blocks:
        contrib, extra = _split_block(blk, x, q_pos, attn_mask)
        per_position = per_position + contrib
        rest = rest + extra
        x = blk(x, attn_mask=attn_mask)
    return per_position, rest, x[rows, q_pos]


def _frozen_ln(ln: Any, total: Any):
    """(linear part u ↦ γ(u − mean u)/σ, the constant β) of LayerNorm ``ln`` at input ``total`` (B, W)."""
    import torch

    mean = total.mean(-1, keepdim=True)
    var = ((total - mean) ** 2).mean(-1, keepdim=True)
    sigma = torch.sqrt(var + ln.eps)
    gamma = ln.weight if ln.weight is not None else 1.0
    beta = ln.bias if ln.bias is not None else torch.zeros_like(total[0])

    def lin(u):
        scale = sigma[:, None] if u.dim() == 3 else sigma  # (B, L, W) per-position parts or (B, W)
        return gamma * (u - u.mean(-1, keepdim=True)) / scale

    return lin, beta


def _project(proj: Any, u: Any):
    """Apply a projection's linear part (a matrix, or nn.Linear without its bias)."""
    import torch

    if proj is None:
        return u
    if isinstance(proj, torch.nn.Linear):
        return u @ proj.weight.T
    return u @ proj


def _proj_bias(proj: Any):
    import torch

    return proj.bias if isinstance(proj, torch.nn.Linear) and proj.bias is not None else None


def _image_split(encoder: Any, pixels: Any):
    """(c (m, d): each patch's share, c_rest (d,)) of the image embedding, exactly."""
    import torch

    from mmexplore.heatmaps.features import check_visual, resnet_last_stage

    facts = encoder.facts
    visual = encoder.model.visual
    if facts.vision_impl == "open_clip.VisionTransformer" and facts.pooling == "class-token":
        check_visual(visual)
        zero = torch.zeros(1, dtype=torch.long, device=pixels.device)
        per_pos, rest, out = _direct_effects(list(visual.transformer.resblocks), visual._embeds(pixels), zero)
        lin, beta = _frozen_ln(visual.ln_post, out)
        c = _project(visual.proj, lin(per_pos[:, 1:]))[0]
        c_rest = _project(visual.proj, lin(per_pos[:, 0] + rest) + beta)[0]
        return c, c_rest
    if facts.vision_impl == "timm.VisionTransformer" and facts.pooling == "attention-pool":
        trunk = visual.trunk
        pool = trunk.attn_pool
        if not isinstance(trunk.fc_norm, torch.nn.Identity) or pool.latent_len != 1:
            raise ModelLoadError("score decomposition needs a one-query attention pool without a norm after it")
        x = trunk.forward_features(pixels)[:, trunk.num_prefix_tokens:]
        if pool.pos_embed is not None:
            x = x + pool.pos_embed.unsqueeze(0).to(x.dtype)
        b, n, ch = x.shape
        heads, hd = pool.num_heads, pool.head_dim
        q = pool.q_norm(pool.q(pool.latent).reshape(1, heads, hd))[0]  # (H, hd)
        kv = pool.kv(x).reshape(b, n, 2, heads, hd)
        k, v = pool.k_norm(kv[:, :, 0]), kv[:, :, 1]  # (B, L, H, hd)
        probs = torch.softmax(torch.einsum("hd,blhd->bhl", q, k) * pool.scale, dim=-1)
        weighted = (probs.transpose(1, 2)[..., None] * v).reshape(b, n, ch)
        contrib = weighted @ pool.proj.weight.T  # (B, L, C)
        y0 = contrib.sum(1) + pool.proj.bias
        rest = pool.proj.bias + (pool.mlp(pool.norm(y0)) if pool.mlp is not None else 0.0)
        c, c_rest = contrib[0], rest[0]
        for layer in (trunk.head, *list(visual.head)):
            if isinstance(layer, torch.nn.Identity | torch.nn.Dropout):
                continue
            if not isinstance(layer, torch.nn.Linear):
                raise ModelLoadError(f"score decomposition cannot pass through a {type(layer).__name__} head")
            c, c_rest = c @ layer.weight.T, c_rest @ layer.weight.T + (layer.bias if layer.bias is not None else 0.0)
        return c, c_rest
    if facts.vision_impl == "open_clip.ModifiedResNet":
        ap = visual.attnpool
        fmap = resnet_last_stage(visual, pixels)
        t = fmap.flatten(2).transpose(1, 2)
        t = torch.cat([t.mean(1, keepdim=True), t], dim=1) + ap.positional_embedding.to(t.dtype)  # (B, 1+hw, C)
        b, n, ch = t.shape
        heads = ap.num_heads
        hd = ch // heads
        q = ap.q_proj(t[:, 0]).reshape(b, heads, hd)
        k = ap.k_proj(t).reshape(b, n, heads, hd)
        v = ap.v_proj(t).reshape(b, n, heads, hd)
        probs = torch.softmax(torch.einsum("bhd,blhd->bhl", q, k) * hd**-0.5, dim=-1)
        contrib = (probs.transpose(1, 2)[..., None] * v).reshape(b, n, ch) @ ap.c_proj.weight.T
        return contrib[0, 1:], contrib[0, 0] + ap.c_proj.bias
    raise ModelLoadError(f"no score decomposition for a {facts.vision_impl} image tower ({facts.pooling} pooling)")


def _text_split(encoder: Any, text: str, positions: list[list[int]]):
    """(e (n_words, d): each word's share, e_rest (d,)) of the caption embedding, exactly."""
    import torch

    from mmexplore.models.facts import text_tower

    t = text_tower(encoder.model)
    if getattr(t, "cls_emb", None) is not None or getattr(t, "use_pad_mask", False):
        raise ModelLoadError("score decomposition needs a text tower without an appended class token or padding mask")
    ids = encoder.tokenizer([text]).to(encoder.device)
    cast = t.transformer.get_cast_dtype()
    x = t.token_embedding(ids).to(cast) + t.positional_embedding[: ids.shape[1]].to(cast)
    pool = getattr(t, "text_pool_type", None) or getattr(t, "pool_type", "argmax")
    if pool == "argmax":
        q_pos = ids.argmax(dim=-1)
    elif pool == "last":
        q_pos = torch.full((1,), ids.shape[1] - 1, device=ids.device)
    elif pool == "first":
        q_pos = torch.zeros(1, dtype=torch.long, device=ids.device)
    else:
        raise ModelLoadError(f"score decomposition does not support text pool type '{pool}'")
    per_pos, rest, out = _direct_effects(list(t.transformer.resblocks), x, q_pos, t.attn_mask)
    lin, beta = _frozen_ln(t.ln_final, out)
    parts = _project(t.text_projection, lin(per_pos))[0]  # (L, d)
    e = torch.stack([parts[p].sum(0) for p in positions]) if positions else parts.new_zeros((0, parts.shape[-1]))
    used = sorted({i for p in positions for i in p})
    mask = torch.ones(parts.shape[0], dtype=torch.bool, device=parts.device)
    mask[used] = False
    bias = _proj_bias(t.text_projection)
    e_rest = parts[mask].sum(0) + _project(t.text_projection, lin(rest) + beta)[0] + (bias if bias is not None else 0.0)
    return e, e_rest


def decompose_score(encoder: Any, image: Any, text: str) -> ScoreDecomposition:
    """Word × patch contributions to the score of one image–caption pair (see the module docstring).

    Parameters
    ----------
    encoder : mmexplore Encoder
        A CLIP ViT, a SigLIP-style ViT or a ResNet CLIP with a CLIP BPE tokenizer.
    image : PIL.Image.Image
    text : str

    Returns
    -------
    ScoreDecomposition
        ``contributions`` (n_words, grid_h·grid_w) in logit units; Σ contributions + Σ remainder = score
        up to float rounding (``error``).
    """
    import torch

    from mmexplore.data.images import to_rgb
    from mmexplore.heatmaps.words import align_words

    text = str(text).strip()
    if not text:
        raise InputError("empty caption: type at least one word")
    if not encoder.facts.word_alignment:
        raise ModelLoadError(f"score decomposition needs words ↔ tokens; this model's tokenizer is {encoder.facts.tokenizer}")
    al = align_words(encoder.tokenizer, [text])[0]
    pixels = encoder.pixels([to_rgb(image)]).to(encoder.device)
    with torch.inference_mode():
        c, c_rest = _image_split(encoder, pixels)
        e, e_rest = _text_split(encoder, text, [list(p) for p in al.token_positions])
        c, c_rest, e, e_rest = (t.double() for t in (c, c_rest, e, e_rest))
        img = c.sum(0) + c_rest
        txt = e.sum(0) + e_rest
        norm = float(encoder.logit_scale) / float(img.norm() * txt.norm())
        contributions = (e @ c.T).cpu().numpy() * norm
        remainder = {
            "patches_x_other_text": float(c.sum(0) @ e_rest) * norm,
            "image_rest_x_text": float(c_rest @ txt) * norm,
            "bias": float(encoder.logit_bias or 0.0),
        }
    img_emb = encoder.encode_images([image], use_cache=False)[0]
    txt_emb = encoder.encode_texts([text], use_cache=False)[0]
    score = float(encoder.score(float(img_emb.astype(np.float64) @ txt_emb.astype(np.float64))))
    return ScoreDecomposition(list(al.words), tuple(int(g) for g in encoder.facts.grid), contributions, score, remainder)
