"""``mmexplore train`` (any registered objective, events as JSON lines) and ``mmexplore runs``."""

from __future__ import annotations

import argparse
import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmexplore.cli.argtypes import fraction, nonneg_float, nonneg_int, positive_int
from mmexplore.cli.common import command
from mmexplore.errors import InputError


def _config_from_args(args: argparse.Namespace):
    from mmexplore.training.presets import PRESETS, QUICK
    from mmexplore.training.runs import check_run_name, runs_dir
    from mmexplore.training.trainer import TrainConfig

    if args.preset:
        # The preset's settings, then every option given on the command line.
        base = {**QUICK, **PRESETS[args.preset].fields}
        given = {dest: getattr(args, dest) for dest, default in args._defaults.items()
                 if getattr(args, dest) != default}
        if args.objective == "auto":
            args.objective = base["objective"]
        for dest, field_name in _FIELDS.items():
            if dest not in given and field_name in base:
                setattr(args, dest, base[field_name])
        if "steps" in given and "minutes" not in given:
            args.minutes = None  # a step budget given on the command line replaces the preset's minutes

    name = args.name
    if args.preset and not args.name and not args.out:
        name = f"{args.preset}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    if args.out:
        out = Path(args.out)
        name = name or out.name
    else:
        name = check_run_name(name or f"{args.objective}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}")
        out = runs_dir() / name
    return TrainConfig(
        out=str(out), name=name, arch=args.arch, objective=args.objective, steps=args.steps, minutes=args.minutes,
        batch_size=args.batch_size, lr=args.lr, negatives=args.negatives, negative_kinds=list(args.negative_kinds or []),
        pair_fraction=args.pair_fraction, twin_kinds=list(args.twin_kinds or []),
        curriculum_steps=args.curriculum_steps, twin_group=args.twin_group, positives=args.positives, tau=args.tau,
        regularizer=args.regularizer,
        reg_weight=args.reg_weight, seed=args.seed, device=args.device, eval_every=args.eval_every,
        eval_scenes=args.eval_scenes, probe_scenes=args.probe_scenes, snapshot_every=args.snapshot_every,
        threads=args.threads, dense_weight=args.dense_weight, layout_weight=args.layout_weight,
        layout_text_weight=args.layout_text_weight, read_weight=args.read_weight, init=args.init, warmup_steps=args.warmup_steps,
        render_size=args.render_size, snapshot_scenes=args.snapshot_scenes,
        augment=args.augment, train_renderers=list(args.train_renderers or ["train"]),
    )


# argparse destinations that map onto TrainConfig fields of the same meaning.
_FIELDS = {"arch": "arch", "steps": "steps", "minutes": "minutes", "batch_size": "batch_size", "lr": "lr",
           "negatives": "negatives", "pair_fraction": "pair_fraction", "positives": "positives", "tau": "tau",
           "eval_every": "eval_every", "eval_scenes": "eval_scenes", "probe_scenes": "probe_scenes",
           "snapshot_every": "snapshot_every", "warmup_steps": "warmup_steps", "render_size": "render_size",
           "snapshot_scenes": "snapshot_scenes", "augment": "augment", "train_renderers": "train_renderers"}


def cmd_train(args: argparse.Namespace) -> dict[str, Any] | None:
    from mmexplore.training.runs import resolve_run
    from mmexplore.training.train import human_log
    from mmexplore.training.trainer import Trainer

    callbacks = []
    if args.json:
        def to_stdout(ev: dict[str, Any]) -> None:
            print(json.dumps(ev), flush=True)

        callbacks.append(to_stdout)
    else:
        callbacks.append(human_log(print))
    log_file = None
    if args.log:
        log_file = open(args.log, "a")  # noqa: SIM115 - closed below

        def to_file(ev: dict[str, Any]) -> None:
            log_file.write(json.dumps(ev) + "\n")
            log_file.flush()

        callbacks.append(to_file)
    try:
        from mmexplore.cli.robustness import training_hooks

        hooks = training_hooks(args)  # the robustness lab's data stream and extra terms
        if args.resume:
            trainer = Trainer.resume(resolve_run(args.resume), steps=args.steps if args.steps_given else None,
                                     minutes=args.minutes, callbacks=callbacks, **hooks)
        else:
            trainer = Trainer(_config_from_args(args), callbacks=callbacks, **hooks)
        # Ctrl-C asks for a clean stop (finish the step, save a loadable model and checkpoint).
        previous = signal.signal(signal.SIGINT, lambda signum, frame: trainer.request_stop())
        try:
            metrics = trainer.run()
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        if log_file is not None:
            log_file.close()
    if args.json:
        return None  # the events were the output; the last one ("end") is the summary
    return {"out": str(trainer.out), "model": model_spec_of(trainer.out), "objective": trainer.objective.name,
            "steps": metrics["steps"], "wall_s": metrics["wall_s"], "eval": metrics["eval"]}


