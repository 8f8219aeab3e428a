"""The sidebar every page shares: model picker, device, model facts, data set summary, samples."""

from __future__ import annotations

import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.models.specs import ORDER_FAMILY
from mmexplore_app import state, widgets
from mmexplore_app.state import Dataset

# Model sources offered in the picker: label -> (spec prefix hint, placeholder).
MODEL_SOURCES: dict[str, str] = {
    "Bundled (shapes world)": "bundled",
    "Bundled without the dense term (unlocalised attention maps)": "bundled-nodense",
    "Bundled without hard negatives (for probes)": "bundled-noneg",
    # The order family, side by side on the Probes page.
    **{f"Order family: {label}": spec for spec, label in ORDER_FAMILY.items()},
    "Training run (Train page)": "run:",
    "open_clip pretrained (ARCH:TAG)": "ViT-B-32:laion2b_s34b_b79k",
    "Local weights file (ARCH:/path)": "ViT-B-32:/path/to/weights.safetensors",
    "Hugging Face hub (hf-hub:org/name)": "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
    "Local model folder (local-dir:/path)": "local-dir:/path/to/folder",
}


PENDING_KEY = "model_pending"  # (spec, device) asked for by "Load model", not loaded yet


@st.cache_data(show_spinner=False, max_entries=4)
def _shapes_samples(n: int) -> object:
    from mmexplore.data.samples import shapes_samples

    return shapes_samples(n=n)


@st.cache_data(show_spinner=False, max_entries=1)
def _photo_samples() -> object:
    from mmexplore.data.samples import photo_samples

    return photo_samples()


def load_samples(kind: str, n: int = 8) -> Dataset:
    """Replace the shared data set with a sample set ("shapes" or "photos") and return it."""
    samples = _shapes_samples(n) if kind == "shapes" else _photo_samples()
    ds = Dataset.from_samples(samples)
    widgets.set_dataset(ds)
    return ds


def _run_picker() -> None:
    """A finished or stopped training run of the runs folder (``sb_model_run``; read by :func:`_picked_spec`)."""
    from mmexplore.training.runs import list_runs

    names = [r["run"] for r in list_runs() if r.get("status") in ("finished", "stopped")]
    if not names:
        st.caption("No finished runs yet: train one on the Train page.")
        return
    st.selectbox("Run", names, key="sb_model_run")


def _picked_spec() -> tuple[str, str]:
    """(spec, source label) as the picker's widgets hold them now (read in the button's callback)."""
    allowed = widgets.allowed_models()
    if allowed is not None:
        return str(state.value("sb_model_allowed") or allowed[0]), "allowed"
    source = str(state.value("sb_model_source") or next(iter(MODEL_SOURCES)))
    hint = MODEL_SOURCES.get(source, "bundled")
    if hint.startswith("bundled"):
        return hint, source
    if hint == "run:":
        run = state.value("sb_model_run")
        return (f"run:{run}" if run else ""), source
    return str(state.value("sb_model_spec") or ""), source


def _load_clicked() -> None:
    """"Load model": remember the picked spec and device; the sidebar loads it in the run that follows.

    Only session state is written here. A callback that draws (a spinner) can be cut short by the
    user's next click, which would drop the switch; a pending request survives until it is done.
    """
    spec, source = _picked_spec()
    if not spec.strip():
        state.set_value(widgets.MODEL_ERROR_KEY, f"enter a model spec, e.g. {MODEL_SOURCES.get(source, 'bundled')}")
        return
    state.set_value(PENDING_KEY, (spec, str(state.value("sb_model_device") or widgets.DEFAULT_DEVICE)))


def _model_picker() -> None:
    st.subheader("Model")
    pending = state.value(PENDING_KEY)
    if pending:
        if str(pending[0]).startswith("run:"):
            widgets.forget_model(pending[0])  # a run may have trained on since it was last loaded
        widgets.switch_model(*pending)
        state.forget(PENDING_KEY)  # only once done: an interrupted run retries it
    spec, device = widgets.active_model_choice()
    allowed = widgets.allowed_models()
    if allowed is not None:
        # Shared server: only the models whoever runs it allowed; no spec (and so no path) is typed.
        st.selectbox("Model", allowed, key="sb_model_allowed", index=allowed.index(spec) if spec in allowed else 0)
    else:
        source = st.selectbox("Source", list(MODEL_SOURCES), key="sb_model_source")
        if MODEL_SOURCES[source] == "run:":
            _run_picker()
        elif not MODEL_SOURCES[source].startswith("bundled"):
            st.text_input(
                "Model spec", key="sb_model_spec", placeholder=MODEL_SOURCES[source], help="See README, 'Model specs'."
            )
    from mmexplore.models.devices import DEVICE_CHOICES

    st.selectbox("Device", DEVICE_CHOICES, key="sb_model_device", index=DEVICE_CHOICES.index("auto"))
    st.button("Load model", key="sb_model_load", width="stretch", on_click=_load_clicked)
    err = state.value(widgets.MODEL_ERROR_KEY)
    if err:
        st.error(widgets.no_links(f"{err}\n\nStill using: {spec}"), icon=":material/error:")
    spec, device = widgets.active_model_choice()
    try:
        encoder = widgets._load_model(spec, device)
    except MMExploreError as exc:
        widgets.show_error(exc)
        return
    except Exception as exc:
        widgets.show_error(exc)
        return
    info = encoder.info
    st.caption(
        f"**{info.name}** · {info.device} · {info.dtype}  \n"
        f"embed dim {info.embed_dim} · input {info.image_size}px · {info.params / 1e6:.1f}M params  \n"
        + _facts_line(encoder.facts)
    )


def _facts_line(facts) -> str:
    """Family, scoring rule and pooling in one caption line (read from the model, not its name)."""
    rule = f"sigmoid σ(s·cos + b), s {facts.logit_scale:.1f}, b {facts.logit_bias:.1f}" if facts.scoring == "sigmoid" \
        else f"softmax, logit scale {facts.logit_scale:.1f}"
    return f"{facts.family_label} · {rule} · {facts.pooling} pooling"


def _data_summary() -> None:
    st.subheader("Data set")
    ds = widgets.current_dataset()
    st.caption(ds.summary() if not ds.is_empty else "Nothing loaded yet.")
    # Callbacks, not `if st.button(...)`: a callback runs before the next script run and is not cut
    # short by another click, so a quick second click on a cold server is not lost.
    st.button("Shapes samples", key="sb_samples_shapes", width="stretch", on_click=load_samples, args=("shapes",),
              help="8 generated scenes, true captions and hard negatives")
    st.button("Photo samples", key="sb_samples_photos", width="stretch", on_click=load_samples, args=("photos",),
              help="8 photos from scikit-image with captions")


def render_sidebar() -> None:
    """Draw the shared sidebar (call once per run, from ``app.py``)."""
    with st.sidebar:
        _model_picker()
        st.divider()
        _data_summary()


def render_banner() -> None:
    """The plain note about what the bundled model can and cannot do (shown while it is active)."""
    if widgets.is_bundled():
        st.info(
            "The bundled model was trained only on synthetic shapes (circles, squares, triangles in four "
            "colours). Photos need a pretrained model: pick one under *Model* in the sidebar.",
            icon=":material/info:",
        )
