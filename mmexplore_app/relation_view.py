"""Figures and tables for the Relation page (Plotly / pandas; no Streamlit calls here)."""

from __future__ import annotations

from typing import Any

from mmexplore.relation.api import CANNOT_TELL
from mmexplore.relation.taxonomy import CLASSES, TABLE

SC_NAMES = {1: "agree", 0: "unrelated", -1: "contradict"}
STAT_NAMES = {"0": "equal", "T": "text primary", "I": "image primary"}


def probability_figure(probabilities: dict[str, float], label: str):
    """Horizontal bar chart of the eight class probabilities, the label's bar highlighted."""
    import plotly.graph_objects as go

    names = list(CLASSES)
    fig = go.Figure(go.Bar(
        x=[probabilities[c] for c in names], y=names, orientation="h",
        marker_color=["#d62728" if c == label else "#9aa5b1" for c in names],
        text=[f"{probabilities[c]:.2f}" for c in names], textposition="outside",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    fig.update_layout(height=300, margin={"l": 10, "r": 30, "t": 30, "b": 10}, xaxis={"range": [0, 1.1], "title": "probability"},
                      yaxis={"autorange": "reversed"}, title="Probability over the eight classes")
    return fig


def counts_figure(labels: list[str]):
    """Bar chart: how many pairs got each class."""
    import plotly.graph_objects as go

    names = [*CLASSES, CANNOT_TELL]
    counts = [labels.count(c) for c in names]
    fig = go.Figure(go.Bar(x=names, y=counts, text=counts, textposition="outside",
                           marker_color=["#1f77b4"] * len(CLASSES) + ["#9aa5b1"]))
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis={"title": "pairs"}, title="Pairs per class")
    return fig


def taxonomy_frame(label: str | None = None):
    """The table of docs/design.md §7 (class, CMI, SC, STAT, use case) as a pandas Styler, ``label``'s row highlighted."""
    import pandas as pd

    df = pd.DataFrame([{"class": c, "CMI": m, "SC": s, "STAT": t, "use case": u} for c, m, s, t, u in TABLE]).set_index("class")

    def mark(row: Any) -> list[str]:
        on = row.name == label
        return ["background-color: #ffe08a; font-weight: bold" if on else "" for _ in row]

    return df.style.apply(mark, axis=1)


def phrases_frame(result: dict[str, Any]):
    """One row per concept phrase of the text: grounding probabilities and what the image shows there."""
    import pandas as pd

    rows = []
    for p in result["evidence"]["phrases"]:
        rows.append({
            "phrase": p["phrase"], "read as": p["canonical"],
            "P(depicted)": None if p.get("generic") else round(p["p_depicted"], 3),
            "P(contradicted)": None if p.get("generic") else round(p["p_contradicted"], 3),
            "image shows": "(general statement)" if p.get("generic") else p.get("image_reads"),
        })
    return pd.DataFrame(rows)


def objects_frame(result: dict[str, Any]):
    """One row per object found in the image: what the model reads and which phrase names it."""
    import pandas as pd

    rows = []
    for o in result["evidence"]["image_objects"]:
        pos = o["position"]
        rows.append({"object": o["object"], "model reads": o["reads"], "p": round(o["p"], 3),
                     "position (x, y)": "whole image" if pos is None else f"({pos[0]:.2f}, {pos[1]:.2f})",
                     "named by": o["named_by"] or "—"})
    return pd.DataFrame(rows)


def results_frame(results: list[dict[str, Any]], names: list[str]):
    """The batch table: one row per pair with label, components and the label's probability."""
    import pandas as pd

    return pd.DataFrame([{
        "image": n, "text": r["text"], "label": r["label"], "CMI": r["cmi"], "SC": r["sc"], "STAT": r["stat"],
        "p(label)": round(r["probabilities"][r["label"]], 3) if r["label"] in r["probabilities"] else None,
        "words unread": f"{r['readability']['unknown_share']:.0%}",
        "why cannot tell": "; ".join(r["cannot_tell"]),
        "contradictions": "; ".join(c["detail"] for c in r["evidence"]["contradictions"]),
    } for r, n in zip(results, names, strict=True)])
