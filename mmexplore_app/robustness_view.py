"""Figures and tables for the Robustness page (Plotly / pandas; no Streamlit calls here)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mmexplore.robustness.evaluate import METRICS

# One colour per model on every chart of the page (Plotly's default sequence, fixed order).
# Tableau's 10, then six more that stay apart from them (every shipped model gets its own colour).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#000000", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#8c6d31")


def model_colors(specs: list[str]) -> dict[str, str]:
    """A stable colour per model spec (by position in ``specs``)."""
    return {s: PALETTE[k % len(PALETTE)] for k, s in enumerate(specs)}


def curve_figure(corruption: str, results: dict[str, dict[str, Any]], metric: str, colors: dict[str, str]):
    """One corruption's chart: ``metric`` against strength, one line per model.

    Each model's clean figure (strength 0) is repeated as a dashed horizontal line of its colour, the
    reference the corrupted points fall from. ``results`` maps a model spec to its ``corruptions`` result.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    label, unit = corruption, ""
    for spec, res in results.items():
        curve = res["curves"].get(corruption)
        if curve is None:
            continue
        label, unit = curve["label"], curve["unit"]
        pts = curve["points"]
        color = colors.get(spec, "#555")
        fig.add_trace(go.Scatter(
            x=[p["strength"] for p in pts], y=[p[metric] for p in pts], mode="lines+markers", name=spec,
            line={"color": color}, legendgroup=spec, customdata=[p["setting"] for p in pts],
            hovertemplate=f"{spec}<br>%{{customdata}}<br>{METRICS[metric]} %{{y:.3f}}<extra></extra>",
        ))
        fig.add_hline(y=res["clean"][metric], line_dash="dot", line_color=color, opacity=0.45, line_width=1)
    fig.update_layout(
        title={"text": f"{label}<br><sup>strength 1 = {unit}; dotted: clean</sup>", "font": {"size": 14}},
        height=300, margin={"l": 10, "r": 10, "t": 60, "b": 10}, showlegend=False,
        xaxis={"title": "strength", "range": [-0.03, 1.03]},
        yaxis={"title": METRICS[metric], "range": [0, 1.04]},
    )
    return fig


def legend_figure(colors: dict[str, str]):
    """A one-line legend of the model colours (the curve charts carry none, to stay readable)."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=[None], y=[None], mode="lines+markers", name=s, line={"color": c}) for s, c in colors.items()])
    # A horizontal legend wraps at three names per line at 1024 px (four at 1400): room for three, so
    # that no name hides behind the legend's scroll bar.
    rows = -(-len(colors) // 3)
    fig.update_layout(height=40 + 26 * rows, margin={"l": 0, "r": 0, "t": 0, "b": 0}, xaxis={"visible": False},
                      yaxis={"visible": False}, plot_bgcolor="rgba(0,0,0,0)",
                      legend={"orientation": "h", "y": 1, "yanchor": "top", "maxheight": 1})
    return fig


def curves_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Every point of every curve: model, corruption, strength, setting and the four metrics."""
    rows = []
    for spec, res in results.items():
        for name, curve in res["curves"].items():
            for p in curve["points"]:
                rows.append({"model": spec, "corruption": name, "strength": p["strength"], "setting": p["setting"],
                             **{METRICS[m]: round(p[m], 3) for m in METRICS}})
    return pd.DataFrame(rows)


