"""Figures of the Train page: training curves, the replay animations of the joint map and the matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmexplore_app.figures import short_label

# Held-out figures (eval events) and how the page names them.
EVAL_LABELS = {
    "i2t@1": "image→text R@1", "t2i@1": "text→image R@1", "color_binding": "colour binding",
    "relation_order": "relation order", "modality_gap": "modality gap", "dim_corr": "dimension correlation",
}
# Per-step figures (step events).
STEP_LABELS = {"loss": "loss", "tau": "τ (temperature)", "lr": "learning rate", "samples_per_s": "samples/s",
               "hard_neg_acc": "hard-negative accuracy (batch)"}


def curves_figure(runs: Mapping[str, Sequence[dict[str, Any]]], key: str, label: str, *, x: str = "step",
                  height: int = 260) -> Any:
    """One line per run of ``key`` over ``x`` (events of each run): overlaid curves."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, events in runs.items():
        pts = [(e[x], e[key]) for e in events if e.get(key) is not None and e.get(x) is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name))
    fig.update_layout(title={"text": label, "font": {"size": 13}}, height=height,
                      margin={"l": 40, "r": 10, "t": 36, "b": 30}, xaxis_title=x,
                      legend={"orientation": "h", "y": -0.25}, showlegend=len(runs) > 1)
    return fig


def replay_figure(replay: Any, height: int = 560) -> Any:
    """One animation of a run's replay: the joint map (left) and the probe's similarity matrix (right).

    Left: probe images (●), their captions (◆) and hard negatives (✕) on one PCA fitted to all
    snapshots together (``Replay.projection``), so the axes stay put and what moves is the
    embeddings; a grey line joins each image to its caption. Right: the image × caption cosine
    matrix (caption j belongs to image j), on a colour range fixed over the run, so the diagonal can
    be seen appearing. One slider and one ▶ button drive both.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    coords = replay.projection()  # (S, 2k + m, 2)
    k = replay.image.shape[1]
    caps = [short_label(c, 40) for c in replay.captions]
    negs = [f"{short_label(n['text'], 40)} ({n['kind']})" for n in replay.negatives]
    sims = replay.similarity()[:, :, :k]
    vmin, vmax = float(sims.min()), float(sims.max())
    gaps = replay.gaps()
    lo, hi = coords.reshape(-1, 2).min(0), coords.reshape(-1, 2).max(0)
    pad = 0.08 * (hi - lo + 1e-6)
    hover_caps = np.broadcast_to(np.array(caps, dtype=object), (k, k))

    def traces(s: int) -> list[Any]:
        c = coords[s]
        img, cap, neg = c[:k], c[k:2 * k], c[2 * k:]
        lx = np.column_stack([img[:, 0], cap[:, 0], np.full(k, np.nan)]).ravel()
        ly = np.column_stack([img[:, 1], cap[:, 1], np.full(k, np.nan)]).ravel()
        return [
            go.Scatter(x=lx, y=ly, mode="lines", line={"color": "rgba(120,120,120,0.5)", "width": 1},
                       hoverinfo="skip", showlegend=False),
            go.Scatter(x=img[:, 0], y=img[:, 1], mode="markers", marker={"size": 10, "color": "#1f77b4"},
                       text=[f"image {i + 1}: {caps[i]}" for i in range(k)], hoverinfo="text", name="images"),
            go.Scatter(x=cap[:, 0], y=cap[:, 1], mode="markers",
                       marker={"size": 10, "symbol": "diamond", "color": "#ff7f0e"},
                       text=caps, hoverinfo="text", name="captions"),
            go.Scatter(x=neg[:, 0], y=neg[:, 1], mode="markers",
                       marker={"size": 7, "symbol": "x", "color": "#d62728", "opacity": 0.6},
                       text=negs, hoverinfo="text", name="hard negatives"),
            go.Heatmap(z=sims[s], x=[f"c{j + 1}" for j in range(k)], y=[f"i{i + 1}" for i in range(k)],
                       zmin=vmin, zmax=vmax, customdata=hover_caps, colorscale="Viridis",
                       colorbar={"title": {"text": "cosine"}, "len": 0.8},
                       hovertemplate="image %{y} · caption %{x}: %{customdata}<br>cosine %{z:.3f}<extra></extra>"),
        ]

    def title(s: int) -> str:
        return f"step {int(replay.steps[s])} · modality gap {gaps[s]:.2f} · τ {1 / replay.logit_scale[s]:.3f}"

    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
                        subplot_titles=("joint map (PCA)", "image × caption cosine"))
    for t in traces(0):
        fig.add_trace(t, row=1, col=2 if isinstance(t, go.Heatmap) else 1)
    fig.frames = [go.Frame(data=traces(s), traces=list(range(5)), name=str(int(step)),
                           layout={"title": {"text": title(s)}})
                  for s, step in enumerate(replay.steps)]
    fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]], title_text="PC 1", row=1, col=1)
    fig.update_yaxes(range=[lo[1] - pad[1], hi[1] + pad[1]], title_text="PC 2", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_xaxes(tickfont={"size": 9}, row=1, col=2)
    fig.update_layout(height=height, margin={"l": 30, "r": 10, "t": 80, "b": 110},
                      title={"text": title(0), "x": 0.01, "y": 0.98},
                      legend={"orientation": "h", "y": -0.12, "yanchor": "top", "x": 0.0},
                      **_animation_controls(replay.steps))
    return fig


def _animation_controls(steps: Sequence[int]) -> dict[str, Any]:
    names = [str(int(s)) for s in steps]
    play = {"label": "▶ play", "method": "animate",
            "args": [None, {"frame": {"duration": 350, "redraw": True}, "fromcurrent": True,
                            "transition": {"duration": 150}}]}
    pause = {"label": "❚❚", "method": "animate",
             "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}]}
    return {
        "updatemenus": [{"type": "buttons", "buttons": [play, pause], "x": 0, "y": -0.2, "xanchor": "left",
                         "yanchor": "top", "direction": "left", "pad": {"t": 10, "r": 10}}],
        "sliders": [{"active": 0, "x": 0.24, "len": 0.76, "y": -0.2, "yanchor": "top", "pad": {"t": 0},
                     "currentvalue": {"prefix": "step "},
                     "steps": [{"label": n, "method": "animate",
                                "args": [[n], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}]}
                               for n in names]}],
    }
