"""Text-side attribution: which words of a caption drive its score with an image.

The score is the model's own logit for the pair, y = s·cos(image, caption) (+ b for sigmoid models),
so attributions are in logit units and comparable between words of one caption.

* ``grad_x_input`` — for each token, ⟨e_t, ∂y/∂e_t⟩ with e_t the token's input embedding (before the
  position embedding), summed over the word's BPE pieces. A first-order estimate of how much the
  score owes to the word: one forward and one backward pass. Needs words ↔ tokens (CLIP BPE).
* ``leave_one_out`` — y(caption) − y(caption without the word): how much the score drops when the
  word is deleted (negative: the caption matches better without it). Exact by definition, one text
  forward per word; works with any tokenizer (words are whitespace-split when pieces cannot be mapped).

>>> from mmexplore.heatmaps.text_attribution import TEXT_METHODS
>>> TEXT_METHODS
('grad_x_input', 'leave_one_out')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmexplore.errors import InputError

TEXT_METHODS = ("grad_x_input", "leave_one_out")
TEXT_METHOD_LABELS = {"grad_x_input": "gradient × input", "leave_one_out": "leave one word out"}


@dataclass
class WordAttribution:
    """How much each word of one caption contributes to its score with one image.

    Attributes
    ----------
    text : str
    words : list of str
    scores : ndarray of shape (n_words,), float64
        Contribution of each word to the pair's score, in logit units (see the module docstring).
    method : {"grad_x_input", "leave_one_out"}
    score : float
        The pair's score y = s·cos (+ b), in logit units.
    cosine : float
    rule : {"softmax", "sigmoid"}
    note : str
    """

    text: str
    words: list[str]
    scores: np.ndarray
    method: str
    score: float
    cosine: float
    rule: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "words": list(self.words),
            "scores": [round(float(v), 6) for v in self.scores],
            "method": self.method,
            "score": float(self.score),
            "cosine": float(self.cosine),
            "rule": self.rule,
            "note": self.note,
        }

    def top(self, k: int = 3) -> list[str]:
        """The k words with the largest contribution (ties keep caption order)."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [self.words[i] for i in order]


def check_text_method(method: str) -> str:
    if method not in TEXT_METHODS:
        raise InputError(f"Unsupported text attribution '{method}'. The available methods are {list(TEXT_METHODS)}")
    return method


def text_method_support(facts: Any) -> dict[str, str | None]:
    """``{method: None if it applies else why not}`` for the text-side methods."""
    grad = None if facts.word_alignment else (
        f"its tokenizer ({facts.tokenizer}) does not map tokens back to words; leave-one-word-out still works")
    return {"grad_x_input": grad, "leave_one_out": None}


def _image_embedding(encoder: Any, image: Any):
    import torch

    emb = torch.as_tensor(encoder.encode_images([image]))[0]
    return emb.to(encoder.device)


def _words_of(encoder: Any, text: str) -> tuple[list[str], list[list[int]], str]:
    """Words, their token positions ([] when pieces cannot be mapped) and a truncation note."""
    if encoder.facts.word_alignment:
        from mmexplore.heatmaps.words import align_words

        al = align_words(encoder.tokenizer, [text])[0]
        return list(al.words), [list(p) for p in al.token_positions], al.note
    return text.split(), [], ""


def _leave_one_out(encoder: Any, img: np.ndarray, words: list[str]) -> tuple[np.ndarray, float, float]:
    variants = [" ".join(words)] + [" ".join(words[:k] + words[k + 1:]) or " " for k in range(len(words))]
    txt = encoder.encode_texts(variants)
    cos = txt @ img
    y = np.asarray(encoder.score(cos.astype(np.float64)))
    return y[0] - y[1:], float(y[0]), float(cos[0])


def _grad_x_input(encoder: Any, img: Any, text: str, positions: list[list[int]]) -> tuple[np.ndarray, float, float]:
    import torch

    from mmexplore.heatmaps.features import encode_text_from_embeddings
    from mmexplore.models.facts import text_tower

    tower = text_tower(encoder.model)
    ids = encoder.tokenizer([text]).to(encoder.device)
    with torch.enable_grad():
        emb = tower.token_embedding(ids).detach().float().requires_grad_(True)
        _, pooled = encode_text_from_embeddings(encoder.model, ids, emb)
        cos = torch.nn.functional.cosine_similarity(pooled.float(), img[None].float(), dim=-1)[0]
        y = encoder.score(cos)
        (grad,) = torch.autograd.grad(y, emb)
    per_token = (grad * emb).sum(-1)[0].detach().cpu().numpy().astype(np.float64)
    scores = np.array([per_token[p].sum() for p in positions], dtype=np.float64)
    return scores, float(y.detach()), float(cos.detach())


def word_attribution(encoder: Any, image: Any, text: str, *, method: str = "grad_x_input") -> WordAttribution:
    """Attribute one image–caption pair's score to the caption's words.

    Parameters
    ----------
    encoder : mmexplore Encoder
        Any family (CLIP, SigLIP-style, ResNet); ``grad_x_input`` needs a CLIP BPE tokenizer.
    image : PIL.Image.Image
    text : str
    method : {"grad_x_input", "leave_one_out"}

    Returns
    -------
    WordAttribution
        ``scores`` (n_words,) in logit units of the model's own score.

    Raises
    ------
    InputError
        Empty caption, unknown method, or a method that does not apply to the model (with the reason).
    """
    check_text_method(method)
    text = str(text).strip()
    if not text:
        raise InputError("empty caption: type at least one word")
    why = text_method_support(encoder.facts)[method]
    if why:
        raise InputError(f"text attribution '{method}' does not apply to this model: {why}")
    words, positions, note = _words_of(encoder, text)
    if not words:
        raise InputError(f"the caption '{text[:60]}' has no words the tokenizer keeps")
    if method == "leave_one_out":
        img = encoder.encode_images([image])[0].astype(np.float64)
        scores, y, cos = _leave_one_out(encoder, img, words)
    else:
        scores, y, cos = _grad_x_input(encoder, _image_embedding(encoder, image), text, positions)
    return WordAttribution(text, words, scores, method, y, cos, encoder.facts.scoring, note)


def word_attributions(
    encoder: Any, images: Sequence[Any], texts: Sequence[str], *, method: str = "grad_x_input"
) -> list[WordAttribution]:
    """:func:`word_attribution` for each pair (image k with text k)."""
    if len(images) != len(texts):
        raise InputError(f"{len(images)} images but {len(texts)} captions: give one caption per image")
    return [word_attribution(encoder, im, t, method=method) for im, t in zip(images, texts, strict=True)]
