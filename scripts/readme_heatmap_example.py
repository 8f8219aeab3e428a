"""Make the README's example heatmap grid (``assets/heatmap_example.png``) from the shipped model.

One row per method (attention, relevancy): the image, one overlay per word of the caption, then the
object phrases. The scene is a held-out sample scene (the same one ``mmexplore samples`` writes), so
the figure can be remade after any retraining:

    .venv/bin/python scripts/readme_heatmap_example.py --model bundled --out assets/heatmap_example.png
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from mmexplore.data.samples import shapes_samples
from mmexplore.data.shapes import canonical_caption
from mmexplore.heatmaps import compute_heatmaps, list_methods, overlay_grid
from mmexplore.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--scene", type=int, default=5, help="sample scene number (1-based, as in `mmexplore samples`)")
    parser.add_argument("--out", default="assets/heatmap_example.png")
    parser.add_argument("--cell", type=int, default=120, help="tile side in pixels")
    args = parser.parse_args()

    samples = shapes_samples(n=args.scene)
    image, scene = samples.images[-1], samples.scenes[-1]
    caption = canonical_caption(scene)
    phrases = [p.text for p in caption.phrases]
    encoder = load_model(args.model, "auto")
    title_h = 18
    rows = []
    for method in list_methods(encoder):
        res = compute_heatmaps(encoder, [image], [caption.text], phrases=[phrases], method=method)[0]
        n_tiles = 1 + len(res.words) + len(phrases)
        grid = overlay_grid(image, res, ncols=n_tiles, cell=args.cell)
        row = Image.new("RGB", (grid.width, grid.height + title_h), (255, 255, 255))
        ImageDraw.Draw(row).text((4, 3), f"{method} · model {args.model} · \"{caption.text}\"", fill=(0, 0, 0))
        row.paste(grid, (0, title_h))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}×{sheet.height}) for {caption.text!r}")


if __name__ == "__main__":
    main()
