"""Train a small open_clip model from scratch on the shapes world (``mmexplore train``).

The architecture is an open_clip model config (``mmexplore/models/configs/*.json``, registered with
``open_clip.add_model_config``) built by ``open_clip.create_model_and_transforms``; images go through
that model's own inference transform, so training and inference preprocess identically.

Loss: symmetric InfoNCE with a learnable temperature (CLIP). With ``negatives > 0`` each image also
gets hard-negative captions (NegCLIP): they join the image→text softmax as extra columns. Captions
identical to an image's own caption are masked out of its negatives (two scenes can share
"a small red circle").

The output folder is a model any open_clip user can load with ``local-dir:``:
``open_clip_config.json`` (model and preprocessing config, plus the compact tokenizer),
``open_clip_model.safetensors`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.data.shapes import (
    HELD_OUT_SEED_START,
    NEGATIVE_KINDS,
    Scene,
    canonical_caption,
    count_caption,
    hard_negative,
    make_scene,
    render_scene,
    sample_caption,
)

DEFAULT_ARCH = "mmexplore-shapes-s"
# Words outside the vocabulary (they map to <unk>): seen in training so the model learns to ignore them.
UNK_PREFIXES = ("here is ", "look at this: ", "we see ")
NEGATIVE_WEIGHTS = {"relation_swap": 0.45, "color_swap": 0.25, "shape_change": 0.1, "size_swap": 0.1, "count_change": 0.1}


@dataclass
class TrainConfig:
    """Settings of one training run (all JSON-able; stored in the output's metrics.json)."""

    out: str = "runs/shapes"
    arch: str = DEFAULT_ARCH
    steps: int = 2000
    minutes: float | None = None  # wall-clock budget; the LR schedule follows whichever ends first
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    negatives: int = 1  # hard negatives per image (0: plain CLIP)
    pair_fraction: float = 0.0  # share of the batch in counterfactual image pairs (used when negatives > 0)
    seed: int = 0
    device: str = "auto"
    render_size: int = 128
    eval_every: int = 250
    eval_scenes: int = 200
    threads: int | None = None
    dense_weight: float = 0.0  # weight of the dense phrase-patch alignment term (0: off; training/dense.py)
    init: str | None = None  # start from the weights of this model folder (same arch), e.g. to fine-tune
    extra: dict[str, Any] = field(default_factory=dict)


def build_tokenizer(context_length: int = 32):
    """The compact tokenizer of shapes-world models (:func:`mmexplore.models.tokenizer.shapes_tokenizer`)."""
    from mmexplore.models.tokenizer import shapes_tokenizer

    return shapes_tokenizer(context_length)


def build_model(arch: str, vocab_size: int, device: str):
    """Create an untrained open_clip model of a registered config, with its inference transform."""
    import open_clip

    from mmexplore.models.loader import register_project_configs

    register_project_configs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown architecture '{arch}'")
    text_cfg = dict(cfg["text_cfg"], vocab_size=vocab_size)
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=None, device=device, text_cfg=text_cfg
    )
    return model, preprocess, dict(cfg, text_cfg=text_cfg)


def counterfactual_pair(scene: Scene, rng: random.Random) -> tuple[Scene, str, Scene, str] | None:
    """A scene and its counterfactual twin that differ only in layout or in colour binding.

    ``relation`` (3 in 4): the two related objects trade places, so "a A left of a B" becomes true
    of the twin as "a B left of a A" (the original's relation-swap negative). ``color``: two objects
    of different shapes trade colours, and the twin's caption is the original's colour-swap negative.
    Both images and both captions go into the same batch, so each is the other's hard negative in
    both directions (images as well as texts), which a text-only negative cannot do.
    """
    cap = canonical_caption(scene)
    if cap.relation is None:
        return None
    i, _, j = cap.relation
    objs = list(scene.objects)
    a, b = objs[i], objs[j]
    if rng.random() < 0.75:
        objs[i], objs[j] = replace(a, cx=b.cx, cy=b.cy), replace(b, cx=a.cx, cy=a.cy)
        kind = "relation_swap"
    else:
        if a.shape == b.shape or a.color == b.color:
            return None
        objs[i], objs[j] = replace(a, color=b.color), replace(b, color=a.color)
        kind = "color_swap"
    twin = replace(scene, objects=tuple(objs))
    neg = hard_negative(cap, kind, rng)
    if neg is None:
        return None
    return scene, cap.text, twin, neg.text