def model_spec_of(folder: Path) -> str:
    """``run:NAME`` for a run in the runs folder, else ``local-dir:PATH``."""
    from mmexplore.training.runs import runs_dir

    inside = folder.resolve().parent == runs_dir().resolve()
    return f"run:{folder.name}" if inside else f"local-dir:{folder}"


class _StepsAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.steps_given = True


def cmd_runs(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.training.runs import compare_rows, curves, format_table, list_runs, rename_run, resolve_run, summarize
    from mmexplore.training.trainer import read_run

    if args.action == "list":
        rows = list_runs()
        text = format_table(rows) if rows else "no training runs yet (mmexplore train ...)"
        return {"runs": rows, "_text": text}
    if args.action == "show":
        if len(args.names) != 1:
            raise InputError("runs show takes one run name")
        folder = resolve_run(args.names[0])
        data = curves(folder)
        row = summarize(folder)
        cfg = read_run(folder).get("config", {})
        text = format_table([row]) + "\n\nconfig: " + json.dumps(cfg) + "\nheld-out figures by step:\n"
        text += format_table([{"run": e["step"], **e} for e in data["eval"]],
                             (("run", "step"), ("i2t@1", "i2t R@1"), ("t2i@1", "t2i R@1"),
                              ("color_binding", "colour binding"), ("relation_order", "relation order"),
                              ("modality_gap", "gap"), ("dim_corr", "dim corr")))
        return {"run": row, "config": cfg, "evals": data["eval"], "_text": text}
    if args.action == "compare":
        rows = compare_rows(args.names)
        return {"runs": rows, "_text": format_table(rows)}
    if args.action == "rename":
        if len(args.names) != 2:
            raise InputError("runs rename takes OLD NEW")
        new = rename_run(args.names[0], args.names[1])
        return {"renamed": str(new), "model": f"run:{new.name}"}
    raise InputError(f"unknown action {args.action}")  # pragma: no cover - argparse choices


def register(commands: Any, evals: Any) -> None:
    from mmexplore.data.renderers import RENDERERS
    from mmexplore.training.augment import AUGMENTATIONS
    from mmexplore.training.data import NEGATIVE_WEIGHTS, OPT_IN_NEGATIVE_WEIGHTS, TWIN_WEIGHTS
    from mmexplore.training.objectives import OBJECTIVES, REGULARIZERS

    objectives = "; ".join(f"{o.name}: {o.summary}" for o in OBJECTIVES.values())
    # train takes --device and --json of its own (no --model: it makes one).
    p = command(commands, "train", cmd_train, "train a shapes-world CLIP with any objective (events as JSON lines with --json)",
                options="none", description="Train a small CLIP on the shapes world. Objectives: " + objectives + ". "
                "A run folder is a model: load it as run:NAME (or local-dir:PATH).")
    from mmexplore.training.presets import PRESETS

    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="start from a Train-page preset (smallest model, 2 minutes); other options override it")
    p.add_argument("--objective", default="auto", choices=["auto", *OBJECTIVES],
                   help="loss (auto: negclip with hard negatives, clip with --negatives 0)")
    p.add_argument("--name", default=None, help="run name (folder under the runs folder; default OBJECTIVE-TIME)")
    p.add_argument("--out", default=None, help="output folder instead of RUNS_DIR/NAME (e.g. mmexplore/assets/bundled)")
    p.add_argument("--resume", metavar="RUN", default=None, help="continue this run from its checkpoint")
    p.add_argument("--arch", default="mmexplore-shapes-s", help="model size: mmexplore-shapes-xs or mmexplore-shapes-s")
    p.add_argument("--steps", type=positive_int, default=2000, action=_StepsAction)
    p.add_argument("--minutes", type=nonneg_float, default=None, help="wall-clock budget (the schedule ends with it)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=nonneg_float, default=1e-3)
    p.add_argument("--warmup-steps", type=nonneg_int, default=100)
    p.add_argument("--render-size", type=positive_int, default=128, help="side of the rendered training scenes, px")
    p.add_argument("--negatives", type=nonneg_int, default=None,
                   help="hard-negative captions per image (default: the objective's, 1 for negclip; 0: none)")
    p.add_argument("--negative-kinds", nargs="+", choices=[*NEGATIVE_WEIGHTS, *OPT_IN_NEGATIVE_WEIGHTS], default=None,
                   help="which hard negatives to draw (default: all but relation_word, the opposite relation word)")
    p.add_argument("--pair-fraction", type=fraction, default=0.0,
                   help="share of each batch in counterfactual image pairs (swapped positions or colours)")
    p.add_argument("--twin-kinds", nargs="+", choices=list(TWIN_WEIGHTS), default=None,
                   help="which counterfactual twins to make (default: both, 3 position swaps to 1 colour swap; "
                        "relation_swap alone: only object-order twins)")
    p.add_argument("--twin-group", type=positive_int, default=2, metavar="G",
                   help="counterfactual scenes come in groups of G: the same two objects in G layouts, each with "
                        "its relation caption (2: a scene and its twin with the objects' places swapped)")
    p.add_argument("--curriculum-steps", type=nonneg_int, default=0, metavar="N",
                   help="curriculum: the first N steps draw only two-object scenes with relation captions "
                        "(one relation per scene), then the full mix")
    p.add_argument("--augment", choices=list(AUGMENTATIONS), default="none",
                   help="training-image variation: " + "; ".join(f"{a.name}: {a.description}" for a in AUGMENTATIONS.values()))
    p.add_argument("--train-renderers", nargs="+", choices=list(RENDERERS), default=None, metavar="RENDERER",
                   help="draw each training image with one of these renderers, chosen at random (default: train; "
                        "'train alt' makes alt no longer independent, and sketch is never trained on)")
    p.add_argument("--positives", type=positive_int, default=None, help="true captions per image (multi-positive: 2)")
    p.add_argument("--tau", type=nonneg_float, default=None, help="fix the temperature τ (default: learned)")
    p.add_argument("--regularizer", choices=list(REGULARIZERS), default=None)
    p.add_argument("--reg-weight", type=nonneg_float, default=None)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    p.add_argument("--eval-every", type=nonneg_int, default=500, help="held-out figures + checkpoint every N steps")
    p.add_argument("--eval-scenes", type=positive_int, default=200, help="held-out scenes of the final evaluation")
    p.add_argument("--probe-scenes", type=positive_int, default=100, help="held-out scenes of the live evaluations")
    p.add_argument("--snapshot-every", type=nonneg_int, default=0, help="replay snapshot at evals every N steps (0: none)")
    p.add_argument("--snapshot-scenes", type=positive_int, default=16, help="probe scenes in each replay snapshot")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--dense-weight", type=nonneg_float, default=0.0,
                   help="weight of the dense phrase-patch alignment term from object masks (0: off)")
    p.add_argument("--layout-weight", type=nonneg_float, default=0.0,
                   help="weight of the layout readout term: image and text embeddings both predict, through one "
                        "shared linear readout, where each colour, shape and size lies; image side (0: off)")
    p.add_argument("--layout-text-weight", type=nonneg_float, default=None,
                   help="the layout readout term's weight on the text side (default: --layout-weight)")
    p.add_argument("--read-weight", type=nonneg_float, default=0.0,
                   help="weight of the reading readout term: a linear readout of the image embedding tells which "
                        "colour and shape words are written in the image (needs --text-in-image; stands in for "
                        "web CLIP's text-heavy data; 0: off)")
    p.add_argument("--init", metavar="DIR", default=None, help="start from this model folder's weights (fine-tune)")
    p.add_argument("--log", metavar="FILE", default=None, help="also append every event as a JSON line to FILE")
    from mmexplore.cli.robustness import add_train_args

    add_train_args(p)
    p.add_argument("--json", action="store_true", help="events as JSON lines on stdout (the last is 'end')")
    p.set_defaults(steps_given=False)
    p.set_defaults(_defaults={a.dest: a.default for a in p._actions if a.dest not in ("help", "_defaults")})

    p = command(commands, "runs", cmd_runs, "list, show, compare or rename training runs", options="json",
                description="Training runs in the runs folder (MMEXPLORE_RUNS_DIR). "
                "compare prints the table the Train page shows.")
    p.add_argument("action", choices=["list", "show", "compare", "rename"])
    p.add_argument("names", nargs="*", metavar="RUN")

