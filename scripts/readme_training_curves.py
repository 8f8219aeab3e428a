"""Draw the README's training curves from the shipped replays (``assets/training_curves.png``).

Held-out figures of each shipped preset run (``mmexplore/assets/replays/*/train_log.jsonl``, made by
``scripts/make_replays.py``) against the training step, one line per run. PNG export goes through
kaleido, which needs Chrome or Chromium (``BROWSER_PATH=/usr/bin/chromium``).

    BROWSER_PATH=/usr/bin/chromium .venv/bin/python scripts/readme_training_curves.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PANELS = (("i2t@1", "held-out image→text R@1"), ("color_binding", "colour binding"),
          ("relation_order", "relation order"), ("modality_gap", "modality gap"))


def main() -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from mmexplore.training.runs import SHIPPED_REPLAYS, curves

    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in PANELS], vertical_spacing=0.14)
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
    runs = sorted(p for p in SHIPPED_REPLAYS.iterdir() if (p / "train_log.jsonl").is_file())
    for n, run in enumerate(runs):
        evals = curves(run)["eval"]
        for i, (key, _) in enumerate(PANELS):
            fig.add_trace(go.Scatter(x=[e["step"] for e in evals], y=[e[key] for e in evals], mode="lines+markers",
                                     marker={"size": 4}, line={"color": colours[n % len(colours)]}, name=run.name,
                                     legendgroup=run.name, showlegend=i == 0), row=i // 2 + 1, col=i % 2 + 1)
    fig.update_xaxes(title_text="step (batch 64)", row=2)
    fig.update_layout(width=1000, height=640, margin={"l": 50, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.12}, template="plotly_white")
    out = ROOT / "assets" / "training_curves.png"
    fig.write_image(out, scale=1)
    print(out)


if __name__ == "__main__":
    main()
