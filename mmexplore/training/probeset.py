"""The fixed held-out probe a run is measured on while it trains, and its replay snapshots.

Live figures (every ``eval_every`` steps) come from :func:`~mmexplore.evaluation.retrieval.score_retrieval`
— the same code as ``mmexplore eval retrieval`` — on the first ``probe_scenes`` held-out scenes drawn
by the training renderer, plus the modality gap and the dimension correlation of the embeddings.

**Snapshot format** (no pickle; ``snapshots/`` in the run folder):

- ``probe.json``: ``{"format": "mmexplore-snapshots/1", "scene_seeds": [...], "captions": [...],
  "negatives": [{"scene": i, "kind": k, "text": t}, ...], "steps": [...]}`` — the first
  ``snapshot_scenes`` probe scenes (re-creatable with ``make_scene(seed)``), their canonical captions
  and every hard negative of those captions;
- ``step_000050.npz`` (one per snapshot): float16 arrays ``image`` (k, d), ``caption`` (k, d),
  ``negative`` (m, d) — unit-norm embeddings in ``probe.json`` order — and ``logit_scale`` (1,)
  float32, ``step`` (1,) int64. No object arrays: ``np.load(f, allow_pickle=False)`` reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.evaluation.retrieval import RetrievalProbe, render, retrieval_probe, score_retrieval
from mmexplore.projection.gap import modality_gap
from mmexplore.training.objectives import mean_abs_dim_corr

SNAPSHOT_FORMAT = "mmexplore-snapshots/1"
# The live figures of an eval event, in the order charts and tables show them.
LIVE_METRICS = ("i2t@1", "t2i@1", "color_binding", "relation_order", "modality_gap", "dim_corr")


@dataclass
class ProbeSet:
    """Held-out scenes with their preprocessed pixels and tokens, embedded by the model being trained.

    Attributes
    ----------
    probe : RetrievalProbe
    snapshot_scenes : int
        How many of the scenes (the first ones) go into replay snapshots.
    pixels, tokens : Tensor
        Preprocessed images (n, 3, S, S) and tokenised ``probe.all_texts`` (T, L), on the device.
    """

    probe: RetrievalProbe
    snapshot_scenes: int
    pixels: Any
    tokens: Any
    _neg_rows: list[int] = field(default_factory=list)
    _snap_negs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, n_scenes: int, snapshot_scenes: int, preprocess: Any, tokenizer: Any, device: str) -> ProbeSet:
        """Render, preprocess and tokenise the probe once (seconds for 100 scenes)."""
        import torch

        probe = retrieval_probe(n_scenes)
        pixels = torch.stack([preprocess(render(s, "train")) for s in probe.scenes]).to(device)
        tokens = tokenizer(probe.all_texts).to(device)
        k = min(snapshot_scenes, n_scenes)
        index = probe.text_index
        snap_negs = [{"scene": i, "kind": kind, "text": neg} for i, kind, _, neg in probe.neg_items if i < k]
        return cls(probe, k, pixels, tokens, [index[n["text"]] for n in snap_negs], snap_negs)

    def embed(self, model: Any, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Unit-norm image (n, d) and text (T, d) embeddings, float32, with the model in eval mode."""
        import torch

        was_training = model.training
        model.eval()
        with torch.no_grad():
            img = torch.cat([model.encode_image(self.pixels[i:i + batch], normalize=True).float()
                             for i in range(0, len(self.pixels), batch)])
            txt = torch.cat([model.encode_text(self.tokens[i:i + batch], normalize=True).float()
                             for i in range(0, len(self.tokens), batch)])
        model.train(was_training)
        return img.cpu().numpy(), txt.cpu().numpy()

    def evaluate(self, model: Any) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """Live figures and the embeddings they came from.

        Returns
        -------
        (figures, image_emb (n, d), text_emb (T, d))
            figures: ``i2t@1``, ``t2i@1``, ``i2t@5``, ``t2i@5``, ``color_binding`` (attribute binding),
            ``relation_order``, ``shape_change``, ``size_swap``, ``count_change`` (accuracies in [0, 1]),
            ``modality_gap`` (‖mean image − mean caption embedding‖, 0–2) and ``dim_corr`` (mean
            |off-diagonal correlation| of the embedding dimensions, images and captions averaged).
        """
        img, txt = self.embed(model)
        figures = {k: v for k, v in score_retrieval(self.probe, img, txt).items() if not k.startswith("n_")}
        cap = txt[[self.probe.text_index[t] for t in self.probe.texts]]
        figures["modality_gap"] = modality_gap(img, cap)
        figures["dim_corr"] = 0.5 * (mean_abs_dim_corr(img) + mean_abs_dim_corr(cap))
        return figures, img, txt

    def snapshot_arrays(self, img: np.ndarray, txt: np.ndarray) -> dict[str, np.ndarray]:
        """The replay subset of one evaluation: ``image`` (k, d), ``caption`` (k, d), ``negative`` (m, d)."""
        k = self.snapshot_scenes
        index = self.probe.text_index
        return {
            "image": img[:k].astype(np.float16),
            "caption": txt[[index[t] for t in self.probe.texts[:k]]].astype(np.float16),
            "negative": txt[self._neg_rows].astype(np.float16) if self._neg_rows else np.zeros((0, txt.shape[1]), np.float16),
        }

    def write_probe_json(self, folder: Path) -> None:
        """``probe.json`` of the snapshot folder (what each snapshot row is)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "probe.json"
        steps = json.loads(path.read_text()).get("steps", []) if path.is_file() else []
        k = self.snapshot_scenes
        meta = {"format": SNAPSHOT_FORMAT, "scene_seeds": [s.seed for s in self.probe.scenes[:k]],
                "captions": self.probe.texts[:k], "negatives": self._snap_negs, "steps": steps}
        path.write_text(json.dumps(meta, indent=1))


def write_snapshot(folder: Path, step: int, arrays: dict[str, np.ndarray], logit_scale: float) -> Path:
    """Write ``step_XXXXXX.npz`` and add the step to ``probe.json`` (which must exist)."""
    path = folder / f"step_{step:06d}.npz"
    np.savez_compressed(path, **arrays, logit_scale=np.array([logit_scale], np.float32),
                        step=np.array([step], np.int64))
    meta_path = folder / "probe.json"
    meta = json.loads(meta_path.read_text())
    meta["steps"] = sorted(set(meta.get("steps", [])) | {step})
    meta_path.write_text(json.dumps(meta, indent=1))
    return path


@dataclass
class Replay:
    """All snapshots of a run, stacked.

    Attributes
    ----------
    steps : ndarray (S,) int
    image, caption : ndarray (S, k, d) float32
    negative : ndarray (S, m, d) float32
    logit_scale : ndarray (S,) float32
    captions : list of str (k)
    negatives : list of dict ``{"scene", "kind", "text"}`` (m)
    scene_seeds : list of int (k)
    """

    steps: np.ndarray
    image: np.ndarray
    caption: np.ndarray
    negative: np.ndarray
    logit_scale: np.ndarray
    captions: list[str]
    negatives: list[dict[str, Any]]
    scene_seeds: list[int]

    def similarity(self) -> np.ndarray:
        """Cosine of every probe image with every caption then every negative: (S, k, k + m)."""
        texts = np.concatenate([self.caption, self.negative], axis=1)
        return np.einsum("skd,std->skt", self.image, texts)

    def gaps(self) -> np.ndarray:
        """Modality gap of each snapshot (images vs captions): (S,)."""
        return np.array([modality_gap(i, c) for i, c in zip(self.image, self.caption, strict=True)])

    def projection(self) -> np.ndarray:
        """2-D coordinates of images, captions and negatives in every snapshot: (S, 2k + m, 2).

        One PCA fitted on all snapshots together, so the axes stay fixed and what moves in the
        animation is the embeddings, not the projection.
        """
        pts = np.concatenate([self.image, self.caption, self.negative], axis=1)  # (S, n, d)
        flat = pts.reshape(-1, pts.shape[-1]).astype(np.float64)
        mean = flat.mean(0)
        _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
        return ((pts - mean) @ vt[:2].T).astype(np.float32)


def load_replay(folder: str | Path) -> Replay:
    """Read a run's ``snapshots/`` folder (or the folder itself). Raises FileNotFoundError when absent."""
    folder = Path(folder)
    if (folder / "snapshots").is_dir():
        folder = folder / "snapshots"
    meta_path = folder / "probe.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"no replay snapshots in {folder.name}")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {meta.get('format')!r}")
    frames = []
    for step in meta["steps"]:
        path = folder / f"step_{step:06d}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                frames.append({k: z[k] for k in ("image", "caption", "negative", "logit_scale", "step")})
    if not frames:
        raise FileNotFoundError(f"no snapshot files in {folder.name}")
    return Replay(
        steps=np.array([int(f["step"][0]) for f in frames]),
        image=np.stack([f["image"] for f in frames]).astype(np.float32),
        caption=np.stack([f["caption"] for f in frames]).astype(np.float32),
        negative=np.stack([f["negative"] for f in frames]).astype(np.float32),
        logit_scale=np.array([float(f["logit_scale"][0]) for f in frames], np.float32),
        captions=list(meta["captions"]),
        negatives=list(meta["negatives"]),
        scene_seeds=list(meta["scene_seeds"]),
    )
