"""The Probes page's family section: the shipped order family side by side, each model against its
bag-of-words baseline, on held-out scenes of any registered renderer (the numbers of ``eval compositional``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from mmexplore.data.renderers import RENDERERS
from mmexplore.models.specs import ORDER_FAMILY
from mmexplore.probes import PERTURBATION_KINDS, compare_compositional
from mmexplore_app import state, widgets

SHORT_KIND = {"attribute_swap": "attributes", "relation_swap": "relation order", "word_shuffle": "shuffled",
              "word_drop": "dropped", "negation": "negation"}
# The picker lists every registered renderer (train, alt, sketch), in registry order.
RENDERER_LABELS = {name: r.label for name, r in RENDERERS.items()}
SCENE_CHOICES = (50, 100, 200)
N_EXAMPLES = 3  # example thumbnails of the chosen renderer, in narrow columns
ON_KEY = "probe_family_on"

FAMILY_TEXT = """
**The lesson, measured.** Three models of the same small size, trained on the same shapes world for
the same budget (6,000 steps × 64 pairs on one CPU thread; README, *Order-sensitive models*), differ
only in their recipe: **plain CLIP** (no hard negatives), **NegCLIP** (one hard negative per image and
counterfactual image twins) and **NegCLIP + layout readout** (a linear readout shared by both towers
must tell, from the image embedding and from the caption embedding, where each colour, shape and
size lies). A bar at 0.5 on *attributes*, *relation order* or *shuffled* is what a bag of words gets.

Plain CLIP and NegCLIP read **relation order** like a bag of words (a coin toss), as ARO found for
CLIP: the text tower learns to give "A left of B" and "B left of A" the same embedding, because the
image embedding does not say where each object is, and the image tower has no reason to say it while
no caption needs it. Hard negatives alone do not leave this deadlock. The layout readout does: it asks
both towers for the layout from the start, so the caption embeddings of the two orders differ and
the image embedding must follow.
"""


@st.cache_data(show_spinner=False, max_entries=4)
def family_accuracy(specs: tuple[str, ...], n_scenes: int, renderer: str, device: str) -> dict[str, Any]:
    """``compare_compositional`` of the shipped family on one renderer (shared by every session)."""
    return compare_compositional(specs, n_scenes=n_scenes, renderers=(renderer,), device=device)


def short_name(spec: str) -> str:
    """The family member's short title ("plain CLIP", "NegCLIP", ...): its label before the brackets."""
    return ORDER_FAMILY.get(spec, spec).split(" (")[0]


def family_table(results: dict[str, Any], renderer: str) -> pd.DataFrame:
    """One row per (model, kind): model accuracy, its bag-of-words baseline and the number of pairs."""
    rows = []
    for spec, res in results.items():
        if "missing" in res:
            continue
        for kind in PERTURBATION_KINDS:
            r = res["accuracy"][renderer][kind]
            rows.append({"model": spec, "kind": SHORT_KIND[kind], "accuracy": round(r["model"], 3),
                         "bag of words": round(r["bag_of_words"], 3), "pairs": int(r["n"])})
    return pd.DataFrame(rows)


def family_reading(table: pd.DataFrame, specs: list[str]) -> str:
    """One sentence from the figures just measured (so the text always matches the bars)."""
    def fig(spec: str, kind: str) -> str:
        row = table[(table["model"] == spec) & (table["kind"] == SHORT_KIND[kind])]
        return f"{float(row['accuracy'].iloc[0]):.2f}" if len(row) else "—"

    order = ", ".join(f"{short_name(s)} {fig(s, 'relation_swap')}" for s in specs)
    attrs = ", ".join(f"{short_name(s)} {fig(s, 'attribute_swap')}" for s in specs)
    return (f"**On these scenes:** relation order {order} (a bag of words: 0.50); attribute binding {attrs}. "
            "With 100 pairs, ±0.10 is noise; with 200, ±0.07.")


