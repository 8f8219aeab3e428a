"""The loaded-model object every other part of mmexplore uses.

An :class:`Encoder` binds an open_clip model to the preprocessing and tokenizer that belong to its
weights, and turns lists of PIL images or strings into L2-normalised float32 numpy arrays, batched
and cached. It also exposes the raw pieces (``model``, ``preprocess``, ``tokenizer``, ``device``)
for code that needs more than pooled embeddings (dense patch tokens, per-token text features).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmexplore.models.cache import EmbeddingCache, image_digest, text_digest
from mmexplore.models.devices import inference_context

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model reports (the ``model`` object of ``mmexplore info --json``)."""

    name: str
    embed_dim: int
    image_size: int
    device: str
    dtype: str
    params: int
    context_length: int
    logit_scale: float
    vocab_size: int
    family: str = ""
    scoring: str = "softmax"
    logit_bias: float | None = None
    pooling: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Encoder:
    """An open_clip model with its preprocessing, tokenizer, metadata and an embedding cache.

    Build it with :func:`mmexplore.models.load_model`, not directly.

    Attributes
    ----------
    model : open_clip.CLIP
        In ``eval()`` mode on ``device``.
    preprocess : callable
        PIL image -> tensor (3, image_size, image_size); open_clip's transform for these weights.
    tokenizer : callable
        list of str -> LongTensor (n, context_length).
    device : str
    model_id : str
        Identifies the weights (spec plus a weights digest where known); the embedding-cache key.
    cache : EmbeddingCache
    """

    def __init__(
        self,
        model: Any,
        preprocess: Callable,
        tokenizer: Callable,
        *,
        name: str,
        model_id: str,
        device: str,
        dtype: str,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.cache = cache if cache is not None else EmbeddingCache()
        self._facts: Any = None

    # ------------------------------------------------------------------ metadata
    @property
    def logit_scale(self) -> float:
        """exp of the learned log temperature: logits = logit_scale × cosine (1/τ)."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100).item())

    @property
    def logit_bias(self) -> float | None:
        """b of a sigmoid-scored model's σ(logit_scale × cosine + b); None for softmax (CLIP) models."""
        return self.facts.logit_bias

    @property
    def facts(self) -> Any:
        """:class:`~mmexplore.models.facts.ModelFacts`: family, scoring rule, pooling, token grid."""
        if self._facts is None:
            from mmexplore.models.facts import read_facts

            self._facts = read_facts(self.model, self.tokenizer)
        return self._facts

    def score(self, cosine: Any) -> Any:
        """The model's pair score (its logit) from cosines: s·cos, plus b for sigmoid models.

        Works on floats, numpy arrays and tensors alike (same shape out).
        """
        bias = self.logit_bias
        return self.logit_scale * cosine + (bias if bias is not None else 0.0)

    @property
    def embed_dim(self) -> int:
        if hasattr(self.model, "text") and not hasattr(self.model, "text_projection"):
            return int(self.model.text.output_dim)
        proj = getattr(self.model, "text_projection", None)
        if proj is not None and hasattr(proj, "shape"):
            return int(proj.shape[1])
        return int(self.model.visual.output_dim)

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, tuple | list) else size)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model, "context_length", getattr(self.tokenizer, "context_length", 77)))

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            embed_dim=self.embed_dim,
            image_size=self.image_size,
            device=self.device,
            dtype=self.dtype,
            params=int(sum(p.numel() for p in self.model.parameters())),
            context_length=self.context_length,
            logit_scale=self.logit_scale,
            vocab_size=int(getattr(self.model, "vocab_size", 0)),
            family=self.facts.family,
            scoring=self.facts.scoring,
            logit_bias=self.facts.logit_bias,
            pooling=self.facts.pooling,
        )

    # ------------------------------------------------------------------ encoding
    def encode_images(
        self,
        images: Sequence[Any],
        *,
        batch_size: int = 64,
        progress: ProgressFn | None = None,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Embed PIL images.

        Parameters
        ----------
        images : sequence of PIL.Image.Image
            Any mode; converted to RGB here (RGBA is composited on white).
        batch_size : int
            Images per forward pass.
        progress : callable(done, total), optional
            Called after each batch with counts of images (cache hits count as done at once).
        use_cache : bool
            Look up and store embeddings in ``self.cache``.

        Returns
        -------
        ndarray of shape (n_images, embed_dim), float32
            Unit-norm rows.
        """
        from mmexplore.data.images import to_rgb

        rgb = [to_rgb(im) for im in images]
        # Hashing pixels costs as much as a small model's forward pass: only when the cache is used.
        keys = [EmbeddingCache.key(self.model_id, "image", image_digest(im)) for im in rgb] if use_cache else None

        def run(batch: list[Any]) -> Any:
            return self._image_features(self.pixels(batch))

        return self._encode(rgb, keys, run, batch_size, progress, use_cache)

    def pixels(self, images: Sequence[Any]) -> Any:
        """The model's input for RGB PIL images: a float tensor (n, 3, image_size, image_size) on CPU.

        This is the preprocessing of these weights (``self.preprocess``); the distributed job runs it
        in its decode workers and hands the tensor to :meth:`encode_pixels`.
        """
        import torch

        return torch.stack([self.preprocess(im) for im in images])

    def _image_features(self, pixels: Any) -> Any:
        with inference_context(self.device):
            feats = self.model.encode_image(pixels.to(self.device))
        return feats.float()

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        """Embed preprocessed pixels from :meth:`pixels` (one forward pass, no cache).

        Parameters
        ----------
        pixels : tensor or ndarray of shape (n, 3, image_size, image_size), float32

        Returns
        -------
        ndarray of shape (n, embed_dim), float32
            Unit-norm rows: the same numbers as :meth:`encode_images` on the same images.
        """
        import torch

        x = torch.as_tensor(pixels)
        if len(x) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        feats = self._image_features(x)
        return torch.nn.functional.normalize(feats, dim=-1).cpu().numpy().astype(np.float32)

    def encode_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 256,
        progress: ProgressFn | None = None,
        use_cache: bool = True,
    ) -> np.ndarray:
        """Embed captions.

        Parameters
        ----------
        texts : sequence of str
            Longer than the context length: truncated, as open_clip does.
        batch_size, progress, use_cache
            As for :meth:`encode_images`.

        Returns
        -------
        ndarray of shape (n_texts, embed_dim), float32
            Unit-norm rows.
        """
        texts = [str(t) for t in texts]
        keys = [EmbeddingCache.key(self.model_id, "text", text_digest(t)) for t in texts] if use_cache else None

        def run(batch: list[str]) -> np.ndarray:
            tokens = self.tokenizer(batch).to(self.device)
            with inference_context(self.device):
                feats = self.model.encode_text(tokens)
            return feats.float()

        return self._encode(texts, keys, run, batch_size, progress, use_cache)

    def _encode(
        self,
        items: list[Any],
        keys: list[str] | None,
        run: Callable[[list[Any]], Any],
        batch_size: int,
        progress: ProgressFn | None,
        use_cache: bool,
    ) -> np.ndarray:
        import torch

        if keys is None:  # no cache: every item is its own key (duplicates are encoded again)
            keys, use_cache = [str(i) for i in range(len(items))], False
        out: list[np.ndarray | None] = [None] * len(items)
        todo: list[int] = []
        first_index: dict[str, int] = {}
        for i, key in enumerate(keys):
            cached = self.cache.get(key, self.embed_dim) if use_cache else None
            if cached is not None:
                out[i] = cached
            elif key in first_index:
                continue  # duplicate content within this call: encode once
            else:
                first_index[key] = i
                todo.append(i)
        total = len(items)
        done = total - len(todo)
        if progress is not None:
            progress(min(done, total), total)
        for start in range(0, len(todo), max(1, batch_size)):
            idx = todo[start : start + batch_size]
            feats = run([items[i] for i in idx])
            feats = torch.nn.functional.normalize(feats, dim=-1).cpu().numpy().astype(np.float32)
            for i, vec in zip(idx, feats, strict=True):
                out[i] = vec
                if use_cache:
                    self.cache.put(keys[i], vec)
            done += len(idx)
            if progress is not None:
                progress(min(done, total), total)
        for i, key in enumerate(keys):
            if out[i] is None:
                out[i] = out[first_index[key]]
        if not items:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack(out).astype(np.float32, copy=False)  # type: ignore[arg-type]
