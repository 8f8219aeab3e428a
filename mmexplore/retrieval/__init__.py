"""Search over image and text embeddings with faiss (exact, HNSW or IVF-PQ, chosen by size).

- :class:`VectorIndex` — one faiss index over unit-norm vectors, backend by name or by size, with the
  recall@10 it trades measured at build time;
- :class:`SearchIndex` — image and text rows of one model with their metadata, saved to a folder,
  queried text→image, image→text and image→image;
- :func:`build_index` — a resumable build from a folder of images or a captions file.

faiss is imported lazily, inside the functions that need it.
"""

from mmexplore.retrieval.backends import BACKENDS, available_backends, get_backend
from mmexplore.retrieval.build import build_index, read_source
from mmexplore.retrieval.collection import KINDS, ModelMismatchError, SearchIndex
from mmexplore.retrieval.vector_index import DEFAULT_THRESHOLD, VectorIndex, exact_knn, recall_at_k

__all__ = [
    "BACKENDS",
    "DEFAULT_THRESHOLD",
    "KINDS",
    "ModelMismatchError",
    "SearchIndex",
    "VectorIndex",
    "available_backends",
    "build_index",
    "exact_knn",
    "get_backend",
    "read_source",
    "recall_at_k",
]
