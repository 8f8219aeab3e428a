"""Ready-made sample sets: shapes-world scenes with ground truth, and a few photos from scikit-image.

Both return a :class:`SampleSet` (plain data, no Streamlit), which the app loads with one click and
the tests use as fixtures.

- :func:`shapes_samples` draws held-out scenes from the generator (training never saw these seeds),
  renders them, and adds their true caption plus one hard negative per scene (a caption that is
  false for every image, made by swapping a relation, colour, shape or size). The scenes are kept
  as ground truth (object masks, phrases), so pages can score heatmaps against them.
- :func:`photo_samples` loads photographs shipped inside scikit-image (no download) with
  hand-written captions. The bundled model only knows the shapes world: these need a pretrained
  model such as ``ViT-B-32:laion2b_s34b_b79k``.

>>> s = shapes_samples(n=3)
>>> len(s.images), s.pairs.shape[0], bool(s.pairs.sum(axis=1).min() >= 1)
(3, 3, True)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.data.shapes import (
    HELD_OUT_SEED_START,
    Scene,
    canonical_caption,
    hard_negative,
    make_scene,
    render_scene,
    scene_captions,
)

# Seeds of the sample scenes: held out from training, and away from the seeds the tests use.
SAMPLE_SEED_START = HELD_OUT_SEED_START + 70_000
# The order in which hard-negative kinds are tried for each scene (the first that applies is used).
NEGATIVE_ORDER = ("relation_swap", "color_swap", "shape_change", "size_swap")


@dataclass
class SampleSet:
    """Images, captions and true pairs, with optional shapes-world ground truth.

    Attributes
    ----------
    images : list of PIL.Image.Image (RGB), length N
    names : list of str, length N
    texts : list of str, length M
    pairs : ndarray of shape (N, M), bool
        True where image i and caption j belong together.
    scenes : list of Scene or None, length N
        The generator's scene for each image (None for photos).
    text_kinds : list of str, length M
        How each caption was made: "canonical", "negative:<kind>" or "hand-written".
    source : str
        A short label, e.g. "shapes samples".
    """

    images: list[Any]
    names: list[str]
    texts: list[str]
    pairs: np.ndarray
    scenes: list[Scene | None]
    text_kinds: list[str] = field(default_factory=list)
    source: str = ""


def _scene_objects(k: int) -> int:
    """Object counts cycle 2, 2, 1, 3 so that relations, single objects and lists all appear."""
    return (2, 2, 1, 3)[k % 4]


def _true_of(scene: Scene, text: str) -> bool:
    """Whether ``text`` is one of ``scene``'s true captions, or names one of its objects ("a small red circle")."""
    if text in {c.text for c in scene_captions(scene)}:
        return True
    mentions = {f"a {o.phrase}" for o in scene.objects} | {f"a {o.color} {o.shape}" for o in scene.objects}
    return text in mentions


