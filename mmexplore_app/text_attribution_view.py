"""Highlighted words: which words of a caption drive its score with an image (Heatmaps and Probes pages).

The numbers come from :func:`mmexplore.heatmaps.text_attribution.word_attribution`, the same call as
``mmexplore heatmap --json``. Session state: the ``<prefix>_text_method`` widget; results go through
the cache seam (namespace ``word_attribution``).
"""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.heatmaps.text_attribution import TEXT_METHOD_LABELS, TEXT_METHODS, text_method_support
from mmexplore_app import widgets
from mmexplore_app.cache import cache_key, session_cached

POSITIVE = (230, 97, 1)  # orange: the word raises the score
NEGATIVE = (33, 102, 172)  # blue: the caption scores higher without it
METHOD_HELP = {
    "grad_x_input": "⟨token embedding, ∂score/∂embedding⟩ summed over the word's pieces: a first-order estimate.",
    "leave_one_out": "score(caption) − score(caption without the word): exact, one text pass per word.",
}


def highlight_html(words: list[str], scores: Any) -> str:
    """Words as HTML spans shaded by their attribution (orange up, blue down, opacity ∝ |score|/max).

    Words are HTML-escaped; each span's tooltip gives the exact value (logit units).
    """
    peak = max((abs(float(v)) for v in scores), default=0.0) or 1.0
    spans = []
    for word, value in zip(words, scores, strict=True):
        v = float(value)
        r, g, b = POSITIVE if v >= 0 else NEGATIVE
        alpha = 0.1 + 0.8 * abs(v) / peak
        spans.append(
            f'<span class="mmx-word" title="{v:+.3f}" style="background: rgba({r},{g},{b},{alpha:.2f}); '
            f'padding: 2px 4px; margin: 0 1px; border-radius: 4px; line-height: 2">{html.escape(word)}</span>'
        )
    return " ".join(spans)


def _attribution(encoder: Any, image: Any, text: str, method: str):
    from mmexplore.heatmaps.text_attribution import word_attribution
    from mmexplore.models.cache import image_digest

    return session_cached("word_attribution", cache_key(encoder.model_id, image_digest(image), text, method),
                          lambda: word_attribution(encoder, image, text, method=method), max_entries=32)


def word_attribution_view(encoder: Any, image: Any, text: str, *, key_prefix: str) -> Any:
    """Draw the method choice, the highlighted caption and its numbers; return the attribution (or None)."""
    support = text_method_support(encoder.facts)
    offered = [m for m in TEXT_METHODS if support[m] is None]
    method = st.radio("Word attribution", offered, horizontal=True,
                      key=widgets.keep(f"{key_prefix}_text_method", offered[0], valid=offered),
                      format_func=lambda m: TEXT_METHOD_LABELS[m], help=" ".join(METHOD_HELP[m] for m in offered))
    for m in TEXT_METHODS:
        if support[m]:
            st.caption(f"{TEXT_METHOD_LABELS[m]} is not offered for this model: {support[m]}.")
    try:
        attr = _attribution(encoder, image, text, method)
    except MMExploreError as exc:
        widgets.show_error(exc)
        return None
    st.markdown(highlight_html(attr.words, attr.scores), unsafe_allow_html=True)
    rule = "s·cos + b" if attr.rule == "sigmoid" else "s·cos"
    top = ", ".join(f"“{widgets.plain(w)}”" for w in attr.top(2))
    st.caption(f"Pair score ({rule}) {attr.score:.2f}; words shaded by their share of it ({TEXT_METHOD_LABELS[method]}, "
               f"logit units: orange raises the score, blue lowers it; hover a word for its value). Strongest: {top}.")
    return attr
