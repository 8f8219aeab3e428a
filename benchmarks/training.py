"""Training speed of the trainer vs a plain open_clip loop, and the Train page's time to a first result.

1. **Steps/s.** The same model (``--arch``, random init), batch size and pre-made batches (shapes scenes
   and captions, drawn once, so data generation is left out of both) are trained by

   - ``plain``: a loop written here with open_clip directly: preprocess, tokenize, ``encode_image`` /
     ``encode_text``, ``open_clip.loss.ClipLoss``, AdamW step;
   - ``trainer``: :class:`mmexplore.training.trainer.Trainer` with the ``clip`` objective fed the same
     batches through its ``data`` hook, live evaluation off (its per-step events, lr schedule, clamp
     and accuracy bookkeeping included).

   Measured two ways: **lockstep** — one plain step, then one ``Trainer.train_step`` (plus writing
   its event), batch by batch, so a change in the machine's load hits both alike; the ratio of the
   median step times is the headline figure (target ≈ 1) — and **whole runs** — the plain loop, then
   ``Trainer.run`` (prefetch thread, events, checkpoint excluded), ``--repeats`` times alternately,
   best steps/s of each (on a shared machine this one drifts with the load).
2. **Time to first visible result.** The Train page's own path (``JobManager.start`` → worker process,
   the NegCLIP preset) is timed from the click to the first step event and to the first held-out
   figure after step 0 (step 25); the page shows each within its 1 s refresh.

Prints a table and writes ``benchmarks/results/training.json``.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/training.py --steps 40 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def make_batches(n: int, batch_size: int, render_size: int):
    """``n`` pre-made batches of the default shapes stream (no negatives)."""
    from mmexplore.training.data import ShapesStream

    stream = ShapesStream(seed=0, batch_size=batch_size, negatives=0, render_size=render_size)
    return [stream(i) for i in range(n)]


class PlainLoop:
    """A plain open_clip training step (model, tokenizer, ClipLoss, AdamW): the baseline the Trainer is timed against."""

    def __init__(self, arch: str, device: str) -> None:
        import open_clip
        import torch

        from mmexplore.training.trainer import build_model, build_tokenizer

        torch.manual_seed(0)
        self.device = device
        self.tok = build_tokenizer()
        self.model, self.preprocess, _ = build_model(arch, self.tok.vocab_size, device)
        self.loss_fn = open_clip.loss.ClipLoss()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=2e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
        self.model.train()

    def step(self, b) -> None:
        """One optimiser step on batch ``b`` (images and captions)."""
        import torch

        pixels = torch.stack([self.preprocess(im) for im in b.images]).to(self.device)
        img = self.model.encode_image(pixels, normalize=True)
        txt = self.model.encode_text(self.tok(b.captions).to(self.device), normalize=True)
        loss = self.loss_fn(img, txt, self.model.logit_scale.exp())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _config(arch: str, batches, device: str, work: Path):
    """The Trainer's configuration matching :class:`PlainLoop` (CLIP loss, no negatives, no evaluation)."""
    from mmexplore.training.trainer import TrainConfig

    return TrainConfig(out=str(work), arch=arch, objective="clip", negatives=0, steps=len(batches),
                       batch_size=len(batches[0]), lr=2e-3, warmup_steps=5, eval_every=0, eval_scenes=2, device=device)


def plain_loop(arch: str, batches, device: str) -> float:
    """Steps/s of a plain open_clip training loop over ``batches``."""
    loop = PlainLoop(arch, device)
    start = time.perf_counter()
    for b in batches:
        loop.step(b)
    return len(batches) / (time.perf_counter() - start)


def trainer_loop(arch: str, batches, device: str, work: Path) -> float:
    """Steps/s of the Trainer over the same batches (step events timed, set-up and final eval excluded)."""
    from mmexplore.training.trainer import Trainer

    times: list[float] = []
    trainer = Trainer(_config(arch, batches, device, work), data=lambda step: batches[step],
                      callbacks=[lambda ev: times.append(time.perf_counter()) if ev["event"] in ("start", "step") else None])
    trainer.run()
    return (len(times) - 1) / (times[-1] - times[0])