def shapes_samples(n: int = 8, *, seed: int = SAMPLE_SEED_START, size: int = 192, negatives: bool = True) -> SampleSet:
    """Shapes-world scenes with their canonical captions and one hard negative per scene.

    Parameters
    ----------
    n : int
        Number of scenes (images), at least 1.
    seed : int
        Seed of the first scene; scene k uses ``seed + k``. The default is a held-out seed.
    size : int
        Rendered image side in pixels (the model resizes to its own input size).
    negatives : bool
        Add one hard negative caption per scene (kinds tried in :data:`NEGATIVE_ORDER`). Negatives are
        false for every image (a perturbation that happens to describe another sample scene is
        skipped), so their column of ``pairs`` is all False.

    Returns
    -------
    SampleSet
        N images, M = N true captions (+ up to N negatives); ``pairs[k, k]`` is True for the true
        caption of scene k. Texts are unique: a duplicate negative is dropped.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = random.Random(seed)
    scenes = [make_scene(seed + k, n_objects=_scene_objects(k)) for k in range(n)]
    captions = [canonical_caption(s) for s in scenes]
    texts = [c.text for c in captions]
    kinds = ["canonical"] * n
    pairs_cols: list[int] = list(range(n))
    seen = set(texts)
    if negatives:
        for k, cap in enumerate(captions):
            for offset in range(len(NEGATIVE_ORDER)):
                kind = NEGATIVE_ORDER[(k + offset) % len(NEGATIVE_ORDER)]
                neg = hard_negative(cap, kind, rng)
                if neg is not None and neg.text not in seen and not any(_true_of(sc, neg.text) for sc in scenes):
                    texts.append(neg.text)
                    kinds.append(f"negative:{kind}")
                    seen.add(neg.text)
                    break
    pairs = np.zeros((n, len(texts)), dtype=bool)
    pairs[np.arange(n), pairs_cols] = True
    images = [render_scene(s, size=size) for s in scenes]
    names = [f"scene {k + 1}" for k in range(n)]
    return SampleSet(images, names, texts, pairs, list(scenes), kinds, source="shapes samples")


# name in skimage.data -> hand-written captions (the first is the true caption of that photo).
PHOTO_CAPTIONS: dict[str, list[str]] = {
    "astronaut": ["a portrait of an astronaut in a white spacesuit in front of a flag"],
    "coffee": ["a cup of coffee on a saucer with a spoon"],
    "chelsea": ["a ginger tabby cat looking to the side"],
    "rocket": ["a rocket on the launch pad under a blue sky"],
    "camera": ["a black and white photo of a man with a camera on a tripod"],
    "coins": ["old coins lying on a dark surface"],
    "hubble_deep_field": ["a deep space image full of distant galaxies"],
    "immunohistochemistry": ["a stained tissue sample under a microscope"],
}
# Captions that describe none of the photos: distractors for retrieval.
PHOTO_DISTRACTORS: tuple[str, ...] = ("a bowl of fruit on a kitchen table", "a red double-decker bus in the street")


def photo_samples(names: tuple[str, ...] | None = None, *, max_side: int = 384) -> SampleSet:
    """Photographs bundled with scikit-image, with hand-written captions and two distractors.

    Parameters
    ----------
    names : tuple of str, optional
        Which ``skimage.data`` images to use (default: all of :data:`PHOTO_CAPTIONS`).
    max_side : int
        Images are shrunk (aspect kept) so that their longer side is at most this many pixels.

    Returns
    -------
    SampleSet
        Grey-scale photos are converted to RGB; ``scenes`` are all None.
    """
    import skimage.data
    from PIL import Image

    from mmexplore.data.images import to_rgb

    chosen = list(names) if names is not None else list(PHOTO_CAPTIONS)
    unknown = [nm for nm in chosen if nm not in PHOTO_CAPTIONS]
    if unknown:
        raise ValueError(f"unknown photo sample(s) {', '.join(unknown)}; choose from {', '.join(PHOTO_CAPTIONS)}")
    images, texts, rows = [], [], []
    for i, nm in enumerate(chosen):
        arr = getattr(skimage.data, nm)()
        im = to_rgb(Image.fromarray(arr))
        im.thumbnail((max_side, max_side))
        images.append(im)
        for cap in PHOTO_CAPTIONS[nm]:
            rows.append((i, len(texts)))
            texts.append(cap)
    kinds = ["hand-written"] * len(texts) + ["distractor"] * len(PHOTO_DISTRACTORS)
    texts += list(PHOTO_DISTRACTORS)
    pairs = np.zeros((len(images), len(texts)), dtype=bool)
    for i, j in rows:
        pairs[i, j] = True
    return SampleSet(images, chosen, texts, pairs, [None] * len(images), kinds, source="photo samples")


def write_samples(samples: SampleSet, out_dir: str | Path) -> dict[str, Any]:
    """Write a sample set to a folder, ready for the CLI and for upload in the app.

    Writes one PNG per image, ``pairs.csv`` (columns ``image,text,phrase``: one row per true pair; for
    shapes scenes ``phrase`` is the first object's phrase, so ``mmexplore heatmap --pairs`` has a
    phrase to map) and ``captions.txt`` (every caption, hard negatives and distractors included, one
    per line, for ``--texts-file``).

    Parameters
    ----------
    samples : SampleSet
    out_dir : str or Path
        Created if missing; files of the same names are overwritten.

    Returns
    -------
    dict
        ``{"images": [paths], "pairs": path, "captions": path}`` (paths as str).
    """
    import csv

    from mmexplore.data.shapes import canonical_caption

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, (image, name) in enumerate(zip(samples.images, samples.names, strict=True)):
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip()) or f"image_{k}"
        path = out / f"{stem}.png"
        image.save(path)
        files.append(path)
    with (out / "pairs.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "text", "phrase"])
        for i, j in zip(*np.nonzero(samples.pairs), strict=True):
            scene = samples.scenes[i] if samples.scenes else None
            phrase = canonical_caption(scene).phrases[0].text if scene is not None else ""
            writer.writerow([files[i].name, samples.texts[j], phrase])
    (out / "captions.txt").write_text("\n".join(samples.texts) + "\n", encoding="utf-8")
    return {"images": [str(f) for f in files], "pairs": str(out / "pairs.csv"), "captions": str(out / "captions.txt")}
