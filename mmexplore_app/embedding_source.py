"""Where the joint-space and CCA pages get their embeddings: the shared data set, an uploaded
``.npz``/``.parquet`` of precomputed embeddings, or a captions file / folder on this computer.

Both pages call :func:`choose_embeddings` with their own key prefix; the loaded set is cached for
the session (:mod:`mmexplore_app.cache`) so that moving a slider never re-reads or re-encodes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.pathguard import reading_roots, user_path
from mmexplore.projection.embeddings_io import EmbeddingSet, encode_pairs_file, parse_embeddings
from mmexplore_app import widgets
from mmexplore_app.cache import is_cached, session_cached

SOURCES = ("Shared data set", "Embeddings file (.npz / .parquet)", "Captions file or folder on this computer",
           "Embeddings folder (mmexplore embed)")
THUMBNAIL_LIMIT = 40


@dataclass
class LoadedEmbeddings:
    """An :class:`EmbeddingSet` plus what the pages need to draw it."""

    data: EmbeddingSet
    key: str
    thumbnails: list[str] | None = None


def _shared(prefix: str) -> LoadedEmbeddings:
    ds = widgets.require_data(min_images=1, min_texts=1)
    widgets.world_warning(ds)
    widgets.captions_notes(ds)
    img, txt = widgets.dataset_embeddings(ds)
    ii, tt = np.nonzero(ds.pairs)
    if len(ii) == 0:
        # Only the pairs the user marked count: pairing image k with caption k is offered, never assumed.
        st.info("No true pairs are marked in the data set: there are no pair lines, pair cosines or CCA. "
                "Tick pairs in the table on Home, or pair image k with caption k here.", icon=":material/link_off:")
        if st.button("Pair in order (image k ↔ caption k)", key=f"{prefix}_pair_in_order"):
            from mmexplore_app import data_input

            widgets.set_dataset(data_input.pair_in_order(ds))
            st.rerun()
    data = EmbeddingSet(img, txt, np.stack([ii, tt], axis=1), list(ds.image_names), list(ds.texts), ds.source)
    thumbs = widgets.dataset_thumbnail_uris(ds, size=64) if ds.n_images <= THUMBNAIL_LIMIT else None
    return LoadedEmbeddings(data, f"shared:{widgets.current_encoder().model_id}:{ds.content_key()}", thumbs)


def _uploaded(prefix: str) -> LoadedEmbeddings:
    f = st.file_uploader(
        "Embeddings: .npz with arrays `image` and `text` (N×d, paired by row; optional `captions`, "
        "`image_names`, `pairs`) or .parquet with `image_embedding`, `text_embedding` and `text` columns",
        type=["npz", "parquet"],
        key=f"{prefix}_upload",
    )
    if f is None:
        st.info("Upload an embeddings file to continue.")
        st.stop()
    data = f.getvalue()
    key = f"upload:{f.name}:{hashlib.sha1(data).hexdigest()}"

    def parse() -> EmbeddingSet:
        try:
            return parse_embeddings(data, f.name)
        except Exception as exc:
            widgets.show_error(exc)
            st.stop()

    return LoadedEmbeddings(session_cached(f"{prefix}_embeddings", key, parse, max_entries=1), key)


def _folder(prefix: str) -> LoadedEmbeddings:
    label = "Captions file (CSV/TSV/JSONL with image,text columns) or a folder holding one"
    path = widgets.server_path_input(label, key=widgets.keep(f"{prefix}_folder", ""),
                                     suffixes=(".csv", ".tsv", ".jsonl", ".ndjson"))
    if not path:
        st.info("Give the path and press Encode: every image is embedded once with the current model.")
        st.stop()
    try:
        resolved = user_path(path)  # shared mode: inside the data roots, or refused
    except MMExploreError as exc:
        widgets.show_error(exc)
        st.stop()
    key = f"folder:{widgets.current_encoder().model_id}:{resolved}"
    if not is_cached(f"{prefix}_embeddings", key) and not st.button("Encode", key=f"{prefix}_encode"):
        st.info("Press Encode: every image is embedded once with the current model.")
        st.stop()

    def encode() -> EmbeddingSet:
        try:
            return encode_pairs_file(widgets.current_encoder(), resolved, roots=reading_roots(),
                                     progress=widgets.progress_callback("Encoding"))
        except Exception as exc:
            widgets.show_error(exc)
            st.stop()

    return LoadedEmbeddings(session_cached(f"{prefix}_embeddings", key, encode, max_entries=1), key)


def _source_label(source: str) -> str:
    if source == SOURCES[2] and widgets.get_settings().shared:
        return "Captions file or folder in the server's data folders"
    return source


def _embeddings_folder(prefix: str) -> LoadedEmbeddings:
    from mmexplore.embeddings.shards import read_manifest
    from mmexplore.pathguard import user_folder
    from mmexplore.projection.embeddings_io import read_embeddings_folder

    path = st.text_input("Embeddings folder written by `mmexplore embed SOURCE --out DIR`",
                         key=widgets.keep(f"{prefix}_embdir", "")).strip()
    if not path:
        st.info("Give the folder: its Parquet shards are read as they are (nothing is encoded again).")
        st.stop()
    try:
        folder = user_folder(path)  # shared mode: inside the data roots (its files too), or refused
        manifest = read_manifest(folder)
        key = f"embdir:{folder}:{manifest.get('updated')}:{manifest.get('rows')}"

        def read() -> EmbeddingSet:
            with st.spinner(f"Reading {manifest.get('rows', 0):,} rows of embeddings…"):
                return read_embeddings_folder(folder)

        data = session_cached(f"{prefix}_embeddings", key, read, max_entries=1)
    except Exception as exc:
        widgets.show_error(exc)
        st.stop()
    st.caption(f"model {widgets.no_links(str(manifest.get('model')))} · {manifest.get('images', 0):,} images · "
               f"{manifest.get('texts', 0):,} captions · {manifest.get('errors', 0)} unreadable")
    return LoadedEmbeddings(data, key)


def choose_embeddings(prefix: str) -> LoadedEmbeddings:
    """A source picker and the chosen embeddings (stops the page with a note until there are some).

    A shared server without data folders offers no server-side source at all.
    """
    sources = SOURCES if widgets.server_paths_allowed() else SOURCES[:2]
    source = st.radio("Data", sources, horizontal=True, key=widgets.keep(f"{prefix}_source", sources[0], valid=sources),
                      format_func=_source_label)
    if source == SOURCES[0]:
        return _shared(prefix)
    if source == SOURCES[1]:
        return _uploaded(prefix)
    if source == SOURCES[3]:
        return _embeddings_folder(prefix)
    return _folder(prefix)
