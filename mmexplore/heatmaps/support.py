"""Which heatmap methods apply to a loaded model, and why not: predicates over its facts.

A method is offered (page, CLI) only where its predicate returns None; otherwise the predicate's
sentence says what the model lacks. The predicates read :class:`~mmexplore.models.facts.ModelFacts`,
never a model's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmexplore.errors import InputError

# (image tower, pooling) pairs whose patch features the attention method can compute.
DENSE_TOWERS = (("open_clip.VisionTransformer", "class-token"),)

Predicate = Callable[[Any], "str | None"]


def _words(facts: Any) -> str | None:
    if not facts.word_alignment:
        return (f"its tokenizer ({facts.tokenizer}) does not map tokens back to words, so there are no "
                "per-word text vectors (leave-one-word-out attribution still works)")
    return None


def attention_applies(facts: Any) -> str | None:
    """Patch–word attention needs dense features in the joint space and per-word text vectors."""
    if (facts.vision_impl, facts.pooling) not in DENSE_TOWERS:
        return (f"no dense features for a {facts.vision_impl} image tower with {facts.pooling} pooling "
                f"(supported: {', '.join(f'{i} with {p} pooling' for i, p in DENSE_TOWERS)})")
    return _words(facts)


def relevancy_applies(facts: Any) -> str | None:
    """Chefer relevancy follows the class token through every attention map of an open_clip ViT."""
    if facts.vision_impl != "open_clip.VisionTransformer" or facts.pooling != "class-token":
        return (f"gradient relevancy follows a class token through the ViT's attention maps; this image tower "
                f"({facts.vision_impl}, {facts.pooling} pooling) has none")
    return _words(facts)


PREDICATES: dict[str, Predicate] = {"attention": attention_applies, "relevancy": relevancy_applies}


def method_support(facts: Any, methods: Any = None) -> dict[str, str | None]:
    """``{method: None if it applies else the reason it does not}`` for every method (or those given)."""
    names = list(methods) if methods is not None else list(PREDICATES)
    return {m: PREDICATES[m](facts) for m in names}


def applicable_methods(facts: Any) -> list[str]:
    """The methods that apply to a model with these facts, in registry order."""
    return [m for m, why in method_support(facts).items() if why is None]


def check_applies(method: str, facts: Any) -> None:
    """Raise :class:`InputError` naming the reason when ``method`` does not apply to the model."""
    why = PREDICATES[method](facts) if method in PREDICATES else None
    if why:
        ok = applicable_methods(facts)
        alt = f" Methods that apply: {', '.join(ok)}." if ok else " No heatmap method applies to this model."
        raise InputError(f"heatmap method '{method}' does not apply to this {facts.family_label} model: {why}.{alt}")
