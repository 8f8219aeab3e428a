"""Similarity: the image × caption matrix under the model's own scoring rule, its loss, recall@K.

The rule is a fact of the loaded model (``report.rule``): softmax and InfoNCE for CLIP-style models,
pairwise sigmoid probabilities and the sigmoid loss for SigLIP-style ones.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mmexplore.metrics.similarity import similarity_report
from mmexplore_app import widgets
from mmexplore_app.figures import matrix_heatmap

# per scoring rule: view name -> (SimilarityReport attribute, colour-bar label, colour scale, fixed range or None)
VIEWS = {
    "softmax": {
        "cosine": ("cosine", "cosine", "Viridis", None),
        "logits (× logit scale)": ("logits", "logit", "Viridis", None),
        "softmax over captions (image → text)": ("probs_i2t", "p(text | image)", "Blues", (0.0, 1.0)),
        "softmax over images (text → image)": ("probs_t2i", "p(image | text)", "Blues", (0.0, 1.0)),
    },
    "sigmoid": {
        "pairwise probability σ(s·cos + b)": ("probs_pair", "σ(s·cos + b)", "Blues", (0.0, 1.0)),
        "cosine": ("cosine", "cosine", "Viridis", None),
        "logits (s·cos + b)": ("logits", "logit", "Viridis", None),
    },
}
LOSS_LABELS = {"infonce": "InfoNCE loss (nats)", "sigmoid": "Sigmoid loss (nats)"}
LOSS_HELP = {
    "infonce": "symmetric: the mean of the image → text and text → image cross-entropies over the true pairs",
    "sigmoid": "SigLIP's objective: -(1/N) Σ log σ(z·(s·cos + b)) over every cell, z = +1 on the true pairs and "
               "-1 elsewhere (every unmarked cell counts as a negative pair)",
}

SIGMOID_EXPLANATION = r"""
This model is **sigmoid-scored** (SigLIP-style): it has a learned bias $b$ besides its scale $s$, and
it was trained to judge every (image, caption) pair on its own, not to pick one caption out of a batch.

- **Cosine similarity** $S = E_i E_t^\top$ between unit image and caption vectors.
- **Logits** $C = s\,S + b$ ($b$ is usually strongly negative: most pairs in a batch do not match).
- **Pairwise probability** $p_{ij} = \sigma(C_{ij}) = 1 / (1 + e^{-C_{ij}})$: the model's own answer to
  "does caption $j$ describe image $i$?". Rows and columns do **not** sum to 1: an image may match
  several captions, or none.
- **Sigmoid loss**, the training objective of SigLIP (Zhai et al., 2023):
  $L = -\tfrac1N \sum_{i,j} \log \sigma(z_{ij} C_{ij})$ with $z_{ij} = +1$ for the outlined (true)
  pairs and $-1$ for every other cell, so each unmarked cell counts as a negative pair.
- **Recall@K**: as for CLIP, by cosine (the scale and bias do not change the order within a row).

A softmax over this matrix (InfoNCE) is not what this model was trained for, so it is not shown.
"""

EXPLANATION = r"""
Each image and each caption is turned into a vector of length $d$ by the model's two encoders, and
the vectors are scaled to length 1: $E_i$ holds the $N$ image vectors as rows, $E_t$ the $M$ caption vectors.

- **Cosine similarity** $S = E_i E_t^\top$: entry $S_{ij}$ is the cosine of the angle between image $i$
  and caption $j$ (1 = same direction, 0 = unrelated).
- **Logits** $C = S / \tau$: the model multiplies by its learned *logit scale* $1/\tau$ before the softmax,
  which sharpens the differences.
- **Softmax over captions** (image → text): $p(j \mid i) = e^{C_{ij}} / \sum_k e^{C_{ik}}$; each row sums to 1.
  **Softmax over images** (text → image): $p(i \mid j) = e^{C_{ij}} / \sum_k e^{C_{kj}}$; each column sums to 1.
- **Symmetric InfoNCE loss**, the training objective of CLIP:
  $L = \tfrac12\left(\mathrm{CE}(C, \text{pairs}) + \mathrm{CE}(C^\top, \text{pairs}^\top)\right)$,
  the average surprise of the true pair in both directions (lower is better; $\ln M$ is chance for
  one direction). With several true captions per image the target is spread over them.
- **Recall@K**: the fraction of images whose true caption is among the K most similar captions
  (image → text), and the same for captions (text → image).

