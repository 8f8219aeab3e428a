"""Model spec strings (docs/design.md §2), parsed in one place.

A model is named by one string, the same in the app, the CLI and the API:

- ``bundled`` — the project's shapes-world model in ``mmexplore/assets/bundled`` (the default);
  ``bundled-<variant>`` another shipped variant in ``mmexplore/assets/bundled-<variant>`` (e.g. ``bundled-noneg``);
- ``ARCH:TAG`` — an open_clip architecture and pretrained tag, e.g. ``ViT-B-32:laion2b_s34b_b79k``;
  ``ARCH:random`` builds the architecture with random weights (benchmarks, tests);
- ``ARCH:/path/to/weights.safetensors`` (or ``.bin``/``.pt``/``.pth``) — a local weights file;
- ``hf-hub:org/name`` — an open_clip model on the Hugging Face hub;
- ``local-dir:/path`` — a folder holding ``open_clip_config.json`` and weights (as ``bundled``);
- ``run:NAME`` — a training run in the runs folder (``MMEXPLORE_RUNS_DIR``), loaded as its local-dir.

>>> parse_spec("bundled").kind
'bundled'
>>> s = parse_spec("ViT-B-32:laion2b_s34b_b79k"); (s.kind, s.arch, s.tag)
('pretrained', 'ViT-B-32', 'laion2b_s34b_b79k')
>>> parse_spec("ViT-B-32:/tmp/w.safetensors").kind
'file'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmexplore.errors import ModelLoadError
from mmexplore.settings import get_settings

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# The shipped models live in the settings' assets folder (package data: mmexplore/assets/).
BUNDLED_DIR = get_settings().assets_dir / "bundled"


# The order family (the bag-of-words lesson and its fix, README "Order-sensitive models"): one
# architecture size, one training budget, three recipes. spec -> what it is (sidebar and Probes page).
ORDER_FAMILY: dict[str, str] = {
    "bundled-order-clip": "plain CLIP (no hard negatives)",
    "bundled-order-negclip": "NegCLIP (hard negatives, counterfactual twins)",
    "bundled-order-layout": "NegCLIP + layout readout (image and text embeddings both predict where each "
                            "colour, shape and size lies)",
}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    Attributes
    ----------
    text : str
        The spec as given (stripped); the cache key of loaded models.
    kind : {"bundled", "pretrained", "random", "file", "hf-hub", "local-dir"}
    arch : str
        open_clip architecture name ("" for hf-hub and local-dir kinds).
    tag : str
        Pretrained tag (kind "pretrained"), or "".
    path : Path or None
        Weights file (kind "file") or folder (kinds "bundled", "local-dir").
    repo : str
        Hub repository "org/name" (kind "hf-hub"), or "".
    """

    text: str
    kind: str
    arch: str = ""
    tag: str = ""
    path: Path | None = None
    repo: str = ""


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string; raise :class:`ModelLoadError` naming the spec when malformed."""
    text = (spec or "").strip()
    if not text:
        raise ModelLoadError("empty model spec: use 'bundled', 'ARCH:TAG', 'ARCH:/path/weights' or 'hf-hub:org/name'")
    if text == "bundled" or text.startswith("bundled-"):
        # "bundled" is the default model; "bundled-<variant>" names another model shipped in mmexplore/assets/.
        return ModelSpec(text, "bundled", path=BUNDLED_DIR.parent / text)
    if text.startswith("hf-hub:"):
        repo = text[len("hf-hub:"):].strip("/")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise ModelLoadError(f"model spec '{text}': expected 'hf-hub:org/name'")
        return ModelSpec(text, "hf-hub", repo=repo)
    if text.startswith("run:"):
        name = text[len("run:"):].strip()
        # A name, never a path: runs are only read from the runs folder (shared servers included).
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ModelLoadError(f"model spec '{text}': expected 'run:NAME' (a run in the runs folder)")
        from mmexplore.settings import get_settings

        return ModelSpec(text, "local-dir", path=get_settings().runs_dir / name)
    if text.startswith("local-dir:"):
        return ModelSpec(text, "local-dir", path=Path(text[len("local-dir:"):]).expanduser())
    if ":" not in text and (text.startswith(("/", "./", "../", "~")) or text.lower().endswith(WEIGHT_SUFFIXES)
                            or "/" in text or "\\" in text):
        raise ModelLoadError(
            f"model spec '{text}' is a path: a local file needs its architecture too, 'ARCH:/path/to/weights' "
            "(e.g. 'ViT-B-32:/models/clip.safetensors'), or 'local-dir:/path' for a folder saved by mmexplore"
        )
    if ":" not in text:
        raise ModelLoadError(
            f"model spec '{text}' names no weights: use '{text}:TAG' (a pretrained tag), "
            f"'{text}:/path/to/weights.safetensors' or '{text}:random'"
        )
    arch, rest = text.split(":", 1)
    arch, rest = arch.strip(), rest.strip()
    if not arch or not rest:
        raise ModelLoadError(f"model spec '{text}': expected 'ARCH:TAG' or 'ARCH:/path/to/weights'")
    looks_like_path = rest.startswith(("/", "./", "../", "~")) or rest.lower().endswith(WEIGHT_SUFFIXES)
    if looks_like_path:
        path = Path(rest).expanduser()
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ModelLoadError(
                f"model spec '{text}': weights file must end in one of {', '.join(WEIGHT_SUFFIXES)}"
            )
        return ModelSpec(text, "file", arch=arch, path=path)
    if rest == "random":
        return ModelSpec(text, "random", arch=arch, tag=rest)
    return ModelSpec(text, "pretrained", arch=arch, tag=rest)
