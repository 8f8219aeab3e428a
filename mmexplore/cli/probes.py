"""Probe commands: ``probe`` (one image against a caption's perturbations) and ``eval compositional``."""

from __future__ import annotations

import argparse
from typing import Any

from mmexplore.cli.argtypes import any_int, int_range
from mmexplore.cli.common import (
    add_renderer_arg,
    command,
    each_model,
    load_encoder,
    model_specs,
    readability_fields,
    renderers_of,
)
from mmexplore.errors import InputError, ModelLoadError


def default_compared() -> str:
    """The order family (plain CLIP, NegCLIP, NegCLIP + spatial bias) and the default model, side by side."""
    from mmexplore.models.specs import ORDER_FAMILY

    return ",".join([*ORDER_FAMILY, "bundled"])


def cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.probes import score_probes

    if not args.text.strip():
        raise InputError("--text is empty")
    image = load_image(args.image)
    encoder = load_encoder(args)
    res = score_probes(encoder, encoder.encode_images([image]), [args.text], seed=args.seed)[0]
    lines = [f"{'caption':15s} {res.score:.4f}        {res.caption}"]
    lines += [f"{r.kind:15s} {r.score:.4f}  {'pass' if r.passed else 'FAIL'}  {r.text}" for r in res.rows]
    read = readability_fields(encoder, [args.text])
    lines.append(f"words the model cannot read: {read['unknown_word_share']:.0%}")
    return {"image": args.image, **res.to_dict(), "unknown_word_share": read["unknown_word_share"],
            "warnings": read["warnings"], "_text": "\n".join(lines)}


def _table(results: dict[str, Any]) -> str:
    """A human-readable side-by-side table of ``eval compositional``."""
    from mmexplore.probes import ARO_NOTE, PERTURBATION_KINDS

    lines = []
    models = [m for m, r in results["models"].items() if "missing" not in r]
    for renderer in results["renderers"]:
        lines.append(f"renderer: {renderer}  (accuracy: true caption beats its perturbation; bag of words in brackets)")
        lines.append(f"{'kind':16s}" + "".join(f"{m:>24s}" for m in models) + f"{'n':>6s}")
        for kind in PERTURBATION_KINDS:
            cells, n = "", 0
            for m in models:
                r = results["models"][m]["accuracy"][renderer][kind]
                cells += f"{r['model']:>13.3f} ({r['bag_of_words']:.3f})   "
                n = r["n"]
            lines.append(f"{kind:16s}{cells}{n:>6d}")
        lines.append("")
    for m, r in results["models"].items():
        if "missing" in r:
            lines.append(f"{m}: MISSING — {r['missing']}")
    lines.append(ARO_NOTE)
    return "\n".join(lines)


def cmd_eval_compositional(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.probes import ARO_NOTE, ARO_REFERENCE, evaluate_compositional

    if args.scenes < 1:
        raise InputError(f"--scenes must be at least 1, got {args.scenes}")
    specs = model_specs(args.models or args.model or default_compared())
    if not specs:
        raise InputError("--models is empty; e.g. --models bundled,bundled-noneg")
    renderers = renderers_of(args)

    def missing(spec: str, exc: Exception) -> str:
        # A variant not shipped yet (e.g. bundled-noneg) must not hide the others' results.
        hint = (f"; train it with `mmexplore train --negatives 0 --out mmexplore/assets/{spec}`"
                if spec == "bundled-noneg" else "")
        return f"model '{spec}' is not available ({exc}){hint}"

    models = each_model(specs, args.device, lambda encoder: {
        "model_id": encoder.model_id,
        "accuracy": evaluate_compositional(encoder, n_scenes=args.scenes, renderers=renderers)}, missing)
    if all("missing" in m for m in models.values()):
        raise ModelLoadError("; ".join(m["missing"] for m in models.values()))
    out = {"models": models, "renderers": list(renderers), "n_scenes": args.scenes,
           "reference": {"source": "ARO, Yuksekgonul et al. 2023, Visual Genome (context, not our results)",
                         "figures": ARO_REFERENCE, "note": ARO_NOTE}}
    out["_text"] = _table(out)
    return out


def register(commands: Any, evals: Any) -> None:
    p = command(commands, "probe", cmd_probe, "score an image against a caption and its perturbations")
    p.add_argument("--image", required=True, metavar="FILE")
    p.add_argument("--text", required=True, metavar="CAPTION")
    p.add_argument("--seed", type=any_int, default=0, help="seed of the shuffled and dropped words")

    p = command(evals, "compositional", cmd_eval_compositional,
                "per-perturbation accuracy vs a bag-of-words baseline (ARO-style)")
    p.set_defaults(model=None)
    p.add_argument("--models", default=None,
                   help=f"comma-separated model specs compared side by side (default: --model, else {default_compared()})")
    p.add_argument("--scenes", type=int_range(1, 100_000), default=200, help="held-out two-object scenes")
    add_renderer_arg(p)
