"""The one place that calls open_clip to build models: spec in, :class:`Encoder` out.

Loading is cache-first and never hangs. For a pretrained tag or a hub model the weights are looked
up in the local Hugging Face cache first; only when they are missing and the hub answers within
a few seconds does open_clip download them. Offline and not cached, :func:`load_model` raises
:class:`ModelLoadError` at once, naming the spec and what to do.

Loaded models are kept per ``(spec, device)`` in this process (a small LRU); the app wraps
:func:`load_model` in ``st.cache_resource`` keyed by the same strings.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import socket
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmexplore.errors import InputError, ModelLoadError
from mmexplore.models.cache import EmbeddingCache
from mmexplore.models.devices import autocast_dtype, resolve_device
from mmexplore.models.encoder import Encoder
from mmexplore.models.specs import ModelSpec, parse_spec
from mmexplore.settings import get_settings, hub_offline_now

CONFIG_NAME = "open_clip_config.json"
MAX_LOADED_MODELS = 3
_log = logging.getLogger("mmexplore.models")
HUB_PROBE_TIMEOUT_S = 3.0

_loaded: OrderedDict[tuple[str, str], Encoder] = OrderedDict()
_lock = threading.Lock()


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when the Hugging Face hub accepts a TCP connection within ``timeout`` seconds.

    False at once when ``HF_HUB_OFFLINE`` is set (tests set it).
    """
    if hub_offline_now():
        return False
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
        return False
    host = urlparse(endpoint).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _file_digest(path: Path) -> str:
    """sha256 of a weights file (size and mtime for files over 256 MB, to keep start-up quick)."""
    stat = path.stat()
    if stat.st_size > 256 * 2**20:
        return f"size{stat.st_size}-mtime{stat.st_mtime_ns}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


PROJECT_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROJECT_ARCH_PREFIX = "mmexplore-shapes"


def register_project_configs() -> None:
    """Register the project's own architectures (``mmexplore-shapes-*``) with open_clip (idempotent).

    Also registers the timm vision trunks some of them name (:mod:`mmexplore.models.archs`).
    """
    import open_clip

    from mmexplore.models.archs import register_timm_archs

    register_timm_archs()

    if not any(name.startswith(PROJECT_ARCH_PREFIX) for name in open_clip.list_models()):
        open_clip.add_model_config(PROJECT_CONFIG_DIR)


def _tokenizer_for_arch(arch: str, spec: str = ""):
    """open_clip's tokenizer for an architecture; the compact one for the project's own."""
    import open_clip

    if arch.startswith(PROJECT_ARCH_PREFIX):
        from mmexplore.models.tokenizer import shapes_tokenizer

        return shapes_tokenizer(open_clip.get_model_config(arch)["text_cfg"]["context_length"])
    return _get_tokenizer(arch, spec or arch)


def _get_tokenizer(name: str, spec: str):
    """open_clip's tokenizer for ``name``; a tokenizer that cannot be built here is a ModelLoadError.

    SigLIP-family configs name a Hugging Face tokenizer: it needs the ``transformers`` package and a
    one-time download, and offline (or without the package) open_clip raises deep inside.
    """
    import open_clip

    try:
        return open_clip.get_tokenizer(name)
    except Exception as exc:  # ImportError, OSError from the hub, ...: one clear line instead of a traceback
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"model spec '{spec}': its tokenizer cannot be loaded here ({type(exc).__name__}: {first}). "
            "Hugging Face tokenizers (SigLIP, ...) need the `transformers` package and a one-time download while "
            "online; offline, the SigLIP-style stand-in 'mmexplore-shapes-siglip-xs:random' runs everywhere."
        ) from exc


