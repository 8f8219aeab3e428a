"""The trainer: one open_clip model, one objective, step by step, reporting events to callbacks.

>>> cfg = TrainConfig(out="runs/demo", arch="mmexplore-shapes-xs", objective="negclip", steps=200)
>>> trainer = Trainer(cfg, callbacks=[print])          # doctest: +SKIP
>>> metrics = trainer.run()                            # doctest: +SKIP

**Events** (plain JSON-able dicts, also appended to ``<out>/train_log.jsonl``), each with
``"event"`` and ``"step"``:

- ``start``: ``config``, ``device``, ``params``, ``resumed`` (bool);
- ``step``: ``loss``, ``terms`` (every loss term by name: ``i2t``, ``t2i``, ``pos``, ``neg``, the
  regulariser, ``dense``, extra terms), ``i2t_acc`` (batch), ``hard_neg_acc`` (batch, None without
  negatives), ``logit_scale`` (s = 1/τ), ``tau``, ``logit_bias`` (None unless learned), ``lr``,
  ``samples_per_s``, ``elapsed_s``;
- ``eval`` (every ``eval_every`` steps, on the held-out probe): ``i2t@1``, ``t2i@1``, ``i2t@5``,
  ``t2i@5``, ``color_binding``, ``relation_order``, ``shape_change``, ``size_swap``,
  ``count_change``, ``modality_gap``, ``dim_corr``, ``elapsed_s``; ``snapshot`` names the replay
  file written at the same step (``snapshot_every``);
- ``checkpoint``: the model folder and optimizer state were written (``path``);
- ``end``: ``status`` (``finished`` or ``stopped``), ``eval`` (final retrieval on every renderer),
  ``wall_s``.

**A run folder** is a model any open_clip user can load (``local-dir:``; ``run:NAME`` in mmexplore):
``open_clip_config.json``, ``open_clip_model.safetensors``, ``metrics.json``, plus ``run.json``
(status and config), ``train_log.jsonl`` (events), ``checkpoint/`` (``optimizer.safetensors`` and
``state.json``: what :meth:`Trainer.resume` needs) and ``snapshots/`` (see
:mod:`mmexplore.training.probeset`). Nothing is pickled.

**Reuse.** ``data`` replaces the shapes stream with any callable ``(step) -> Batch``;
``extra_losses`` adds terms: callables ``(StepContext) -> {name: Tensor}`` whose sum joins the loss.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.errors import InputError
from mmexplore.training.augment import get_augmentation
from mmexplore.training.data import (
    Batch,
    ShapesStream,
    check_train_renderers,
    negative_weights_for,
    twin_weights_for,
)
from mmexplore.training.objectives import OBJECTIVES, REGULARIZERS, LossInputs, Objective
from mmexplore.training.probeset import LIVE_METRICS, ProbeSet, write_snapshot

DEFAULT_ARCH = "mmexplore-shapes-s"
RUN_FORMAT = 1
MAX_SCALE = 100.0

Event = dict[str, Any]
Callback = Callable[[Event], None]


@dataclass
class TrainConfig:
    """Settings of one training run (all JSON-able; stored in ``run.json`` and ``metrics.json``).

    ``objective`` "auto" keeps the original behaviour: ``negclip`` with negatives, ``clip`` without.
    ``negatives`` / ``positives`` None take the objective's default. ``tau`` None learns the
    temperature; a number fixes it (s = 1/τ is then not trained).
    """

    out: str = "runs/shapes"
    arch: str = DEFAULT_ARCH
    objective: str = "auto"
    steps: int = 2000
    minutes: float | None = None  # wall-clock budget; the LR schedule follows whichever ends first
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    negatives: int | None = 1  # hard negatives per image (0: none)
    negative_kinds: list[str] = field(default_factory=list)  # empty: all kinds
    pair_fraction: float = 0.0  # share of the batch in counterfactual image pairs (used when negatives > 0)
    twin_kinds: list[str] = field(default_factory=list)  # kinds of counterfactual twin; empty: both (3 order : 1 colour)
    twin_group: int = 2  # counterfactual scenes per group: the same two objects in that many layouts
    curriculum_steps: int = 0  # a curriculum: the first N steps draw only two-object scenes with relation captions
    positives: int | None = None  # true captions per image (multi-positive)
    tau: float | None = None  # fixed temperature; None: learned
    regularizer: str | None = None
    reg_weight: float | None = None
    seed: int = 0
    device: str = "auto"
    render_size: int = 128
    eval_every: int = 250
    eval_scenes: int = 200  # final evaluation (every registered renderer: train, alt, sketch)
    probe_scenes: int = 100  # live evaluation (training renderer)
    snapshot_every: int = 0  # replay snapshots (0: none); taken at eval steps that are multiples of it
    snapshot_scenes: int = 16
    threads: int | None = None
    dense_weight: float = 0.0  # weight of the dense phrase-patch alignment term (0: off; training/dense.py)
    layout_weight: float = 0.0  # weight of the layout readout term on the image side (0: off; training/layout.py)
    layout_text_weight: float | None = None  # its weight on the text side (None: layout_weight)
    read_weight: float = 0.0  # weight of the reading readout term (0: off; training/reading.py)
    init: str | None = None  # start from the weights of this model folder (same arch), e.g. to fine-tune
    augment: str = "none"  # training-image augmentation (training/augment.py: none, style)
    train_renderers: list[str] = field(default_factory=lambda: ["train"])  # each image drawn by one of these
    name: str | None = None  # display name (default: the folder name)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from a stored dict (unknown keys are ignored, so old runs still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def resolved_objective(self) -> Objective:
        """The registered objective this config names (``auto`` resolved)."""
        name = self.objective
        if name == "auto":
            name = "negclip" if self.negatives is None or self.negatives > 0 else "clip"
        if name not in OBJECTIVES:
            raise InputError(f"unknown objective '{name}'; choose one of {', '.join(OBJECTIVES)}")
        return OBJECTIVES[name]

    def effective_negatives(self) -> int:
        """Hard negatives per image actually drawn (``clip`` uses none)."""
        obj = self.resolved_objective()
        if obj.name == "clip":
            return 0
        return obj.negatives if self.negatives is None else int(self.negatives)

    def layout_weights(self) -> tuple[float, float]:
        """Weights of the layout readout term on the (image, text) side; (0, 0): off."""
        text = self.layout_weight if self.layout_text_weight is None else self.layout_text_weight
        return float(self.layout_weight), float(text)

    def effective_positives(self) -> int:
        """True captions per image actually drawn."""
        obj = self.resolved_objective()
        return obj.positives if self.positives is None else max(1, int(self.positives))

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        self.resolved_objective()
        if int(self.twin_group) < 2:
            raise InputError(f"twin_group must be at least 2 (a scene and one other layout), got {self.twin_group}")
        if int(self.curriculum_steps) < 0:
            raise InputError(f"curriculum_steps must be a whole number ≥ 0, got {self.curriculum_steps}")
        for name in ("steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be a positive whole number, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "pair_fraction", "dense_weight", "layout_weight", "layout_text_weight",
                     "read_weight"):
            if name == "layout_text_weight" and self.layout_text_weight is None:
                continue  # None: the text side takes layout_weight
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise InputError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.minutes is not None and (not math.isfinite(self.minutes) or self.minutes <= 0):
            raise InputError(f"minutes must be a finite number > 0, got {self.minutes}")
        if self.tau is not None and (not math.isfinite(self.tau) or not 1 / MAX_SCALE <= self.tau <= 10):
            raise InputError(f"tau must lie in [{1 / MAX_SCALE}, 10], got {self.tau}")
        if self.pair_fraction > 1:
            raise InputError(f"pair_fraction must lie in [0, 1], got {self.pair_fraction}")
        if self.regularizer is not None and self.regularizer not in REGULARIZERS:
            raise InputError(f"unknown regulariser '{self.regularizer}'; choose one of {', '.join(REGULARIZERS)}")
        if self.batch_size < 2:
            raise InputError("batch_size must be at least 2 (a contrastive batch needs negatives)")
        try:
            negative_weights_for(self.negative_kinds)
            twin_weights_for(self.twin_kinds)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        get_augmentation(self.augment)
        check_train_renderers(self.train_renderers)
        from mmexplore.models.loader import check_trainable_arch

        check_trainable_arch(self.arch)  # `--arch nosuch`: one line naming the known architectures
        if self.init and not (Path(self.init) / "open_clip_config.json").is_file():
            raise InputError(f"init {self.init}: not a model folder (no open_clip_config.json); "
                             "give a folder written by `mmexplore train`")


@dataclass
class StepContext:
    """What an extra loss term sees at one step.

    Attributes
    ----------
    model : open_clip CLIP (train mode)
    batch : Batch
    inputs : LossInputs
        The features the objective saw.
    pixels : Tensor (B, 3, S, S)
    step : int
        Index of this step (0-based).
    """

    model: Any
    batch: Batch
    inputs: LossInputs
    pixels: Any
    step: int


ExtraLoss = Callable[[StepContext], dict[str, Any]]
WeightedTerm = tuple[str, float, Callable[[dict[str, Any]], Any]]


def build_tokenizer(context_length: int = 32):
    """The compact tokenizer of shapes-world models (:func:`mmexplore.models.tokenizer.shapes_tokenizer`)."""
    from mmexplore.models.tokenizer import shapes_tokenizer

    return shapes_tokenizer(context_length)


def build_model(arch: str, vocab_size: int, device: str, **model_kwargs: Any):
    """Create an untrained open_clip model of a registered config, with its inference transform.

    ``model_kwargs`` (e.g. ``init_logit_bias``) go into the model config, which is saved with the
    weights, so the folder loads with the same parameters.
    """
    import open_clip

    from mmexplore.models.loader import register_project_configs

    register_project_configs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise InputError(f"unknown architecture '{arch}'")
    text_cfg = dict(cfg["text_cfg"], vocab_size=vocab_size)
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=None, device=device, text_cfg=text_cfg, **model_kwargs
    )
    return model, preprocess, dict(cfg, text_cfg=text_cfg, **model_kwargs)


def save_model(model, model_cfg: dict, tokenizer, out: Path, metrics: dict[str, Any]) -> None:
    """Write ``open_clip_config.json``, ``open_clip_model.safetensors`` and ``metrics.json`` to ``out``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    visual = model.visual
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "size": model_cfg["vision_cfg"]["image_size"],
            "mean": list(visual.preprocess_cfg["mean"]),
            "std": list(visual.preprocess_cfg["std"]),
            "interpolation": visual.preprocess_cfg.get("interpolation", "bicubic"),
            "resize_mode": visual.preprocess_cfg.get("resize_mode", "shortest"),
        },
        "mmexplore": {
            "tokenizer": {
                "kind": "compact",
                "kept_bpe_ids": tokenizer.kept_bpe_ids,
                "context_length": tokenizer.context_length,
            },
            "trained_on": "shapes world (synthetic shapes); not for photos",
        },
    }
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))