def _figure(table: pd.DataFrame, specs: list[str]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(specs), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[short_name(s) for s in specs])
    for col, spec in enumerate(specs, start=1):
        part = table[table["model"] == spec]
        fig.add_trace(go.Bar(name="model", x=part["kind"], y=part["accuracy"], marker_color="#1f77b4",
                             showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Bar(name="bag-of-words baseline", x=part["kind"], y=part["bag of words"],
                             marker_color="#bbbbbb", showlegend=col == 1), row=1, col=col)
        fig.add_hline(y=0.5, line_dash="dot", row=1, col=col)
    fig.update_annotations(font_size=12)  # the panel titles fit three narrow panels at 1024 px
    fig.update_layout(barmode="group", height=400, margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(range=[0, 1.05], row=1, col=1, title="accuracy (true caption wins)")
    fig.update_xaxes(tickangle=-35)
    return fig


def _renderer_examples(renderer: str) -> None:
    """Three of the held-out scenes as the chosen renderer draws them, and what sets it apart."""
    from mmexplore.data.renderers import draw_scene
    from mmexplore.probes.evaluate import compositional_scenes

    scenes = compositional_scenes(N_EXAMPLES)
    # One spare wide column keeps the thumbnails small (128 px drawings) at every width.
    for col, scene in zip(st.columns([1] * N_EXAMPLES + [3]), scenes, strict=False):
        col.image(draw_scene(scene, renderer, 128), width="stretch")
    st.caption(f"Three of the held-out scenes, drawn by `{renderer}`: {RENDERERS[renderer].description}")


def order_family_section() -> None:
    """Draw the family section (computed on request; the result is shared by every session)."""
    st.subheader("The order family: bag of words and its fix")
    st.markdown(FAMILY_TEXT)
    specs = list(ORDER_FAMILY)
    renderer = st.radio("Scenes drawn by", list(RENDERER_LABELS), format_func=RENDERER_LABELS.get, horizontal=True,
                        help="The shipped models trained on the training renderer only: the independent renderer and "
                        "the hand-drawn sketches test whether they learned shapes and colours or pixels.",
                        key=widgets.keep("probe_family_renderer", "alt", valid=list(RENDERER_LABELS)))
    _renderer_examples(str(renderer))
    c2, c3 = st.columns([1, 1], vertical_alignment="bottom")
    n_scenes = c2.selectbox("Held-out scenes", SCENE_CHOICES,
                            key=widgets.keep("probe_family_scenes", 100, valid=SCENE_CHOICES))
    if c3.button("Compare the family", key="probe_family_go", width="stretch"):
        state.set_value(ON_KEY, True)
    if not state.value(ON_KEY):
        st.caption(f"Measures {', '.join(specs)} on held-out two-object scenes "
                   "(about 10 s per model on one CPU core, then kept for every visitor).")
        return
    device = widgets.active_model_choice()[1]
    with st.spinner("Measuring the family…"):
        results = family_accuracy(tuple(specs), int(n_scenes), str(renderer), str(device))
    for res in results.values():
        if "missing" in res:
            st.warning(widgets.no_links(res["missing"]))
    shown = [s for s in specs if "missing" not in results.get(s, {"missing": ""})]
    if not shown:
        return
    table = family_table(results, str(renderer))
    st.plotly_chart(_figure(table, shown), key="probe_family_chart", config={"displaylogo": False})
    wide = table.pivot(index="model", columns="kind", values="accuracy").reindex(shown)[
        [SHORT_KIND[k] for k in PERTURBATION_KINDS]]
    wide.index = [short_name(s) for s in wide.index]
    st.dataframe(wide, key="probe_family_table")
    st.markdown(family_reading(table, shown))
    st.caption(f"{n_scenes} held-out scenes ({RENDERER_LABELS[str(renderer)]}); models "
               + ", ".join(f"`{s}`" for s in shown) + "; the same numbers as "
               f"`mmexplore eval compositional --scenes {n_scenes}`.")
    widgets.download_csv(table, "order_family_probes", key="probe_family_csv")
