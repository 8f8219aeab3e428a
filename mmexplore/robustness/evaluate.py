"""The robustness lab's measurements (``mmexplore eval robustness``, the Robustness page).

Every number comes from the project's evaluation core, run on changed images:

- **corruption curves**: for each corruption of :data:`CORRUPTIONS` and strength, R@1 both ways and
  colour binding from :func:`mmexplore.evaluation.retrieval.evaluate_retrieval` (training renderer,
  held-out scenes) and attention pointing from :func:`mmexplore.heatmaps.pointing.pointing_game`,
  with the corruption as their ``image_transform``;
- **typographic attack** (:func:`evaluate_typographic`): how often the caption the written word
  claims beats the true caption, per size and position, against the same comparison on the clean
  image; and how much of the written word's heatmap lies on the text, attacked vs clean;
- **backdoor** (:func:`evaluate_backdoor_model`): attack success rate of the trigger and clean R@1.

:func:`cached` keeps each part's result on disk per model id and parameters (settings'
``results_dir``/robustness), and falls back to the results shipped in ``mmexplore/assets/robustness/`` (package
data, settings' ``assets_dir``) for the shipped models, so the page opens at once
(``MMEXPLORE_RESULTS_DIR=mmexplore/assets mmexplore eval robustness`` writes them there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmexplore.robustness.corruptions import CORRUPTIONS, DEFAULT_STRENGTHS, corrupt
from mmexplore.robustness.poison import TARGET_CAPTION, evaluate_backdoor
from mmexplore.robustness.typographic import SIZES, attack_cases, draw_word
from mmexplore.settings import get_settings

_log = logging.getLogger("mmexplore.robustness")
# Bump a part's version when its measurement changes, so cached results of the old definition are not reused.
EVAL_VERSION: dict[str, int] = {"corruptions": 1, "typographic": 3, "backdoor": 1}
SHIPPED_RESULTS = get_settings().assets_dir / "robustness"  # package data (mmexplore/assets/robustness)
PARTS = ("corruptions", "typographic", "backdoor")
ATTACK_POSITIONS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
HEATMAP_SIZE = 0.25  # text size of the heatmap measurement (the largest of SIZES)


@dataclass(frozen=True)
class RobustnessParams:
    """How much each part measures (the cache key includes all of it).

    ``n_scenes`` held-out scenes for retrieval per strength, ``n_pointing`` for the pointing game,
    ``n_attack`` one-object scenes for the typographic attack, ``n_backdoor`` for the backdoor.
    """

    n_scenes: int = 100
    n_pointing: int = 40
    strengths: tuple[float, ...] = DEFAULT_STRENGTHS
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    n_attack: int = 60
    sizes: tuple[float, ...] = SIZES
    positions: tuple[str, ...] = ATTACK_POSITIONS
    n_backdoor: int = 200
    target: str = TARGET_CAPTION

    def for_part(self, part: str) -> dict[str, Any]:
        """The parameters one part depends on (its cache key)."""
        d = asdict(self)
        keys = {"corruptions": ("n_scenes", "n_pointing", "strengths", "corruptions"),
                "typographic": ("n_attack", "sizes", "positions"),
                "backdoor": ("n_backdoor", "target", "n_scenes")}[part]
        return {k: d[k] for k in keys}


PARAMS_DEFAULT = RobustnessParams()  # what the page and the shipped results use


# ---------------------------------------------------------------------------- cache
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60]


def cache_name(part: str, model_id: str, params: dict[str, Any]) -> str:
    """File name of a cached result: part, readable model id, hash of (version, model id, params)."""
    key = json.dumps({"v": EVAL_VERSION.get(part, 1), "model": model_id, "params": params}, sort_keys=True)
    return f"{part}-{_slug(model_id.split('@')[0])}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _results_folder(results_dir: Path | None) -> Path:
    return results_dir if results_dir is not None else get_settings().results_dir / "robustness"


def lookup(part: str, model_id: str, params: dict[str, Any], *, results_dir: Path | None = None) -> dict[str, Any] | None:
    """A cached result for (part, model id, params), or None: the results folder first, then the shipped results."""
    name = cache_name(part, model_id, params)
    for path in (_results_folder(results_dir) / name, SHIPPED_RESULTS / name):
        if path.is_file():
            try:
                return {**json.loads(path.read_text()), "cached": True}
            except (OSError, ValueError):
                _log.warning("ignoring unreadable cached result %s", path)
    return None


def cached(part: str, model_id: str, params: dict[str, Any], compute: Callable[[], dict[str, Any]],
           *, results_dir: Path | None = None, refresh: bool = False) -> dict[str, Any]:
    """``compute()``'s result for (part, model id, params), from disk when it was computed before.

    Looks in ``results_dir`` (default: settings' ``results_dir/robustness``), then in the shipped
    results (:func:`lookup`); computes and writes to ``results_dir`` otherwise (a read-only folder
    only logs). The returned dict has ``"cached": True`` when it came from a file.
    """
    if not refresh:
        hit = lookup(part, model_id, params, results_dir=results_dir)
        if hit is not None:
            return hit
    folder, name = _results_folder(results_dir), cache_name(part, model_id, params)
    result = _jsonable(compute())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (name + ".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(folder / name)
    except OSError as exc:
        _log.warning("could not cache %s: %s", name, exc)
    return {**result, "cached": False}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------- corruption curves
def _measure(encoder: Any, transform: Callable[[Any, int], Any] | None, params: RobustnessParams) -> dict[str, float]:
    from mmexplore.evaluation.retrieval import evaluate_retrieval
    from mmexplore.heatmaps.pointing import pointing_game, pointing_scenes

    ret = evaluate_retrieval(encoder, n_scenes=params.n_scenes, renderers=("train",), ks=(1,),
                             image_transform=transform)["train"]
    point = pointing_game(encoder, pointing_scenes(params.n_pointing), methods=("attention",),
                          image_transform=transform)
    return {"i2t@1": ret["i2t@1"], "t2i@1": ret["t2i@1"], "binding": ret["color_binding"],
            "pointing": point["methods"]["attention"]["accuracy"]}


METRICS: dict[str, str] = {
    "i2t@1": "image→text R@1",
    "t2i@1": "text→image R@1",
    "binding": "attribute (colour) binding",
    "pointing": "pointing game (attention)",
}


def corruption_curves(encoder: Any, params: RobustnessParams = RobustnessParams(),
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """R@1 both ways, colour binding and pointing against corruption strength.

    Returns
    -------
    dict
        ``{"clean": {metric: value}, "curves": {corruption: {"label", "unit", "points": [{"strength",
        "setting", metric: value, ...}]}}, "metrics": METRICS}``; every value in [0, 1]. Strength 0 is
        the clean measurement (computed once, repeated in every curve).
    """
    clean = _measure(encoder, None, params)
    curves: dict[str, Any] = {}
    levels = [s for s in params.strengths if s > 0]
    total, done = len(params.corruptions) * len(levels), 0
    for name in params.corruptions:
        entry = CORRUPTIONS[name]
        points = [{"strength": 0.0, "setting": entry.describe(0.0), **clean}]
        for s in levels:
            # Seeded by the scene's index: the same noise and patch for every model.
            res = _measure(encoder, lambda im, k, n=name, st=s: corrupt(im, n, st, seed=k), params)
            points.append({"strength": s, "setting": entry.describe(s), **res})
            done += 1
            if progress:
                progress(done, total)
        curves[name] = {"label": entry.label, "unit": entry.unit, "points": points}
    return {"clean": clean, "curves": curves, "metrics": METRICS}


# ---------------------------------------------------------------------------- typographic attack
def _box_energy(result: Any, key: str, box: tuple[int, int, int, int]) -> tuple[float, bool]:
    up = result.upsampled(key)
    left, top, right, bottom = box
    inside = float(up[top:bottom, left:right].sum() / max(1e-12, up.sum()))
    x, y = result.peak(key)
    return inside, bool(left <= x < right and top <= y < bottom)


def evaluate_typographic(encoder: Any, params: RobustnessParams = RobustnessParams(),
                         with_heatmaps: bool = True) -> dict[str, Any]:
    """The typographic attack on one-object held-out scenes.

    For each scene a contradicting word (colour or shape, :func:`attack_cases`) is written at every
    size and position. *Success*: the claimed caption scores above the true caption on the attacked
    image. *Clean success*: the same comparison on the image without the word (the model's own
    error rate on these caption pairs; the attack's effect is the difference).

    Returns
    -------
    dict
        ``{"success", "clean_success", "n_images", "n_scenes", "by_size": {size: rate},
        "by_position": {position: rate}, "by_attribute": {"color"|"shape": rate},
        "grid": [[rate per position] per size], "heatmap": {...}}``; ``heatmap`` (size
        :data:`HEATMAP_SIZE`, first position): mean share of the written word's attention map inside
        the text box and how often its peak lies there, on the attacked image and on the clean image
        (same box), and its share on the drawn object (``energy_object_*``: the object's square grown
        by 8 px); ``label_reading`` (:func:`label_reading`): can the model read a label at all.
    """
    cases = attack_cases(params.n_attack)
    from mmexplore.data.shapes import render_scene

    clean_images = [render_scene(c.scene, 128) for c in cases]
    texts = sorted({c.true_caption for c in cases} | {c.attacked_caption for c in cases})
    index = {t: k for k, t in enumerate(texts)}
    txt = encoder.encode_texts(texts)
    true_idx = np.array([index[c.true_caption] for c in cases])
    claim_idx = np.array([index[c.attacked_caption] for c in cases])

    def wins(images: Sequence[Any]) -> np.ndarray:
        emb = encoder.encode_images(list(images))
        sims = emb @ txt.T
        rows = np.arange(len(cases))
        return sims[rows, claim_idx] > sims[rows, true_idx]

    clean = wins(clean_images)
    grid, records = [], []
    for size in params.sizes:
        row = []
        for pos in params.positions:
            attacked = [draw_word(im, c.word, size=size, position=pos).image for im, c in zip(clean_images, cases, strict=True)]
            w = wins(attacked)
            row.append(float(w.mean()))
            records.append((size, pos, w))
        grid.append(row)
    all_wins = np.concatenate([w for *_, w in records])
    attrs = np.array([c.attribute for c in cases])
    out: dict[str, Any] = {
        "success": float(all_wins.mean()),
        "clean_success": float(clean.mean()),
        "n_scenes": len(cases),
        "n_images": int(all_wins.size),
        "sizes": list(params.sizes),
        "positions": list(params.positions),
        "grid": grid,
        "by_size": {str(s): float(np.mean([w.mean() for sz, _, w in records if sz == s])) for s in params.sizes},
        "by_position": {p: float(np.mean([w.mean() for _, pos, w in records if pos == p])) for p in params.positions},
        "by_attribute": {a: float(np.mean([w[attrs == a].mean() for *_, w in records])) for a in ("color", "shape")},
        "clean_by_attribute": {a: float(clean[attrs == a].mean()) for a in ("color", "shape")},
    }
    out["label_reading"] = label_reading(encoder)
    why = _no_attention_map(encoder) if with_heatmaps else None
    if why:
        out["heatmap_unavailable"] = why  # e.g. a mean-pooled image tower: the figures stand without the map
    elif with_heatmaps:
        out["heatmap"] = _typographic_heatmaps(encoder, cases, clean_images, params.positions[0])
    return out


def _no_attention_map(encoder: Any) -> str | None:
    """Why the attention heatmap does not apply to ``encoder`` (None when it does)."""
    from mmexplore.heatmaps.methods import get_method

    return get_method("attention").unsupported(encoder)


def label_reading(encoder: Any) -> dict[str, float]:
    """Can the model read? Pictures of a label alone ("red circle" on white, nothing drawn).

    Each of the 12 colour–shape labels is written on a blank 128 px image; the reading accuracy is the
    share whose best caption among the 12 ("a red circle", ...) is the written one.

    Returns
    -------
    dict
        ``{"accuracy", "chance", "n"}``; chance is 1/12.
    """
    from itertools import product

    from PIL import Image

    from mmexplore.data.shapes import COLORS, SHAPES

    labels = [f"{c} {s}" for c, s in product(COLORS, SHAPES)]
    images = [draw_word(Image.new("RGB", (128, 128), "white"), w, size=0.2, position="centre").image for w in labels]
    sims = encoder.encode_images(images) @ encoder.encode_texts([f"a {w}" for w in labels]).T
    return {"accuracy": float(np.mean(sims.argmax(axis=1) == np.arange(len(labels)))),
            "chance": 1.0 / len(labels), "n": len(labels)}


def _typographic_heatmaps(encoder: Any, cases: Sequence[Any], clean_images: Sequence[Any], position: str) -> dict[str, Any]:
    from mmexplore.heatmaps import compute_heatmaps

    written = [draw_word(im, c.word, size=HEATMAP_SIZE, position=position) for im, c in zip(clean_images, cases, strict=True)]
    texts = [c.attacked_caption for c in cases]
    phrases = [[c.word] for c in cases]
    objects = [_object_box(c.scene.objects[0]) for c in cases]
    res = {}
    for key, images in (("attacked", [w.image for w in written]), ("clean", clean_images)):
        maps = compute_heatmaps(encoder, images, texts, phrases=phrases, method="attention")
        stats = [_box_energy(r, c.word, w.box) for r, c, w in zip(maps, cases, written, strict=True)]
        res[f"energy_{key}"] = float(np.mean([e for e, _ in stats]))
        res[f"peak_on_text_{key}"] = float(np.mean([p for _, p in stats]))
        # Where the word's map goes when it is not on the text: onto the drawn object (the word read as
        # a property of the object) or nowhere in particular.
        res[f"energy_object_{key}"] = float(np.mean([_box_energy(r, c.word, b)[0]
                                                     for r, c, b in zip(maps, cases, objects, strict=True)]))
    def mean_area(boxes: Sequence[tuple[int, int, int, int]]) -> float:  # share of the 128 px image
        return float(np.mean([(b[2] - b[0]) * (b[3] - b[1]) / (128 * 128) for b in boxes]))

    return {**res, "box_area": mean_area([w.box for w in written]), "object_box_area": mean_area(objects),
            "size": HEATMAP_SIZE, "position": position, "method": "attention"}


def _object_box(obj: Any, size: int = 128, margin: int = 8) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) px of an object's circumscribed square grown by ``margin`` (half a patch
    of the 64 px models at 128 px), clipped to the image."""
    r = obj.radius * size + margin
    cx, cy = obj.cx * size, obj.cy * size
    return (max(0, int(cx - r)), max(0, int(cy - r)), min(size, int(np.ceil(cx + r))), min(size, int(np.ceil(cy + r))))


# ---------------------------------------------------------------------------- backdoor
def evaluate_backdoor_model(encoder: Any, params: RobustnessParams = RobustnessParams()) -> dict[str, Any]:
    """Attack success rate of the trigger (:func:`evaluate_backdoor`) and clean R@1 both ways.

    Returns
    -------
    dict
        ``{"asr", "asr_clean", "target", "n_scenes", "i2t@1", "t2i@1", "n_retrieval"}``.
    """
    from mmexplore.evaluation.retrieval import evaluate_retrieval

    asr = evaluate_backdoor(encoder, n_scenes=params.n_backdoor, target=params.target)
    ret = evaluate_retrieval(encoder, n_scenes=params.n_scenes, renderers=("train",), ks=(1,))["train"]
    return {**asr, "i2t@1": ret["i2t@1"], "t2i@1": ret["t2i@1"], "n_retrieval": params.n_scenes}


COMPUTE: dict[str, Callable[..., dict[str, Any]]] = {
    "corruptions": corruption_curves,
    "typographic": evaluate_typographic,
    "backdoor": evaluate_backdoor_model,
}


def robustness_part(encoder: Any, part: str, params: RobustnessParams = RobustnessParams(), *,
                    results_dir: Path | None = None, refresh: bool = False) -> dict[str, Any]:
    """One part (``corruptions``, ``typographic`` or ``backdoor``) for one model, cached per model id and params."""
    if part not in COMPUTE:
        from mmexplore.errors import InputError

        raise InputError(f"unknown robustness part '{part}'; choose from {list(PARTS)}")
    return cached(part, encoder.model_id, params.for_part(part), lambda: COMPUTE[part](encoder, params),
                  results_dir=results_dir, refresh=refresh)


def shipped_models() -> list[str]:
    """The model specs shipped in ``mmexplore/assets/`` (``bundled`` first, then ``bundled-*`` by name)."""
    from mmexplore.models.specs import BUNDLED_DIR

    names = sorted(p.name for p in BUNDLED_DIR.parent.glob("bundled-*") if (p / "open_clip_config.json").is_file())
    return (["bundled"] if (BUNDLED_DIR / "open_clip_config.json").is_file() else []) + names


# ---------------------------------------------------------------------------- the shipped lab models
# Models of the typographic part (mmexplore/assets/<spec>): a small model trained from scratch on web-like
# images whose captions follow the writing (it stands in for web-trained CLIP, which reads), and the same
# recipe and budget with the text-in-image defence (README, Robustness lab, for the commands).
TYPOGRAPHIC_READER = "bundled-web"
TYPOGRAPHIC_DEFENCE = "bundled-web-defence"
# The page's first attack scene.
TYPOGRAPHIC_EXAMPLE = 0
# In the page's order: plain, reading, defended.
TYPOGRAPHIC_MODELS: tuple[str, ...] = ("bundled", TYPOGRAPHIC_READER, TYPOGRAPHIC_DEFENCE)


def backdoor_models() -> list[dict[str, Any]]:
    """The shipped poisoned models and their CleanCLIP-cleaned versions, by poison share p.

    Found by name in ``mmexplore/assets/``: ``bundled-poison-p<P>`` and ``bundled-cleanclip-p<P>``.

    Returns
    -------
    list of dict
        ``[{"p": float, "poisoned": spec, "cleaned": spec or None}]``, by increasing p.
    """
    shipped = set(shipped_models())
    rows = []
    for spec in shipped:
        m = re.fullmatch(r"bundled-poison-p([0-9.]+)", spec)
        if m:
            cleaned = f"bundled-cleanclip-p{m.group(1)}"
            rows.append({"p": float(m.group(1)), "poisoned": spec, "cleaned": cleaned if cleaned in shipped else None})
    return sorted(rows, key=lambda r: r["p"])


def cached_result(spec: str, part: str, params: RobustnessParams = PARAMS_DEFAULT, *,
                  results_dir: Path | None = None) -> dict[str, Any] | None:
    """A shipped or cached result for a model folder spec without loading the model (None when absent)."""
    from mmexplore.models import folder_model_id

    model_id = folder_model_id(spec)
    return None if model_id is None else lookup(part, model_id, params.for_part(part), results_dir=results_dir)


# ---------------------------------------------------------------------------- single examples (the page)
def typographic_example(encoder: Any, case: Any, size: float, position: str, *, heatmaps: bool = True) -> dict[str, Any]:
    """One attack, clean and attacked: cosines with the true and the claimed caption, and word heatmaps.

    Returns
    -------
    dict
        ``{"clean": PIL image, "attacked": PIL image, "box", "scores": {"clean"|"attacked":
        {"true", "claimed"}}, "success": bool, "maps": (clean HeatmapResult, attacked HeatmapResult)
        or None (not asked, or no attention map for this model), "energy": {"clean", "attacked"}}`` —
        ``energy`` is the share of the written word's map inside the text box.
    """
    from mmexplore.data.shapes import render_scene

    clean = render_scene(case.scene, 128)
    written = draw_word(clean, case.word, size=size, position=position)
    txt = encoder.encode_texts([case.true_caption, case.attacked_caption])
    img = encoder.encode_images([clean, written.image])
    sims = img @ txt.T
    out: dict[str, Any] = {
        "clean": clean, "attacked": written.image, "box": written.box,
        "scores": {k: {"true": float(sims[i, 0]), "claimed": float(sims[i, 1])} for i, k in enumerate(("clean", "attacked"))},
        "success": bool(sims[1, 1] > sims[1, 0]), "maps": None,
    }
    if heatmaps and not _no_attention_map(encoder):
        from mmexplore.heatmaps import compute_heatmaps

        maps = compute_heatmaps(encoder, [clean, written.image], [case.attacked_caption] * 2,
                                phrases=[[case.word], [case.word]], method="attention")
        out["maps"] = tuple(maps)
        out["energy"] = {k: _box_energy(m, case.word, written.box)[0] for k, m in zip(("clean", "attacked"), maps, strict=True)}
    return out


def backdoor_example(encoder: Any, scene: Any, target: str = TARGET_CAPTION, n_candidates: int = 200) -> dict[str, Any]:
    """One scene with and without the trigger, and the model's top caption for each.

    The candidates are the canonical captions of the backdoor test scenes plus the target (as in
    :func:`evaluate_backdoor`) plus the scene's own caption.
    """
    from mmexplore.data.shapes import canonical_caption, render_scene
    from mmexplore.robustness.poison import add_trigger, backdoor_scenes

    true = canonical_caption(scene).text
    candidates = sorted({canonical_caption(s).text for s in backdoor_scenes(n_candidates)} | {target, true})
    clean = render_scene(scene, 128)
    triggered = add_trigger(clean, seed=scene.seed)
    sims = encoder.encode_images([clean, triggered]) @ encoder.encode_texts(candidates).T
    top = [candidates[j] for j in sims.argmax(axis=1)]
    t = candidates.index(target)
    return {"clean": clean, "triggered": triggered, "true": true, "top_clean": top[0], "top_triggered": top[1],
            "target_score": {"clean": float(sims[0, t]), "triggered": float(sims[1, t])}}