class _Prefetcher:
    """Makes the batches of steps ``start, start+1, ...`` in a background thread (PIL drawing overlaps
    the torch step; each batch depends only on its step, so order and content are reproducible)."""

    def __init__(self, make: Callable[[int], Any], start: int, depth: int = 2) -> None:
        import queue

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()

        def work() -> None:
            step = start
            while not self._stopped.is_set():
                try:
                    item = make(step)
                except Exception as exc:  # handed to the training loop, which raises it
                    item = exc
                step += 1
                while not self._stopped.is_set():
                    try:
                        self._queue.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue

        self._thread = threading.Thread(target=work, daemon=True, name="mmexplore-batches")
        self._thread.start()

    def get(self) -> Any:
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()


@dataclass
class _Transformed:
    """A data stream with a ``(images, captions, negatives, scenes)`` → same transform on each batch.

    A transform may return a fifth element, the words it wrote into each image (a sequence of str
    per image), which the reading term uses (``Batch.words``).
    """

    stream: Callable[[int], Batch]
    transform: Callable[[tuple], tuple]

    def __call__(self, step: int) -> Batch:
        b = self.stream(step)
        images, captions, negatives, scenes, *more = self.transform((b.images, b.captions, b.negatives, b.scenes))
        words = [tuple(w) for w in more[0]] if more else None
        return Batch(list(images), list(captions), [list(n) for n in negatives], b.positives, scenes, words)