def check_trainable_arch(arch: str) -> None:
    """Raise InputError unless ``arch`` is an open_clip model config (the project's own included).

    Names the closest known configs, so ``mmexplore train --arch nosuch`` is one clear line."""
    import open_clip

    register_project_configs()
    names = open_clip.list_models()
    if arch not in names:
        ours = [n for n in names if n.startswith(PROJECT_ARCH_PREFIX)]
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
        raise InputError(f"--arch {arch!r}: unknown architecture; the project's own are {', '.join(ours)}"
                         + (f"; close matches: {', '.join(close)}" if close else ""))


def _check_arch(arch: str, spec: str) -> None:
    import open_clip

    names = open_clip.list_models()
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
        hint = f" Close matches: {', '.join(close)}." if close else " See `open_clip.list_models()`."
        raise ModelLoadError(f"model spec '{spec}': unknown architecture '{arch}'.{hint}")


def architecture_params(arch: str) -> int | None:
    """Parameters of open_clip architecture ``arch``, counted on the meta device (no memory allocated).

    None when the configuration cannot be instantiated that way (e.g. a Hugging Face text tower,
    which would fetch its own configuration).
    """
    import open_clip

    return config_params(open_clip.get_model_config(arch))


def config_params(cfg: dict[str, Any] | None) -> int | None:
    """Parameters of the open_clip model configuration ``cfg`` (see :func:`architecture_params`)."""
    import torch
    from open_clip.model import CLIP, CustomTextCLIP

    if not isinstance(cfg, dict) or "hf_model_name" in (cfg.get("text_cfg") or {}):
        return None
    cfg = dict(cfg)
    custom = cfg.pop("custom_text", False)
    if "multimodal_cfg" in cfg:
        from open_clip.coca_model import CoCa as cls
    else:
        cls = CustomTextCLIP if custom else CLIP
    try:
        with torch.device("meta"):
            model = cls(**cfg)
    except Exception:  # an exotic config: unknown size, the caller decides
        return None
    return int(sum(p.numel() for p in model.parameters()))


def _check_size(arch: str, spec: str, cfg: dict[str, Any] | None = None) -> None:
    """Refuse architectures above ``Settings.max_model_params`` before any weights are allocated."""
    limit = get_settings().max_model_params
    n = architecture_params(arch) if cfg is None else config_params(cfg)
    if n is not None and n > limit:
        raise ModelLoadError(
            f"model spec '{spec}': architecture '{arch}' has {n / 1e6:,.0f}M parameters, above the limit of "
            f"{limit / 1e6:,.0f}M (set MMEXPLORE_MAX_MODEL_PARAMS to load larger models)"
        )


def _cached_hub_file(repo: str, filenames: list[str]) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id=repo, filename=name)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def _not_available(spec: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"model '{spec}' is not available offline: {what} is not in the local cache and the hub cannot "
        f"be reached. Download it once while online (run `mmexplore info --model {spec}`), or pass a "
        f"local file as 'ARCH:/path/to/weights.safetensors'."
    )


def _weights_files(filename: str) -> list[str]:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    filename = filename or HF_WEIGHTS_NAME
    safe = [filename.rsplit(".", 1)[0] + ".safetensors"]
    if filename == HF_WEIGHTS_NAME:
        safe.insert(0, HF_SAFE_WEIGHTS_NAME)
    return [*safe, filename]


