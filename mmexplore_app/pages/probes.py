"""Probes: does the model read word order? Perturbed captions, pass/fail, model vs bag of words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.probes import ARO_NOTE, PERTURBATION_KINDS, accuracy_by_kind, score_probes
from mmexplore_app import widgets
from mmexplore_app.cache import cache_key, session_cached
from mmexplore_app.order_family_view import order_family_section
from mmexplore_app.text_attribution_view import word_attribution_view

OWN = "✎ type a caption…"
KIND_LABELS = {
    "attribute_swap": "attributes swapped",
    "relation_swap": "relation order swapped",
    "word_shuffle": "words shuffled",
    "word_drop": "words dropped",
    "negation": "negation",
}

EXPLANATION = f"""
**The bag-of-words finding.** Yuksekgonul et al. (*When and why vision-language models behave like
bags-of-words*, ICLR 2023, the **ARO** benchmark) showed that CLIP often scores "the horse is eating
the grass" and "the grass is eating the horse" alike: contrastive training on web captions rarely
*needs* word order to pick the right caption from a batch, so the text encoder learns to ignore it.
Their fix, **NegCLIP**, adds *hard negatives* to each batch (the same caption with words swapped),
so that only a model that reads order can win.

**Here**, each perturbation makes a false caption from the true one. The pair *passes* when the image
scores higher with the true caption. The **bag-of-words baseline** embeds a caption as the mean of
its single-word embeddings: it gives the same vector to any reordering, so on *attributes swapped*,
*relation order swapped* and *words shuffled* it ties (0.5, a coin toss). A model at 0.5 there reads
a bag of words; above it, it uses word order. *Words dropped* and *negation* change the bag, so the
baseline can pass or fail them. A perturbation that would not change the caption (two objects of the
same colour have no colour swap) is left out and not counted.

{ARO_NOTE}

The bundled model was trained with hard negatives (NegCLIP-style); compare it with `bundled-noneg`
(no hard negatives) in the sidebar. The *order family* below (three models, one budget) compares the
recipes side by side, as `mmexplore eval compositional` does.
"""


def _accuracy(encoder, ds) -> pd.DataFrame | None:
    """Per-kind accuracy over every true (image, caption) pair of the data set (memoised)."""

    def score() -> pd.DataFrame | None:
        img, _ = widgets.dataset_embeddings(ds)
        ii, jj = np.nonzero(ds.pairs)
        if len(ii) == 0:
            return None
        acc = accuracy_by_kind(score_probes(encoder, img[ii], [ds.texts[j] for j in jj]))
        return pd.DataFrame(
            [{"kind": KIND_LABELS[k], "model": v["model"], "bag of words": v["bag_of_words"], "pairs": v["n"]}
             for k, v in acc.items()]
        ).set_index("kind")

    return session_cached("probes", cache_key(encoder.model_id, ds.content_key()), score, max_entries=1)


st.title("Compositional probes")
ds = widgets.require_data(min_images=1, min_texts=0)
encoder = widgets.current_encoder()

left, right = st.columns([1, 2], gap="medium")
with left:
    i = st.selectbox("Image", range(ds.n_images), format_func=lambda k: ds.image_names[k],
                     key=widgets.keep("probe_image", 0, valid=range(ds.n_images)))
    st.image(ds.images[i], width=160)
with right:
    paired = [t for t, p in zip(ds.texts, ds.pairs[i], strict=True) if p] if ds.n_texts else []
    choices = [*paired, OWN]
    widgets.reset_when("probe_caption", (ds.embedding_key(), i), choices[0], unless=(OWN,))
    choice = st.selectbox("Caption (the true one)", choices, key=widgets.keep("probe_caption", choices[0], valid=choices))
    caption = st.text_input("Your caption", key=widgets.keep("probe_own", "")).strip() if choice == OWN else choice

if not caption:
    st.info("Type a caption that describes the image.")
else:
    try:
        res = score_probes(encoder, encoder.encode_images([ds.images[i]]), [caption])[0]
    except MMExploreError as exc:
        widgets.show_error(exc)
        st.stop()
    st.markdown(f"**True caption** “{widgets.no_links(res.caption)}” · cosine **{res.score:.3f}** "
                f"(bag of words {res.bow_score:.3f})")
    widgets.readability_notes(widgets.read_text(caption), what="caption")
    word_attribution_view(encoder, ds.images[i], caption, key_prefix="probe")
    if not res.rows:
        st.warning("No perturbation changes this caption (it may be a single word).")
    else:
        table = pd.DataFrame([{
            "perturbation": KIND_LABELS[r.kind], "caption": r.text, "cosine": round(r.score, 4),
            "Δ vs true": round(r.score - res.score, 4), "model": "pass" if r.passed else "FAIL",
            "bag of words": {1.0: "pass", 0.5: "tie", 0.0: "FAIL"}[r.bow_pass],
        } for r in res.rows])
        st.dataframe(table, hide_index=True, key="probe_table")
        dropped = [KIND_LABELS[k] for k in PERTURBATION_KINDS if k not in {r.kind for r in res.rows}]
        if dropped:
            st.caption("Left out (no change to this caption): " + ", ".join(dropped))

st.subheader("Accuracy per perturbation over the data set")
if ds.n_texts == 0 or not ds.pairs.any():
    st.info("The data set has no true image–caption pairs to measure.")
else:
    try:
        acc = _accuracy(encoder, ds)
    except MMExploreError as exc:
        widgets.show_error(exc)
        st.stop()
    import plotly.graph_objects as go

    fig = go.Figure([
        go.Bar(name=f"model ({encoder.info.name})", x=acc.index, y=acc["model"], text=acc["model"].round(2)),
        go.Bar(name="bag-of-words baseline", x=acc.index, y=acc["bag of words"], text=acc["bag of words"].round(2)),
    ])
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance / tie")
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.05], "title": "accuracy (true caption wins)"},
                      height=380, margin={"t": 30})
    st.plotly_chart(fig, key="probe_chart", config={"displaylogo": False})
    st.caption(f"{int(ds.pairs.sum())} true pairs; pairs per kind: "
               + ", ".join(f"{k} {n}" for k, n in acc["pairs"].items()))
    widgets.download_csv(acc, "probe_accuracy", key="probe_csv")
widgets.explain("What am I looking at? (the bag-of-words finding)", EXPLANATION)
order_family_section()
