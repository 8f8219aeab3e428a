"""Relation page: how do an image and a text relate? (Otto et al. 2020, docs/design.md §7)

Thin page: picks a pair (from the data set, an upload or typed text) or a batch of pairs, calls
:func:`mmexplore.relation.relate`, and draws the label card, the class probabilities, the taxonomy
table with the row highlighted, the evidence and, for a batch, a table, counts and a CSV export.
Session-state keys: ``rel_*``.
"""

from __future__ import annotations

import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.settings import get_settings
from mmexplore_app import relation_view as view
from mmexplore_app import widgets
from mmexplore_app.cache import cache_key, session_cached_many

OWN = "✎ type a text…"

EXPLANATION = """
Otto et al. (2020) describe an image–text pair by three values:
**CMI** — do they share depicted concepts (0/1)? **SC** — do they agree (1), share no meaning (0) or
contradict (−1)? **STAT** — is one primary: the text (T, the image illustrates it), the image (I, the
text is its caption) or neither (0)? Eight combinations are classes (the table below).

**How it is estimated here.** The text is chunked into concept phrases ("a small blue square") and
relations ("left of"). The image is split into objects (connected shapes on the background); the model
reads each object by scoring a vocabulary of the 24 shapes-world phrases, with a softmax scale fitted on
generated scenes, giving a calibrated probability that each phrase is depicted. A phrase is
*contradicted* when a one-attribute change of it (colour, shape, size) fits an object better than the
phrase itself; relations are checked against the objects' positions, counts against the number found,
and the whole text is compared with its one-step perturbations against the whole image. Coverage both
ways (share of phrases about the image, share of objects the text names) and the text's length decide
STAT. Three logistic regressions, fitted on a generated, labelled training split
(`mmexplore relation calibrate`), turn these features into CMI, SC and STAT probabilities; the class
probabilities are their products over the eight valid combinations.

**Limits.** The bundled model knows only the shapes world; words outside it are ignored. Text with no
concept but a pointer ("this", "here") is read as Interdependent. On photographs no objects are found and
the whole image is read as one object, which says little.
"""


def _relate(encoder, images: list, texts: list[str], digests: list[str] | None = None) -> list[dict]:
    from mmexplore.models.cache import image_digest
    from mmexplore.relation import load_calibration, relate

    spec = widgets.active_model_choice()[0]
    if digests is None:
        digests = [image_digest(im) for im in images]
    keys = [cache_key(encoder.model_id, d, t) for d, t in zip(digests, texts, strict=True)]

    def label(todo: list[int]) -> list[dict]:
        res = relate(encoder, [images[k] for k in todo], [texts[k] for k in todo], calibration=load_calibration(spec))
        return [r.to_dict() for r in res]

    return session_cached_many("relation", keys, label, max_entries=512)


def _card(result: dict) -> None:
    comp = result["components"]
    c0, c1, c2, c3 = st.columns([2, 1, 1, 1])
    if result["cannot_tell"]:
        c0.metric("Relation", result["label"], f"classifier alone: {result['model_label']}", delta_color="off")
        st.warning("Cannot tell: " + "; ".join(result["cannot_tell"]) + ". The components below are the "
                   "classifier's, from evidence that does not describe this pair.", icon=":material/help:")
    else:
        c0.metric("Relation", result["label"], f"p = {result['probabilities'][result['label']]:.2f}", delta_color="off")
    c1.metric("CMI", result["cmi"], f"conf. {comp['cmi']['confidence']:.2f}", delta_color="off")
    # The component's meaning goes in the label: the value column is too narrow for "I (image primary)".
    c2.metric(f"SC · {view.SC_NAMES[result['sc']]}", result["sc"], f"conf. {comp['sc']['confidence']:.2f}", delta_color="off")
    c3.metric(f"STAT · {view.STAT_NAMES[result['stat']]}", result["stat"], f"conf. {comp['stat']['confidence']:.2f}",
              delta_color="off")
    st.markdown(f"**Why:** {widgets.no_links(result['explanation'])}")
    if result.get("calibration", {}).get("stale"):
        st.warning("The relation calibration was fitted for other model weights; run `mmexplore relation calibrate`.")
    if result["use_case"]:
        st.markdown(f"**Use case of this class:** {widgets.no_links(result['use_case'])}")
    widgets.readability_notes(result["readability"])