def _build(spec: ModelSpec, device: str) -> tuple[Any, Any, Any, str]:
    """Create (model, preprocess, tokenizer, model_id) for a parsed spec on ``device``."""
    import open_clip
    import torch

    if spec.kind in {"bundled", "local-dir"}:
        folder = spec.path
        assert folder is not None
        config_path = folder / CONFIG_NAME
        if not config_path.is_file():
            if spec.kind == "bundled":
                raise ModelLoadError(
                    f"the bundled model is missing ({config_path} not found); "
                    "train it with `mmexplore train --out mmexplore/assets/bundled` (see README)"
                )
            raise ModelLoadError(f"model spec '{spec.text}': no {CONFIG_NAME} in {folder}")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelLoadError(f"model spec '{spec.text}': {CONFIG_NAME} in {folder} is not valid JSON") from None
        if not isinstance(config, dict):
            raise ModelLoadError(f"model spec '{spec.text}': {CONFIG_NAME} in {folder} is not an open_clip config")
        _check_size(str(config.get("model_name", folder.name)), spec.text, config.get("model_cfg") or {})
        try:
            # open_clip reads .safetensors with safetensors and a .bin with torch.load(weights_only=True).
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device,
                                                                         weights_only=True)
        except Exception as exc:  # a refused pickle, a wrong shape: about the user's folder, one line
            raise ModelLoadError(f"model spec '{spec.text}': could not load the weights in {folder} "
                                 f"({type(exc).__name__}); only open_clip weights as .safetensors, or .bin "
                                 "without pickled code, are read") from None
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        digest = _file_digest(weights[0]) if weights else "noweights"
        tok_cfg = config.get("mmexplore", {}).get("tokenizer")
        if tok_cfg and tok_cfg.get("kind") == "compact":
            from mmexplore.models.tokenizer import CompactTokenizer

            tokenizer = CompactTokenizer(tok_cfg["kept_bpe_ids"], tok_cfg["context_length"])
        else:
            tokenizer = _get_tokenizer(f"local-dir:{folder}", spec.text)
        return model, preprocess, tokenizer, f"{spec.text}@{digest}"

    if spec.kind == "hf-hub":
        from open_clip.constants import HF_CONFIG_NAME

        config_file = _cached_hub_file(spec.repo, [HF_CONFIG_NAME])
        weights = _cached_hub_file(spec.repo, _weights_files(""))
        if config_file and weights:
            folder = Path(config_file).parent
            model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device)
            tokenizer = _get_tokenizer(f"local-dir:{folder}", spec.text)
            return model, preprocess, tokenizer, f"{spec.text}@{_file_digest(Path(weights))}"
        if not hub_reachable():
            raise _not_available(spec.text, f"hub repository '{spec.repo}'")
        model, _, preprocess = open_clip.create_model_and_transforms(spec.text, device=device)
        return model, preprocess, _get_tokenizer(spec.text, spec.text), spec.text

    register_project_configs()
    _check_arch(spec.arch, spec.text)
    _check_size(spec.arch, spec.text)
    tokenizer = _tokenizer_for_arch(spec.arch, spec.text)
    if getattr(tokenizer, "vocab_size", None) and spec.arch.startswith(PROJECT_ARCH_PREFIX):
        # The compact vocabulary decides the token-embedding size, as in training.
        text_cfg = dict(open_clip.get_model_config(spec.arch)["text_cfg"], vocab_size=tokenizer.vocab_size)
        arch_kwargs: dict[str, Any] = {"text_cfg": text_cfg}
    else:
        arch_kwargs = {}
    if spec.kind == "random":
        torch.manual_seed(0)  # the same "random" weights in every process, so caching stays valid
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch, pretrained=None, device=device, **arch_kwargs
        )
        return model, preprocess, tokenizer, f"{spec.text}@seed0"

    if spec.kind == "file":
        assert spec.path is not None
        if not spec.path.is_file():
            raise ModelLoadError(f"model spec '{spec.text}': weights file not found: {spec.path}")
        try:
            # open_clip reads .safetensors with safetensors and other files with weights_only=True.
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch, pretrained=str(spec.path), device=device, weights_only=True, **arch_kwargs
            )
        except Exception as exc:  # any failure to read the file (incl. a refused pickle) is about the user's file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"model spec '{spec.text}': could not load {spec.path.name} into architecture '{spec.arch}': {first[:300]}"
            ) from exc
        return model, preprocess, tokenizer, f"{spec.text}@{_file_digest(spec.path)}"

    # kind == "pretrained"
    tags = open_clip.list_pretrained_tags_by_model(spec.arch)
    if spec.tag not in tags:
        close = difflib.get_close_matches(spec.tag, tags, n=5, cutoff=0.3) or tags[:8]
        raise ModelLoadError(
            f"model spec '{spec.text}': unknown pretrained tag '{spec.tag}' for {spec.arch}. "
            f"Available: {', '.join(close)}"
        )
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
    cached: str | None = None
    if cfg.get("hf_hub"):
        hub = cfg["hf_hub"]
        # open_clip's convention: "org/repo/" names the default file, "org/repo/file" a given one.
        repo, filename = (hub.rstrip("/"), "") if hub.endswith("/") else os.path.split(hub)
        cached = _cached_hub_file(repo, _weights_files(filename))
    if cached is None and cfg.get("url"):
        candidate = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        cached = str(candidate) if candidate.is_file() else None
    preprocess_cfg = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    if cached is not None:
        # Load the cached file directly (no network), with the preprocessing of these weights and
        # QuickGELU where the tag needs it (open_clip #771).
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch,
            pretrained=cached,
            device=device,
            force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            force_preprocess_cfg=preprocess_cfg or None,
        )
        return model, preprocess, tokenizer, spec.text
    if not hub_reachable():
        raise _not_available(spec.text, f"pretrained weights '{spec.tag}' for {spec.arch}")
    model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=spec.tag, device=device)
    return model, preprocess, tokenizer, spec.text


