"""Search: a faiss index over the current data set or a folder; query by text or by image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.pathguard import guard_paths, reading_roots, user_folder, user_path
from mmexplore.settings import get_settings
from mmexplore_app import state, widgets
from mmexplore_app.cache import cache_key, session_cached

SOURCES = ("Current data set", "A folder of images", "A saved index folder", "An embeddings folder (mmexplore embed)")
# A shared server without data folders offers no server-side source.
OFFERED = SOURCES if widgets.server_paths_allowed() else SOURCES[:1]
# Indexes of folders built on this page (the same folder and model reuse and extend theirs).
INDEX_ROOT = get_settings().index_dir
COLUMNS = 4

EXPLANATION = """
Every image (and caption) of the collection is embedded once by the model and stored in a
[faiss](https://github.com/facebookresearch/faiss) index. A query, typed text or an image, is embedded
the same way, and the index returns the rows with the highest **cosine similarity** to it: text → image
is CLIP's zero-shot retrieval, image → image finds look-alikes, image → text finds captions.

Small collections are searched **exactly** (every row is compared). From 20,000 rows the index is an
**HNSW graph**, which answers in a fraction of the time but may miss some true neighbours; the
*recall@10* shown is measured when the index is built (share of the exact top 10 that it finds).
An index belongs to one model: embeddings of two models live in unrelated spaces, so a query from
another model is refused. Click *use as query* under a result to search with that image next.
"""


def _dataset_index(encoder, ds):
    """A SearchIndex of the data set's images and captions (memoised per model and content)."""
    from mmexplore.retrieval import SearchIndex

    def build() -> SearchIndex:
        img, txt = widgets.dataset_embeddings(ds)
        index = SearchIndex(encoder.model_id, encoder.info.name)
        caps = [" | ".join(t for t, p in zip(ds.texts, ds.pairs[i], strict=True) if p) for i in range(ds.n_images)]
        if ds.n_images:
            index.add("image", img, [{"path": n, "caption": c} for n, c in zip(ds.image_names, caps, strict=True)],
                      encoder.model_id)
        if ds.n_texts:
            first = [next((ds.image_names[i] for i in range(ds.n_images) if ds.pairs[i, j]), "") for j in range(ds.n_texts)]
            index.add("text", txt, [{"path": p, "caption": t} for p, t in zip(first, ds.texts, strict=True)], encoder.model_id)
        return index

    return session_cached("search_index", cache_key(encoder.model_id, ds.content_key()), build, max_entries=1)


def _image(path: str, ds):
    """The image a result row names: from the data set by name, else from disk."""
    if path in ds.image_names:
        return ds.images[ds.image_names.index(path)]
    from mmexplore.data.images import load_image

    roots = reading_roots()
    guard_paths([path], shared=roots is not None, roots=roots or (), what="image path")
    return load_image(path)


def _use_image(path: str) -> None:
    state.set_value("search_query", {"kind": "image", "path": path})


def _use_text(text: str) -> None:
    widgets.set_kept("search_text", text)
    state.set_value("search_query", {"kind": "text", "text": text})


def _typed() -> None:
    state.set_value("search_query", {"kind": "text", "text": state.value("search_text", "")})


def _uploaded() -> None:
    if state.value("search_upload") is not None:
        state.set_value("search_query", {"kind": "upload"})


st.title("Search")
encoder = widgets.current_encoder()
ds = widgets.current_dataset()
source = st.radio("Search in", OFFERED, horizontal=True, key=widgets.keep("search_source", OFFERED[0], valid=OFFERED))

index = None
try:
    if source == SOURCES[0]:
        if ds.n_images + ds.n_texts == 0:
            st.info("The data set is empty: load a sample set from the sidebar or add images on the Home page, "
                    "or search a folder of images instead.")
            st.stop()
        index = _dataset_index(encoder, ds)
    elif source == SOURCES[1]:
        folder = widgets.server_path_input("Folder of images (on the machine running the app)",
                                           key=widgets.keep("search_folder", ""), folders=True)
        if folder:
            from mmexplore.retrieval import build_index

            resolved = user_path(folder)  # shared mode: inside the data roots, or refused
            digest = hashlib.sha1(f"{resolved.resolve()}|{encoder.model_id}".encode()).hexdigest()[:12]
            out = INDEX_ROOT / digest
            if st.button("Build / update index", key="search_build", help="embeds only files not embedded yet"):
                bar = widgets.progress_callback("Embedding")
                settings = get_settings()
                res = build_index(resolved, out, encoder, progress=False, on_chunk=lambda k, d, t: bar(d, t),
                                  roots=reading_roots(), lock_timeout_s=300,
                                  max_items=settings.max_index_items if settings.shared else None)
                if res["errors"]:
                    st.warning(f"{len(res['errors'])} file(s) skipped: " + widgets.no_links("; ".join(res["errors"][:3])))
            state.set_value("search_index_dir", str(out) if (out / "index.json").is_file() else None)
        if state.value("search_index_dir"):
            from mmexplore.retrieval import SearchIndex

            index = SearchIndex.load(state.value("search_index_dir"))
    elif source == SOURCES[3]:
        path = st.text_input("Embeddings folder (made by `mmexplore embed SOURCE --out DIR`)",
                             key=widgets.keep("search_emb_path", "")).strip()
        if path:
            from mmexplore.embeddings.shards import read_manifest
            from mmexplore.retrieval import SearchIndex
            from mmexplore.retrieval.from_embeddings import build_index_from_embeddings

            folder = user_folder(path)  # shared mode: inside the data roots (its files too), or refused
            manifest = read_manifest(folder)
            digest = hashlib.sha1(f"{folder}|{manifest.get('updated')}|{manifest.get('rows')}".encode()).hexdigest()[:12]
            out = INDEX_ROOT / f"emb-{digest}"
            if not (out / "index.json").is_file():
                with st.spinner(f"Indexing {manifest.get('rows', 0):,} rows from the shards (no re-encoding)…"):
                    build_index_from_embeddings(folder, out, progress=False)
            index = SearchIndex.load(out)
            index.check_model(encoder.model_id, "the model chosen in the sidebar")
    else:
        path = widgets.server_path_input("Index folder (made by `mmexplore index build`)",
                                         key=widgets.keep("search_index_path", ""), folders=True)
        if path:
            from mmexplore.retrieval import SearchIndex

            index = SearchIndex.load(user_folder(path))
            index.check_model(encoder.model_id, "the model chosen in the sidebar")
except MMExploreError as exc:
    widgets.show_error(exc)
    st.stop()
if index is None:
    st.info("Give a folder above to build or open an index.")
    st.stop()

desc = index.describe()
st.caption(" · ".join(
    f"{kind}s: {d['size']:,} ({d['backend']}, recall@10 {d['recall@10']:.2f})" for kind, d in desc["kinds"].items()
) + f" · model {desc['model']} · dim {desc['embed_dim']}")

left, right = st.columns([2, 1])
with left:
    st.text_input("Query text", key=widgets.keep("search_text", ""), on_change=_typed,
                  placeholder="e.g. a red circle above a blue square")
with right:
    st.file_uploader("…or drop an image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="search_upload",
                     on_change=_uploaded)
targets = [k for k in ("image", "text") if k in index.indexes]
c1, c2 = st.columns(2)
target = c1.radio("Return", targets, horizontal=True, key=widgets.keep("search_target", targets[0], valid=targets),
                  format_func=lambda k: f"{k}s")
n_target = index.size(target)
k_max = min(48, n_target)
k = 1
if n_target > 1:
    widgets.reset_when("search_k", (source, target, n_target), min(8, n_target))  # another index: its default
    k = c2.slider("Results", 1, k_max, key=widgets.keep("search_k", min(8, n_target), valid=range(1, k_max + 1)))

query = state.value("search_query")
if query is None and state.value("search_text"):
    query = {"kind": "text", "text": state.value("search_text")}
if not query or (query["kind"] == "text" and not query["text"].strip()):
    st.info("Type a query or drop an image.")
    st.stop()
try:
    if query["kind"] == "text":
        st.markdown(f"**Query:** “{widgets.plain(query['text'])}”")
        widgets.readability_notes(widgets.read_text(query["text"]), what="query")
        results = index.search_text(encoder, query["text"], target, k)
    else:
        if query["kind"] == "upload":
            from mmexplore.data.images import decode_image

            up = state.value("search_upload")
            if up is None:
                st.info("Type a query or drop an image.")
                st.stop()
            q_image = decode_image(up.getvalue(), up.name)
        else:
            q_image = _image(query["path"], ds)
        st.image(q_image, caption="query image", width=128)
        results = index.search_image(encoder, q_image, target, k)
except MMExploreError as exc:
    widgets.show_error(exc)
    st.stop()

for row_start in range(0, len(results), COLUMNS):
    cols = st.columns(COLUMNS)
    for col, (i, r) in zip(cols, enumerate(results[row_start:row_start + COLUMNS], start=row_start), strict=False):
        with col:
            if r["kind"] == "image":
                try:
                    col.image(_image(r["path"], ds), caption=f"{r['score']:.3f} · {widgets.no_links(Path(r['path']).name)}",
                              width="stretch")
                except MMExploreError:
                    col.warning(f"{widgets.no_links(Path(r['path']).name)}: cannot be shown")
                st.button("use as query", key=f"search_use_{i}", on_click=_use_image, args=(r["path"],))
            else:
                st.markdown(f"**{r['score']:.3f}** · {widgets.plain(r['caption'])}")
                st.button("use as query", key=f"search_use_{i}", on_click=_use_text, args=(r["caption"],))
            if r["kind"] == "image" and r["caption"]:
                st.caption(widgets.plain(r["caption"]))
widgets.explain("What am I looking at?", EXPLANATION)