def typographic_table(results: dict[str, dict[str, Any]], clean_r1: dict[str, float | None] | None = None) -> pd.DataFrame:
    """One row per model: attack success (all, at the largest text), the clean-image rate, the word map
    on the text, label reading and (when given) clean image→text R@1."""
    rows = []
    for spec, r in results.items():
        hm = r.get("heatmap") or {}
        largest = str(r["sizes"][-1]) if r.get("sizes") else None
        rows.append({
            "model": spec, "attack success": round(r["success"], 3),
            "at the largest text": round(r["by_size"][largest], 3) if largest in r.get("by_size", {}) else float("nan"),
            "without the word": round(r["clean_success"], 3),
            "colour words": round(r["by_attribute"]["color"], 3), "shape words": round(r["by_attribute"]["shape"], 3),
            "word map on the text, attacked": round(hm.get("energy_attacked", float("nan")), 3),
            "same box, clean": round(hm.get("energy_clean", float("nan")), 3),
            "word map on the object, attacked": round(hm.get("energy_object_attacked", float("nan")), 3),
            "reads a label alone": round((r.get("label_reading") or {}).get("accuracy", float("nan")), 3),
            "clean R@1 i2t": round(v, 3) if (v := (clean_r1 or {}).get(spec)) is not None else float("nan"),
            "images": r["n_images"],
        })
    return pd.DataFrame(rows).set_index("model")


WORKING_ATTACK = 0.3  # success at the largest text from which the page calls an attack working ...
WORKING_RATIO = 2.0  # ... when it is also at least this many times the rate without the word


def attack_works(result: dict[str, Any]) -> bool:
    """Whether the written word really wins on a model: at the largest text its success is at least
    :data:`WORKING_ATTACK` and at least :data:`WORKING_RATIO` times the rate without the word (a model
    that confuses the two captions anyway is not fooled by the writing)."""
    big = result["by_size"][str(result["sizes"][-1])]
    return big >= WORKING_ATTACK and big >= WORKING_RATIO * result["clean_success"]


def typographic_summary(results: dict[str, dict[str, Any]], clean_r1: dict[str, float | None],
                        plain: str, reader: str, defence: str) -> str | None:
    """The typographic tab's reading of the shipped figures, with the numbers of ``results`` (markdown).

    None when the plain or the reading model has no result. Whether the attack "works" on a model is
    :func:`attack_works`; the defence sentence appears only when ``defence`` has a result.
    """
    if plain not in results or reader not in results:
        return None

    def big(m: str) -> float:
        r = results[m]
        return r["by_size"][str(r["sizes"][-1])]

    def r1(m: str) -> str:
        v = clean_r1.get(m)
        return "n/a" if v is None else f"{v:.2f}"

    p, r = results[plain], results[reader]
    size = r["sizes"][-1]
    chance = r["label_reading"]["chance"]
    text = (
        f"**{plain}** never saw a letter: the written word wins {p['success']:.0%} of the time ({big(plain):.0%} at "
        f"the largest text; colour words {p['by_attribute']['color']:.0%}, shape words "
        f"{p['by_attribute']['shape']:.0%}) and it reads a label alone {p['label_reading']['accuracy']:.0%} of the "
        f"time (chance {chance:.0%}). **{reader}**, trained on web-like images whose captions follow the writing, "
        f"reads a label alone {r['label_reading']['accuracy']:.0%} of the time; the written word beats the true "
        f"caption on {big(reader):.0%} of the images at the largest text ({size:.0%} of the side), "
        f"{r['success']:.0%} over all sizes and positions (against {r['clean_success']:.0%} without the word)"
    )
    works = attack_works(r)
    text += (": **the attack works**." if works else
             f": **the attack does not work on it** (clean image→text R@1 {r1(reader)}).")
    if defence in results:
        d = results[defence]
        text += (f" **{defence}**, the same recipe and budget with the text-in-image defence (a written word that "
                 f"contradicts the picture is captioned by the picture), is fooled {big(defence):.0%} of the time at "
                 f"that size ({d['success']:.0%} overall, {d['clean_success']:.0%} without the word; it reads a label "
                 f"alone {d['label_reading']['accuracy']:.0%} of the time), with clean image→text R@1 {r1(defence)} "
                 f"against {r1(reader)}.")
    elif works:
        text += " No defence model is shipped."
    maps = {m: results[m]["heatmap"] for m in (plain, reader, defence)
            if m in results and "energy_attacked" in (results[m].get("heatmap") or {})}
    if reader in maps and len(maps) > 1:
        box = maps[reader]["box_area"]
        text += (" The written word's heatmap on the attacked image: share inside the text box "
                 + ", ".join(f"{m} {h['energy_attacked']:.0%}" for m, h in maps.items())
                 + f" (the box is {box:.0%} of the image)")
        on_object = {m: h["energy_object_attacked"] for m, h in maps.items() if "energy_object_attacked" in h}
        if on_object:
            text += ("; on the drawn object " + ", ".join(f"{m} {v:.0%}" for m, v in on_object.items())
                     + f" ({maps[reader]['object_box_area']:.0%} of the image)")
        text += "."
    return text


