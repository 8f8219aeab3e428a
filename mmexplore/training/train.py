"""Train a small open_clip model from scratch on the shapes world (``mmexplore train``).

The architecture is an open_clip model config (``mmexplore/models/configs/*.json``, registered with
``open_clip.add_model_config``) built by ``open_clip.create_model_and_transforms``; images go through
that model's own inference transform, so training and inference preprocess identically.

:func:`train` is the one-call form of :class:`~mmexplore.training.trainer.Trainer` (the step-by-step
API the CLI, the Train page and the tests share); the objectives are in
:mod:`mmexplore.training.objectives` (``objective="auto"``: NegCLIP with hard negatives, CLIP
without, the behaviour the shipped models were trained with).

The output folder is a model any open_clip user can load with ``local-dir:``:
``open_clip_config.json`` (model and preprocessing config, plus the compact tokenizer),
``open_clip_model.safetensors`` and ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mmexplore.training.data import NEGATIVE_WEIGHTS, UNK_PREFIXES, Batch, counterfactual_pair, make_batch
from mmexplore.training.trainer import (
    DEFAULT_ARCH,
    Event,
    TrainConfig,
    Trainer,
    WeightedTerm,
    build_model,
    build_tokenizer,
    save_model,
)

__all__ = [
    "DEFAULT_ARCH", "NEGATIVE_WEIGHTS", "UNK_PREFIXES", "Batch", "TrainConfig", "Trainer", "build_model",
    "build_tokenizer", "counterfactual_pair", "human_log", "make_batch", "save_model", "train",
]


def human_log(log: Callable[[str], None], every: int = 25) -> Callable[[Event], None]:
    """A callback that prints step events every ``every`` steps and every eval/end as one line."""
    import json

    def callback(ev: Event) -> None:
        kind = ev.get("event")
        if kind == "step" and (ev["step"] % every == 0 or ev["step"] == 1):
            hard = ev.get("hard_neg_acc")
            log(f"step {ev['step']:5d} loss {ev['loss']:.3f} acc {ev['i2t_acc']:.3f} "
                f"hard {hard if hard is not None else float('nan'):.3f} scale {ev['logit_scale']:.1f} "
                f"lr {ev['lr']:.2e} {ev.get('samples_per_s', 0):.0f} img/s")
        elif kind == "eval":
            figs = {k: ev[k] for k in ("i2t@1", "t2i@1", "color_binding", "relation_order", "modality_gap") if k in ev}
            log(f"eval step {ev['step']}: " + json.dumps(figs))
        elif kind == "end":
            brief = {r: {k: round(v, 3) for k, v in m.items() if not k.startswith("n_")} for r, m in ev["eval"].items()}
            log(f"{ev['status']} at step {ev['step']}: " + json.dumps(brief))

    return callback


def train(
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    callbacks: tuple = (),
    *,
    batch_transform: Callable[[tuple], tuple] | None = None,
    objectives: Sequence[WeightedTerm] = (),
) -> dict[str, Any]:
    """Run training to the end of its budget; returns the metrics dict also written to ``<out>/metrics.json``.

    ``batch_transform`` and ``objectives`` are the robustness lab's hooks (see :class:`Trainer`).
    """
    return Trainer(cfg, callbacks=[human_log(log), *callbacks], batch_transform=batch_transform,
                   objectives=objectives).run()
