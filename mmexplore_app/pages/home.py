"""Home: what the app does, and the shared data set (samples, uploads, captions, pairs table)."""

from __future__ import annotations

import streamlit as st

from mmexplore_app import data_input as di
from mmexplore_app import state, widgets
from mmexplore_app.sidebar import load_samples

st.title("mmexplore")
st.markdown(
    "Explore how a CLIP-style model connects images and text. Load a data set here (a sample set "
    "or your own images and captions), then open a page: **Similarity** shows the image × caption "
    "matrix with InfoNCE and recall; **Heatmaps** where in the image each word looks; **Joint space** "
    "and **CCA** the shared embedding space; **Relation** how an image and a text relate; **Search** "
    "and **Probes** retrieval and targeted tests. The model is chosen in the sidebar."
)

# ---------------------------------------------------------------------------- samples
with st.container(horizontal=True):
    # Callbacks (not `if st.button`): a quick second click cannot cut the first one's work short.
    st.button("Load shapes samples", key="home_samples_shapes", type="primary", on_click=load_samples, args=("shapes",),
              help="8 generated scenes, true captions, hard negatives")
    st.button("Load photo samples", key="home_samples_photos", on_click=load_samples, args=("photos",),
              help="8 photos from scikit-image with hand-written captions")

# ---------------------------------------------------------------------------- your own data
st.header("Your own data")
tab_img, tab_cap, tab_pairs = st.tabs(["Images", "Captions", "Pairs file (CSV / TSV / JSONL)"])


def _report(key: str) -> None:
    for msg in state.value(f"{key}_notes", []):
        st.success(msg, icon=":material/check_circle:")
    for msg in state.value(f"{key}_errors", []):
        widgets.show_error(msg)


def _remember(key: str, outcome: di.Outcome, note: str | None) -> None:
    """Store the new data set and its messages, then rerun so the sidebar summary is current too."""
    widgets.set_dataset(outcome.dataset)
    state.set_value(f"{key}_errors", outcome.errors)
    state.set_value(f"{key}_notes", [note, *outcome.notes] if note else outcome.notes)
    st.rerun()


with tab_img:
    files = st.file_uploader(
        f"Images ({', '.join(di.IMAGE_TYPES).upper()}; GIF: first frame). Up to {di.MAX_IMAGES} images, "
        f"{st.get_option('server.maxUploadSize')} MB per file.",
        type=list(di.UPLOAD_TYPES),
        accept_multiple_files=True,
        key="home_image_files",
    )
    seen = state.session_set("home_seen_uploads")
    new = [f for f in files or [] if f.file_id not in seen]
    if new:
        outcome = di.add_image_files(widgets.current_dataset(), [(f.name, f.getvalue()) for f in new])
        seen.update(f.file_id for f in new)
        _remember("home_img", outcome, f"Added {outcome.added} image(s)." if outcome.added else None)
    _report("home_img")

with tab_cap:
    typed = st.text_area("Captions, one per line", key="home_caption_text", height=120,
                         help=f"At most {di.MAX_CAPTION_CHARS:,} characters per caption (longer ones are skipped and "
                              "listed); the model itself reads only its first tokens (32 for the bundled models).")
    if st.button("Add captions", key="home_caption_add"):
        outcome = di.add_captions(widgets.current_dataset(), di.split_captions(typed))
        _remember("home_cap", outcome, f"Added {outcome.added} caption(s)." if outcome.added else "No new captions.")
    _report("home_cap")

with tab_pairs:
    st.caption(
        "Columns `image` and `text`; one row per true pair, so an image can have several captions and a "
        "caption several images. Image names are matched to uploaded images by file name. Rows with a caption "
        f"over {di.MAX_CAPTION_CHARS:,} characters are dropped and listed."
    )
    pair_file = st.file_uploader("Pairs file", type=list(di.PAIR_TYPES), key="home_pairs_file")
    if pair_file is not None and pair_file.file_id not in seen:
        seen.add(pair_file.file_id)
        outcome = di.add_pairs_file(widgets.current_dataset(), pair_file.name, pair_file.getvalue())
        _remember("home_pairs", outcome, None)
    _report("home_pairs")

# ---------------------------------------------------------------------------- current data
ds = widgets.current_dataset()
st.header("Current data set")
if ds.is_empty:
    st.info("Nothing loaded yet: load a sample set above or add images and captions.")
    st.stop()
st.caption(ds.summary())

if ds.images:
    st.image(di.thumbnails(ds), caption=[widgets.no_links(n) for n in ds.image_names], width=96)
    with st.expander("Remove images"):
        drop = st.multiselect("Images to remove", di.image_column_labels(ds), key="home_drop_images")
        if st.button("Remove selected", key="home_drop_go", disabled=not drop):
            labels = di.image_column_labels(ds)
            new_ds = ds.copy()
            new_ds.remove_images([labels.index(d) for d in drop])
            widgets.set_dataset(new_ds)
            st.rerun()

st.subheader("Pairs")
st.caption(
    "Tick the images each caption truly describes. Edit a caption in place, add one in the last row, "
    "or delete rows. Notes mark hard negatives (captions that are false for every image)."
)
frame = di.pairs_frame(ds)
edited = st.data_editor(
    frame,
    key=f"home_pairs_editor_{ds.content_key()}",
    num_rows="dynamic",
    hide_index=True,
    disabled=[di.NOTE_COL],
    column_config={di.CAPTION_COL: st.column_config.TextColumn(width="large", required=True)},
)
if not edited.equals(frame):
    outcome = di.apply_pairs_frame(ds, edited)
    widgets.set_dataset(outcome.dataset)
    state.set_value("home_table_errors", outcome.errors)
    st.rerun()
for msg in state.value("home_table_errors", []):
    widgets.show_error(msg)

c1, c2 = st.columns(2)
if c1.button("Pair in order (image k ↔ caption k)", key="home_pair_in_order", disabled=not (ds.images and ds.texts)):
    widgets.set_dataset(di.pair_in_order(ds))
    st.rerun()
if c2.button("Clear the data set", key="home_clear"):
    from mmexplore_app.state import Dataset

    widgets.set_dataset(Dataset())
    state.forget("home_img_errors", "home_cap_errors", "home_pairs_errors", "home_table_errors")
    st.rerun()
