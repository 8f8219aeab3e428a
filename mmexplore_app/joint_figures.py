"""Plotly figures of the joint-space and CCA pages (drawing only: every number comes from the core).

Big maps stay interactive by drawing at most ``max_points`` markers (a pair-preserving sample, WebGL
``Scattergl``), optionally over a density image of *all* points; the caller tells the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmexplore.projection import JointProjection
from mmexplore.projection.joint import density_grid
from mmexplore_app.figures import short_label

COLORS = {"image": "#1f77b4", "text": "#d62728"}
MAX_LINES = 3000
THUMBS_MAX = 40


def joint_scatter(
    res: JointProjection,
    image_labels: Sequence[str],
    text_labels: Sequence[str],
    *,
    max_points: int = 5000,
    show_lines: bool = True,
    density: bool = False,
    thumbnails: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, int]]:
    """Scatter of a :class:`JointProjection`, coloured by modality, true pairs joined by lines.

    Returns the figure and counts ``{"points", "projected", "drawn", "lines", "density"}``: all points
    of the data, those the method placed (UMAP/t-SNE fit a sample of large sets), those drawn, pair
    lines drawn, and whether a density layer of the projected points was drawn.
    ``thumbnails`` (data URIs per image) are drawn at the image points when there are few (2-D only).
    """
    import plotly.graph_objects as go

    k, dims = res.points.shape
    sel = np.arange(k)
    if k > max_points:
        # Keep whole pairs in the drawn sample (the projection's own rows may already be a sample).
        rng = np.random.default_rng(seed)
        take = res.pair_lines[rng.permutation(len(res.pair_lines))[: max_points // 2]]
        sel = np.unique(take.ravel())
        if len(sel) < max_points // 2:
            sel = np.unique(np.concatenate([sel, rng.choice(k, size=max_points - len(sel), replace=False)]))
    drawn = np.zeros(k, dtype=bool)
    drawn[sel] = True
    is_text, idx = res.is_text, res.item_index
    fig = go.Figure()
    scatter = go.Scattergl if dims == 2 else go.Scatter3d
    if density and dims == 2 and k > max_points:
        grid = density_grid(res.points, is_text, bins=160)
        xc = (grid["x_edges"][:-1] + grid["x_edges"][1:]) / 2
        yc = (grid["y_edges"][:-1] + grid["y_edges"][1:]) / 2
        for name, scale in (("image", "Blues"), ("text", "Reds")):
            z = np.log1p(grid[name])
            z[z == 0] = np.nan
            fig.add_trace(go.Heatmap(x=xc, y=yc, z=z, colorscale=scale, showscale=False, opacity=0.55,
                                     name=f"{name} density (all points)", hoverinfo="skip"))
    lines = res.pair_lines[drawn[res.pair_lines[:, 0]] & drawn[res.pair_lines[:, 1]]] if show_lines else np.zeros((0, 2), int)
    lines = lines[:MAX_LINES]
    if len(lines):
        segs = np.full((len(lines) * 3, dims), np.nan)
        segs[0::3] = res.points[lines[:, 0]]
        segs[1::3] = res.points[lines[:, 1]]
        coords = {a: segs[:, i] for i, a in enumerate("xyz"[:dims])}
        fig.add_trace(scatter(**coords, mode="lines", line={"color": "rgba(90,90,90,0.35)", "width": 1},
                              name="true pairs", hoverinfo="skip"))
    for name, mask, labels in (("image", ~is_text, image_labels), ("text", is_text, text_labels)):
        rows = np.flatnonzero(mask & drawn)
        hover = [short_label(labels[i], 90) for i in idx[rows]]
        coords = {a: res.points[rows, i] for i, a in enumerate("xyz"[:dims])}
        fig.add_trace(scatter(
            **coords, mode="markers", name=f"{name}s", text=hover, customdata=idx[rows],
            marker={"color": COLORS[name], "size": 7 if len(sel) < 2000 else 4, "opacity": 0.85,
                    "symbol": "circle" if name == "image" else "diamond"},
            hovertemplate=f"<b>{name} %{{customdata}}</b><br>%{{text}}<extra></extra>",
        ))
    if thumbnails is not None and dims == 2 and (~is_text).sum() <= THUMBS_MAX:
        span = np.ptp(res.points, axis=0).max() or 1.0
        for row in np.flatnonzero(~is_text):
            x, y = res.points[row]
            fig.add_layout_image(source=thumbnails[idx[row]], x=x, y=y, xref="x", yref="y", sizex=span * 0.12,
                                 sizey=span * 0.12, xanchor="center", yanchor="middle", layer="above", opacity=0.9)
    total = res.n_images + res.n_texts
    title = f"{res.method.upper()} of {res.n_images:,} images and {res.n_texts:,} texts"
    if k < total:  # the method placed a sample only: say so where the numbers are read
        title = f"{res.method.upper()} of a {k:,}-point sample of {res.n_images:,} images and {res.n_texts:,} texts"
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"}, title=title)
    if dims == 2:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    drew_density = bool(density and dims == 2 and k > max_points)
    return fig, {"points": int(total), "projected": int(k), "drawn": len(sel), "lines": len(lines), "density": drew_density}


def joint_scatter_all(res: JointProjection, selected: dict[str, set[int]] | None = None) -> tuple[Any, dict[str, int]]:
    """Every projected point of a 2-D map (WebGL ``Scattergl``, 1M points), the pairs of a selection joined.

    Coordinates go to the browser as float32 typed arrays and the item index as int32 ``customdata``
    (no per-point label strings: hover names the item, the selection panel shows its caption), so a
    million points cost about 12 MB. ``selected`` maps ``"images"`` / ``"texts"`` to the item indices
    chosen on the map; the true pairs touching them are drawn as lines (at most ``MAX_LINES``).

    Returns the figure and counts as :func:`joint_scatter`'s.
    """
    import plotly.graph_objects as go

    k = len(res.points)
    is_text, idx = res.is_text, res.item_index
    pts = np.asarray(res.points, dtype=np.float32)
    fig = go.Figure()
    lines = np.zeros((0, 2), dtype=np.int64)
    if selected and any(selected.values()):
        rows = np.zeros(k, dtype=bool)
        for name, flag in (("images", False), ("texts", True)):
            chosen = np.fromiter(selected.get(name, ()), dtype=np.int64)
            if len(chosen):
                rows |= (is_text == flag) & np.isin(idx, chosen)
        lines = res.pair_lines[rows[res.pair_lines[:, 0]] | rows[res.pair_lines[:, 1]]][:MAX_LINES]
    for name, mask in (("image", ~is_text), ("text", is_text)):
        r = np.flatnonzero(mask)
        fig.add_trace(go.Scattergl(
            x=pts[r, 0], y=pts[r, 1], mode="markers", name=f"{name}s", customdata=idx[r].astype(np.int32),
            marker={"color": COLORS[name], "size": 3 if k > 100_000 else 4, "opacity": 0.6,
                    "symbol": "circle" if name == "image" else "diamond"},
            hovertemplate=f"<b>{name} %{{customdata}}</b><extra></extra>",
        ))
    if len(lines):
        segs = np.full((len(lines) * 3, 2), np.nan, dtype=np.float32)
        segs[0::3], segs[1::3] = pts[lines[:, 0]], pts[lines[:, 1]]
        fig.add_trace(go.Scattergl(x=segs[:, 0], y=segs[:, 1], mode="lines", name="pairs of the selection",
                                   line={"color": "rgba(20,20,20,0.8)", "width": 1.5}, hoverinfo="skip"))
    total = res.n_images + res.n_texts
    title = (f"{res.method.upper()} of all {res.n_images:,} images and {res.n_texts:,} texts" if k == total else
             f"{res.method.upper()} of a {k:,}-point sample of {res.n_images:,} images and {res.n_texts:,} texts")
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"},
                      title=title, uirevision="keep-zoom")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig, {"points": int(total), "projected": int(k), "drawn": int(k), "lines": len(lines), "density": False}


def gap_figure(res: JointProjection) -> Any:
    """Bars: true-pair vs random-pair mean cosine, as given and as projected (after centring/shift)."""
    import plotly.graph_objects as go

    cats = ["true pairs", "random pairs"]
    fig = go.Figure()
    # Value labels sit inside the bars (horizontal, shrunk to fit): outside, two grouped bars' labels
    # collided in a narrow column.
    style = {"textposition": "inside", "insidetextanchor": "end", "textangle": 0, "cliponaxis": False}
    fig.add_bar(x=cats, y=[res.gap_raw.pair_cosine, res.gap_raw.random_cosine], name="as given",
                marker_color="#7f7f7f", text=[f"{v:.2f}" for v in (res.gap_raw.pair_cosine, res.gap_raw.random_cosine)],
                **style)
    if res.centered or res.shift:
        fig.add_bar(x=cats, y=[res.gap.pair_cosine, res.gap.random_cosine], name="centred/shifted",
                    marker_color="#2ca02c", text=[f"{v:.2f}" for v in (res.gap.pair_cosine, res.gap.random_cosine)],
                    **style)
    fig.update_layout(height=300, barmode="group", yaxis_title="mean cosine", margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="cosine of true vs random pairs", legend={"orientation": "h"},
                      uniformtext={"minsize": 8, "mode": "hide"})
    return fig


def correlation_bars(correlations: np.ndarray, top_k: int | None = None) -> Any:
    """Bar chart of canonical correlations, the first ``top_k`` highlighted."""
    import plotly.graph_objects as go

    c = np.asarray(correlations, float)
    colors = ["#1f77b4" if top_k is None or i < top_k else "#c7c7c7" for i in range(len(c))]
    fig = go.Figure(go.Bar(x=np.arange(1, len(c) + 1), y=c, marker_color=colors,
                           hovertemplate="component %{x}<br>ρ = %{y:.4f}<extra></extra>"))
    fig.update_layout(height=320, xaxis_title="canonical component", yaxis_title="canonical correlation ρ",
                      yaxis_range=[0, 1.02], margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="canonical correlations")
    return fig


def recall_figure(ks: Sequence[int], i2t: Sequence[float], t2i: Sequence[float], raw: float, top_k: int | None = None) -> Any:
    """R@1 against the number of canonical components, both directions, raw cosine as a dashed line.

    The y range runs to 1.05 so that a line at R@1 = 1.0 is drawn whole, not cut by the frame.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(ks), y=list(i2t), mode="lines+markers", name="CCA image → text",
                             hovertemplate="k = %{x}<br>R@1 %{y:.3f}<extra>image → text</extra>"))
    fig.add_trace(go.Scatter(x=list(ks), y=list(t2i), mode="lines+markers", name="CCA text → image",
                             line={"dash": "dot"}, hovertemplate="k = %{x}<br>R@1 %{y:.3f}<extra>text → image</extra>"))
    fig.add_hline(y=raw, line_dash="dash", line_color="#7f7f7f", annotation_text=f"raw cosine {raw:.3f}",
                  annotation_position="bottom right")
    if top_k is not None:
        fig.add_vline(x=top_k, line_color="#c7c7c7")
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis={"range": [0, 1.05], "title": "R@1"},
                      xaxis={"type": "log", "title": "components k", "tickvals": list(ks)},
                      legend={"orientation": "h", "y": -0.35})
    return fig


