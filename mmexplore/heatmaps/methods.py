"""Heatmap methods, a registry like the projection methods and retrieval backends (docs/design.md §5).

Each method is one :class:`HeatmapMethod` entry in ``_REGISTRY``: a name, a config dataclass (its
parameters and defaults), the function that turns a batch of images and target text vectors into
patch weights, and ``unsupported`` — why it cannot run on a given model (None when it can). The CLI,
the app and :func:`pointing_game` list and run methods only through :func:`list_methods` /
:func:`get_method`; adding a method is one entry plus its function (docs/CONTRIBUTING.md).

* ``attention``: α_ij = softmax_i(s · ⟨I_i, T_j⟩) over the patches i, with I_i the MaskCLIP patch
  features and T_j the word's text feature, both unit vectors in the joint space, and s the model's
  own logit scale (1/τ) as temperature: the course notes' softmax(I_iᵀ W_a T_j) where the model's
  projections play the part of W_a.
  Patch features per image tower (:func:`~mmexplore.heatmaps.features.dense_patch_features`): a
  class-token ViT's last block (MaskCLIP); an average-pooled ViT's final patch tokens (exact: the
  embedding is their mean); SigLIP's attention-pool (MAP) head applied to each patch
  token alone; a ResNet CLIP's QKV attention pool applied to each grid position alone (its value path).
* ``relevancy``: Chefer et al. (2021). For the score y = ⟨image embedding, T_j⟩ and every kept image
  attention map A (blocks ``start_layer ..``), Ā = mean_heads(clamp(∇_A y ⊙ A, min=0)) and
  R ← R + Ā·R from R = I; the map is the class token's row of R over the patches. Class-token
  open_clip ViTs only.
* ``gradcam``: Selvaraju et al. (2017) on a ResNet CLIP's last stage A (C × h × w): for the score
  y = ⟨image embedding, T_j⟩, w_c = mean over positions of ∂y/∂A_c, map = relu(Σ_c w_c A_c).

Which methods apply is decided from :attr:`Encoder.facts` (the image tower and its pooling, the
tokenizer), never from a model's name; a method that does not apply says why.

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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from mmexplore.errors import InputError, ModelLoadError
from mmexplore.heatmaps.features import (
    DENSE_MODES,
    check_visual,
    dense_patch_features,
    resnet_last_stage,
    token_features,
    visual_pass,
)
from mmexplore.heatmaps.result import HeatmapResult, crop_box
from mmexplore.heatmaps.words import align_words, find_phrase

WORD_FEATURES = ("alone", "context")
PHRASE_FEATURES = ("pooled", "words")
RELEVANCY_ROWS = 64


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


@dataclass(frozen=True)
class AttentionConfig:
    """Patch–word attention. ``temperature``: softmax scale (None: the model's logit scale 1/τ);
    ``dense_mode``: MaskCLIP patch features, ``"value"`` or ``"value_residual"``."""

    temperature: float | None = None
    dense_mode: str = "value"

    def __post_init__(self) -> None:
        if self.dense_mode not in DENSE_MODES:
            raise InputError(f"Unsupported dense mode '{self.dense_mode}'. The available modes are {list(DENSE_MODES)}")


@dataclass(frozen=True)
class RelevancyConfig:
    """Gradient relevancy. ``start_layer``: first image block whose attention enters (negative: from the end)."""

    start_layer: int = 0


# (image tower, pooling) pairs with dense patch features in the joint space (features.dense_patch_features).
DENSE_TOWERS = (
    ("open_clip.VisionTransformer", "class-token"),
    ("open_clip.VisionTransformer", "average"),
    ("timm.VisionTransformer", "attention-pool"),
    ("open_clip.ModifiedResNet", "attention-pool"),
)


def _words_unsupported(encoder: Any) -> str | None:
    facts = encoder.facts
    if not facts.word_alignment:
        return (f"its tokenizer ({facts.tokenizer}) does not map tokens back to words, so there are no per-word "
                "text vectors (leave-one-word-out attribution still works)")
    return None


def _vit_unsupported(encoder: Any) -> str | None:
    """Why the unrolled open_clip ViT pass cannot run on this model; None when it can."""
    if encoder.facts.vision_impl != "open_clip.VisionTransformer":
        return f"it unrolls an open_clip ViT; this image tower is {encoder.facts.vision_impl}"
    try:
        check_visual(encoder.model.visual)
    except ModelLoadError as exc:
        return str(exc)
    return None


def _attention_unsupported(encoder: Any) -> str | None:
    """Attention needs dense patch features (class-token ViT, SigLIP's MAP head, ResNet attnpool) and words."""
    facts = encoder.facts
    if (facts.vision_impl, facts.pooling) not in DENSE_TOWERS:
        return (f"no dense patch features for a {facts.vision_impl} image tower with {facts.pooling} pooling "
                f"(supported: {', '.join(f'{i} with {p} pooling' for i, p in DENSE_TOWERS)})")
    if facts.vision_impl == "open_clip.VisionTransformer":
        why = _vit_unsupported(encoder)
        if why:
            return why
    return _words_unsupported(encoder)


def _relevancy_unsupported(encoder: Any) -> str | None:
    """Chefer relevancy follows the class token through every attention map of an open_clip ViT."""
    facts = encoder.facts
    if facts.vision_impl != "open_clip.VisionTransformer" or facts.pooling != "class-token":
        return (f"it follows a class token through the ViT's attention maps; this image tower "
                f"({facts.vision_impl}, {facts.pooling} pooling) has none")
    return _vit_unsupported(encoder) or _words_unsupported(encoder)


def _gradcam_unsupported(encoder: Any) -> str | None:
    """Grad-CAM weighs the channels of a ResNet's last stage; ViTs have a better-founded method each."""
    facts = encoder.facts
    if facts.vision_impl != "open_clip.ModifiedResNet":
        return f"it weighs the channels of a ResNet's last stage; this image tower is {facts.vision_impl}"
    return _words_unsupported(encoder)


def _attention_maps(encoder: Any, pixels: Any, targets: Sequence[Any], cfg: AttentionConfig) -> list[np.ndarray]:
    """softmax over patches of s · ⟨MaskCLIP patch feature, text vector⟩; per image (K_b, m) rows."""
    import torch

    dense = torch.nn.functional.normalize(dense_patch_features(encoder, pixels, cfg.dense_mode), dim=-1)
    with torch.inference_mode():
        return [torch.softmax(cfg.temperature * t @ dense[b].T, dim=-1).cpu().numpy() for b, t in enumerate(targets)]


@dataclass(frozen=True)
class GradCamConfig:
    """Grad-CAM on a ResNet's last stage (Selvaraju et al., 2017); no parameters."""


def _gradcam_maps(encoder: Any, pixels: Any, targets: Sequence[Any], cfg: GradCamConfig) -> list[np.ndarray]:
    """Grad-CAM per (image, target): relu(Σ_c w_c A_c) with w_c the mean gradient of ⟨image embedding, T⟩.

    A is the last stage's feature map (B, C, h, w), computed once per image; only the attention pool
    runs again per target row, so one backward pass serves every row of the batch.
    """
    import torch

    visual = encoder.model.visual
    with torch.no_grad():
        fmap = resnet_last_stage(visual, pixels).float()
    counts = [int(t.shape[0]) for t in targets]
    with torch.enable_grad():
        a = fmap.repeat_interleave(torch.tensor(counts, device=fmap.device), dim=0).detach().requires_grad_(True)
        img = torch.nn.functional.normalize(visual.attnpool(a).float(), dim=-1)
        score = (img * torch.cat(list(targets)).float()).sum()  # rows never interact: one backward for all
        (grad,) = torch.autograd.grad(score, a)
    with torch.no_grad():
        cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1)).flatten(1).cpu().numpy()
    offsets = np.cumsum([0, *counts])
    return [cam[offsets[b] : offsets[b + 1]] for b in range(len(targets))]


