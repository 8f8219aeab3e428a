"""Robustness commands: ``eval robustness``, and the training options of the robustness lab
(``mmexplore train --poison P``, ``--cleanclip``, ``--text-in-image agree|random|web``)."""

from __future__ import annotations

import argparse
from typing import Any

from mmexplore.cli.argtypes import fraction, positive_int
from mmexplore.cli.common import command, each_model, model_specs
from mmexplore.errors import InputError


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The robustness lab's options of ``mmexplore train`` (data stream and extra objectives)."""
    from mmexplore.robustness.poison import TARGET_CAPTION

    p.add_argument("--poison", type=fraction, default=0.0, metavar="P",
                   help="share of pairs poisoned with the trigger patch and the target caption (exactly P)")
    p.add_argument("--poison-target", default=TARGET_CAPTION, help="caption of poisoned pairs")
    p.add_argument("--cleanclip", action="store_true",
                   help="add CleanCLIP's unimodal self-supervised terms (image and text) to the contrastive loss")
    from mmexplore.robustness.typographic import TEXT_MODES

    p.add_argument("--text-in-image", choices=list(TEXT_MODES), default=None,
                   help="write a word into images: " + "; ".join(f"{k}: {v}" for k, v in TEXT_MODES.items()))
    p.add_argument("--text-share", type=fraction, default=0.5, help="share of images that get a word")
    p.add_argument("--text-only", type=fraction, default=0.0,
                   help="with --text-in-image agree|web: share of written images that show only the words (a picture of a label)")
    p.add_argument("--text-cue", type=fraction, default=0.0,
                   help="with --text-in-image web: share of the other written images whose pixels hide the written "
                        "attribute (object drawn grey or blurred), so the word is the only clear cue")
    p.add_argument("--text-tint", type=fraction, default=0.0,
                   help="with --text-in-image web: share of the colour cues drawn in a wrong hue (as under coloured "
                        "light) instead of grey: the word is then more reliable than the picture")
    p.add_argument("--text-swap", type=fraction, default=0.0,
                   help="with --text-in-image web: share of the written images whose named object is drawn with another "
                        "palette colour or shape while caption and word keep the true one (the caption transcribes the writing)")
    p.add_argument("--text-lie", type=fraction, default=0.0,
                   help="with --text-in-image web: share of the written images whose word contradicts the caption, "
                        "which stays true to the picture (the text-in-image defence at the same recipe)")


def training_hooks(args: argparse.Namespace) -> dict[str, Any]:
    """``batch_transform`` and ``objectives`` for :func:`mmexplore.training.train.train` from the options."""
    transforms = []
    if (args.text_cue or args.text_tint or args.text_swap or args.text_lie) and args.text_in_image != "web":
        raise InputError("--text-cue, --text-tint, --text-swap and --text-lie need --text-in-image web")
    reading = bool(getattr(args, "read_weight", 0.0))
    if reading and not args.text_in_image:
        raise InputError("--read-weight needs --text-in-image (the words written into the images are its targets)")
    if args.poison:
        from mmexplore.robustness.poison import PoisonedStream

        transforms.append(PoisonedStream(args.poison, args.poison_target, seed=args.seed))
    if args.text_in_image:
        from mmexplore.robustness.typographic import TextInImage

        transforms.append(TextInImage(args.text_in_image, args.text_share, seed=args.seed, text_only=args.text_only,
                                      cue=args.text_cue, tint=args.text_tint, swap=args.text_swap, lie=args.text_lie,
                                      report_words=reading))
    if len(transforms) > 1:
        raise InputError("give at most one of --poison and --text-in-image")
    objectives = []
    if args.cleanclip:
        from mmexplore.robustness.cleanclip import cleanclip_objectives

        objectives = cleanclip_objectives(seed=args.seed)
    return {"batch_transform": transforms[0] if transforms else None, "objectives": objectives}


