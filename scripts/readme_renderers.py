"""Make the README's renderer comparison (``assets/screenshots/renderers.png``): held-out scenes drawn
by every registered renderer side by side (one row per scene, one column per renderer, each in its
evaluation style: seeded by the scene, the renderer's own canvas size, shown at one tile size).

    .venv/bin/python scripts/readme_renderers.py --out assets/screenshots/renderers.png
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from mmexplore.data.renderers import RENDERERS, draw_scene
from mmexplore.data.shapes import canonical_caption
from mmexplore.probes.evaluate import compositional_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets/screenshots/renderers.png")
    parser.add_argument("--scenes", type=int, nargs="+", default=[1, 2, 6],
                        help="indices into eval compositional's held-out scenes")
    parser.add_argument("--cell", type=int, default=180, help="tile side in pixels")
    args = parser.parse_args()

    all_scenes = compositional_scenes(max(args.scenes) + 1)
    names = list(RENDERERS)
    head, foot, pad = 22, 20, 8
    width = len(names) * (args.cell + pad) + pad
    height = head + len(args.scenes) * (args.cell + foot + pad)
    sheet = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(sheet)
    for c, name in enumerate(names):
        pen.text((pad + c * (args.cell + pad), 5), name, fill="black")
    for r, k in enumerate(args.scenes):
        scene = all_scenes[k]
        y = head + r * (args.cell + foot + pad)
        for c, name in enumerate(names):
            tile = draw_scene(scene, name).resize((args.cell, args.cell), Image.Resampling.LANCZOS)
            sheet.paste(tile, (pad + c * (args.cell + pad), y))
        pen.text((pad, y + args.cell + 4), canonical_caption(scene).text, fill="black")
    # 256 colours: a third of the bytes, no visible change at this size (paper grain compresses badly).
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({width} x {height})")


if __name__ == "__main__":
    main()
