"""Helpers for Streamlit AppTest tests of the app's pages.

``open_page("mmexplore_app/pages/heatmaps.py", samples="shapes")`` runs ``app.py`` (the router) under
:class:`streamlit.testing.v1.AppTest` with a sample data set already in session state, switches to
the page, runs it and returns the AppTest, ready for assertions:

>>> at = open_page("mmexplore_app/pages/similarity.py")            # doctest: +SKIP
>>> assert not at.exception
>>> at.session_state["dataset"].n_images             # doctest: +SKIP
8

The model is ``bundled`` (or, while ``mmexplore/assets/bundled`` is absent, a random-weights model of the same
family) unless ``model=`` or the environment variable ``MMEXPLORE_TEST_MODEL`` names another spec.
Models load once per test process (``st.cache_resource`` is process-wide).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from mmexplore_app.navigation import PAGES as NAV_PAGES

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
# Page paths relative to app.py, from the app's one page table.
PAGES = tuple(spec.app_relative for spec in NAV_PAGES)
HOME = NAV_PAGES[0].app_relative
# Per script run; generous because tests share 2 cores with training runs (not a speed check).
DEFAULT_TIMEOUT_S = 300.0


# Used only while mmexplore/assets/bundled is absent (a fresh checkout before training): same wiring, random weights.
FALLBACK_MODEL = "mmexplore-shapes-xs:random"


def test_model_spec() -> str:
    """The model spec AppTests use: ``$MMEXPLORE_TEST_MODEL``, else ``bundled`` when it is present."""
    if os.environ.get("MMEXPLORE_TEST_MODEL"):
        return os.environ["MMEXPLORE_TEST_MODEL"]
    return "bundled" if (ROOT / "mmexplore" / "assets" / "bundled" / "open_clip_config.json").is_file() else FALLBACK_MODEL


test_model_spec.__test__ = False  # not a pytest test despite its name


def sample_dataset(samples: str | None = "shapes", n: int = 8) -> Any:
    """The shared :class:`~mmexplore_app.state.Dataset` for a sample set ("shapes", "photos" or None)."""
    from mmexplore.data.samples import photo_samples, shapes_samples
    from mmexplore_app.state import Dataset

    if samples is None:
        return Dataset()
    if samples == "shapes":
        return Dataset.from_samples(shapes_samples(n=n))
    if samples == "photos":
        return Dataset.from_samples(photo_samples())
    raise ValueError(f"unknown sample set {samples!r}")


def new_app(*, dataset: Any = None, model: str | None = None, device: str = "cpu", timeout: float = DEFAULT_TIMEOUT_S) -> AppTest:
    """An AppTest of ``app.py`` with session state prepared (not yet run)."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if dataset is not None:
        at.session_state["dataset"] = dataset
    at.session_state["model_spec"] = model or test_model_spec()
    at.session_state["model_device"] = device
    return at


def open_page(
    page: str,
    samples: str | None = "shapes",
    *,
    n: int = 8,
    dataset: Any = None,
    model: str | None = None,
    device: str = "cpu",
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AppTest:
    """Run the app, switch to ``page`` (e.g. ``"mmexplore_app/pages/similarity.py"``) with data loaded, and return it.

    Parameters
    ----------
    page : str
        Page file relative to ``app.py`` (:attr:`~mmexplore_app.navigation.PageSpec.app_relative`).
    samples : {"shapes", "photos", None}
        Sample set put into ``st.session_state["dataset"]`` before the first run (ignored when
        ``dataset`` is given). None leaves the data set empty.
    n : int
        Number of shapes scenes.
    dataset : Dataset, optional
        Use this data set instead of a sample set.
    model, device : str
        Model spec and device put into session state (default ``$MMEXPLORE_TEST_MODEL`` or bundled, cpu).
    timeout : float
        Seconds each run may take.
    """
    ds = dataset if dataset is not None else sample_dataset(samples, n=n)
    at = new_app(dataset=ds, model=model, device=device, timeout=timeout)
    at.run()
    if page != HOME:
        at.switch_page(page)
        at.run()
    return at


def texts_of(elements: Any) -> list[str]:
    """The ``.value`` of every element in an AppTest element list, as strings."""
    return [str(e.value) for e in elements]


def image_captions(at: AppTest) -> list[str]:
    """The captions of every ``st.image`` shown (thumbnail grids, per-word overlays)."""
    return [c for img in at.get("image") for c in img.captions]


def plotly_charts(at: AppTest) -> list[Any]:
    """The Plotly chart elements of the current run (AppTest has no typed accessor for them)."""
    return [e for e in at.get("plotly_chart")]


def _decode_array(value: Any) -> Any:
    """Plotly ≥ 6 writes numeric arrays as ``{"dtype", "bdata" (base64), "shape"}``; lists pass through."""
    import base64

    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")] if isinstance(shape, str) else list(shape)
            arr = arr.reshape(dims)
        return arr
    return np.asarray(value)


def figure_spec(at: AppTest, index: int = 0) -> dict:
    """The JSON figure of the ``index``-th Plotly chart on the page."""
    import json

    return json.loads(plotly_charts(at)[index].proto.spec)


def heatmap_values(at: AppTest, index: int = 0) -> Any:
    """The ``z`` matrix of the first heatmap trace of the ``index``-th Plotly chart, as a numpy array."""
    spec = figure_spec(at, index)
    trace = next(t for t in spec["data"] if t.get("type") == "heatmap")
    return _decode_array(trace["z"])