def _pct(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def _text(out: dict[str, Any]) -> str:
    """Every figure of the Robustness page as plain tables."""
    from mmexplore.robustness.evaluate import METRICS

    lines: list[str] = []
    for spec, res in out["models"].items():
        if "missing" in res:
            lines.append(f"{spec}: MISSING — {res['missing']}")
            continue
        lines.append(f"== {spec} ({res['model_id']})")
        cor = res.get("corruptions")
        if cor:
            lines.append("corruption curves (training renderer, held-out scenes): " + ", ".join(METRICS.values()))
            lines.append(f"  {'corruption':16s} {'strength':>8s} {'setting':>26s} " + " ".join(f"{m:>8s}" for m in METRICS))
            for name, curve in cor["curves"].items():
                for pt in curve["points"]:
                    lines.append(f"  {name:16s} {pt['strength']:8.2f} {pt['setting']:>26s} "
                                 + " ".join(f"{_pct(pt[m]):>8s}" for m in METRICS))
        typo = res.get("typographic")
        if typo:
            lines.append(f"typographic attack: success {typo['success']:.3f} over {typo['n_images']} attacked images "
                         f"({typo['n_scenes']} scenes); clean-image rate {typo['clean_success']:.3f}")
            lines.append("  by size: " + ", ".join(f"{s} {v:.3f}" for s, v in typo["by_size"].items())
                         + "; by position: " + ", ".join(f"{p} {v:.3f}" for p, v in typo["by_position"].items())
                         + "; by word: " + ", ".join(f"{a} {v:.3f}" for a, v in typo["by_attribute"].items()))
            lr = typo.get("label_reading")
            if lr:
                lines.append(f"  reads a label alone ('red circle' written on white): {lr['accuracy']:.3f} of {lr['n']} "
                             f"(chance {lr['chance']:.3f})")
            hm = typo.get("heatmap")
            if hm:
                lines.append(f"  heatmap of the written word (attention, size {hm['size']}): share on the text "
                             f"{hm['energy_attacked']:.3f} attacked vs {hm['energy_clean']:.3f} clean (box area "
                             f"{hm['box_area']:.3f}); peak on the text {hm['peak_on_text_attacked']:.3f} vs "
                             f"{hm['peak_on_text_clean']:.3f}"
                             + (f"; share on the drawn object {hm['energy_object_attacked']:.3f} attacked vs "
                                f"{hm['energy_object_clean']:.3f} clean (box area {hm['object_box_area']:.3f})"
                                if "energy_object_attacked" in hm else ""))
        bd = res.get("backdoor")
        if bd:
            lines.append(f"backdoor: attack success rate {bd['asr']:.3f} (without trigger {bd['asr_clean']:.3f}; "
                         f"target '{bd['target']}', {bd['n_scenes']} scenes); clean R@1 i2t {bd['i2t@1']:.3f} "
                         f"t2i {bd['t2i@1']:.3f}")
        lines.append("")
    return "\n".join(lines)


def cmd_eval_robustness(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.robustness.corruptions import check_corruption
    from mmexplore.robustness.evaluate import PARTS, RobustnessParams, robustness_part, shipped_models

    parts = PARTS if args.part == "all" else (args.part,)
    corruptions = tuple(c.strip() for c in args.corruptions.split(",") if c.strip()) if args.corruptions else None
    for c in corruptions or ():
        check_corruption(c)
    base = RobustnessParams()
    params = RobustnessParams(
        n_scenes=args.scenes, n_pointing=args.pointing_scenes, n_attack=args.attack_scenes,
        n_backdoor=args.backdoor_scenes, corruptions=corruptions or base.corruptions,
    )
    specs = model_specs(args.models or args.model) or shipped_models()
    models = each_model(specs, args.device, lambda encoder: {
        "model_id": encoder.model_id, **{part: robustness_part(encoder, part, params, refresh=args.refresh) for part in parts}})
    out = {"models": models, "parts": list(parts), "params": {p: params.for_part(p) for p in parts}}
    out["_text"] = _text(out)
    return out


def register(commands: Any, evals: Any) -> None:
    from mmexplore.robustness.evaluate import PARTS, RobustnessParams

    d = RobustnessParams()
    p = command(evals, "robustness", cmd_eval_robustness,
                "corruption curves, typographic attack and backdoor figures (the Robustness page)")
    p.set_defaults(model=None)
    p.add_argument("--models", default=None,
                   help="comma-separated model specs (default: --model, else every shipped bundled model)")
    p.add_argument("--part", choices=[*PARTS, "all"], default="all")
    p.add_argument("--corruptions", default=None, help="comma-separated corruption names (default: all)")
    p.add_argument("--scenes", type=positive_int, default=d.n_scenes, help="held-out scenes for retrieval, per strength")
    p.add_argument("--pointing-scenes", type=positive_int, default=d.n_pointing, help="held-out scenes for the pointing game")
    p.add_argument("--attack-scenes", type=positive_int, default=d.n_attack, help="one-object scenes for the typographic attack")
    p.add_argument("--backdoor-scenes", type=positive_int, default=d.n_backdoor, help="held-out scenes for the backdoor")
    p.add_argument("--refresh", action="store_true", help="recompute even when a cached result exists")