def _single(ds, encoder) -> None:
    left, right = st.columns([1, 2])
    with left:
        sources = ["from the data set", "upload"]
        source = st.radio("Image", sources, horizontal=True, key=widgets.keep("rel_image_source", sources[0], valid=sources))
        image = None
        image_key: object = None
        paired: list[str] = []
        if source == "upload":
            up = st.file_uploader("Image file", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="rel_upload")
            if up is not None:
                from mmexplore.data.images import decode_image

                try:
                    image = decode_image(up.getvalue(), up.name)
                except MMExploreError as exc:
                    widgets.show_error(exc)
        elif ds.n_images:
            i = st.selectbox("Pick an image", range(ds.n_images), format_func=lambda k: ds.image_names[k],
                             key=widgets.keep("rel_image", 0, valid=range(ds.n_images)))
            image, image_key = ds.images[i], i
            paired = [t for t, p in zip(ds.texts, ds.pairs[i], strict=True) if p] if ds.pairs.size else []
        else:
            st.info("The data set has no images: load a sample set in the sidebar or upload one.")
        if image is not None:
            st.image(image, width=192)
    with right:
        # The picked image's own captions first, so a new image starts from its true caption.
        choices = [*paired, *(t for t in ds.texts if t not in paired), OWN]
        # A newly picked image starts from its own caption; reruns and returns to the page keep the choice.
        widgets.reset_when("rel_text_choice", (ds.embedding_key(), source, image_key), choices[0], unless=(OWN,))
        choice = st.selectbox("Text", choices, key=widgets.keep("rel_text_choice", choices[0], valid=choices))
        text = choice
        if choice == OWN:
            text = st.text_area("Your text (a caption or a passage)", key=widgets.keep("rel_own", ""),
                                placeholder="a blue circle left of a red square")
    if image is None:
        st.stop()
    if not (text or "").strip():
        st.info("Type a text (or pick one) to label the pair.")
        st.stop()
    try:
        result = _relate(encoder, [image], [text.strip()])[0]
    except MMExploreError as exc:
        widgets.show_error(exc)
        st.stop()
    _card(result)
    a, b = st.columns([1, 1])
    with a:
        st.plotly_chart(view.probability_figure(result["probabilities"], result["model_label"]), key="rel_probs")
    with b:
        st.markdown("**The taxonomy** (Otto et al. 2020); this pair's row highlighted")
        st.dataframe(view.taxonomy_frame(None if result["cannot_tell"] else result["label"]), key="rel_table")
    st.subheader("Evidence")
    if result["evidence"]["contradictions"]:
        for c in result["evidence"]["contradictions"]:
            st.warning(f"{c['kind']}: {widgets.no_links(c['detail'])} (p={c['p']:.2f})")
    else:
        st.success("No contradiction found.")
    if result["evidence"]["phrases"]:
        st.markdown("**Concept phrases in the text**")
        st.dataframe(view.phrases_frame(result), hide_index=True, key="rel_phrases")
    elif result["evidence"]["deictic"]:
        st.info("The text names no concept but points at the image (deictic): read as Interdependent.")
    else:
        st.info("The text names no shapes-world concept.")
    st.markdown("**Objects found in the image**")
    st.dataframe(view.objects_frame(result), hide_index=True, key="rel_objects")


def _batch(ds, encoder) -> None:
    up = st.file_uploader("Pairs file (CSV/JSONL with image, text columns; images matched by file name to the loaded images)",
                          type=["csv", "tsv", "jsonl", "json"], key="rel_pairs_file")
    idx: list[tuple[int, str]] = []
    if up is not None:
        from mmexplore.data.pairs import parse_pairs
        from mmexplore_app.data_input import match_pair_rows

        try:
            table = parse_pairs(up.getvalue(), up.name)
        except MMExploreError as exc:
            widgets.show_error(exc)
            st.stop()
        found, missing_rows = match_pair_rows(ds, table.rows)  # the Home page's rule: first loaded image wins
        missing = sorted(set(missing_rows))
        if missing:
            st.warning(f"{widgets.no_links(up.name)}: {len(missing)} image(s) are not loaded and were skipped: "
                       f"{widgets.no_links(', '.join(missing[:5]))}")
        idx = [(i, r["text"]) for i, r in found]
    else:
        idx = [(i, ds.texts[j]) for i in range(ds.n_images) for j in range(ds.n_texts) if ds.pairs.size and ds.pairs[i, j]]
        st.caption("Labelling every marked pair of the data set (upload a pairs file to label other pairs).")
    if not idx:
        st.info("No pairs to label: mark pairs on the Home page or upload a pairs file.")
        st.stop()
    limit = get_settings().max_request_rows
    if len(idx) > limit:  # one request must not hold the server's memory or CPU for everyone
        widgets.show_error(f"{len(idx):,} pairs to label; this server labels at most {limit:,} per request "
                           "(MMEXPLORE_MAX_REQUEST_ROWS): split the pairs file")
        st.stop()
    try:
        digests = ds.image_digests()
        results = _relate(encoder, [ds.images[i] for i, _ in idx], [t for _, t in idx], [digests[i] for i, _ in idx])
    except MMExploreError as exc:
        widgets.show_error(exc)
        st.stop()
    df = view.results_frame(results, [ds.image_names[i] for i, _ in idx])
    st.dataframe(df, hide_index=True, key="rel_batch_table")
    widgets.download_csv(df, "relations.csv", key="rel_dl_csv")
    st.plotly_chart(view.counts_figure([r["label"] for r in results]), key="rel_counts")


st.title("Semantic relation")
st.caption("How do an image and a text relate? CMI, SC and STAT, and the eight classes of Otto et al. (2020).")
widgets.explain("What am I looking at? (the taxonomy and how it is estimated)", EXPLANATION)
ds = widgets.current_dataset()
encoder = widgets.current_encoder()
MODES = ["one pair", "many pairs"]
mode = st.radio("Label", MODES, horizontal=True, key=widgets.keep("rel_mode", MODES[0], valid=MODES))
if mode == "one pair":
    _single(ds, encoder)
else:
    _batch(widgets.require_data(min_images=1, min_texts=1), encoder)
