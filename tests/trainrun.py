"""A small training run's config for the trainer tests (imported by the test modules, like ``clirun``)."""

from __future__ import annotations

from typing import Any

from mmexplore.training.trainer import TrainConfig

# What the auxiliary-term tests (layout, reading) share: the smallest arch, hard negatives, small evals.
SMALL_RUN = dict(arch="mmexplore-shapes-xs", lr=2e-3, warmup_steps=2, negatives=1, seed=5, eval_scenes=8, probe_scenes=8)


def small_run_config(out: Any, **kw: Any) -> TrainConfig:
    """``TrainConfig`` of :data:`SMALL_RUN` writing to ``out``, with ``kw`` on top (steps, batch size, the term's weight...)."""
    return TrainConfig(**{**SMALL_RUN, "out": str(out), **kw})