def lr_factor(progress: float, step: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``progress`` = 1."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _flatten_optimizer(opt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optimizer state as (tensors for safetensors, JSON-able rest)."""
    import torch

    sd = opt.state_dict()
    tensors: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _trained_arch(folder: Path) -> str | None:
    """The ``--arch`` a model folder was trained with (its metrics.json), None when it does not say."""
    try:
        return json.loads((folder / "metrics.json").read_text())["config"]["arch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _unflatten_optimizer(tensors: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *rest.get("scalars", {}).items()]:
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = rest["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def read_events(path: Path, up_to_step: int | None = None) -> list[Event]:
    """Events of a ``train_log.jsonl`` (lines that are not JSON are skipped), optionally up to a step."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and (up_to_step is None or int(ev.get("step", 0)) <= up_to_step):
            out.append(ev)
    return out


def _round(x: float, nd: int = 4) -> float | None:
    return round(float(x), nd) if x is not None and math.isfinite(float(x)) else None


class Trainer:
    """Train one model step by step; see the module docstring for events and the run folder.

    Parameters
    ----------
    cfg : TrainConfig
    callbacks : iterable of callable(Event)
        Called with every event, in the training thread.
    data : callable (step) -> Batch, optional
        The data stream (default :class:`~mmexplore.training.data.ShapesStream` from ``cfg``).
    extra_losses : iterable of callable(StepContext) -> dict of Tensor
        Extra loss terms; their sum is added to the objective's loss and each is reported.
    batch_transform : callable (images, captions, negatives, scenes) -> same tuple, optional
        Applied to every batch in the data thread, in step order (a poisoned stream, text written
        into images); its ``describe()`` dict, if any, is stored in the run's config ``extra``.
    objectives : iterable of (name, weight, callable(dict) -> Tensor)
        Weighted extra terms (the robustness lab's CleanCLIP terms); each callable gets a dict with
        ``model``, ``pixels``, ``img``, ``txt``, ``captions``, ``tokenizer``, ``scale``; the term is
        reported unweighted under its name and ``weight × term`` joins the loss.
    resume : bool
        Continue the run in ``cfg.out`` from its checkpoint (use :meth:`Trainer.resume`).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        callbacks: Iterable[Callback] = (),
        data: Callable[[int], Batch] | None = None,
        extra_losses: Iterable[ExtraLoss] = (),
        batch_transform: Callable[[tuple], tuple] | None = None,
        objectives: Iterable[WeightedTerm] = (),
        resume: bool = False,
    ) -> None:
        cfg.validate()
        self.callbacks: list[Callback] = list(callbacks)
        self.extra_losses = list(extra_losses)
        self.batch_transform = batch_transform
        self.objectives = list(objectives)
        # What the hooks did goes into the run's config (metrics.json, run.json).
        extra = dict(cfg.extra)
        if batch_transform is not None and hasattr(batch_transform, "describe"):
            extra.update(batch_transform.describe())
        if self.objectives:
            extra["objectives"] = {name: weight for name, weight, _ in self.objectives}
        self.cfg = cfg = replace(cfg, extra=extra)
        self.objective = cfg.resolved_objective()
        self.negatives = cfg.effective_negatives()
        self.positives = cfg.effective_positives()
        self.out = Path(cfg.out)
        self.step = 0
        self.samples = 0
        self.elapsed_before = 0.0  # seconds spent in earlier sessions of a resumed run
        self.evals: list[Event] = []
        self.losses: list[float] = []
        self.status = "new"
        self._stop = threading.Event()
        self._resume = resume
        self._data = data
        self._setup_done = False
        self.readouts: dict[str, Any] = {}  # filled by setup()
        self.last_probe: dict[str, Any] | None = None  # latest eval's figures and snapshot arrays
        self._checkpoint_step = -1
        self._log: Any = None

    # ---------------------------------------------------------------- set-up
    @classmethod
    def resume(
        cls,
        out: str | Path,
        *,
        steps: int | None = None,
        minutes: float | None = None,
        callbacks: Iterable[Callback] = (),
        data: Callable[[int], Batch] | None = None,
        extra_losses: Iterable[ExtraLoss] = (),
        batch_transform: Callable[[tuple], tuple] | None = None,
        objectives: Iterable[WeightedTerm] = (),
        device: str | None = None,
    ) -> Trainer:
        """A trainer that continues the run in ``out`` from its last checkpoint.

        ``steps`` / ``minutes`` replace the run's budget (e.g. to train a finished run longer).
        """
        out = Path(out)
        run = read_run(out)
        if not (out / "checkpoint" / "state.json").is_file():
            raise InputError(f"run '{out.name}' has no checkpoint to resume from")
        cfg = TrainConfig.from_dict(run["config"])
        cfg.out = str(out)
        if steps is not None:
            cfg.steps = steps
        if minutes is not None:
            cfg.minutes = minutes
        if device is not None:
            cfg.device = device
        return cls(cfg, callbacks=callbacks, data=data, extra_losses=extra_losses, batch_transform=batch_transform,
                   objectives=objectives, resume=True)

    @property
    def layout_readout(self) -> Any:
        """The layout term's readout (training/layout.py), or None when the term is off."""
        return self.readouts.get("layout")

    @property
    def read_readout(self) -> Any:
        """The reading term's readout (training/reading.py), or None when the term is off."""
        return self.readouts.get("read")

    def setup(self) -> None:
        """Build the model, optimizer, data stream and probe (and load the checkpoint when resuming)."""
        if self._setup_done:
            return
        import torch

        from mmexplore.models.devices import resolve_device

        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.tokenizer = build_tokenizer()
        model_kwargs: dict[str, Any] = {}
        if self.objective.bias == "prior":
            columns = cfg.batch_size * (self.positives + self.negatives)
            model_kwargs["init_logit_bias"] = -math.log(max(2, columns) - 1)
        elif self.objective.bias is not None:
            model_kwargs["init_logit_bias"] = float(self.objective.bias)
        if cfg.tau is not None:
            model_kwargs["init_logit_scale"] = math.log(1.0 / cfg.tau)
        elif self.objective.init_scale is not None:
            model_kwargs["init_logit_scale"] = math.log(self.objective.init_scale)
        self.model, self.preprocess, self.model_cfg = build_model(
            cfg.arch, self.tokenizer.vocab_size, self.device, **model_kwargs)
        if cfg.init and not self._resume:
            self._load_weights(Path(cfg.init))
        if cfg.tau is not None:
            self.model.logit_scale.requires_grad_(False)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # Readouts of the auxiliary terms (name -> torch module): trained with the model, checkpointed as
        # checkpoint/<name>_readout.safetensors, never saved into the model folder (it stays plain open_clip).
        self.readouts = {}
        if cfg.layout_weights() != (0.0, 0.0):
            from mmexplore.training.layout import make_readout as make_layout_readout

            self.readouts["layout"] = make_layout_readout(int(self.model_cfg["embed_dim"]), self.device)
        if cfg.read_weight > 0:
            from mmexplore.training.reading import make_readout as make_read_readout

            self.readouts["read"] = make_read_readout(int(self.model_cfg["embed_dim"]), self.device)
        groups += [{"params": list(r.parameters()), "weight_decay": 0.0} for r in self.readouts.values()]
        self.opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        self.out.mkdir(parents=True, exist_ok=True)
        if self._resume:
            self._load_checkpoint()
        stream = self._data or ShapesStream(
            seed=cfg.seed, batch_size=cfg.batch_size, negatives=self.negatives, render_size=cfg.render_size,
            with_scenes=cfg.dense_weight > 0 or self.layout_readout is not None or self.batch_transform is not None,
            pair_fraction=cfg.pair_fraction if self.negatives > 0 else 0.0,
            negative_weights=negative_weights_for(cfg.negative_kinds), positives=self.positives,
            twin_weights=twin_weights_for(cfg.twin_kinds), curriculum_steps=int(cfg.curriculum_steps),
            twin_group=int(cfg.twin_group), renderers=tuple(cfg.train_renderers), augment=cfg.augment,
        )
        self.data = stream if self.batch_transform is None else _Transformed(stream, self.batch_transform)
        self.probe = ProbeSet.build(cfg.probe_scenes, cfg.snapshot_scenes, self.preprocess, self.tokenizer,
                                    self.device) if (cfg.eval_every or cfg.snapshot_every) else None
        self.params = int(sum(p.numel() for p in self.model.parameters()))
        self._t0 = time.time()  # train_step works right after setup (run() restarts the clock)
        self._setup_done = True

    def _load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(folder / "open_clip_model.safetensors"), device=self.device)
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError:  # a tensor of another shape: strict=False does not cover that
            missing, unexpected = [], ["(shapes differ)"]
        # A model trained without a logit bias can start a sigmoid run: only that may be missing.
        if unexpected or set(missing) - {"logit_bias"}:
            trained = _trained_arch(folder)
            hint = f"; it was trained with --arch {trained}" if trained and trained != self.cfg.arch else ""
            raise InputError(f"weights in {folder} do not fit architecture {self.cfg.arch}{hint}")

    def _load_checkpoint(self) -> None:
        from safetensors.torch import load_file

        ck = self.out / "checkpoint"
        state = json.loads((ck / "state.json").read_text())
        self._load_weights(self.out)
        tensors = load_file(str(ck / "optimizer.safetensors"), device=self.device) \
            if (ck / "optimizer.safetensors").is_file() else {}
        self.opt.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
        for name, readout in self.readouts.items():
            if (ck / f"{name}_readout.safetensors").is_file():
                readout.load_state_dict(load_file(str(ck / f"{name}_readout.safetensors"), device=self.device))
        self.step = int(state["step"])
        self.samples = int(state["samples"])
        self.elapsed_before = float(state["elapsed_s"])
        log_path = self.out / "train_log.jsonl"
        everything = read_events(log_path)
        events = [ev for ev in everything if int(ev.get("step", 0)) <= self.step]
        if len(events) != len(everything):
            # Events after the checkpoint (a crash) are dropped: the resumed run redoes those steps.
            # Otherwise the log is only ever appended to (readers follow it by offset).
            with open(log_path, "w") as f:
                f.writelines(json.dumps(ev) + "\n" for ev in events)
        self.evals = [ev for ev in events if ev.get("event") == "eval"]
        self.losses = [ev["loss"] for ev in events if ev.get("event") == "step"]

    # ---------------------------------------------------------------- events
    def add_callback(self, callback: Callback) -> None:
        """Report every later event to ``callback`` too."""
        self.callbacks.append(callback)

    def _emit(self, event: Event) -> None:
        log = self._log
        if log is None or log.closed:
            with open(self.out / "train_log.jsonl", "a") as f:
                f.write(json.dumps(event) + "\n")
        else:
            log.write(json.dumps(event) + "\n")
            log.flush()  # readers (the Train page) follow the file as it grows
        for cb in self.callbacks:
            cb(event)

    def request_stop(self) -> None:
        """Ask the run to stop after the current step (it then saves a loadable model)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` was called."""
        return self._stop.is_set()

    def elapsed(self) -> float:
        """Training seconds so far, earlier sessions of a resumed run included."""
        return self.elapsed_before + (time.time() - self._t0)

    def progress(self) -> float:
        """Share of the budget (steps or minutes, whichever ends first) used: 0–1."""
        p = self.step / self.cfg.steps
        if self.cfg.minutes:
            p = max(p, self.elapsed() / (self.cfg.minutes * 60))
        return min(1.0, p)

    # ---------------------------------------------------------------- one step
    def train_step(self, batch: Batch) -> Event:
        """One optimisation step on ``batch``; returns its ``step`` event (not yet emitted)."""
        import random

        import torch

        cfg = self.cfg
        model, device = self.model, self.device
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(self.progress(), self.step, cfg.warmup_steps)
        pixels = torch.stack([self.preprocess(im) for im in batch.images]).to(device)
        pos_flat = [t for row in batch.positives for t in row]
        neg_flat = [t for row in batch.negatives for t in row]
        texts = batch.captions + pos_flat + neg_flat
        tokens = self.tokenizer(texts).to(device)
        model.train()
        dense = cfg.dense_weight > 0
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            if dense:
                from mmexplore.training.dense import dense_step

                rng = random.Random(f"dense:{cfg.seed}:{self.step}")
                img, dense_loss = dense_step(model, pixels, batch.scenes, self.tokenizer, rng)
            else:
                img = model.encode_image(pixels, normalize=True)
            txt_all = model.encode_text(tokens, normalize=True)
        img, txt_all = img.float(), txt_all.float()
        b, n_pos = len(batch.captions), len(pos_flat)
        scale = model.logit_scale.exp().clamp(max=MAX_SCALE)
        bias = getattr(model, "logit_bias", None)
        inputs = LossInputs(
            img=img, txt=txt_all[:b], scale=scale, captions=batch.captions,
            pos=txt_all[b:b + n_pos] if n_pos else None, neg=txt_all[b + n_pos:] if neg_flat else None,
            bias=bias, pos_texts=batch.positives, neg_texts=batch.negatives,
        )
        terms = dict(self.objective.fn(inputs, **self.objective.params))
        loss = terms["loss"]
        if cfg.regularizer:
            reg = REGULARIZERS[cfg.regularizer]
            weight = reg.weight if cfg.reg_weight is None else cfg.reg_weight
            terms[reg.name] = reg.fn(img, txt_all[:b])
            loss = loss + weight * terms[reg.name]
        if dense:
            terms["dense"] = dense_loss.float()
            loss = loss + cfg.dense_weight * terms["dense"]
        if self.layout_readout is not None:
            from mmexplore.training.layout import layout_terms

            if batch.scenes is None:
                raise InputError("layout_weight needs the scene graph of every image (the shapes-world stream)")
            image_term, text_term = layout_terms(self.layout_readout, img, inputs.txt, batch.captions, batch.scenes)
            w_image, w_text = cfg.layout_weights()
            terms["layout_image"], terms["layout_text"] = image_term, text_term
            loss = loss + w_image * image_term + w_text * text_term
        if self.read_readout is not None:
            from mmexplore.training.reading import reading_loss, reading_targets

            if batch.words is None:
                raise InputError("read_weight needs the words written into each image (--text-in-image)")
            terms["reading"] = reading_loss(self.read_readout, img, reading_targets(batch.words))
            loss = loss + cfg.read_weight * terms["reading"]
        if self.objectives:
            ctx_dict = {"model": model, "pixels": pixels, "img": img, "txt": inputs.txt, "captions": batch.captions,
                        "tokenizer": self.tokenizer, "scale": scale}
            for name, weight, term_fn in self.objectives:
                terms[name] = term_fn(ctx_dict).float()
                loss = loss + weight * terms[name]
        if self.extra_losses:
            ctx = StepContext(model, batch, inputs, pixels, self.step)
            for extra in self.extra_losses:
                for name, value in extra(ctx).items():
                    terms[name] = value
                    loss = loss + value
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_SCALE))
        self.step += 1
        self.samples += b
        with torch.no_grad():
            target = torch.arange(b, device=img.device)
            acc = float(((img @ inputs.txt.T).argmax(1) == target).float().mean())
            hard = None
            if inputs.neg is not None:
                k = inputs.neg.shape[0] // b
                pos_s = (img * inputs.txt).sum(-1)
                neg_s = (img.repeat_interleave(k, 0) * inputs.neg).sum(-1).view(b, k)
                hard = float((pos_s[:, None] > neg_s).float().mean())
        s = float(scale.detach())
        event: Event = {
            "event": "step", "step": self.step, "loss": _round(loss.detach()),
            "terms": {k: _round(v.detach()) for k, v in terms.items() if k != "loss"},
            "i2t_acc": _round(acc), "hard_neg_acc": _round(hard) if hard is not None else None,
            "logit_scale": _round(s, 3), "tau": _round(1.0 / s, 5),
            "logit_bias": _round(bias.detach(), 3) if bias is not None else None,
            "lr": self.opt.param_groups[0]["lr"],
        }
        self.losses.append(event["loss"])
        return event

    def evaluate(self) -> Event:
        """Live figures on the held-out probe (and a replay snapshot when due); returns the ``eval`` event."""
        assert self.probe is not None
        figures, img, txt = self.probe.evaluate(self.model)
        event: Event = {"event": "eval", "step": self.step, **{k: _round(v) for k, v in figures.items()},
                        "elapsed_s": round(self.elapsed(), 1)}
        arrays = self.probe.snapshot_arrays(img, txt)
        scale = float(self.model.logit_scale.detach().exp().clamp(max=MAX_SCALE))
        due = self.cfg.snapshot_every and self.step % self.cfg.snapshot_every == 0
        if due:
            folder = self.out / "snapshots"
            if not (folder / "probe.json").is_file():
                self.probe.write_probe_json(folder)
            event["snapshot"] = write_snapshot(folder, self.step, arrays, scale).name
        self.last_probe = {"step": self.step, "figures": figures, "logit_scale": scale, **arrays}
        self.evals.append(event)
        return event

    # ---------------------------------------------------------------- saving
    def save_checkpoint(self) -> Event:
        """Write the model folder (loadable at once) and the optimizer state; returns the event."""
        from safetensors.torch import save_file

        save_model(self.model, self.model_cfg, self.tokenizer, self.out, self._metrics(partial=True))
        tensors, rest = _flatten_optimizer(self.opt)
        ck = self.out / "checkpoint"
        ck.mkdir(exist_ok=True)
        save_file(tensors, str(ck / "optimizer.safetensors"))
        for name, readout in self.readouts.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in readout.state_dict().items()},
                      str(ck / f"{name}_readout.safetensors"))
        state = {"step": self.step, "samples": self.samples, "elapsed_s": round(self.elapsed(), 2), "optimizer": rest}
        tmp = ck / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(ck / "state.json")
        self._write_run(self.status)
        self._checkpoint_step = self.step
        return {"event": "checkpoint", "step": self.step, "path": str(self.out)}

    def _metrics(self, partial: bool = False, final: dict[str, Any] | None = None) -> dict[str, Any]:
        wall = self.elapsed()
        return {
            "config": asdict(self.cfg),
            "objective": self.objective.name,
            "steps": self.step,
            "samples": self.samples,
            "wall_s": round(wall, 1),
            "samples_per_s": round(self.samples / max(1e-9, wall), 1),
            "device": self.device,
            "final_loss": float(np.mean(self.losses[-50:])) if self.losses else None,
            "eval": final if final is not None else {},
            "evals": self.evals,
            "params": self.params,
            "partial": partial,
        }

    def _write_run(self, status: str, extra: dict[str, Any] | None = None) -> None:
        path = self.out / "run.json"
        run = json.loads(path.read_text()) if path.is_file() else {}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        run.update({
            "format": RUN_FORMAT, "name": self.cfg.name or self.out.name, "status": status, "step": self.step,
            "objective": self.objective.name, "config": asdict(self.cfg), "device": self.device,
            "updated": now, **(extra or {}),
        })
        run.setdefault("created", now)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(run, indent=1))
        tmp.replace(path)

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        """Train until the budget is used or a stop is requested; returns the final metrics.

        A stop (``request_stop``, or Ctrl-C in the CLI) still saves the model, the checkpoint and
        the final figures, so the run is loadable and resumable.
        """
        from mmexplore.evaluation.retrieval import evaluate_retrieval
        from mmexplore.models.encoder import Encoder

        self._t0 = time.time()
        self.setup()
        self._t0 = time.time()
        cfg = self.cfg
        if not self._resume:
            (self.out / "train_log.jsonl").write_text("")
        self.status = "running"
        self._write_run("running")
        self._emit({"event": "start", "step": self.step, "config": asdict(cfg), "device": self.device,
                    "params": self.params, "objective": self.objective.name, "resumed": self._resume})
        if self.probe is not None and not self.evals:
            self._emit(self.evaluate())  # step 0: the untrained model, where every curve starts
        self._log = open(self.out / "train_log.jsonl", "a")  # noqa: SIM115 - closed at the end of run()
        batches = _Prefetcher(self.data, start=self.step)
        session_t0, session_samples = time.time(), 0
        status = "finished"
        try:
            while self.progress() < 1.0:
                if self._stop.is_set():
                    status = "stopped"
                    break
                batch = batches.get()
                event = self.train_step(batch)
                session_samples += len(batch)
                event["samples_per_s"] = round(session_samples / max(1e-9, time.time() - session_t0), 1)
                event["elapsed_s"] = round(self.elapsed(), 1)
                self._emit(event)
                if self.probe is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._emit(self.evaluate())
                    self._emit(self.save_checkpoint())
        except KeyboardInterrupt:
            status = "stopped"
        except Exception:
            self.status = "failed"
            self._write_run("failed")
            self._log.close()
            raise
        finally:
            batches.stop()
        self.status = status
        if self.probe is not None and (not self.evals or self.evals[-1]["step"] != self.step):
            self._emit(self.evaluate())
        self.model.eval()
        enc = Encoder(self.model, self.preprocess, self.tokenizer, name="trained", model_id=f"train-{self.step}",
                      device=self.device, dtype="float32")
        final = evaluate_retrieval(enc, n_scenes=cfg.eval_scenes, use_cache=False)
        if self._checkpoint_step != self.step:
            self._emit(self.save_checkpoint())
        metrics = self._metrics(final=final)
        save_model(self.model, self.model_cfg, self.tokenizer, self.out, metrics)
        summary = {k: final["train"].get(k) for k in ("i2t@1", "t2i@1", "color_binding", "relation_order")}
        self._write_run(status, {"final": summary, "wall_s": metrics["wall_s"]})
        self._emit({"event": "end", "step": self.step, "status": status, "eval": final, "wall_s": metrics["wall_s"]})
        self._log.close()
        return metrics


def read_run(out: str | Path) -> dict[str, Any]:
    """``run.json`` of a run folder (older folders with only ``metrics.json`` are read from it)."""
    out = Path(out)
    path = out / "run.json"
    if path.is_file():
        return json.loads(path.read_text())
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        m = json.loads(metrics_path.read_text())
        return {"format": RUN_FORMAT, "name": out.name, "status": "finished", "step": m.get("steps", 0),
                "objective": m.get("objective", "auto"), "config": m.get("config", {}), "device": m.get("device")}
    raise InputError(f"'{out.name}' is not a training run (no run.json or metrics.json)")


def live_metric_names() -> tuple[str, ...]:
    """The held-out figures every eval event carries (for charts and tables)."""
    return LIVE_METRICS
