"""The pointing game on the shapes world: does a phrase's map peak inside the named object's mask?

For held-out scenes with 2–3 objects, each object's phrase ("small red circle") gets a map from each
method. A hit is a peak (:meth:`HeatmapResult.peak`) inside the object's ground-truth mask. The
uniform-random baseline is the mean mask area fraction (the chance that a random pixel is inside);
the energy is the share of the map's mass (upsampled to the image) inside the mask.

Two objects can share a phrase ("a large red square left of a large red square"): the phrase names
both, so its mask is the union of theirs (baseline included). Two more references are reported:
``any_object`` (per method: how often the peak lands on *some* object) and ``object_baseline`` (the
accuracy of a map that picks one of the scene's objects at random, ≈ 0.4 with 2–3 objects). Even an
untrained ViT separates figure from ground, so the accuracy means most read against those two.

A peak is a patch centre, so an object that covers no patch centre (a small shape between them)
cannot be hit by any map at the model's patch resolution: ``ceiling`` is the share of phrases whose
mask contains at least one patch centre, the best accuracy any method can reach.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmexplore.heatmaps.methods import compute_heatmaps, list_methods

DEFAULT_RENDER_SIZE = 128
EVAL_SEED_OFFSET = 7_000  # held-out seeds of this eval: HELD_OUT_SEED_START + offset + i


def check_peak(result: Any, key: int | str, mask: np.ndarray) -> dict[str, Any]:
    """Where a map's peak lies relative to a ground-truth mask.

    Parameters
    ----------
    result : HeatmapResult
    key : int or str
        Word index or phrase.
    mask : ndarray of shape (height, width), bool
        The object's mask on the original image's pixels.

    Returns
    -------
    dict
        ``{"peak": (x, y), "inside": bool, "patch_overlap": float, "reachable": bool}``: ``inside`` is the
        pointing game's hit; ``patch_overlap`` the share of the top patch's pixels inside the mask (so
        a small object between patch centres still shows that the right patch won); ``reachable``
        whether any patch centre lies inside the mask at all.
    """
    h, w = mask.shape
    x, y = result.peak(key)
    inside = bool(mask[min(int(y), h - 1), min(int(x), w - 1)])
    gh, gw = result.grid
    left, top, right, bottom = result.box
    cell_w, cell_h = (right - left) / gw, (bottom - top) / gh
    x0, y0 = int(max(0, round(x - cell_w / 2))), int(max(0, round(y - cell_h / 2)))
    x1, y1 = int(min(w, round(x + cell_w / 2))), int(min(h, round(y + cell_h / 2)))
    patch = mask[y0:y1, x0:x1]
    centres = result.patch_centres().astype(int)
    reachable = bool(mask[np.minimum(centres[:, 1], h - 1), np.minimum(centres[:, 0], w - 1)].any())
    return {"peak": (x, y), "inside": inside, "patch_overlap": float(patch.mean()) if patch.size else 0.0,
            "reachable": reachable}


def pointing_scenes(n_scenes: int, *, seed_offset: int = EVAL_SEED_OFFSET) -> list[Any]:
    """Held-out scenes alternating 2 and 3 objects (seeds ≥ HELD_OUT_SEED_START, never trained on)."""
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene

    return [make_scene(HELD_OUT_SEED_START + seed_offset + i, n_objects=2 + i % 2) for i in range(n_scenes)]


def pointing_game(
    encoder: Any,
    scenes: Sequence[Any] | None = None,
    *,
    n_scenes: int = 100,
    methods: Sequence[str] | None = None,
    render_size: int = DEFAULT_RENDER_SIZE,
    image_transform: Callable[[Any, int], Any] | None = None,
    **method_kwargs: Any,
) -> dict[str, Any]:
    """Pointing accuracy, random baseline and energy inside the mask, per method.

    Parameters
    ----------
    encoder : mmexplore Encoder
    scenes : sequence of Scene, optional
        Default :func:`pointing_scenes` ``(n_scenes)``.
    methods : sequence of str, optional
        Registered heatmap methods; default every one that applies to ``encoder``.
    render_size : int
        Pixels per side of the rendered scenes and masks.
    image_transform : callable (image, k) -> image, optional
        Changes scene k's image before the maps are computed (a corruption; it must keep the size,
        since the masks are the clean scene's).
    **method_kwargs
        Passed to :func:`compute_heatmaps` (e.g. ``start_layer``, ``word_features``).

    Returns
    -------
    dict
        ``{"n_scenes", "n_phrases", "baseline", "object_baseline", "ceiling",
        "methods": {method: {"accuracy", "energy", "hits", "any_object"}}}``;
        ``baseline`` is the mean mask area fraction, ``ceiling`` the patch-resolution bound (module
        docstring); accuracies and energies are in [0, 1].
    """
    from mmexplore.data.shapes import canonical_caption, object_masks, render_scene

    scenes = list(scenes) if scenes is not None else pointing_scenes(n_scenes)
    images, texts, phrases, masks, chance = [], [], [], [], []
    for k, scene in enumerate(scenes):
        cap = canonical_caption(scene)
        image = render_scene(scene, render_size)
        images.append(image_transform(image, k) if image_transform is not None else image)
        texts.append(cap.text)
        phrases.append([p.text for p in cap.phrases])
        m = object_masks(scene, render_size)
        union = {p.text: np.any([m[q.object_index] for q in cap.phrases if q.text == p.text], axis=0) for p in cap.phrases}
        masks.append([(union[p.text], m.any(axis=0)) for p in cap.phrases])
        named = {p.text: sum(q.phrase == p.text for q in scene.objects) for p in cap.phrases}
        chance.extend(named[p.text] / len(scene.objects) for p in cap.phrases)
    n_phrases = sum(len(p) for p in phrases)
    baseline = float(np.mean([mk.mean() for ms in masks for mk, _ in ms])) if n_phrases else float("nan")
    object_baseline = float(np.mean(chance)) if chance else float("nan")
    report: dict[str, Any] = {
        "n_scenes": len(scenes),
        "n_phrases": n_phrases,
        "baseline": baseline,
        "object_baseline": object_baseline,
        "methods": {},
    }
    for method in methods if methods is not None else list_methods(encoder):
        results = compute_heatmaps(encoder, images, texts, phrases=phrases, method=method, **method_kwargs)
        hits, energy, on_object, reachable = [], [], [], []
        for res, ms in zip(results, masks, strict=True):
            for k, (mk, anything) in enumerate(ms):
                check = check_peak(res, res.phrases[k], mk)
                hits.append(check["inside"])
                reachable.append(check["reachable"])
                x, y = check["peak"]
                on_object.append(bool(anything[int(y), int(x)]))
                up = res.upsampled(res.phrases[k])
                energy.append(float(up[mk].sum() / max(1e-12, up.sum())))
        # The ceiling depends only on the patch grid and the masks, the same for every method.
        report.setdefault("ceiling", float(np.mean(reachable)) if reachable else float("nan"))
        report["methods"][method] = {
            "accuracy": float(np.mean(hits)) if hits else float("nan"),
            "energy": float(np.mean(energy)) if energy else float("nan"),
            "hits": int(np.sum(hits)),
            "any_object": float(np.mean(on_object)) if on_object else float("nan"),
            "params": results[0].params if results else {},
        }
    return report
