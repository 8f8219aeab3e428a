"""``mmexplore relation`` (label pairs), ``relation calibrate``, ``relation fit`` and ``eval relation``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mmexplore.cli.argtypes import int_range, out_file
from mmexplore.cli.common import command, load_encoder, subcommands
from mmexplore.data.renderers import RENDERERS
from mmexplore.errors import InputError


def _calibration(args: argparse.Namespace):
    from mmexplore.relation.calibration import load_calibration

    return load_calibration(args.model, getattr(args, "calibration", None))


def cmd_relation(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.data.images import load_image
    from mmexplore.relation.api import relate

    if args.pairs:
        if args.image or args.text is not None:
            raise InputError("give either --pairs FILE or --image/--text, not both")
        from mmexplore.data.pairs import read_pairs

        table = read_pairs(args.pairs)
        rows = table.rows
        images = {p: load_image(p) for p in table.images}
        encoder = load_encoder(args)
        results = relate(encoder, [images[r["image"]] for r in rows], [r["text"] for r in rows], calibration=_calibration(args))
        out = []
        for r, res in zip(rows, results, strict=True):
            d = res.to_dict()
            d["image"] = r["image"]
            if "label" in r:
                d["expected"] = r["label"]
            out.append(d)
        return {"results": out}
    if not args.image:
        raise InputError("no image: pass --image FILE --text TEXT, or --pairs FILE")
    if args.text is None or not args.text.strip():
        raise InputError("no text: pass --text TEXT (a caption or passage)")
    image = load_image(args.image)
    encoder = load_encoder(args)
    res = relate(encoder, [image], [args.text], calibration=_calibration(args))[0]
    d = res.to_dict()
    d["image"] = args.image
    head = (f"{res.label}  (the classifier alone: {res.model_label}, p={res.probabilities[res.model_label]:.2f})"
            if res.label != res.model_label else
            f"{res.label}  (CMI={res.cmi}, SC={res.sc}, STAT={res.stat}, p={res.probabilities[res.label]:.2f})")
    d["_text"] = (
        f"{head}\n{res.explanation}\nuse case: {res.use_case or '-'}"
        f"\nwords the model cannot read: {res.extra['readability']['unknown_share']:.0%}"
        + "".join(f"\nnote: {n}" for n in res.extra["readability"]["notes"])
        + ("\nwarning: the calibration was fitted for other weights; run `mmexplore relation calibrate`"
           if res.extra["calibration"]["stale"] else "")
    )
    return d


def cmd_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.relation.calibration import calibrate

    encoder = load_encoder(args)
    log = (lambda s: None) if args.json else print
    return calibrate(encoder, model_spec=args.model, n_per_class=args.per_class, out=args.out, log=log)


def cmd_fit(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from mmexplore.data.images import load_image
    from mmexplore.data.pairs import read_pairs
    from mmexplore.relation.calibration import Calibration, calibration_path
    from mmexplore.relation.estimators import RelationClassifier
    from mmexplore.relation.features import pair_features
    from mmexplore.relation.taxonomy import CLASSES, canonical_label

    if not getattr(args, "pairs", None):
        raise InputError("relation fit needs --pairs FILE (CSV/JSONL with image, text and label columns)")
    table = read_pairs(args.pairs)
    rows = table.rows
    if any(not r.get("label") for r in rows):
        raise InputError(f"{args.pairs}: every row needs a 'label' (one of {list(CLASSES)})")
    try:
        labels = [canonical_label(r["label"]) for r in rows]
    except ValueError as exc:
        raise InputError(f"{args.pairs}: {exc}") from None
    if len(set(labels)) < 2:
        raise InputError(f"{args.pairs}: labels of at least two classes are needed to fit, got only {labels[0]!r}")
    base = _calibration(args)
    images = {p: load_image(p) for p in table.images}
    encoder = load_encoder(args)
    _, _, X = pair_features(encoder, [images[r["image"]] for r in rows], [r["text"] for r in rows], base.scale,
                           zoom_scale=base.zoom_scale)
    clf = RelationClassifier(mode="supervised").fit(X, labels)
    acc = float(np.mean([a == b for a, b in zip(clf.predict(X), labels, strict=True)]))
    out = Path(args.out) if args.out else calibration_path(f"{args.model}_supervised")
    meta = {"model": args.model, "mode": "supervised", "pairs": str(args.pairs), "n_pairs": len(rows), "train_accuracy": acc}
    path = Calibration(base.scale, clf, meta, base.zoom_scale).save(out)
    return {"path": str(path), "n_pairs": len(rows), "train_accuracy": acc,
            "hint": f"use it with: mmexplore relation --calibration {path} ..."}


def cmd_eval_relation(args: argparse.Namespace) -> dict[str, Any]:
    from mmexplore.relation.evaluate import HANDSET_DIR, evaluate_relation

    encoder = load_encoder(args)
    handset = None if args.no_handset else (args.handset or HANDSET_DIR)
    rep = evaluate_relation(encoder, calibration=_calibration(args), n_per_class=args.per_class,
                            renderer=args.renderer, handset=handset)
    lines = []
    for name in ("generated_test", "handset"):
        r = rep.get(name)
        if r:
            comps = ", ".join(f"{k} {v:.3f}" for k, v in r["components"].items())
            lines.append(f"{name}: macro accuracy {r['macro_accuracy']:.3f} on {r['n_pairs']} pairs ({comps})")
            lines.append("  confusion (rows true, cols predicted): " + " | ".join(c[:6] for c in r["classes"]))
            for c, row in zip(r["classes"], r["confusion"], strict=True):
                lines.append(f"  {c[:16]:16s} " + " ".join(f"{v:3d}" for v in row))
    rep["_text"] = "\n".join(lines)
    return {"model": args.model, "relation": rep, "_text": rep.pop("_text")}


def _relation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="FILE",
                   help="calibration JSON (default: mmexplore/assets/relation/calibration_<model>.json)")


def register(commands: Any, evals: Any) -> None:
    help_ = "the semantic relation of image–text pairs (Otto et al. 2020): label, CMI, SC, STAT, evidence"
    p = command(commands, "relation", cmd_relation, help_, description=help_ + ". Sub-actions: calibrate, fit.")
    _relation_args(p)
    p.add_argument("--image", metavar="FILE", help="the image")
    p.add_argument("--text", metavar="TEXT", help="the text (caption or passage)")
    p.add_argument("--pairs", metavar="FILE", help="CSV/JSONL with image,text columns (paths relative to the file)")
    sub = subcommands(p, "action", required=False)  # no action: label the pairs
    # Sub-actions take the common options without defaults, so `relation --model X calibrate` keeps X.
    c = command(sub, "calibrate", cmd_calibrate, "fit the thresholds on the generated training split and save them",
                options="inherit")
    c.add_argument("--calibration", metavar="FILE", default=argparse.SUPPRESS, help="calibration JSON")
    c.add_argument("--per-class", type=int_range(2, 100_000), default=60, help="training pairs per class (default 60)")
    c.add_argument("--out", type=out_file, metavar="FILE",
                   help="where to write (default mmexplore/assets/relation/calibration_<model>.json)")
    f = command(sub, "fit", cmd_fit, "supervised mode: fit an 8-class classifier on your labelled pairs", options="inherit")
    f.add_argument("--calibration", metavar="FILE", default=argparse.SUPPRESS, help="calibration JSON")
    f.add_argument("--pairs", metavar="FILE", default=argparse.SUPPRESS, help="CSV/JSONL with image, text and label columns")
    f.add_argument("--out", type=out_file, metavar="FILE", help="where to write the fitted classifier JSON")

    e = command(evals, "relation", cmd_eval_relation,
                "macro accuracy, per-component accuracy and confusion of the relation label")
    _relation_args(e)
    e.add_argument("--per-class", type=int_range(1, 100_000), default=40, help="test pairs per class (held-out scenes)")
    e.add_argument("--renderer", choices=[*RENDERERS, "mixed"], default="mixed",
                   help="renderer of the generated test pairs ('mixed': train and alt, every other pair)")
    e.add_argument("--handset", metavar="DIR", help="hand-written set folder (default mmexplore/assets/relation/handset)")
    e.add_argument("--no-handset", action="store_true", help="skip the hand-written set")
