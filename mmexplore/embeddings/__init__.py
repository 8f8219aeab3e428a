"""Embedding collections on disk: what ``mmexplore embed`` writes and what the index and the app read.

- :mod:`~mmexplore.embeddings.sources` — a folder, a glob or a captions CSV/JSONL/Parquet listed as
  one table of ``(id, row, path, caption)`` items, without decoding anything;
- :mod:`~mmexplore.embeddings.shards` — the Parquet shard format (embeddings as fixed-size float32
  lists), its manifest and errors table, and streaming readers that never hold every vector;
- :mod:`~mmexplore.embeddings.job` — the embedding job itself: one process for small inputs, Ray
  Data (CPU decode tasks, an actor pool holding the model) for the rest, both resumable.

Only ``job`` imports torch (through the model layer) and ray; the readers need numpy and pyarrow.
"""
