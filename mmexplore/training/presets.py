"""Named starting points for a run (the Train page's presets, ``mmexplore train --preset``).

Each preset is a set of :class:`~mmexplore.training.trainer.TrainConfig` fields on top of
:data:`QUICK`, the settings sized so that a 2-minute run of the smallest model visibly learns on
two CPU cores (held-out R@1 well above the 1/100 of chance; see README, *Training lab*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named recipe: ``fields`` override :data:`QUICK`."""

    name: str
    label: str
    description: str
    fields: dict[str, Any] = field(default_factory=dict)


# A short CPU run: the small model, 64 px renders (its input is 32 px), a high learning rate with a
# short warm-up, held-out figures and a replay snapshot every 25 steps.
QUICK: dict[str, Any] = {
    "arch": "mmexplore-shapes-xs", "batch_size": 64, "lr": 2e-3, "warmup_steps": 20, "render_size": 64,
    "minutes": 2.0, "steps": 1_000_000, "eval_every": 25, "probe_scenes": 100, "eval_scenes": 100,
    "snapshot_every": 25, "snapshot_scenes": 12,
}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("clip", "Plain CLIP", "symmetric InfoNCE, learned τ, no hard negatives",
           {"objective": "clip", "negatives": 0}),
    Preset("negclip", "NegCLIP", "InfoNCE + one hard-negative caption per image (all kinds) and 25 % "
           "counterfactual image twins", {"objective": "negclip", "negatives": 1, "pair_fraction": 0.25}),
    Preset("multi-positive", "Multi-positive", "two true captions per image, each its own target",
           {"objective": "multi-positive", "negatives": 0, "positives": 2}),
    Preset("sigmoid", "Sigmoid (SigLIP)", "pairwise sigmoid loss with learned scale and bias, one hard "
           "negative per image", {"objective": "sigmoid", "negatives": 1}),
)}


def preset_config(preset: str, /, **overrides: Any):
    """A :class:`TrainConfig` from :data:`QUICK`, the preset's fields and ``overrides``."""
    from mmexplore.errors import InputError
    from mmexplore.training.trainer import TrainConfig

    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**QUICK, **PRESETS[preset].fields, **overrides})
