"""``mmexplore embed``: images and captions to Parquet shards, in one process or on Ray Data.

Both engines run the same two steps on the same batches, so they give the same numbers:

1. :func:`decode_batch` reads and decodes each image file and applies the model's own preprocessing
   (``Encoder.pixels``); a file that cannot be read becomes an error row, not a failure;
2. :class:`Embedder` holds one model (``load_model``) and turns pixels and captions into unit-norm
   embeddings (``Encoder.encode_pixels``, ``Encoder.encode_texts``).

``engine="local"`` runs them in this process. ``engine="ray"`` builds a Ray Data pipeline: decode as
parallel CPU tasks, then ``map_batches(Embedder, concurrency=N)``, an actor pool with one model per
actor (one GPU each when the cluster has GPUs), streamed back to this driver, which writes each shard
atomically. Ray starts in-process on this machine's cores unless an address is given (``--address``
or ``RAY_ADDRESS``): the same job then runs on that cluster. Items already in complete shards are
skipped, so a killed job resumes where it stopped without duplicating a row.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mmexplore.embeddings.shards import ShardWriter, done_ids
from mmexplore.embeddings.sources import ITEM_COLUMNS, list_items
from mmexplore.errors import InputError

ENGINES = ("auto", "local", "ray")
DECODE_MEMORY = 768 * 2**20  # bytes a decode task reserves (measured peak ~500 MB for a batch of 64)


@dataclass
class EmbedOptions:
    """How to run an embedding job (the CLI's options; defaults written once here).

    Attributes
    ----------
    engine : {"auto", "local", "ray"}
        ``auto``: one process for at most ``local_limit`` items to embed, Ray Data above.
    batch_size : int
        Images per forward pass (and rows per Ray batch).
    concurrency : int or None
        Model actors (None: one per GPU, else 1; on a CPU-only machine decoding takes the other cores).
    decode_concurrency : int or None
        Parallel decode tasks (None: Ray decides from the free CPUs).
    rows_per_shard : int
        Rows per Parquet shard (a killed job loses at most the rows not yet in a shard).
    device : str
        Where each actor runs its model (``auto``: CUDA when the actor got a GPU).
    address : str or None
        Ray cluster address (None: ``RAY_ADDRESS`` from the settings, else a local Ray).
    local_limit : int
    progress : bool
        A tqdm bar on stderr.
    """

    engine: str = "auto"
    batch_size: int = 64
    concurrency: int | None = None
    decode_concurrency: int | None = None
    rows_per_shard: int = 4096
    device: str = "auto"
    address: str | None = None
    local_limit: int = 256
    progress: bool = True

    def check(self) -> None:
        """Raise InputError naming the first bad option."""
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("batch_size", "rows_per_shard"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("concurrency", "decode_concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def decode_batch(batch: dict[str, np.ndarray], preprocess: Callable, image_size: int) -> dict[str, np.ndarray]:
    """Read, decode and preprocess the images of one batch (CPU work).

    Parameters
    ----------
    batch : dict of arrays
        Item columns (``path``, ``caption``, ...), n rows.
    preprocess : callable
        ``Encoder.preprocess`` (PIL image → tensor (3, S, S)).
    image_size : int
        S, to shape the placeholder of an unreadable image.

    Returns
    -------
    dict of arrays
        The item columns plus ``pixels`` (n, 3, S, S) float32 (zeros where unreadable) and
        ``error`` (n,) str ('' when the image was read).
    """
    import torch

    from mmexplore.data.images import load_image

    n = len(batch["path"])
    pixels = np.zeros((n, 3, image_size, image_size), dtype=np.float32)
    errors = np.array([""] * n, dtype=object)
    for i, path in enumerate(batch["path"]):
        try:
            pixels[i] = torch.as_tensor(preprocess(load_image(str(path)))).numpy()
        except InputError as exc:
            errors[i] = str(exc)
        except Exception as exc:
            errors[i] = f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return {**batch, "pixels": pixels, "error": errors}


class Embedder:
    """One model per instance (per Ray actor): pixels and captions to embeddings.

    Parameters
    ----------
    spec, device : str
        Passed to :func:`mmexplore.models.load_model` (``device="auto"`` uses the actor's GPU if any).
    batch_size : int
    """

    def __init__(self, spec: str, device: str = "auto", batch_size: int = 64) -> None:
        from mmexplore.models import load_model

        self.encoder = load_model(spec, device)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adds ``image_embedding`` / ``text_embedding`` (n, d) and ``image_ok`` / ``text_ok`` (n,)."""
        n = len(batch["path"])
        d = self.encoder.embed_dim
        ok = np.array([not e for e in batch["error"]], dtype=bool)
        image = np.zeros((n, d), dtype=np.float32)
        for s in range(0, n, self.batch_size):
            idx = np.flatnonzero(ok[s:s + self.batch_size]) + s
            if len(idx):
                image[idx] = self.encoder.encode_pixels(np.ascontiguousarray(batch["pixels"][idx]))
        has_text = ok & np.array([bool(c) for c in batch["caption"]], dtype=bool)
        text = np.zeros((n, d), dtype=np.float32)
        if has_text.any():
            captions = [str(c) for c in batch["caption"][has_text]]
            text[has_text] = self.encoder.encode_texts(captions, batch_size=256, use_cache=False)
        out = {k: v for k, v in batch.items() if k != "pixels"}
        return {**out, "image_embedding": image, "text_embedding": text, "image_ok": ok, "text_ok": has_text}


class _ShardBuffer:
    """Collects embedded batches and writes a shard every ``rows`` rows (errors go to the writer)."""

    def __init__(self, writer: ShardWriter, rows: int, on_shard: Callable[[int], None] | None) -> None:
        self.writer, self.rows, self.on_shard = writer, rows, on_shard
        self.parts: list[dict[str, np.ndarray]] = []
        self.pending = 0
        self.written = 0
        self.failed = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        bad = np.flatnonzero(~np.asarray(batch["image_ok"], dtype=bool))
        self.writer.add_errors([{"id": str(batch["id"][i]), "row": int(batch["row"][i]), "path": str(batch["path"][i]),
                                 "caption": str(batch["caption"][i]), "error": str(batch["error"][i])} for i in bad])
        self.failed += len(bad)
        good = np.asarray(batch["image_ok"], dtype=bool)
        if good.any():
            self.parts.append({k: np.asarray(v)[good] for k, v in batch.items()})
            self.pending += int(good.sum())
        while self.pending >= self.rows:
            self._write(self.rows)

    def _write(self, limit: int) -> None:
        merged = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        take = {k: v[:limit] for k, v in merged.items()}
        rest = {k: v[limit:] for k, v in merged.items()}
        self.parts = [rest] if len(rest["id"]) else []
        self.pending = len(rest["id"])
        items = pa.table({c: take[c] for c in ITEM_COLUMNS})
        self.writer.write_shard(items, take["image_embedding"], None, take["text_embedding"], take["text_ok"])
        self.written += len(take["id"])
        if self.on_shard is not None:
            self.on_shard(self.written)

    def flush(self) -> None:
        if self.pending:
            self._write(self.pending)


def _batches(table: pa.Table, size: int):
    for s in range(0, table.num_rows, size):
        yield {c: table.column(c).slice(s, size).to_numpy(zero_copy_only=False) for c in table.column_names}


def _run_local(todo: pa.Table, spec: str, opts: EmbedOptions, encoder: Any, sink: _ShardBuffer, bar: Any) -> None:
    embedder = Embedder.__new__(Embedder)  # the driver's model: no second load in this process
    embedder.encoder, embedder.batch_size = encoder, opts.batch_size
    for batch in _batches(todo, opts.batch_size):
        out = embedder(decode_batch(batch, encoder.preprocess, encoder.image_size))
        sink.add(out)
        bar.update(len(batch["id"]))


def _init_ray(address: str | None) -> bool:
    """Connect to ``address`` or start Ray in this process; True when this call started it."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:  # any failure to reach the cluster is the user's address or network
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot connect to the Ray cluster at {address!r} ({first}); "
                             "check --address / RAY_ADDRESS") from None
    else:
        ray.init(include_dashboard=False, **kwargs)
    return True


def _run_ray(todo: pa.Table, spec: str, opts: EmbedOptions, encoder: Any, sink: _ShardBuffer, bar: Any) -> dict[str, Any]:
    import ray

    from mmexplore.settings import get_settings

    address = opts.address or get_settings().ray_address
    started = _init_ray(address)
    try:
        import logging

        for name in ("ray.data", "ray.data._internal.execution.streaming_executor"):
            logging.getLogger(name).setLevel(logging.ERROR)  # set after ray.data configured its loggers
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours (tqdm on stderr) counts rows written
        ctx.print_on_execution_start = False
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actors = opts.concurrency or max(1, gpus)
        blocks = [todo.slice(s, opts.batch_size) for s in range(0, todo.num_rows, opts.batch_size)]
        ds = ray.data.from_arrow(blocks)
        decode_compute = ray.data.TaskPoolStrategy(size=opts.decode_concurrency) if opts.decode_concurrency else None
        # Decode tasks reserve a little memory of their own: besides telling the scheduler what a batch
        # of pixels costs, differing resources keep Ray from fusing them into the model actors, so
        # decoding stays parallel beside the forward passes.
        ds = ds.map_batches(decode_batch, fn_kwargs={"preprocess": encoder.preprocess, "image_size": encoder.image_size},
                            batch_size=opts.batch_size, batch_format="numpy", num_cpus=1, memory=DECODE_MEMORY,
                            compute=decode_compute)
        ds = ds.map_batches(Embedder, fn_constructor_kwargs={"spec": spec, "device": opts.device,
                                                            "batch_size": opts.batch_size},
                            compute=ray.data.ActorPoolStrategy(size=actors), batch_size=opts.batch_size,
                            batch_format="numpy", num_gpus=1 if gpus else 0, num_cpus=1)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            sink.add(batch)
            bar.update(len(batch["id"]))
        return {"ray_address": address or "local", "actors": actors, "gpus": gpus,
                "cpus": int(ray.cluster_resources().get("CPU", 0))}
    finally:
        if started:
            ray.shutdown()


def embed(source: str, out: str | os.PathLike, spec: str, options: EmbedOptions | None = None, *,
          on_shard: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Embed ``source`` into the shards of ``out``, skipping items already written there.

    Parameters
    ----------
    source : str
        A folder of images, a glob, or a captions CSV/TSV/JSONL/Parquet (see
        :func:`~mmexplore.embeddings.sources.list_items`).
    out : path
        Embeddings folder; re-running with the same folder resumes.
    spec : str
        Model spec (one model layer: :func:`mmexplore.models.load_model`).
    options : EmbedOptions
    on_shard : callable(rows_written), optional
        Called after each shard (tests use it to stop a job mid-way).

    Returns
    -------
    dict
        ``{"out", "engine", "model", "model_id", "items", "skipped", "embedded", "errors", "seconds",
        "manifest", ...}``.
    """
    from tqdm import tqdm

    from mmexplore.models import load_model

    opts = options or EmbedOptions()
    opts.check()
    t0 = time.perf_counter()
    items = list_items(source)
    done = done_ids(out) if os.path.isdir(out) else set()
    keep = np.array([i not in done for i in items.column("id").to_pylist()], dtype=bool)
    todo = items.filter(pa.array(keep))
    encoder = load_model(spec, "cpu")  # model id, dimension and preprocessing; actors load their own
    writer = ShardWriter(out, encoder.model_id, encoder.name, encoder.embed_dim, str(source))
    engine = opts.engine
    if engine == "auto":
        engine = "local" if todo.num_rows <= opts.local_limit else "ray"
    sink = _ShardBuffer(writer, opts.rows_per_shard, on_shard)
    bar = tqdm(total=items.num_rows, initial=items.num_rows - todo.num_rows, desc="embedding", unit="item",
               file=sys.stderr, disable=not opts.progress, dynamic_ncols=True)
    extra: dict[str, Any] = {}
    try:
        if todo.num_rows:
            if engine == "local":
                _run_local(todo, spec, opts, encoder, sink, bar)
            else:
                extra = _run_ray(todo, spec, opts, encoder, sink, bar)
        sink.flush()
    finally:
        bar.close()
    manifest = writer.finish({"engine": engine, **extra})
    return {"out": str(out), "engine": engine, "model": encoder.name, "model_id": encoder.model_id,
            "items": items.num_rows, "skipped": items.num_rows - todo.num_rows, "embedded": sink.written,
            "errors": sink.failed, "seconds": time.perf_counter() - t0, "manifest": manifest, **extra}