Black outlines mark the true pairs. In the shapes samples, the extra captions without an outline are
*hard negatives*: one word changed or two objects swapped, so a model that reads the caption as a
bag of words cannot tell them from the truth.
"""

st.title("Similarity")
ds = widgets.require_data(min_images=1, min_texts=1)
encoder = widgets.current_encoder()
widgets.world_warning(ds)
widgets.captions_notes(ds)

try:
    img_emb, txt_emb = widgets.dataset_embeddings(ds)
    report = similarity_report(img_emb, txt_emb, logit_scale=encoder.logit_scale, logit_bias=encoder.logit_bias,
                               pairs=ds.pairs)
except Exception as exc:  # one message, never a traceback
    widgets.show_error(exc)
    st.stop()

views = VIEWS[report.rule]
view = st.radio("Show", list(views), horizontal=True,
                key=widgets.keep(f"sim_view_{report.rule}", next(iter(views)), valid=list(views)))
attr, label, scale, fixed = views[view]
values = getattr(report, attr)
if report.rule == "sigmoid":
    st.caption(f"Scoring rule of this model: **sigmoid** — each pair's own probability σ(s·cos + b), "
               f"s = {report.logit_scale:.2f}, b = {report.logit_bias:.2f}; loss: sigmoid (SigLIP).")
else:
    st.caption(f"Scoring rule of this model: **softmax** over the batch of s·cos, s = 1/τ = {report.logit_scale:.2f}; "
               "loss: symmetric InfoNCE.")

# Scores above the matrix and every panel full width: side by side, a 1024-1400 px window cut the
# loss to "0.096 …", hid a recall column and made the tables scroll sideways.
st.subheader("Scores")
if report.pairs.any():
    s1, s2 = st.columns([1, 2], gap="medium")
    s1.metric(LOSS_LABELS[report.loss_name], f"{report.loss:.3f}", help=LOSS_HELP[report.loss_name])
    recall = pd.DataFrame(
        {f"R@{k}": [report.recall[f"i2t@{k}"], report.recall[f"t2i@{k}"]] for k in (1, 5, 10)},
        index=["image → text", "text → image"],
    )
    s2.dataframe(recall.style.format("{:.2f}"), key="sim_recall")
else:
    st.info("No true pairs are marked, so there is no loss or recall. Tick pairs in the table on Home.")

notes = [ds.text_notes.get(t, "") for t in ds.texts]
fig = matrix_heatmap(
    values,
    image_names=ds.image_names,
    texts=ds.texts,
    pairs=report.pairs,
    thumbnails=widgets.dataset_thumbnail_uris(ds, size=96),
    value_label=label,
    colorscale=scale,
    zmin=fixed[0] if fixed else None,
    zmax=fixed[1] if fixed else None,
    notes=notes,
)
st.plotly_chart(fig, key="sim_matrix", config={"displaylogo": False})
n_hard = sum(n.startswith("hard negative") for n in notes)
st.caption(
    f"{ds.n_images} images × {ds.n_texts} captions · logit scale s = {report.logit_scale:.2f}"
    + (f" · logit bias b = {report.logit_bias:.2f}" if report.rule == "sigmoid" else "") + " · "
    f"{int(report.pairs.sum())} true pairs outlined"
    + (f" · {n_hard} hard negatives marked ✗ with a dotted red frame (a one-step change of a true caption)" if n_hard else "")
    + " · hover a cell for its exact value and the full caption"
)



def _prob_column(cells: list[tuple[int, int]]) -> dict[str, list[float]]:
    """The sigmoid probability of each (image, caption) cell, for sigmoid-scored models only."""
    if report.probs_pair is None:
        return {}
    return {"σ(s·cos + b)": [float(report.probs_pair[i, j]) for i, j in cells]}


st.subheader("Best matches")
# Narrow columns for the short values, so both tables fit a 1024 px window without scrolling sideways.
columns = {
    "image": st.column_config.TextColumn(width="small"), "best image": st.column_config.TextColumn(width="small"),
    "best caption": st.column_config.TextColumn(width="medium"), "caption": st.column_config.TextColumn(width="medium"),
    "cosine": st.column_config.NumberColumn(format="%.3f", width="small"),
    "true pair": st.column_config.CheckboxColumn(width="small"), "note": st.column_config.TextColumn(width="small"),
    "σ(s·cos + b)": st.column_config.NumberColumn(format="%.3g", width="small"),
}


def _best_matches(cells: list[tuple[int, int]], lead: dict[str, list]) -> pd.DataFrame:
    """One row per (image i, caption j) cell: the ``lead`` columns, then cosine, σ (sigmoid models), true pair, note."""
    return pd.DataFrame({
        **lead,
        "cosine": [report.cosine[i, j] for i, j in cells],
        **_prob_column(cells),
        "true pair": [bool(report.pairs[i, j]) for i, j in cells],
        "note": [notes[j] for _, j in cells],
    })


best_caption = list(enumerate(report.best_text_for_image))  # (image, its best caption)
best_image = [(i, j) for j, i in enumerate(report.best_image_for_text)]  # (the best image, caption)
st.dataframe(_best_matches(best_caption, {"image": ds.image_names, "best caption": [ds.texts[j] for _, j in best_caption]}),
             hide_index=True, key="sim_best_text", column_config=columns)
st.dataframe(_best_matches(best_image, {"caption": ds.texts, "best image": [ds.image_names[i] for i, _ in best_image]}),
             hide_index=True, key="sim_best_image", column_config=columns)

st.subheader("Export")
slug = attr
matrix_df = pd.DataFrame(values, index=pd.Index(ds.image_names, name="image"), columns=ds.texts)
widgets.download_csv(matrix_df, f"similarity_{slug}.csv", label=f"Download {view.split(' (')[0]} matrix (CSV)", key="sim_csv")
widgets.download_figure(fig, f"similarity_{slug}", key="sim_fig")

widgets.explain("What am I looking at?", SIGMOID_EXPLANATION if report.rule == "sigmoid" else EXPLANATION)