def make_batch(
    rng: random.Random,
    batch_size: int,
    negatives: int,
    render_size: int,
    with_scenes: bool = False,
    pair_fraction: float = 0.0,
):
    """One training batch: (images, captions, negative captions per image[, scenes]).

    Scenes come from seeds below :data:`HELD_OUT_SEED_START`; 1–4 objects, two-object scenes most
    often (they carry the relations). A ``pair_fraction`` of the batch is made of counterfactual
    pairs (:func:`counterfactual_pair`), each image's negative being its twin's caption.
    """
    images, captions, negs, scenes = [], [], [], []
    n_pairs = int(batch_size * pair_fraction) // 2
    while len(images) < 2 * n_pairs:
        pair = counterfactual_pair(make_scene(rng.randrange(HELD_OUT_SEED_START), n_objects=2), rng)
        if pair is None:
            continue
        for scene, text, other in ((pair[0], pair[1], pair[3]), (pair[2], pair[3], pair[1])):
            images.append(render_scene(scene, render_size))
            captions.append(text)
            negs.append([other] * negatives)
            scenes.append(scene)
    while len(images) < batch_size:
        n = rng.choices([1, 2, 3, 4], weights=[0.15, 0.45, 0.25, 0.15])[0]
        scene = make_scene(rng.randrange(HELD_OUT_SEED_START), n_objects=n)
        kinds = rng.choices(list(NEGATIVE_WEIGHTS), weights=list(NEGATIVE_WEIGHTS.values()), k=negatives)
        if "relation_swap" in kinds and n > 1:
            caption = canonical_caption(scene, with_size=rng.random() < 0.8)
        elif "count_change" in kinds:
            caption = count_caption(scene)
        else:
            caption = sample_caption(scene, rng)
        text = caption.text
        if rng.random() < 0.05:
            text = rng.choice(UNK_PREFIXES) + text
        mine = []
        for kind in kinds:
            neg = hard_negative(caption, kind, rng)
            for other in NEGATIVE_KINDS:
                if neg is not None:
                    break
                neg = hard_negative(caption, other, rng)
            mine.append(neg.text if neg is not None else text)  # masked below when equal
        images.append(render_scene(scene, render_size))
        captions.append(text)
        negs.append(mine)
        scenes.append(scene)
    return (images, captions, negs, scenes) if with_scenes else (images, captions, negs)


def contrastive_loss(img, txt, neg, logit_scale, captions: list[str], neg_texts: list[list[str]]):
    """NegCLIP loss.

    Parameters
    ----------
    img : Tensor (B, d), txt : Tensor (B, d), neg : Tensor (B*k, d) or None
        Unit-norm features; ``neg`` rows ``i*k .. i*k+k-1`` are image i's hard negatives.
    logit_scale : Tensor ()
        exp of the learned log temperature.

    Returns
    -------
    (loss, i2t accuracy, hard-negative accuracy) as (Tensor, float, float)
    """
    import torch
    import torch.nn.functional as F

    b = img.shape[0]
    cols = [txt] if neg is None else [txt, neg]
    all_txt = torch.cat(cols)
    logits = logit_scale * img @ all_txt.T
    all_texts = captions + [t for row in neg_texts for t in row]
    # Mask columns whose text equals the image's own caption (false negatives), except the diagonal.
    same = np.array([[a == t for t in all_texts] for a in captions])
    same[np.arange(b), np.arange(b)] = False
    logits = logits.masked_fill(torch.from_numpy(same).to(logits.device), float("-inf"))
    target = torch.arange(b, device=img.device)
    t2i = logit_scale * txt @ img.T
    same_t = np.array([[a == c for c in captions] for a in captions])
    np.fill_diagonal(same_t, False)
    t2i = t2i.masked_fill(torch.from_numpy(same_t).to(t2i.device), float("-inf"))
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(t2i, target))
    with torch.no_grad():
        acc = float((logits.argmax(1) == target).float().mean())
        if neg is not None:
            k = neg.shape[0] // b
            pos = (img * txt).sum(-1)
            negs = (img.repeat_interleave(k, 0) * neg).sum(-1).view(b, k)
            hard = float((pos[:, None] > negs).float().mean())
        else:
            hard = float("nan")
    return loss, acc, hard


