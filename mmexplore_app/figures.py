"""Plotly figures shared by the pages (drawing only: every number comes from the core).

:func:`matrix_heatmap` draws an image × caption matrix with the image thumbnails as a column of
pictures at its left, the captions along the bottom, true pairs outlined and exact values on hover.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

AXIS_CAPTION_CHARS = 30
# Cell values are written only while cells stay wide enough for "0.00" at the narrowest supported
# window (1024 px): at most this many captions.
MAX_COLUMNS_WITH_VALUES = 12
HARD_NEGATIVE_MARK = "✗ "


def short_label(text: str, limit: int = AXIS_CAPTION_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (axis labels; hovers show the full text)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def image_data_uri(image: Any, size: int = 96) -> str:
    """A small PNG of a PIL image as a ``data:`` URI (for Plotly layout images and HTML export)."""
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def matrix_heatmap(
    values: np.ndarray,
    *,
    image_names: Sequence[str],
    texts: Sequence[str],
    pairs: np.ndarray | None = None,
    thumbnails: Sequence[str] | None = None,
    value_label: str = "cosine",
    colorscale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    show_values: bool | None = None,
    title: str | None = None,
    notes: Sequence[str] | None = None,
) -> Any:
    """A heatmap of an (N images × M captions) matrix.

    Parameters
    ----------
    values : ndarray of shape (N, M)
    image_names : sequence of str, length N
        Row labels (and hover).
    texts : sequence of str, length M
        Column labels (shortened on the axis, full in the hover).
    pairs : ndarray of shape (N, M), bool, optional
        True pairs, drawn as black outlines.
    thumbnails : sequence of str, length N, optional
        Image sources (``data:`` URIs, see :func:`image_data_uri`) drawn in a column left of the matrix.
    value_label : str
        Name of the value in the hover and the colour bar.
    colorscale, zmin, zmax : colour mapping (None: the data range).
    show_values : bool, optional
        Write the value in every cell (default: at most :data:`MAX_COLUMNS_WITH_VALUES` captions and
        16 images; smaller cells get none, the hover has the value).
    title : str, optional
    notes : sequence of str, length M, optional
        A note per caption (e.g. "hard negative: relation swap"): in the hover, and hard negatives get
        :data:`HARD_NEGATIVE_MARK` before their axis label and a dotted frame around their column.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    values = np.asarray(values, dtype=float)
    n, m = values.shape
    pairs = np.zeros((n, m), dtype=bool) if pairs is None else np.asarray(pairs, dtype=bool)
    if show_values is None:
        show_values = n <= 16 and m <= MAX_COLUMNS_WITH_VALUES
    notes = list(notes) if notes is not None else [""] * m
    hard = [str(t).startswith("hard negative") for t in notes]
    hover_text = np.array([[" · ".join(x for x in ("✓ true pair" if pairs[i, j] else "", notes[j]) if x)
                            for j in range(m)] for i in range(n)], dtype=object)
    customdata = np.dstack(
        [
            np.broadcast_to(np.array(image_names, dtype=object)[:, None], (n, m)),
            np.broadcast_to(np.array(texts, dtype=object)[None, :], (n, m)),
            hover_text,
        ]
    )
    heat = go.Heatmap(
        z=values,
        x=list(range(m)),
        y=list(range(n)),
        customdata=customdata,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        colorbar={"title": {"text": value_label}},
        hovertemplate=(
            "image: %{customdata[0]}<br>caption: %{customdata[1]}<br>"
            + value_label
            + ": %{z:.4f}<br>%{customdata[2]}<extra></extra>"
        ),
        texttemplate="%{z:.2f}" if show_values else None,
        textfont={"size": 10},
        xgap=1,
        ygap=1,
        name="matrix",
    )
    fig = go.Figure(heat)
    # Thumbnails sit in a pseudo-column left of the matrix, in data coordinates, so they line up with
    # the rows whatever the figure's pixel width.
    thumb_cols = max(1.0, m / 8) if thumbnails else 0.0
    for i, src in enumerate(thumbnails or []):
        fig.add_layout_image(
            source=src,
            x=-0.5 - thumb_cols / 2,
            y=i,
            xref="x",
            yref="y",
            sizex=thumb_cols * 0.95,
            sizey=0.95,
            xanchor="center",
            yanchor="middle",
            sizing="contain",
            layer="above",
        )
    outline = [
        {
            "type": "rect",
            "x0": j - 0.5,
            "x1": j + 0.5,
            "y0": i - 0.5,
            "y1": i + 0.5,
            "line": {"color": "black", "width": 3},
            "fillcolor": "rgba(0,0,0,0)",
            "name": "true pair",
        }
        for i, j in zip(*np.nonzero(pairs), strict=True)
    ] + [
        {
            "type": "rect", "x0": j - 0.5, "x1": j + 0.5, "y0": -0.5, "y1": n - 0.5,
            "line": {"color": "#d62728", "width": 1.5, "dash": "dot"}, "fillcolor": "rgba(0,0,0,0)",
            "name": "hard negative",
        }
        for j in range(m) if hard[j]
    ]
    fig.update_layout(
        shapes=outline,
        title={"text": title} if title else None,
        height=int(min(2400, max(360, 46 * n + 260))),
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        plot_bgcolor="white",
    )
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(m)),
        ticktext=[(HARD_NEGATIVE_MARK if hard[j] else "") + short_label(t) for j, t in enumerate(texts)],
        tickangle=-40,
        automargin=True,
        range=[-0.5 - thumb_cols, m - 0.5],
        showgrid=False,
        zeroline=False,
        title={"text": "captions"},
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(n)),
        ticktext=[short_label(nm, 24) for nm in image_names],
        autorange="reversed",
        showgrid=False,
        zeroline=False,
        title={"text": "images"},
    )
    return fig
