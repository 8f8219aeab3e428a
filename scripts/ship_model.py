"""Copy a trained model folder into mmexplore/assets/ with float16 weights (half the size; the loader casts back).

    .venv/bin/python scripts/ship_model.py runs/poison-p0.1 mmexplore/assets/bundled-poison-p0.1

Copies open_clip_config.json and metrics.json unchanged and writes open_clip_model.safetensors in
float16. The shipped figures (mmexplore/assets/robustness/) are measured on the shipped float16 file.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    from safetensors.torch import load_file, save_file

    args.dst.mkdir(parents=True, exist_ok=True)
    for name in ("open_clip_config.json", "metrics.json"):
        shutil.copy(args.src / name, args.dst / name)
    state = load_file(str(args.src / "open_clip_model.safetensors"))
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    save_file(half, str(args.dst / "open_clip_model.safetensors"))
    print(f"{args.dst}: {(args.dst / 'open_clip_model.safetensors').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
