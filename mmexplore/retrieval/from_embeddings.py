"""An index built from an embeddings folder (``mmexplore embed``), without encoding anything again.

Each kind (images, captions) is read from the Parquet shards as a
:class:`~mmexplore.embeddings.shards.ShardSource`: counted from the footers, sampled for training,
added shard by shard and searched exactly for the recall measurement, so the memory needed is the
index itself plus one shard. Rows keep the listing order of the source, so the index equals the one
``mmexplore index build SOURCE`` makes from the same folder or captions table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmexplore.embeddings.shards import EmbeddingShards, ShardSource
from mmexplore.errors import InputError
from mmexplore.retrieval.backends import AUTO
from mmexplore.retrieval.collection import KINDS, ArrowRecords, SearchIndex
from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD, VectorIndex


def build_index_from_embeddings(
    embeddings: str | os.PathLike,
    index_dir: str | os.PathLike,
    *,
    backend: str = AUTO,
    threshold: int = DEFAULT_THRESHOLD,
    recall_target: float = 0.95,
    params: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build and save a :class:`SearchIndex` from the shards in ``embeddings``.

    Parameters
    ----------
    embeddings : path
        A folder written by ``mmexplore embed`` (manifest + ``part-*.parquet``).
    index_dir : path
        Output folder (written file by file, each atomically).
    backend, threshold, params
        As for :class:`VectorIndex` (``auto``: exact below ``threshold`` rows, an inverted file above,
        compressed with 8-bit re-ranking when the float32 vectors would exceed 4 GiB).
    recall_target : float
        recall@10 that ``nprobe`` is tuned to reach; the recall measured on held-out queries is stored.
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    dict
        ``{"index", "model", "model_id", "sizes": {kind: n}, "kinds": {kind: description}}``.
    """
    shards = EmbeddingShards(embeddings)
    root = Path(index_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a folder")
    manifest = shards.manifest
    index = SearchIndex(manifest["model_id"], manifest.get("model", ""), backend=backend, threshold=threshold,
                        params=params)
    for kind in KINDS:
        if shards.count(kind) == 0:
            continue
        root.mkdir(parents=True, exist_ok=True)  # re-ranking rows are written here: saving renames them
        vi = VectorIndex(backend, threshold=threshold, recall_target=recall_target, params=params, rows_dir=root)
        index.indexes[kind] = vi.fit_source(ShardSource(shards, kind, progress=progress))
        index.items[kind] = ArrowRecords(shards.records(kind))
    if not index.indexes:
        raise InputError(f"{embeddings}: the shards hold no embeddings")
    index.save(root)
    info = index.describe()
    return {"index": str(root), "model": index.model_name, "model_id": index.model_id,
            "sizes": {kind: index.size(kind) for kind in index.indexes}, "kinds": info["kinds"]}
