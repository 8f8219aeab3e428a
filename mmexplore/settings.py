"""One settings object for every environment variable, path and default of mmexplore.

Modules ask :func:`get_settings` instead of reading ``os.environ``; the table in ``docs/settings.md``
lists every field with its variable and default. Settings are read once per process (the result is
cached); tests that change the environment call :func:`reload_settings`.

>>> from mmexplore.settings import Settings
>>> Settings.from_env({}).default_model
'bundled'
>>> Settings.from_env({"MMEXPLORE_MAX_IMAGES": "12"}).max_images
12
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from mmexplore.errors import InputError

MODES = ("local", "shared")
# The project's own model: the one definition of the default spec (imported by models and relation).
DEFAULT_SPEC = "bundled"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InputError(f"{name}={raw!r} is not a whole number") from exc
    if value < minimum:
        raise InputError(f"{name}={value} is below the minimum {minimum}")
    return value


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def _paths(raw: str | None) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in (raw or "").split(os.pathsep) if p.strip())


def package_assets() -> Path:
    """``mmexplore/assets`` of the imported package (source checkout, editable install or wheel alike)."""
    from importlib.resources import files

    return Path(str(files("mmexplore") / "assets"))


@dataclass(frozen=True)
class Settings:
    """Every tunable of mmexplore in one typed place (variables in ``docs/settings.md``).

    Attributes
    ----------
    default_model : str
        Model spec a new app session and every CLI command start with (``MMEXPLORE_MODEL``).
    default_device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps`` (``MMEXPLORE_DEVICE``).
    cache_dir : Path or None
        Persistent embedding cache; None keeps embeddings in memory (``MMEXPLORE_CACHE_DIR``).
    index_dir : Path
        Where the app keeps search indexes it builds (``MMEXPLORE_INDEX_DIR``; default
        ``<cache_dir>/indexes`` or ``.mmexplore-cache/indexes``).
    runs_dir : Path
        Training runs (``MMEXPLORE_RUNS_DIR``, default ``runs``).
    results_dir : Path
        Cached evaluation results, e.g. the robustness lab's, one JSON file per model and parameters
        (``MMEXPLORE_RESULTS_DIR``; default ``<cache_dir>/results`` or ``.mmexplore-cache/results``).
    mode : {"local", "shared"}
        ``shared`` for a server used by a class: no server paths in any widget (``MMEXPLORE_MODE``).
    data_roots : tuple of Path
        In shared mode, the only folders whose files a page may read (``MMEXPLORE_DATA_ROOTS``,
        separated by the OS path separator).
    allowed_models : tuple of str
        In shared mode, the model specs users may pick (``MMEXPLORE_ALLOWED_MODELS``, comma-separated;
        default: the shipped models).
    max_images, max_texts : int
        Per data set (``MMEXPLORE_MAX_IMAGES``, ``MMEXPLORE_MAX_TEXTS``).
    max_caption_chars : int
        Longest caption accepted (``MMEXPLORE_MAX_CAPTION_CHARS``).
    max_image_pixels : int
        Decompression-bomb guard per image (``MMEXPLORE_MAX_IMAGE_PIXELS``).
    max_stored_side : int
        Uploaded images whose longer side exceeds this many pixels are kept downscaled to it
        (``MMEXPLORE_MAX_STORED_SIDE``, default 2048; the models read 224-px inputs).
    max_session_megapixels : int
        Pixels, in millions, that one session's data set may hold in total (``MMEXPLORE_MAX_SESSION_MEGAPIXELS``,
        default 100, about 300 MB of RGB); images beyond it are refused with a message.
    max_index_items : int
        Shared mode: the most images or captions one index built from the app may hold
        (``MMEXPLORE_MAX_INDEX_ITEMS``, default 20,000).
    max_request_rows : int
        The most pairs one request of the app may label (Relation's batch mode;
        ``MMEXPLORE_MAX_REQUEST_ROWS``, default 2,000).
    max_model_params : int
        Largest model (parameters, counted from its architecture before any weights are allocated)
        that a spec may load (``MMEXPLORE_MAX_MODEL_PARAMS``, default 500 million: ViT-L-14 loads,
        ViT-H-14 needs the setting raised). A short spec must not cost the server gigabytes by accident.
    hub_offline : bool
        ``HF_HUB_OFFLINE``: never contact the Hugging Face hub.
    ray_address : str or None
        Ray cluster that ``mmexplore embed`` runs on (``RAY_ADDRESS``; None: Ray starts in-process).
    warm_up : bool
        The app compiles UMAP's code in a background thread when its server starts, so the first
        Joint space map does not wait for it (``MMEXPLORE_WARM_UP``, default on; ``0`` turns it off).
    debug : bool
        ``MMEXPLORE_DEBUG``: the CLI shows the traceback of an unexpected error instead of one line.
    assets_dir : Path
        The shipped models (``bundled``, ``bundled-<variant>``) and relation calibrations
        (``MMEXPLORE_ASSETS_DIR``; default the package's own ``mmexplore/assets``, found through
        :mod:`importlib.resources`, so an installed wheel finds them as a source checkout does).
    """

    default_model: str = DEFAULT_SPEC
    default_device: str = "auto"
    cache_dir: Path | None = None
    index_dir: Path = Path(".mmexplore-cache") / "indexes"
    runs_dir: Path = Path("runs")
    results_dir: Path = Path(".mmexplore-cache") / "results"
    mode: str = "local"
    data_roots: tuple[Path, ...] = ()
    allowed_models: tuple[str, ...] = (
        "bundled", "bundled-nodense", "bundled-noneg",
        # The Robustness lab's models (poisoned, cleaned; trained on web-like data, and with the defence).
        "bundled-poison-p0.03", "bundled-poison-p0.1", "bundled-cleanclip-p0.03", "bundled-cleanclip-p0.1",
        "bundled-web", "bundled-web-defence",
        # The order family (mmexplore.models.specs.ORDER_FAMILY; a test checks they are all here).
        "bundled-order-clip", "bundled-order-negclip", "bundled-order-layout",
    )
    max_images: int = 256
    max_texts: int = 1024
    max_caption_chars: int = 1000
    max_image_pixels: int = 64_000_000
    max_stored_side: int = 2048
    max_session_megapixels: int = 100
    max_index_items: int = 20_000
    max_request_rows: int = 2_000
    max_model_params: int = 500_000_000
    hub_offline: bool = False
    ray_address: str | None = None
    warm_up: bool = True
    debug: bool = False
    assets_dir: Path = field(default_factory=lambda: package_assets())
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); bad values raise :class:`InputError`."""
        env = os.environ if env is None else env
        mode = (env.get("MMEXPLORE_MODE") or "local").strip().lower()
        if mode not in MODES:
            raise InputError(f"MMEXPLORE_MODE={mode!r}: expected one of {', '.join(MODES)}")
        cache = env.get("MMEXPLORE_CACHE_DIR") or None
        cache_dir = Path(cache).expanduser() if cache else None
        index = env.get("MMEXPLORE_INDEX_DIR")
        index_dir = Path(index).expanduser() if index else (cache_dir or Path(".mmexplore-cache")) / "indexes"
        results = env.get("MMEXPLORE_RESULTS_DIR")
        results_dir = Path(results).expanduser() if results else (cache_dir or Path(".mmexplore-cache")) / "results"
        allowed_raw = env.get("MMEXPLORE_ALLOWED_MODELS")
        allowed = tuple(s.strip() for s in allowed_raw.split(",") if s.strip()) if allowed_raw else cls.allowed_models
        default_model = (env.get("MMEXPLORE_MODEL") or cls.default_model).strip()
        if mode == "shared" and default_model not in allowed:
            raise InputError(f"MMEXPLORE_MODEL={default_model!r} is not in MMEXPLORE_ALLOWED_MODELS "
                             f"({', '.join(allowed)}): a shared server starts every session with an allowed model")
        return cls(
            default_model=default_model,
            default_device=(env.get("MMEXPLORE_DEVICE") or cls.default_device).strip(),
            cache_dir=cache_dir,
            index_dir=index_dir,
            runs_dir=Path(env.get("MMEXPLORE_RUNS_DIR") or cls.runs_dir).expanduser(),
            results_dir=results_dir,
            mode=mode,
            data_roots=_paths(env.get("MMEXPLORE_DATA_ROOTS")),
            allowed_models=allowed,
            max_images=_int(env, "MMEXPLORE_MAX_IMAGES", cls.max_images),
            max_texts=_int(env, "MMEXPLORE_MAX_TEXTS", cls.max_texts),
            max_caption_chars=_int(env, "MMEXPLORE_MAX_CAPTION_CHARS", cls.max_caption_chars),
            max_image_pixels=_int(env, "MMEXPLORE_MAX_IMAGE_PIXELS", cls.max_image_pixels),
            max_stored_side=_int(env, "MMEXPLORE_MAX_STORED_SIDE", cls.max_stored_side, minimum=64),
            max_session_megapixels=_int(env, "MMEXPLORE_MAX_SESSION_MEGAPIXELS", cls.max_session_megapixels),
            max_index_items=_int(env, "MMEXPLORE_MAX_INDEX_ITEMS", cls.max_index_items),
            max_request_rows=_int(env, "MMEXPLORE_MAX_REQUEST_ROWS", cls.max_request_rows),
            max_model_params=_int(env, "MMEXPLORE_MAX_MODEL_PARAMS", cls.max_model_params),
            hub_offline=_truthy(env.get("HF_HUB_OFFLINE")),
            ray_address=(env.get("RAY_ADDRESS") or "").strip() or None,
            warm_up=env.get("MMEXPLORE_WARM_UP") is None or _truthy(env.get("MMEXPLORE_WARM_UP")),
            debug=_truthy(env.get("MMEXPLORE_DEBUG")),
            assets_dir=Path(env["MMEXPLORE_ASSETS_DIR"]).expanduser() if env.get("MMEXPLORE_ASSETS_DIR") else package_assets(),
        )

    @property
    def shared(self) -> bool:
        """True in shared (classroom server) mode."""
        return self.mode == "shared"

    def as_table(self) -> list[tuple[str, str]]:
        """``(field, value)`` rows, for ``mmexplore info`` and the docs."""
        return [(f.name, str(getattr(self, f.name))) for f in fields(self) if f.name != "extra"]


def hub_offline_now() -> bool:
    """``HF_HUB_OFFLINE`` read at call time, not cached: tests and huggingface_hub set it while running."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE"))


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again (tests, long-lived servers)."""
    get_settings.cache_clear()
    return get_settings()