class _Prefetcher:
    """Makes batches in a background thread (PIL drawing overlaps the torch step; order is kept,
    so a run stays reproducible from its seed)."""

    def __init__(self, make: Callable[[], Any], depth: int = 2) -> None:
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()

        def work() -> None:
            while not self._stopped.is_set():
                item = make()
                while not self._stopped.is_set():
                    try:
                        self._queue.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def get(self) -> Any:
        return self._queue.get()

    def stop(self) -> None:
        self._stopped.set()


def _lr_factor(progress: float, step: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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


Objective = tuple[str, float, Callable[[dict[str, Any]], Any]]


def train(
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    *,
    batch_transform: Callable[[tuple], tuple] | None = None,
    objectives: Sequence[Objective] = (),
) -> dict[str, Any]:
    """Run training; returns the metrics dict also written to ``<out>/metrics.json``.

    Parameters
    ----------
    cfg : TrainConfig
    log : callable str -> None
    batch_transform : callable, optional
        Applied to every batch ``(images, captions, negatives, scenes)`` before the step (in the
        data thread, in order): e.g. a poisoned data stream or text-in-image augmentation. Its
        ``describe()`` dict, if it has one, is stored in ``metrics.json``.
    objectives : sequence of (name, weight, callable)
        Extra loss terms added to the contrastive loss; each callable gets the step context
        (``model``, ``pixels``, ``img``, ``txt``, ``captions``, ``tokenizer``, ``scale``) and returns a
        scalar tensor, logged under its name.
    """
    import torch

    from mmexplore.evaluation.retrieval import evaluate_retrieval
    from mmexplore.models.devices import resolve_device
    from mmexplore.models.encoder import Encoder

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = resolve_device(cfg.device)
    tokenizer = build_tokenizer()
    model, preprocess, model_cfg = build_model(cfg.arch, tokenizer.vocab_size, device)
    if cfg.init:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(Path(cfg.init) / "open_clip_model.safetensors"), device=device))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train_log.jsonl", "w")  # noqa: SIM115 - closed in finally
    start = time.time()
    history: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    step = 0
    samples = 0
    use_amp = device.startswith("cuda")
    dense = cfg.dense_weight > 0
    dense_rng = random.Random(cfg.seed + 1)  # its own stream: runs without the term are unchanged
    pair_fraction = cfg.pair_fraction if cfg.negatives > 0 else 0.0
    with_scenes = dense or batch_transform is not None
    transform = batch_transform or (lambda batch: batch)
    batches = _Prefetcher(
        lambda: transform(make_batch(rng, cfg.batch_size, cfg.negatives, cfg.render_size, with_scenes, pair_fraction))
    )
    if batch_transform is not None and hasattr(batch_transform, "describe"):
        cfg = replace(cfg, extra={**cfg.extra, **batch_transform.describe()})
    if objectives:
        cfg = replace(cfg, extra={**cfg.extra, "objectives": {name: w for name, w, _ in objectives}})
    try:
        while True:
            elapsed = time.time() - start
            progress = step / cfg.steps
            if cfg.minutes:
                progress = max(progress, elapsed / (cfg.minutes * 60))
            if progress >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(progress, step, cfg.warmup_steps)
            images, captions, neg_texts, *scenes = batches.get()
            pixels = torch.stack([preprocess(im) for im in images]).to(device)
            flat_negs = [t for row in neg_texts for t in row]
            tokens = tokenizer(captions + flat_negs).to(device)
            model.train()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                if dense:
                    from mmexplore.training.dense import dense_step

                    img, dense_loss = dense_step(model, pixels, scenes[0], tokenizer, dense_rng)
                else:
                    img = model.encode_image(pixels, normalize=True)
                txt_all = model.encode_text(tokens, normalize=True)
            img, txt_all = img.float(), txt_all.float()
            txt, neg = txt_all[: len(captions)], (txt_all[len(captions):] if flat_negs else None)
            scale = model.logit_scale.exp().clamp(max=100)
            loss, acc, hard = contrastive_loss(img, txt, neg, scale, captions, neg_texts)
            if dense:
                loss = loss + cfg.dense_weight * dense_loss.float()
            extra_logs = {}
            if objectives:
                ctx = {"model": model, "pixels": pixels, "img": img, "txt": txt, "captions": captions,
                       "tokenizer": tokenizer, "scale": scale}
                for name, weight, objective in objectives:
                    term = objective(ctx).float()
                    loss = loss + weight * term
                    extra_logs[name] = round(float(term.detach()), 4)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            samples += len(images)
            rec = {
                "step": step,
                "loss": round(float(loss.detach()), 4),
                "i2t_acc": round(acc, 4),
                "hard_neg_acc": round(hard, 4) if not math.isnan(hard) else None,
                "logit_scale": round(float(scale.detach()), 3),
                "lr": opt.param_groups[0]["lr"],
                "elapsed_s": round(time.time() - start, 1),
            }
            if dense:
                rec["dense_loss"] = round(float(dense_loss.detach()), 4)
            rec.update(extra_logs)
            history.append(rec)
            log_file.write(json.dumps(rec) + "\n")
            if step % 25 == 0 or step == 1:
                log_file.flush()
                rate = samples / max(1e-9, time.time() - start)
                log(
                    f"step {step:5d} loss {rec['loss']:.3f} acc {acc:.3f} hard {hard:.3f} "
                    f"scale {rec['logit_scale']:.1f} lr {rec['lr']:.2e} {rate:.0f} img/s"
                )
            if cfg.eval_every and step % cfg.eval_every == 0:
                model.eval()
                enc = Encoder(model, preprocess, tokenizer, name="training", model_id=f"train-{step}",
                              device=device, dtype="float32")
                ev = evaluate_retrieval(enc, n_scenes=cfg.eval_scenes, use_cache=False)
                evals.append({"step": step, **ev})
                brief = {r: {k: round(v, 3) for k, v in m.items() if not k.startswith("n_")} for r, m in ev.items()}
                log(f"eval step {step}: " + json.dumps(brief))
                save_model(model, model_cfg, tokenizer, out, {"config": asdict(cfg), "step": step, "evals": evals})
    finally:
        batches.stop()
        log_file.close()
    model.eval()
    enc = Encoder(model, preprocess, tokenizer, name="trained", model_id=f"train-{step}", device=device, dtype="float32")
    final = evaluate_retrieval(enc, n_scenes=cfg.eval_scenes, use_cache=False)
    metrics = {
        "config": asdict(cfg),
        "steps": step,
        "samples": samples,
        "wall_s": round(time.time() - start, 1),
        "samples_per_s": round(samples / max(1e-9, time.time() - start), 1),
        "device": device,
        "final_loss": float(np.mean([h["loss"] for h in history[-50:]])) if history else None,
        "eval": final,
        "evals": evals,
        "params": int(sum(p.numel() for p in model.parameters())),
    }
    save_model(model, model_cfg, tokenizer, out, metrics)
    log(f"saved to {out}: " + json.dumps(final))
    return metrics
