"""A separate process that builds an index with a fast fake encoder (for the concurrency and kill tests).

``python tests/build_worker.py SOURCE INDEX [CHUNK_SIZE] [SLEEP_S]`` prints the build's result as JSON.
``SLEEP_S`` pauses after every chunk so that two builds overlap, or a kill lands mid-build.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import numpy as np


class SlowFakeEncoder:
    """Deterministic 8-d unit vectors from pixels or text; sleeps per call to stretch the build."""

    embed_dim = 8

    def __init__(self, sleep_s: float) -> None:
        self.model_id, self.sleep_s = "fake@1", sleep_s
        self.info = SimpleNamespace(name="fake")

    def encode_images(self, images, batch_size=64):
        time.sleep(self.sleep_s)
        x = np.stack([np.asarray(im.convert("RGB").resize((2, 2)), dtype=np.float32).ravel()[:8] + 1 for im in images])
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_texts(self, texts):
        time.sleep(self.sleep_s)
        x = np.stack([np.frombuffer(t.encode().ljust(8, b"_")[:8], dtype=np.uint8).astype(np.float32) for t in texts])
        return x / np.linalg.norm(x, axis=1, keepdims=True)


if __name__ == "__main__":
    from mmexplore.retrieval import build_index

    source, index = sys.argv[1], sys.argv[2]
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    sleep_s = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    res = build_index(source, index, SlowFakeEncoder(sleep_s), chunk_size=chunk, progress=False)
    print(json.dumps({k: res[k] for k in ("sizes", "embedded", "skipped", "changed", "removed", "errors")}))