def _relevancy_maps(encoder: Any, pixels: Any, targets: Sequence[Any], cfg: RelevancyConfig) -> list[np.ndarray]:
    """Chefer relevancy per (image, target); one backward pass for all rows of the batch (rows never interact)."""
    import torch

    counts = [int(t.shape[0]) for t in targets]
    rows_px = pixels.repeat_interleave(torch.tensor(counts, device=pixels.device), dim=0)
    rows_t = torch.cat(list(targets))
    rel = np.concatenate([
        _relevancy(encoder.model.visual, rows_px[a : a + RELEVANCY_ROWS], rows_t[a : a + RELEVANCY_ROWS], cfg.start_layer)
        for a in range(0, rows_t.shape[0], RELEVANCY_ROWS)
    ])
    offsets = np.cumsum([0, *counts])
    return [rel[offsets[b] : offsets[b + 1]] for b in range(len(targets))]


@dataclass(frozen=True)
class HeatmapMethod:
    """One registered heatmap method.

    Attributes
    ----------
    name : str
        Registry key, used by ``--method`` and the app.
    config_cls : type
        Frozen dataclass of the method's parameters and defaults; validates in ``__post_init__``.
    fn : callable(encoder, pixels, targets, config) -> list of ndarray
        ``pixels`` (B, 3, S, S) on the model's device; ``targets`` B tensors (K_b, d) of unit text vectors
        (at least one row in the batch). Returns per image an ndarray (K_b, m) of non-negative patch weights
        over the m = grid_h · grid_w patches, row by row (rows are normalised to sum to 1 afterwards).
    unsupported : callable(encoder) -> str or None
        Why the method cannot run on this model (shown to the user); None when it applies.
    label : str
        Short name for the app and reports.
    description : str
    resolve : callable(config, encoder) -> config
        Fills model-dependent defaults (the attention temperature); the result is recorded in
        :attr:`HeatmapResult.params`.
    """

    name: str
    config_cls: type
    fn: Callable[[Any, Any, Sequence[Any], Any], list[np.ndarray]]
    unsupported: Callable[[Any], str | None]
    label: str
    description: str = ""
    resolve: Callable[[Any, Any], Any] = field(default=lambda cfg, encoder: cfg)

    def applies(self, encoder: Any) -> tuple[bool, str]:
        """(True, "") when the method can run on ``encoder``; else (False, the reason)."""
        reason = self.unsupported(encoder)
        return (reason is None, reason or "")

    def make_config(self, options: dict[str, Any] | None = None) -> Any:
        """The method's config from ``options``; fields of other registered methods are ignored.

        Raises InputError for a name no registered method knows (a typo must not be ignored)."""
        options = dict(options or {})
        known = {f.name for spec in _REGISTRY.values() for f in fields(spec.config_cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"Unknown heatmap option(s) {unknown}. Known options: {sorted(known)}")
        own = {f.name for f in fields(self.config_cls)}
        return self.config_cls(**{k: v for k, v in options.items() if k in own})


def _resolve_attention(cfg: AttentionConfig, encoder: Any) -> AttentionConfig:
    return replace(cfg, temperature=float(cfg.temperature if cfg.temperature is not None else encoder.logit_scale))


_REGISTRY: dict[str, HeatmapMethod] = {
    "attention": HeatmapMethod(
        "attention", AttentionConfig, _attention_maps, _attention_unsupported, label="attention (MaskCLIP)",
        description="softmax over patches of the model's logit scale × cosine(patch feature, word); patch features "
                    "from the value path of the last attention block or of the attention-pool head",
        resolve=_resolve_attention,
    ),
    "relevancy": HeatmapMethod(
        "relevancy", RelevancyConfig, _relevancy_maps, _relevancy_unsupported, label="gradient relevancy",
        description="Chefer et al. (2021): gradient-weighted attention rolled out to the class token",
    ),
    "gradcam": HeatmapMethod(
        "gradcam", GradCamConfig, _gradcam_maps, _gradcam_unsupported, label="Grad-CAM (last stage)",
        description="Selvaraju et al. (2017): the ResNet's last-stage channels weighted by their mean gradient of the score",
    ),
}
# Registered names in order (for ``from mmexplore.heatmaps import METHODS``); derived, not a second list.
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def list_methods(encoder: Any = None) -> list[str]:
    """Names of the registered heatmap methods; with ``encoder``, only those that apply to it."""
    return [name for name, spec in _REGISTRY.items() if encoder is None or spec.unsupported(encoder) is None]


def get_method(name: str) -> HeatmapMethod:
    """The registered method called ``name``.

    Raises
    ------
    InputError
        ``"Unsupported heatmap method 'x'. The available methods are [...]"``.
    """
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise InputError(f"Unsupported heatmap method '{name}'. The available methods are {list(_REGISTRY)}")
    return _REGISTRY[key]


def check_method(method: str) -> str:
    """``method`` if it is registered, else InputError naming the registered ones."""
    return get_method(method).name


def compute_heatmaps(
    encoder: Any,
    images: Sequence[Any],
    texts: Sequence[str],
    *,
    phrases: Sequence[Sequence[str] | str | None] | None = None,
    method: str = "attention",
    word_features: str = "alone",
    phrase_features: str = "pooled",
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    **method_options: Any,
) -> list[HeatmapResult]:
    """Per-word (and per-phrase) heatmaps for image–caption pairs.

    Parameters
    ----------
    encoder : mmexplore Encoder
        Any model a registered method applies to (:func:`list_methods` with the encoder): CLIP ViTs,
        SigLIP-style ViTs (attention), ResNet CLIPs (attention, Grad-CAM).
    images : sequence of PIL.Image.Image
        Image k pairs with ``texts[k]``.
    texts : sequence of str
    phrases : sequence of (str or list of str or None), optional
        Extra maps per pair, e.g. an object phrase "small red circle" (embedded on its own).
    method : str
        A registered method (:func:`list_methods`: ``"attention"``, ``"relevancy"``, ...).
    word_features : {"alone", "context"}
        How a word becomes a text vector (see the module docstring).
    phrase_features : {"pooled", "words"}
        A phrase's vector: its own pooled embedding (default), or the mean of its word vectors in the
        caption (pooled when the caption does not contain it).
    batch_size : int
        Images per forward pass. Relevancy runs one backward pass for all their (image, word/phrase)
        rows, at most ``RELEVANCY_ROWS`` at a time (memory grows with rows × layers × tokens²).
    progress : callable(done, total), optional
    **method_options
        Fields of the methods' configs, e.g. ``dense_mode``/``temperature`` (:class:`AttentionConfig`) or
        ``start_layer`` (:class:`RelevancyConfig`). Options of another registered method are ignored, so
        one set of options can drive several methods; a name no method knows is an InputError.

    Returns
    -------
    list of HeatmapResult
        One per pair; maps at patch resolution, each a distribution over patches.
    """
    import torch

    from mmexplore.data.images import to_rgb

    spec = get_method(method)
    cfg = spec.make_config(method_options)
    reason = spec.unsupported(encoder)
    if reason:
        usable = list_methods(encoder)
        alt = f" Methods that apply: {', '.join(usable)}." if usable else " No heatmap method applies to this model."
        raise ModelLoadError(f"heatmap method '{spec.name}' does not apply to this {encoder.facts.family_label} model: "
                             f"{reason}.{alt}")
    if word_features not in WORD_FEATURES:
        raise InputError(f"Unsupported word features '{word_features}'. The available options are {list(WORD_FEATURES)}")
    if phrase_features not in PHRASE_FEATURES:
        raise InputError(f"Unsupported phrase features '{phrase_features}'. The available options are {list(PHRASE_FEATURES)}")
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
    grid = tuple(int(g) for g in encoder.facts.grid)
    resize_mode = (getattr(visual, "preprocess_cfg", None) or {}).get("resize_mode", "shortest")
    cfg = spec.resolve(cfg, encoder)
    start_layer = getattr(cfg, "start_layer", None)
    n_blocks = len(getattr(getattr(visual, "transformer", None), "resblocks", []))
    if start_layer is not None and n_blocks and not -n_blocks <= int(start_layer) < n_blocks:
        raise InputError(f"start layer {start_layer} is outside this model's image blocks: use "
                         f"{-n_blocks} to {n_blocks - 1} (negative counts from the end)")
    params: dict[str, Any] = {"word_features": word_features, "phrase_features": phrase_features, **asdict(cfg)}
    text_parts = _text_vectors(encoder, [str(t) for t in texts], norm_phrases, word_features, phrase_features)
    results: list[HeatmapResult] = []
    total = len(rgb)
    for start in range(0, total, max(1, batch_size)):
        idx = list(range(start, min(total, start + batch_size)))
        pixels = torch.stack([encoder.preprocess(rgb[i]) for i in idx]).to(encoder.device)
        targets = [torch.cat([text_parts[i][1], text_parts[i][2]]).to(encoder.device) for i in idx]
        weights = spec.fn(encoder, pixels, targets, cfg) if any(t.shape[0] for t in targets) else [None] * len(idx)
        for b, i in enumerate(idx):
            al = text_parts[i][0]
            if targets[b].shape[0] == 0:
                rows = np.zeros((0, grid[0] * grid[1]), np.float32)
            else:
                rows = weights[b]
            rows = _as_distribution(rows).reshape(-1, *grid)
            n_w = len(al.words)
            results.append(
                HeatmapResult(
                    text=str(texts[i]),
                    words=list(al.words),
                    maps=rows[:n_w],
                    method=spec.name,
                    image_size=rgb[i].size,
                    box=crop_box(*rgb[i].size, resize_mode),
                    phrases=norm_phrases[i],
                    phrase_maps=rows[n_w:] if norm_phrases[i] else None,
                    note=al.note,
                    params=dict(params),
                )
            )
        if progress is not None:
            progress(idx[-1] + 1, total)
    return results


def word_patch_matrix(result: HeatmapResult) -> np.ndarray:
    """The word × patch matrix of a result: ndarray (n_words, grid_h * grid_w), rows sum to 1."""
    return result.maps.reshape(len(result.words), -1)
