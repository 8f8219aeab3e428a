"""The two heatmap methods: patch–word attention and gradient relevancy (DESIGN §5).

* ``attention``: α_ij = softmax_i(s · ⟨I_i, T_j⟩) over the patches i, with I_i the MaskCLIP patch
  features and T_j the word's text feature, both unit vectors in the joint space, and s the model's
  own logit scale (1/τ) as temperature: the course notes' softmax(I_iᵀ W_a T_j) where the model's
  projections play the part of W_a.
* ``relevancy``: Chefer et al. (2021). For the score y = ⟨image embedding, T_j⟩ and every kept image
  attention map A (blocks ``start_layer ..``), Ā = mean_heads(clamp(∇_A y ⊙ A, min=0)) and
  R ← R + Ā·R from R = I; the map is the class token's row of R over the patches.

Text features of a word (``word_features``): ``alone`` (default) — the word embedded on its own as a
caption, i.e. the pooled vector CLIP trains to match images; ``context`` — the caption's own token
state at the word's last BPE piece (a causal text tower has read the whole word there, and the words
before it). Only the pooled end-of-text state is trained into the joint space, so on the bundled model
the context states of all words look alike (every word's map shows the same object). A phrase is
embedded on its own by default (``phrase_features="pooled"``): that vector binds colour, size and
shape together; ``"words"`` averages its word vectors instead (README reports the comparison).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.heatmaps.features import DENSE_MODES, dense_from_last_input, token_features, visual_pass
from mmexplore.heatmaps.result import HeatmapResult, crop_box
from mmexplore.heatmaps.words import align_words, find_phrase

METHODS = ("attention", "relevancy")
WORD_FEATURES = ("alone", "context")
PHRASE_FEATURES = ("pooled", "words")
RELEVANCY_ROWS = 64


def check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"Unsupported heatmap method '{method}'. The available methods are {list(METHODS)}")
    return method


def _text_vectors(
    encoder: Any, texts: Sequence[str], phrases: Sequence[Sequence[str]], word_features: str, phrase_features: str = "pooled"
):
    """Per caption: (alignment, word vectors (n_words, d), phrase vectors (n_phrases, d)) as torch tensors."""
    import torch

    aligns = align_words(encoder.tokenizer, list(texts))
    tok, _ = token_features(encoder, list(texts))
    alone: list[str] = []
    for al, ph in zip(aligns, phrases, strict=True):
        if word_features == "alone":
            alone.extend(al.words)
        alone.extend(ph)
    uniq = list(dict.fromkeys(alone))
    pooled = token_features(encoder, uniq)[1] if uniq else None
    index = {t: i for i, t in enumerate(uniq)}
    out = []
    for n, (al, ph) in enumerate(zip(aligns, phrases, strict=True)):
        if word_features == "alone":
            words = pooled[[index[w] for w in al.words]] if al.words else tok.new_zeros((0, tok.shape[-1]))
        else:
            words = tok[n, al.last_positions] if al.words else tok.new_zeros((0, tok.shape[-1]))
        phr = pooled[[index[p] for p in ph]] if ph else tok.new_zeros((0, tok.shape[-1]))
        if phrase_features == "words" and ph:
            # Mean of the phrase's word vectors where the caption contains it (else its pooled embedding).
            rows = []
            for k, p in enumerate(ph):
                idx = find_phrase(al, p, encoder.tokenizer)
                rows.append(torch.nn.functional.normalize(words[idx].mean(0), dim=-1) if idx else phr[k])
            phr = torch.stack(rows)
        out.append((al, torch.as_tensor(words), torch.as_tensor(phr)))
    return out


def _relevancy(visual: Any, pixels: Any, targets: Any, start_layer: int) -> np.ndarray:
    """Chefer relevancy of the class token over patches, one row per (image, target text vector).

    pixels: (K, 3, S, S), row k the image of target k; targets: (K, d) unit vectors.
    Returns ndarray (K, m), each row ≥ 0.
    """
    import torch

    k = targets.shape[0]
    with torch.enable_grad():
        x = pixels.clone().requires_grad_(True)
        res = visual_pass(visual, x, attn_from=start_layer)
        img = torch.nn.functional.normalize(res.pooled.float(), dim=-1)
        score = (img * targets).sum()  # each batch row only depends on its own target: one backward for all
        grads = torch.autograd.grad(score, res.attentions)
    with torch.no_grad():
        n = res.attentions[0].shape[-1]
        rel = torch.eye(n, device=pixels.device).expand(k, n, n).clone()
        for attn, grad in zip(res.attentions, grads, strict=True):
            cam = (grad * attn).clamp(min=0).mean(dim=1)
            rel = rel + torch.bmm(cam.float(), rel)
        return rel[:, 0, 1:].cpu().numpy()


def _as_distribution(rows: np.ndarray) -> np.ndarray:
    rows = np.maximum(rows.astype(np.float64), 0)
    sums = rows.sum(axis=1, keepdims=True)
    uniform = np.full_like(rows, 1.0 / max(1, rows.shape[1]))
    return np.where(sums > 0, rows / np.where(sums > 0, sums, 1), uniform).astype(np.float32)


def compute_heatmaps(
    encoder: Any,
    images: Sequence[Any],
    texts: Sequence[str],
    *,
    phrases: Sequence[Sequence[str] | str | None] | None = None,
    method: str = "attention",
    word_features: str = "alone",
    phrase_features: str = "pooled",
    dense_mode: str = "value",
    temperature: float | None = None,
    start_layer: int = 0,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[HeatmapResult]:
    """Per-word (and per-phrase) heatmaps for image–caption pairs.

    Parameters
    ----------
    encoder : mmexplore Encoder
        Any open_clip ViT model (the bundled one, ViT-B-32, ...), on its own device.
    images : sequence of PIL.Image.Image
        Image k pairs with ``texts[k]``.
    texts : sequence of str
    phrases : sequence of (str or list of str or None), optional
        Extra maps per pair, e.g. an object phrase "small red circle" (embedded on its own).
    method : {"attention", "relevancy"}
    word_features : {"alone", "context"}
        How a word becomes a text vector (see the module docstring).
    phrase_features : {"pooled", "words"}
        A phrase's vector: its own pooled embedding (default), or the mean of its word vectors in the
        caption (pooled when the caption does not contain it).
    dense_mode : {"value", "value_residual"}
        MaskCLIP patch features (attention method only).
    temperature : float, optional
        Softmax scale for the attention method; default the model's logit scale (1/τ).
    start_layer : int
        First image block whose attention enters relevancy (negative: from the end; 0: all).
    batch_size : int
        Images per forward pass. Relevancy runs one backward pass for all their (image, word/phrase)
        rows, at most ``RELEVANCY_ROWS`` at a time (memory grows with rows × layers × tokens²).
    progress : callable(done, total), optional

    Returns
    -------
    list of HeatmapResult
        One per pair; maps at patch resolution, each a distribution over patches.
    """
    import torch

    from mmexplore.data.images import to_rgb

    check_method(method)
    if word_features not in WORD_FEATURES:
        raise InputError(f"Unsupported word features '{word_features}'. The available options are {list(WORD_FEATURES)}")
    if phrase_features not in PHRASE_FEATURES:
        raise InputError(f"Unsupported phrase features '{phrase_features}'. The available options are {list(PHRASE_FEATURES)}")
    if dense_mode not in DENSE_MODES:
        raise InputError(f"Unsupported dense mode '{dense_mode}'. The available modes are {list(DENSE_MODES)}")
    if len(images) != len(texts):
        raise InputError(f"{len(images)} images but {len(texts)} captions: give one caption per image")
    norm_phrases = [[p] if isinstance(p, str) else list(p or []) for p in (phrases or [None] * len(texts))]
    norm_phrases = [[p.strip() for p in ph if p and p.strip()] for ph in norm_phrases]
    if len(norm_phrases) != len(texts):
        raise InputError(f"{len(norm_phrases)} phrase entries for {len(texts)} captions")
    for t in texts:
        if not str(t).strip():
            raise InputError("empty caption: type at least one word")

    rgb = [to_rgb(im) for im in images]
    visual = encoder.model.visual
    grid = tuple(int(g) for g in visual.grid_size)
    resize_mode = (getattr(visual, "preprocess_cfg", None) or {}).get("resize_mode", "shortest")
    scale = float(temperature if temperature is not None else encoder.logit_scale)
    text_parts = _text_vectors(encoder, [str(t) for t in texts], norm_phrases, word_features, phrase_features)
    results: list[HeatmapResult] = []
    total = len(rgb)
    for start in range(0, total, max(1, batch_size)):
        idx = list(range(start, min(total, start + batch_size)))
        pixels = torch.stack([encoder.preprocess(rgb[i]) for i in idx]).to(encoder.device)
        if method == "attention":
            with torch.inference_mode():
                res = visual_pass(visual, pixels)
                dense = torch.nn.functional.normalize(dense_from_last_input(visual, res.last_input, dense_mode).float(), dim=-1)
        targets = [torch.cat([text_parts[i][1], text_parts[i][2]]).to(encoder.device) for i in idx]
        if method == "relevancy":
            # One backward pass for every (image, word/phrase) row of the batch: rows never interact.
            counts = [t.shape[0] for t in targets]
            rel = np.zeros((0, grid[0] * grid[1]), np.float32)
            if sum(counts):
                rows_px = pixels.repeat_interleave(torch.tensor(counts, device=pixels.device), dim=0)
                rows_t = torch.cat(targets)
                rel = np.concatenate([
                    _relevancy(visual, rows_px[a : a + RELEVANCY_ROWS], rows_t[a : a + RELEVANCY_ROWS], start_layer)
                    for a in range(0, rows_t.shape[0], RELEVANCY_ROWS)
                ])
            offsets = np.cumsum([0, *counts])
        for b, i in enumerate(idx):
            al = text_parts[i][0]
            if targets[b].shape[0] == 0:
                rows = np.zeros((0, grid[0] * grid[1]), np.float32)
            elif method == "attention":
                with torch.inference_mode():
                    rows = torch.softmax(scale * targets[b] @ dense[b].T, dim=-1).cpu().numpy()
            else:
                rows = rel[offsets[b] : offsets[b + 1]]
            rows = _as_distribution(rows).reshape(-1, *grid)
            n_w = len(al.words)
            params: dict[str, Any] = {"word_features": word_features, "phrase_features": phrase_features}
            if method == "attention":
                params.update(temperature=scale, dense_mode=dense_mode)
            else:
                params.update(start_layer=start_layer)
            results.append(
                HeatmapResult(
                    text=str(texts[i]),
                    words=list(al.words),
                    maps=rows[:n_w],
                    method=method,
                    image_size=rgb[i].size,
                    box=crop_box(*rgb[i].size, resize_mode),
                    phrases=norm_phrases[i],
                    phrase_maps=rows[n_w:] if norm_phrases[i] else None,
                    note=al.note,
                    params=params,
                )
            )
        if progress is not None:
            progress(idx[-1] + 1, total)
    return results


def word_patch_matrix(result: HeatmapResult) -> np.ndarray:
    """The word × patch matrix of a result: ndarray (n_words, grid_h * grid_w), rows sum to 1."""
    return result.maps.reshape(len(result.words), -1)