def canonical_scatter(tx: np.ndarray, ty: np.ndarray, image_labels: Sequence[str], text_labels: Sequence[str],
                      *, max_pairs: int = 2000, seed: int = 0) -> tuple[Any, int]:
    """Pairs on the first two canonical directions: image and text variates joined by a line."""
    import plotly.graph_objects as go

    n = len(tx)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:max_pairs]) if n > max_pairs else np.arange(n)
    a, b = tx[rows, :2], ty[rows, :2]
    if a.shape[1] == 1:
        a, b = np.hstack([a, np.zeros_like(a)]), np.hstack([b, np.zeros_like(b)])
    segs = np.full((len(rows) * 3, 2), np.nan)
    segs[0::3], segs[1::3] = a, b
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=segs[:, 0], y=segs[:, 1], mode="lines", line={"color": "rgba(90,90,90,0.35)", "width": 1},
                               name="pairs", hoverinfo="skip"))
    for name, pts, labels in (("image", a, image_labels), ("text", b, text_labels)):
        fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"{name}s",
                                   marker={"color": COLORS[name], "size": 7 if len(rows) < 500 else 4},
                                   text=[short_label(labels[r], 90) for r in rows],
                                   hovertemplate=f"<b>{name}</b><br>%{{text}}<extra></extra>"))
    fig.update_layout(height=480, xaxis_title="canonical direction 1", yaxis_title="canonical direction 2",
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"},
                      title="pairs in the canonical space (first two directions)")
    return fig, len(rows)
