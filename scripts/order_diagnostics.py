"""Where does relation order get lost? Three checks of a shapes-world model (README, *Order-sensitive models*).

    .venv/bin/python scripts/order_diagnostics.py bundled bundled-order-clip
    .venv/bin/python scripts/order_diagnostics.py --supervised mmexplore-shapes-o64-sincos-avg --steps 300

1. **Text tower**: the mean cosine between a caption and its object-order swap ("A left of B" /
   "B left of A") and its relation-word flip ("A right of B"), and the model's accuracy on each
   (the image scores its true caption higher), on 150 held-out two-object scenes.
2. **Image tower**: a logistic-regression probe (5-fold) on 600 held-out two-object scenes with a
   horizontal relation, label "the object whose colour comes first in red, green, blue, yellow is the
   left one": on the pooled image embedding, and on the last block's patch tokens (flattened).
3. ``--supervised ARCH``: the untrained vision tower of ARCH with a linear head, trained on that label
   directly (batch 64, AdamW 1e-3): can the architecture see order at all, given the signal?
"""

from __future__ import annotations

import argparse
import random

import numpy as np

COLOURS = ("red", "green", "blue", "yellow")


def _order_scenes(n: int, start: int):
    """``n`` two-object scenes with a horizontal relation and two colours, and their labels."""
    from mmexplore.data.shapes import make_scene

    scenes, labels, seed = [], [], start
    while len(scenes) < n:
        seed += 1
        s = make_scene(seed, n_objects=2)
        a, b = s.objects
        if a.color == b.color or abs(a.cx - b.cx) < 1.4 * abs(a.cy - b.cy):
            continue
        first, other = (a, b) if COLOURS.index(a.color) < COLOURS.index(b.color) else (b, a)
        scenes.append(s)
        labels.append(int(first.cx < other.cx))
    return scenes, np.array(labels)


def check_model(spec: str) -> dict[str, float]:
    """Text-tower cosines and accuracies, and the image-tower probes, of one model."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from mmexplore.data.shapes import HELD_OUT_SEED_START, canonical_caption, hard_negative, make_scene, render_scene
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    out: dict[str, float] = {}
    scenes = [make_scene(HELD_OUT_SEED_START + 700_000 + i, n_objects=2) for i in range(150)]
    caps = [canonical_caption(s) for s in scenes]
    img = enc.encode_images([render_scene(s, 128) for s in scenes])
    for kind in ("relation_swap", "relation_word", "color_swap"):
        pairs = [(k, n.text) for k, c in enumerate(caps) if (n := hard_negative(c, kind, random.Random(0)))]
        idx = [k for k, _ in pairs]
        t, tn = enc.encode_texts([caps[k].text for k in idx]), enc.encode_texts([n for _, n in pairs])
        out[f"{kind} text cos"] = float((t * tn).sum(1).mean())
        out[f"{kind} acc"] = float(((img[idx] * t).sum(1) > (img[idx] * tn).sum(1)).mean())
    probe_scenes, y = _order_scenes(600, HELD_OUT_SEED_START + 5_000_000)
    images = [render_scene(s, 128) for s in probe_scenes]
    pooled = enc.encode_images(images)
    out["pooled probe"] = float(cross_val_score(LogisticRegression(max_iter=2000), pooled, y, cv=5).mean())
    visual = enc.model.visual
    if hasattr(visual, "output_tokens"):
        visual.output_tokens = True
        with torch.no_grad():
            _, tokens = visual(torch.stack([enc.preprocess(im) for im in images]).to(next(visual.parameters()).dtype))
        visual.output_tokens = False
        flat = tokens.float().reshape(len(images), -1).numpy()
        out["patch-token probe"] = float(cross_val_score(LogisticRegression(C=0.1, max_iter=3000), flat, y, cv=5).mean())
    return out


def supervised(arch: str, steps: int) -> list[tuple[int, float]]:
    """Held-out accuracy every 100 steps of ARCH's vision tower trained on the order label directly."""
    import torch

    from mmexplore.data.shapes import render_scene
    from mmexplore.training.trainer import build_model, build_tokenizer

    torch.manual_seed(0)
    model, preprocess, _ = build_model(arch, build_tokenizer().vocab_size, "cpu")
    visual = model.visual
    head = torch.nn.Linear(visual.output_dim, 1)
    opt = torch.optim.AdamW([*visual.parameters(), *head.parameters()], lr=1e-3)
    test_scenes, test_y = _order_scenes(300, 10_000_000)
    test_x = torch.stack([preprocess(render_scene(s, 64)) for s in test_scenes])
    curve = []
    for step in range(1, steps + 1):
        scenes, y = _order_scenes(64, step * 1000)
        x = torch.stack([preprocess(render_scene(s, 64)) for s in scenes])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(visual(x)).squeeze(1), torch.tensor(y).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                acc = float(((head(visual(test_x)).squeeze(1) > 0).long().numpy() == test_y).mean())
            curve.append((step, acc))
            print(f"{arch} step {step}: held-out accuracy {acc:.3f}", flush=True)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model specs to check (e.g. bundled bundled-order-clip)")
    parser.add_argument("--supervised", metavar="ARCH", help="train ARCH's vision tower on the order label")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    for spec in args.models:
        figures = check_model(spec)
        print(spec + ": " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    if args.supervised:
        supervised(args.supervised, args.steps)


if __name__ == "__main__":
    main()