def folder_model_id(spec: str) -> str | None:
    """The ``model_id`` that :func:`load_model` gives a ``bundled``/``local-dir`` spec, without loading it.

    None for other kinds, or when the folder has no weights (results cached per model id can then be
    looked up before paying for a model load).
    """
    parsed = parse_spec(spec)
    if parsed.kind not in {"bundled", "local-dir"} or parsed.path is None:
        return None
    weights = sorted(parsed.path.glob("*.safetensors")) or sorted(parsed.path.glob("*.bin"))
    return f"{parsed.text}@{_file_digest(weights[0])}" if weights else None


def load_model(spec: str = "bundled", device: str = "auto", *, cache_dir: str | None = None) -> Encoder:
    """Load (or fetch from the in-process cache) the model named by ``spec`` on ``device``.

    Parameters
    ----------
    spec : str
        A model spec (docs/design.md §2): ``bundled``, ``ARCH:TAG``, ``ARCH:/path/weights``, ``ARCH:random``,
        ``hf-hub:org/name`` or ``local-dir:/path``.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    cache_dir : str, optional
        Directory for a persistent embedding cache (default: ``$MMEXPLORE_CACHE_DIR``, else memory).

    Returns
    -------
    Encoder
        In eval mode, with its own preprocessing and tokenizer.

    Raises
    ------
    ModelLoadError
        Unknown architecture or tag (with close matches), missing file, or weights not available
        offline (raised within seconds, never after a hanging download).
    """
    parsed = parse_spec(spec)
    dev = resolve_device(device)
    key = (parsed.text, dev)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
        import time

        t0 = time.perf_counter()
        model, preprocess, tokenizer, model_id = _build(parsed, dev)
        # One line per real load: a shared server's log shows each (spec, device) loaded once.
        _log.info("model loaded: %s on %s in %.1f s", parsed.text, dev, time.perf_counter() - t0)
        cache = EmbeddingCache(directory=cache_dir or get_settings().cache_dir)
        encoder = Encoder(
            model.to(dev).eval(),
            preprocess,
            tokenizer,
            name=parsed.text,
            model_id=model_id,
            device=dev,
            dtype=autocast_dtype(dev),
            cache=cache,
        )
        _loaded[key] = encoder
        while len(_loaded) > MAX_LOADED_MODELS:
            _loaded.popitem(last=False)
        return encoder


def forget_model(spec: str) -> None:
    """Forget ``spec`` on every device (its weights changed on disk, e.g. a training run went on)."""
    with _lock:
        for key in [k for k in _loaded if k[0] == spec.strip()]:
            del _loaded[key]


def clear_loaded_models() -> None:
    """Forget every model loaded in this process."""
    with _lock:
        _loaded.clear()