def lockstep(arch: str, batches, device: str, work: Path) -> dict:
    """Median seconds per step of the plain loop and of ``Trainer.train_step`` run batch by batch, alternately."""
    import statistics

    from mmexplore.training.trainer import Trainer

    loop = PlainLoop(arch, device)
    trainer = Trainer(_config(arch, batches, device, work))
    trainer.setup()
    log = open(work / "lockstep.jsonl", "w")  # noqa: SIM115 - closed below
    plain_s, trainer_s = [], []
    for b in batches:
        t0 = time.perf_counter()
        loop.step(b)
        t1 = time.perf_counter()
        ev = trainer.train_step(b)
        log.write(json.dumps(ev) + "\n")
        log.flush()
        t2 = time.perf_counter()
        plain_s.append(t1 - t0)
        trainer_s.append(t2 - t1)
    log.close()
    skip = min(3, len(batches) // 4)  # warm-up steps (allocator, first autograd graph)
    p, t = statistics.median(plain_s[skip:]), statistics.median(trainer_s[skip:])
    return {"plain_median_s": round(p, 4), "trainer_median_s": round(t, 4), "ratio_steps_per_s": round(p / t, 3)}


def first_result(timeout: float = 600) -> dict:
    """Seconds from the page's start click to the first step event and the first held-out figure."""
    from mmexplore.settings import reload_settings
    from mmexplore.training.presets import preset_config

    runs = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ["MMEXPLORE_RUNS_DIR"] = str(runs)
    reload_settings()
    from mmexplore_app.train_job import JOBS

    cfg = preset_config("negclip", out=str(runs / "first"), name="first", threads=max(1, (os.cpu_count() or 2) - 1))
    t0 = time.time()
    job = JOBS.start(cfg)
    first_step = first_eval = None
    while time.time() - t0 < timeout and first_eval is None:
        job.refresh()
        if first_step is None and job.steps:
            first_step = time.time() - t0
        if any(e["step"] > 0 for e in job.evals):
            first_eval = time.time() - t0
        time.sleep(0.2)
    job.stop()
    JOBS.wait(120)
    evals = job.evals
    shutil.rmtree(runs, ignore_errors=True)
    return {"first_step_s": round(first_step, 1) if first_step else None,
            "first_heldout_figure_s": round(first_eval, 1) if first_eval else None,
            "first_heldout_step": next((e["step"] for e in evals if e["step"] > 0), None),
            "i2t@1_at_first": next((e["i2t@1"] for e in evals if e["step"] > 0), None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mmexplore-shapes-xs")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--render-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-page", action="store_true")
    args = ap.parse_args()

    import torch

    random.seed(0)
    batches = make_batches(args.steps, args.batch_size, args.render_size)
    plain, trainer = [], []
    with tempfile.TemporaryDirectory() as work:
        step = lockstep(args.arch, batches, args.device, Path(work))
        for r in range(args.repeats):
            plain.append(plain_loop(args.arch, batches, args.device))
            trainer.append(trainer_loop(args.arch, batches, args.device, Path(work) / f"t{r}"))
    report = {
        "config": vars(args), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "load_avg": os.getloadavg()[0],
        "lockstep": step,
        "plain_steps_per_s": round(max(plain), 3), "trainer_steps_per_s": round(max(trainer), 3),
        "ratio_trainer_over_plain": round(max(trainer) / max(plain), 3),
        "all_plain": [round(x, 3) for x in plain], "all_trainer": [round(x, 3) for x in trainer],
    }
    if not args.skip_page:
        report["page"] = first_result()
    print(f"lockstep: plain {1 / step['plain_median_s']:.2f} steps/s, trainer {1 / step['trainer_median_s']:.2f} "
          f"steps/s, ratio trainer/plain = {step['ratio_steps_per_s']:.2f}")
    print(f"whole runs (best of {args.repeats}): plain {report['plain_steps_per_s']:.2f}, trainer "
          f"{report['trainer_steps_per_s']:.2f} steps/s, ratio {report['ratio_trainer_over_plain']:.2f}")
    if "page" in report:
        print("Train page: " + json.dumps(report["page"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