CORNER_ARROWS = {"top-left": "↖", "top-right": "↗", "bottom-left": "↙", "bottom-right": "↘"}


def grid_figure(result: dict[str, Any], title: str):
    """Attack success per text size (rows) and position (columns)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(
        z=result["grid"], x=[CORNER_ARROWS.get(p, p) for p in result["positions"]],
        y=[f"{s:.0%}" for s in result["sizes"]], customdata=[list(result["positions"])] * len(result["sizes"]),
        zmin=0, zmax=1, colorscale="Reds", text=[[f"{v:.2f}" for v in row] for row in result["grid"]],
        texttemplate="%{text}", hovertemplate="text %{y} of the side, %{customdata}: %{z:.3f}<extra></extra>",
        colorbar={"thickness": 10, "len": 0.9},
    ))
    # Three of these share a row at 1024 px: short tick labels (arrows for the corners), titles say the rest.
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=280,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis={"title": "corner", "type": "category", "tickangle": 0},
                      yaxis={"title": "text height", "type": "category"})
    return fig


def backdoor_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Poison share p, then ASR and clean R@1 of the poisoned and the CleanCLIP model."""
    out = []
    for r in rows:
        pois, clean = r.get("poisoned_result"), r.get("cleaned_result")
        out.append({
            "poison share p": r["p"],
            "ASR poisoned": _get(pois, "asr"), "ASR after CleanCLIP": _get(clean, "asr"),
            "R@1 i2t poisoned": _get(pois, "i2t@1"), "R@1 i2t after": _get(clean, "i2t@1"),
            "R@1 t2i poisoned": _get(pois, "t2i@1"), "R@1 t2i after": _get(clean, "t2i@1"),
            "poisoned model": r["poisoned"], "cleaned model": r.get("cleaned") or "—",
        })
    return pd.DataFrame(out)


def _get(result: dict[str, Any] | None, key: str) -> float | None:
    return None if result is None or result.get(key) is None else round(float(result[key]), 3)


def backdoor_figure(table: pd.DataFrame, reference: dict[str, Any] | None):
    """Grouped bars per p: ASR poisoned vs after CleanCLIP, and clean image→text R@1 of both."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("attack success rate", "clean image→text R@1"))
    x = [f"p = {p:g}" for p in table["poison share p"]]
    for col, (a, b) in enumerate((("ASR poisoned", "ASR after CleanCLIP"), ("R@1 i2t poisoned", "R@1 i2t after")), start=1):
        fig.add_trace(go.Bar(x=x, y=table[a], name="poisoned", marker_color="#d62728", showlegend=col == 1,
                             text=table[a], textposition="outside"), row=1, col=col)
        fig.add_trace(go.Bar(x=x, y=table[b], name="after CleanCLIP", marker_color="#2ca02c", showlegend=col == 1,
                             text=table[b], textposition="outside"), row=1, col=col)
    if reference:
        fig.add_hline(y=reference["asr"], line_dash="dot", row=1, col=1, annotation_text="bundled")
        fig.add_hline(y=reference["i2t@1"], line_dash="dot", row=1, col=2, annotation_text="bundled")
    fig.update_yaxes(range=[0, 1.12])
    fig.update_layout(barmode="group", height=340, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.15})
    return fig
