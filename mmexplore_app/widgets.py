"""Shared Streamlit widgets: the model and data set every page uses, errors, explanations, exports.

Pages call these instead of touching ``st.session_state`` or the model loader themselves:

- :func:`current_encoder` — the model picked in the sidebar (loaded once per (spec, device) through
  ``st.cache_resource``);
- :func:`current_dataset` / :func:`dataset_embeddings` — the shared data set and its embeddings
  (cached per model and content hash in :mod:`mmexplore_app.cache`, so switching pages never re-encodes);
- :func:`require_data`, :func:`explain`, :func:`show_error`, :func:`download_figure`,
  :func:`download_csv`, :func:`progress_callback`.

Session-state keys used here: ``dataset``, ``model_spec``, ``model_device``, ``model_error``,
``_kept`` (see :func:`keep`). Computed results go through :mod:`mmexplore_app.cache`. Page-specific keys
belong to the pages, with a prefix.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.settings import get_settings
from mmexplore_app.cache import cache_key, session_cached
from mmexplore_app.state import DATASET_KEY, Dataset

_log = logging.getLogger("mmexplore.app")
MODEL_SPEC_KEY = "model_spec"
MODEL_DEVICE_KEY = "model_device"
MODEL_ERROR_KEY = "model_error"
# Values of widgets made with keep(): survive reruns that do not draw them (page switches).
KEPT_KEY = "_kept"
# The model a new session starts with; MMEXPLORE_MODEL / MMEXPLORE_DEVICE override (e.g. a pretrained one).
START_SPEC = get_settings().default_model  # what a new session starts with ($MMEXPLORE_MODEL)
DEFAULT_DEVICE = get_settings().default_device
# Encoding more items than this shows a progress bar with counts.
PROGRESS_MIN_ITEMS = 8


# ---------------------------------------------------------------------------- state
def configure_server_log() -> None:
    """Send the ``mmexplore`` loggers (model loads, errors with their tracebacks) to the server's stderr.

    The browser shows one line per error; this log keeps the detail. Idempotent (runs on every script run).
    """
    log = logging.getLogger("mmexplore")
    log.setLevel(logging.INFO)
    # A library may already have given the root logger a handler (records propagate there): then none.
    if not logging.getLogger().handlers and not any(getattr(h, "_mmexplore", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._mmexplore = True  # type: ignore[attr-defined]
        log.addHandler(handler)


def init_state() -> None:
    """Create the shared session-state entries once (called by ``app.py`` before any page runs)."""
    st.session_state.setdefault(DATASET_KEY, Dataset())
    st.session_state.setdefault(MODEL_SPEC_KEY, START_SPEC)
    st.session_state.setdefault(MODEL_DEVICE_KEY, DEFAULT_DEVICE)
    st.session_state.setdefault(MODEL_ERROR_KEY, None)


def keep(key: str, default: Any = None, *, valid: Any = None) -> str:
    """Make the widget ``key`` keep its value across reruns and page switches; returns ``key``.

    Call it right before creating the widget (``st.selectbox(..., key=widgets.keep("x", 0))``) and give
    the widget no ``value``/``index``/``default`` argument: ``default`` is its starting value.

    Why: Streamlit forgets a widget's value when a run does not draw it (another page, the other
    branch of a toggle), and deleting a widget's key does not reach the browser, which then sends the
    old value back on the next rerun (the Heatmaps page drew scene 4 with scene 1's caption). So the
    value lives in a plain session-state dict (``_kept``) and is written back into the widget key
    whenever Streamlit dropped it; changes go through :func:`set_kept` (a write, which reaches the
    browser, never a delete).

    Parameters
    ----------
    key : str
        The widget key.
    default : Any
        The value when nothing is kept yet, or when the kept value is no longer valid.
    valid : container or callable, optional
        The allowed values (e.g. the options of a selectbox; for a list value every element must be
        in it), or a predicate. A kept value that fails it (the data set changed) falls back to ``default``.
    """
    store = st.session_state.setdefault(KEPT_KEY, {})
    live = key in st.session_state
    value = st.session_state[key] if live else store.get(key, default)
    if valid is not None and value is not None and not _is_valid(value, valid):
        value, live = default, False
    store[key] = value
    # Written on every run: a widget whose range or options changed is a new widget to Streamlit, which
    # would start it from its default although the key still holds the old value. Free text (a str
    # with no ``valid``) is the exception, written only when restoring: a write is also sent to the
    # browser and could overwrite what the user is typing while a long run finishes.
    free_text = isinstance(value, str) and valid is None
    if value is not None and not (live and free_text):
        st.session_state[key] = value
    return key


def reset_when(key: str, context: Any, value: Any, *, unless: tuple = ()) -> None:
    """Set the :func:`keep` widget ``key`` to ``value`` when ``context`` differs from the last run's.

    E.g. ``reset_when("heat_caption", (data, image), first_caption)``: a newly picked image starts from
    its own caption, while a rerun or a return to the page keeps what the user chose. Not applied on the
    first run (the widget's default applies), nor while the current value is one of ``unless``
    (e.g. "type your own").
    """
    store = st.session_state.setdefault(KEPT_KEY, {})
    marker = ("context", key)
    old = store.get(marker)
    store[marker] = context
    current = st.session_state[key] if key in st.session_state else store.get(key)
    if old is not None and old != context and current not in unless:
        set_kept(key, value)


def set_kept(key: str, value: Any) -> None:
    """Set the value a :func:`keep` widget shows on the next run (from a callback or before the widget)."""
    st.session_state.setdefault(KEPT_KEY, {})[key] = value
    st.session_state[key] = value


def _is_valid(value: Any, valid: Any) -> bool:
    if callable(valid):
        return bool(valid(value))
    allowed = list(valid)
    if isinstance(value, list):
        return all(v in allowed for v in value)
    return value in allowed


@st.cache_resource(show_spinner=False)
def _warm_up_state() -> dict[str, Any]:
    # One per server process (cache_resource is process-wide), shared by every session.
    import threading

    return {"lock": threading.Lock(), "started": None, "seconds": None, "error": None}


def start_warm_up() -> None:
    """Compile UMAP's code in a background thread, once per server process (``MMEXPLORE_WARM_UP``).

    Called by ``app.py`` on every run; only the first call of a process starts the thread.
    """
    import threading
    import time

    if not get_settings().warm_up:
        return
    state = _warm_up_state()
    with state["lock"]:
        if state["started"] is not None:
            return
        state["started"] = time.time()

    def run() -> None:
        from mmexplore.projection.methods import warm_up_umap

        try:
            state["seconds"] = warm_up_umap()
        except Exception as exc:  # the first real map then compiles instead; nothing else depends on this
            state["error"] = type(exc).__name__
            _log.warning("UMAP warm-up failed", exc_info=exc)

    threading.Thread(target=run, name="mmexplore-umap-warm-up", daemon=True).start()


def warm_up_status() -> tuple[str, float]:
    """``(status, seconds since it started)``; status is "off", "running", "done" or "failed"."""
    import time

    state = _warm_up_state()
    if state["started"] is None:
        return "off", 0.0
    elapsed = time.time() - state["started"]
    if state["error"]:
        return "failed", elapsed
    return ("done" if state["seconds"] is not None else "running"), elapsed


def current_dataset() -> Dataset:
    """The shared data set (an empty one if nothing is loaded yet)."""
    ds = st.session_state.get(DATASET_KEY)
    if not isinstance(ds, Dataset):
        ds = Dataset()
        st.session_state[DATASET_KEY] = ds
    return ds


def set_dataset(ds: Dataset) -> None:
    """Replace the shared data set."""
    st.session_state[DATASET_KEY] = ds


# ---------------------------------------------------------------------------- model
@st.cache_resource(max_entries=2, show_spinner=False)
def _load_model(spec: str, device: str) -> Any:
    # Keyed by the two strings only (STYLE: never pass the model itself as a cache argument).
    from mmexplore.models import load_model

    return load_model(spec, device)


@st.cache_resource(max_entries=4, show_spinner=False)
def _load_lab_model(spec: str) -> Any:
    from mmexplore.models import load_model

    return load_model(spec, "cpu")


def lab_encoder(spec: str) -> Any:
    """A shipped lab model (a small shapes-world model, ``bundled-*``) on the CPU, beside the app's own.

    For pages that compare shipped models side by side (the Robustness page's typographic attack); kept
    process-wide apart from the sidebar's model so comparing never evicts it. Only shipped specs load.
    """
    from mmexplore.robustness.evaluate import shipped_models

    if spec not in shipped_models():
        raise MMExploreError(f"'{spec}' is not a shipped lab model")
    return _load_lab_model(spec)


def forget_model(spec: str) -> None:
    """Drop ``spec`` from both model caches, so its next load reads the weights on disk again."""
    from mmexplore.models import forget_model as forget_loaded

    forget_loaded(spec)
    _load_model.clear()


def allowed_models() -> list[str] | None:
    """The model specs a user may pick: the server's allow-list in shared mode, None (any spec) in local mode."""
    settings = get_settings()
    return list(settings.allowed_models) if settings.shared else None


def active_model_choice() -> tuple[str, str]:
    """The (spec, device) the app is currently using."""
    return (
        str(st.session_state.get(MODEL_SPEC_KEY, START_SPEC)),
        str(st.session_state.get(MODEL_DEVICE_KEY, DEFAULT_DEVICE)),
    )


def switch_model(spec: str, device: str) -> bool:
    """Load ``spec`` on ``device`` and make it the app's model; on failure keep the previous one.

    Returns True on success. On failure the message is stored under ``model_error`` (the sidebar
    shows it) and the previously active model stays in use.
    """
    spec, device = (spec or "").strip(), (device or DEFAULT_DEVICE).strip()
    allowed = allowed_models()
    if allowed is not None and spec not in allowed:
        st.session_state[MODEL_ERROR_KEY] = "this server offers only the models in its list"
        return False
    try:
        with st.spinner(f"Loading model {spec} on {device}…"):
            _load_model(spec, device)
            # Set before the spinner's exit (a Streamlit call, where a new click can interrupt this run).
            st.session_state[MODEL_SPEC_KEY] = spec
            st.session_state[MODEL_DEVICE_KEY] = device
            st.session_state[MODEL_ERROR_KEY] = None
    except MMExploreError as exc:
        st.session_state[MODEL_ERROR_KEY] = str(exc)
        return False
    except Exception as exc:  # an unexpected failure inside open_clip/torch: one line, no traceback
        st.session_state[MODEL_ERROR_KEY] = f"model '{spec}' could not be loaded: {error_message(exc)}"
        return False
    return True


def current_encoder() -> Any:
    """The :class:`~mmexplore.models.encoder.Encoder` chosen in the sidebar.

    If it cannot be loaded (e.g. the bundled model is missing), shows the error and stops the page.
    """
    spec, device = active_model_choice()
    allowed = allowed_models()
    if allowed is not None and spec not in allowed:  # belt and braces: only switch_model sets the spec
        spec = START_SPEC
        st.session_state[MODEL_SPEC_KEY] = spec
    try:
        return _load_model(spec, device)
    except MMExploreError as exc:
        show_error(exc)
    except Exception as exc:
        show_error(f"model '{spec}' could not be loaded: {error_message(exc)}")
    st.stop()


def is_bundled(spec: str | None = None) -> bool:
    """True when ``spec`` (default: the active one) names a shapes-world model (shipped, or a training run)."""
    spec = spec if spec is not None else active_model_choice()[0]
    return spec == "bundled" or spec.startswith(("bundled-", "run:"))


# ---------------------------------------------------------------------------- embeddings
def progress_callback(label: str, *, min_items: int = PROGRESS_MIN_ITEMS) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callable that draws an ``st.progress`` bar with counts.

    The bar appears only when ``total > min_items`` (a handful of items encode instantly) and is
    removed when ``done == total``.
    """
    holder: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total <= min_items:
            return
        if "bar" not in holder:
            holder["slot"] = st.empty()
            holder["bar"] = holder["slot"].progress(0.0, text=f"{label}: 0/{total}")
        holder["bar"].progress(min(1.0, done / max(total, 1)), text=f"{label}: {done}/{total}")
        if done >= total:
            holder["slot"].empty()

    return update


def dataset_embeddings(dataset: Dataset | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the shared data set under the current model: ``(img_emb (N, d), txt_emb (M, d))``.

    Memoised in the session per (model id, hash of the images' pixels and the captions), so switching
    pages returns the same arrays without encoding; below that, the encoder's own embedding cache
    (shared by all sessions) makes re-encoding a seen image or caption a lookup.
    """
    ds = dataset if dataset is not None else current_dataset()
    encoder = current_encoder()

    def encode() -> tuple[np.ndarray, np.ndarray]:
        n, m = ds.n_images, ds.n_texts
        bar = progress_callback("Encoding images and captions")
        try:
            img = encoder.encode_images(ds.images, progress=lambda d, t: bar(d, n + m))
            txt = encoder.encode_texts(ds.texts, progress=lambda d, t: bar(n + d, n + m))
        except MMExploreError as exc:
            show_error(exc)
            st.stop()
        return img, txt

    # One entry per session: the current data set under the current model (pairs do not change embeddings).
    return session_cached("embeddings", cache_key(encoder.model_id, ds.embedding_key()), encode, max_entries=1)


# ---------------------------------------------------------------------------- server paths
def server_paths_allowed() -> bool:
    """Whether pages may offer server-side paths: always in local mode, in shared mode only with data roots."""
    settings = get_settings()
    return not settings.shared or bool(settings.data_roots)


def server_path_input(label: str, *, key: str, suffixes: tuple[str, ...] = (), folders: bool = False) -> str:
    """A text field for a path on the machine running the app; returns the stripped text.

    In shared mode the label says which data folders are readable and a caption lists (a few of)
    their entries; the path itself must still go through :func:`mmexplore.pathguard.user_path`.
    """
    settings = get_settings()
    if not settings.shared:
        return st.text_input(label, key=key).strip()
    from mmexplore.pathguard import list_inside

    roots = ", ".join(str(r) for r in settings.data_roots)
    value = st.text_input(f"{label}, inside this server's data folders", key=key,
                          placeholder=str(settings.data_roots[0]) if settings.data_roots else "",
                          help=f"Data folders: {roots}. Paths elsewhere on the server are refused.").strip()
    entries = list_inside(settings.data_roots, suffixes=suffixes, folders=folders, limit=12)
    if entries:
        st.caption("Available: " + " · ".join(plain(str(p)) for p in entries))
    return value


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:&\"'=^")


def plain(text: str) -> str:
    """``text`` escaped so that Streamlit's markdown shows it literally (no links, images, LaTeX, HTML).

    For user text read from files (captions in a saved index, file names): rendered as markdown, a
    caption ``![x](http://host/pixel)`` would make every viewer's browser fetch that URL.
    """
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIALS else c for c in str(text).replace("\n", " "))


# ---------------------------------------------------------------------------- page helpers
def require_data(min_images: int = 1, min_texts: int = 1) -> Dataset:
    """Return the data set, or show a friendly note and stop the page when it is too small."""
    ds = current_dataset()
    if ds.n_images >= min_images and ds.n_texts >= min_texts:
        return ds
    need = []
    if ds.n_images < min_images:
        need.append(f"{min_images} image{'s' if min_images != 1 else ''}")
    if ds.n_texts < min_texts:
        need.append(f"{min_texts} caption{'s' if min_texts != 1 else ''}")
    st.info(
        f"This page needs at least {' and '.join(need)} (now: {ds.n_images} images, {ds.n_texts} captions). "
        "Load a sample set from the sidebar, or add your own on the Home page."
    )
    st.stop()


def explain(title: str, markdown: str, *, expanded: bool = False) -> None:
    """A collapsible "what am I looking at" box."""
    with st.expander(title or "What am I looking at?", expanded=expanded):
        st.markdown(markdown)


def error_message(exc_or_msg: BaseException | str) -> str:
    """The one-line text shown for an error (no traceback).

    A user error (:class:`MMExploreError`) shows its own message, written to name the problem without
    quoting file contents. Any other exception shows only its type: its text may quote whatever file
    it was reading (a parser's "invalid literal … 'SECRET=…'"), so the detail goes to the server log.
    """
    if isinstance(exc_or_msg, str):
        return exc_or_msg
    if isinstance(exc_or_msg, MMExploreError):
        return str(exc_or_msg)
    if isinstance(exc_or_msg, MemoryError):
        _log.error("out of memory in a request", exc_info=exc_or_msg)
        return "Not enough memory for this request: use fewer images, captions or rows"
    _log.error("unexpected error shown to a user as one line", exc_info=exc_or_msg)
    return f"Unexpected error ({type(exc_or_msg).__name__}); the details are in the server log"


def no_links(text: str) -> str:
    """``text`` with markdown link and image syntax escaped (``[``, ``]``, ``!``), the rest left readable.

    For messages that quote a value a user or a file supplied (a file name, a model spec): rendered
    as markdown, ``![x](http://host/pixel)`` would make the viewer's browser fetch that URL.
    """
    return str(text).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("!", "\\!")


def show_error(exc_or_msg: BaseException | str) -> None:
    """Show an error as ``st.error`` with its one-line message, never a traceback (links in it escaped)."""
    st.error(no_links(error_message(exc_or_msg)), icon=":material/error:")


def out_of_world(dataset: Dataset | None = None) -> list[int]:
    """Images of the data set the current shapes-world model does not read (empty for other models).

    Decided from what the model reads (:func:`mmexplore.relation.world.world_reading`), not from where
    an image came from: a hand-drawn red circle is in the world, a photograph is not. Memoised per
    model and content.
    """
    ds = dataset if dataset is not None else current_dataset()
    if not is_bundled() or not ds.images:
        return []
    from mmexplore.relation.world import IN_WORLD_SHARE, world_reading

    encoder = current_encoder()

    def read() -> list[int]:
        with st.spinner("Checking which images the model can read…"):
            shares = world_reading(encoder, ds.images, model_spec=active_model_choice()[0])
        return [i for i, s in enumerate(shares) if s <= IN_WORLD_SHARE]

    try:
        return session_cached("world", cache_key(encoder.model_id, ds.embedding_key()), read, max_entries=1)
    except MMExploreError:  # no calibration for this model: no claim either way (and nothing cached)
        return []


def world_warning(dataset: Dataset | None = None) -> None:
    """Warn when the shapes-world model reads no known object in some of the data set's images."""
    ds = dataset if dataset is not None else current_dataset()
    out = out_of_world(ds)
    if not out:
        return
    names = ", ".join(plain(ds.image_names[i]) for i in out[:4]) + (" …" if len(out) > 4 else "")
    st.warning(f"The model reads no shapes-world object in {len(out)} of {ds.n_images} images ({names}): it knows "
               "only the shapes world, so their numbers mean little. Load a pretrained model in the sidebar for photos.",
               icon=":material/warning:")


def captions_notes(dataset: Dataset | None = None) -> None:
    """Report the share of caption words the current model cannot read; warn about captions it cannot read."""
    from mmexplore.models.readability import read_text as read

    ds = dataset if dataset is not None else current_dataset()
    encoder = current_encoder()
    reads = session_cached("readability", cache_key(encoder.model_id, ds.embedding_key()),
                           lambda: [read(encoder, t) for t in ds.texts], max_entries=1)
    n_words = sum(len(r.words) for r in reads)
    share = sum(len(r.unknown) for r in reads) / n_words if n_words else 0.0
    bad = [k for k, r in enumerate(reads) if r.unreadable]
    if bad:
        shown = " · ".join(f"“{plain(ds.texts[k][:40])}”" for k in bad[:3]) + (" …" if len(bad) > 3 else "")
        st.warning(f"The model cannot read {len(bad)} of {ds.n_texts} captions (half or more of their words are "
                   f"unknown to it): {shown}. Their scores mean little.", icon=":material/translate:")
    negated = sum(bool(r.negations) for r in reads)
    st.caption(f"Caption words the model cannot read: {share:.0%}"
               + (f" · {negated} caption(s) negate ('not', 'no', …), which contrastive models largely ignore"
                  if negated else ""))


def read_text(text: str) -> dict[str, Any]:
    """What the current model reads of ``text``: :meth:`mmexplore.models.readability.Readability.to_dict`."""
    from mmexplore.models.readability import read_text as read

    return read(current_encoder(), text).to_dict()


def readability_notes(read: dict[str, Any], *, what: str = "text") -> None:
    """Report the share of ``what``'s words the model cannot read; warn when high, note negation and truncation.

    ``read`` is a :meth:`~mmexplore.models.readability.Readability.to_dict` (e.g. a relation result's).
    """
    share = read["unknown_share"]
    notes = list(read.get("notes", []))
    if read["unreadable"]:
        st.warning(f"The model cannot read this {what}. " + no_links(" ".join(notes)), icon=":material/translate:")
    elif notes:
        st.info(no_links(" ".join(notes)), icon=":material/info:")  # notes quote the user's words
    else:
        st.caption(f"The model reads every word of the {what} (0% unknown).")
    if share and not read["unreadable"]:
        st.caption(f"Words the model cannot read: {share:.0%}.")


def download_csv(df: Any, name: str, *, label: str = "Download CSV", key: str | None = None) -> None:
    """A download button for a pandas DataFrame as CSV (``name`` without or with ``.csv``)."""
    file_name = name if name.endswith(".csv") else f"{name}.csv"
    st.download_button(
        label,
        data=df.to_csv(index=True).encode("utf-8"),
        file_name=file_name,
        mime="text/csv",
        key=key or f"dl_csv_{file_name}",
        on_click="ignore",
    )


def figure_png(fig: Any, *, scale: float = 2.0) -> bytes:
    """Render a Plotly figure to PNG bytes with kaleido (raises when no Chrome/Chromium is usable)."""
    return fig.to_image(format="png", scale=scale)


def download_figure(fig: Any, name: str, *, key: str | None = None, png: bool = True) -> None:
    """Download buttons for a Plotly figure: interactive HTML always, PNG on request.

    The PNG is rendered only after "Prepare PNG" is clicked (kaleido starts a headless Chromium,
    which takes seconds), so drawing the page stays fast. Where PNG export fails (no Chrome or
    Chromium), a note says so and points to the HTML file and the chart's own camera button.
    """
    base = name.rsplit(".", 1)[0] if name.endswith((".png", ".html")) else name
    key = key or f"dl_fig_{base}"
    cols = st.columns(2)
    with cols[0]:
        html = io.StringIO()
        fig.write_html(html, include_plotlyjs="cdn", full_html=True)
        st.download_button(
            "Download figure (HTML)",
            data=html.getvalue().encode("utf-8"),
            file_name=f"{base}.html",
            mime="text/html",
            key=f"{key}_html",
            on_click="ignore",
        )
    if not png:
        return
    with cols[1]:
        if st.button("Prepare PNG", key=f"{key}_png_prepare", help="Render the figure to a PNG file (takes a few seconds)"):
            try:
                with st.spinner("Rendering PNG…"):
                    data = figure_png(fig)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                st.warning(
                    f"PNG export is not available here ({first}); it needs Chrome or Chromium for kaleido. "
                    "Use the HTML export, or the camera icon above the chart.",
                    icon=":material/info:",
                )
            else:
                st.download_button(
                    "Download figure (PNG)",
                    data=data,
                    file_name=f"{base}.png",
                    mime="image/png",
                    key=f"{key}_png",
                    on_click="ignore",
                )


def dataset_thumbnail_uris(dataset: Dataset | None = None, size: int = 96) -> list[str]:
    """Small PNG ``data:`` URIs of the data set's images (cached per content hash and size)."""
    from mmexplore_app.figures import image_data_uri

    ds = dataset if dataset is not None else current_dataset()
    return session_cached("thumbnails", cache_key(None, ds.embedding_key(), size),
                          lambda: [image_data_uri(im, size) for im in ds.images], max_entries=1)
