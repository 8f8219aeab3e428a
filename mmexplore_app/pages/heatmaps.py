"""Heatmaps page: where in the image does each word of a caption point? (docs/design.md §5)

Thin page: picks an image and a caption, calls :func:`mmexplore.heatmaps.compute_heatmaps`, draws the
overlays (:func:`mmexplore.heatmaps.overlay`) and the word × patch matrix.
Session-state keys: ``heat_*``.
"""

from __future__ import annotations

import io

import numpy as np
import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.heatmaps import (
    COLORMAPS,
    WORD_FEATURES,
    HeatmapResult,
    colorbar_image,
    get_method,
    list_methods,
    overlay,
    overlay_grid,
)
from mmexplore_app import widgets
from mmexplore_app.cache import cache_key, session_cached
from mmexplore_app.state import Dataset
from mmexplore_app.text_attribution_view import word_attribution_view

OWN = "✎ type a caption…"
NCOLS = 5

EXPLANATION = """
**Attention** (the course notes' α_ij = softmax_i(I_iᵀ W_a T_j)). Every image patch i gets a feature
I_i in the joint space (MaskCLIP: the value path of the last attention block, then the same `ln_post`
and projection as the class token; for an attention-pooled tower — SigLIP's one-query head, a ResNet
CLIP's QKV pool — the pool's own value path applied to each patch alone).
Every word j gets a text feature T_j (the word embedded alone,
or its token state inside the caption). α_ij is a softmax over the patches of their cosine with the word,
scaled by the model's logit scale (1/τ): each map sums to 1.

**Gradient relevancy** (Chefer et al., 2021). For the score ⟨image embedding, T_j⟩, every image
attention map A from the start layer on is weighted by its gradient, Ā = mean over heads of
max(0, ∇A ⊙ A), and accumulated: R ← R + Ā·R, from R = I. The map is the class token's row of R: which
patches the image embedding drew on to produce that score.

**Grad-CAM** (Selvaraju et al., 2017; ResNet CLIPs). The last stage's channels A_c are weighted by the
mean gradient of the score ⟨image embedding, T_j⟩, map = max(0, Σ_c w_c A_c), on the last stage's coarse
grid (image size / 32).

Which methods are offered depends on the loaded model's image tower (read from the model: class token,
attention pool, ResNet); the others are listed with the reason.

**Which words drive the score.** The caption's words shaded by their share of the pair's score
(s·cos, plus b for a sigmoid model): *gradient × input* (⟨token embedding, ∂score/∂embedding⟩, a
first-order estimate) or *leave one word out* (how much the score drops without the word: exact).

**Score contributions** (attention method, *Word × patch matrix*). The pair's score y = s·cos (+ b) split
exactly into word × patch cells plus a stated remainder: the image embedding is a sum of each patch's
direct effect through the attention (every block's attention at the class token, or the attention
pool's single query) plus a residual part; the caption embedding likewise per word. Cell (j, k) is
s·⟨word j's part, patch k's part⟩ / (‖I‖‖T‖); the remainder (MLPs, the query's own path, special
tokens, the bias b) is printed, and cells + remainder equal the score.

**Phrase.** A phrase ("small red circle") is embedded on its own, as a caption: that pooled vector is
what the model was trained to align with images, and it binds colour, size and shape together.

**Known failure modes.**
- Function words ("a", "of", ",") have no place in the image; their maps are diffuse or copy a
  neighbour's. Read the content words.
- With *context* features a word's vector has read the words before it (the text tower is causal), so
  "circle" in "a red circle" also carries "red"; a small model only trains the end-of-text state into
  the joint space, so context maps of different words often look alike. *alone* (default) maps the bare word.
- Relevancy explains the whole image embedding: for words the model ignores (it is bag-of-words about
  relations such as "left of") it shows the salient object rather than the word.
- Attention maps are only as local as the patch features. The bundled model was trained with a dense
  phrase–patch term so that they are; pick *Bundled without the dense term* in the sidebar to see the
  same recipe without it: the maps light up the background.
- The grid is coarse (8×8 patches for the bundled model): the peak is a patch centre, so a small object
  lying between patch centres cannot be hit exactly, and smoothing spreads the peak. Ties between
  identical objects ("two red circles") are arbitrary.
- The bundled model knows only the shapes world; on photos its maps mean little. The maps show what a
  model uses, not whether it is right.
"""


def _caption_choices(ds: Dataset, i: int) -> list[str]:
    paired = [t for j, t in enumerate(ds.texts) if ds.pairs.size and ds.pairs[i, j]]
    rest = [t for t in ds.texts if t not in paired]
    return [*paired, *rest, OWN]


def _default_phrase(ds: Dataset, i: int, text: str) -> str:
    """The scene's first ground-truth phrase found in the caption (shapes samples), else ""."""
    scene = ds.scenes[i] if i < len(ds.scenes) else None
    if scene is None:
        return ""
    for obj in scene.objects:
        if obj.phrase in text.lower():
            return obj.phrase
    return ""


def _compute(encoder, image, text: str, phrase: str, method: str, word_features: str, start_layer: int) -> HeatmapResult:
    from mmexplore.heatmaps import compute_heatmaps
    from mmexplore.models.cache import image_digest

    key = cache_key(encoder.model_id, image_digest(image), text, phrase, method, word_features, start_layer)
    return session_cached("heatmaps", key, lambda: compute_heatmaps(
        encoder, [image], [text], phrases=[[phrase] if phrase else []], method=method,
        word_features=word_features, start_layer=start_layer)[0], max_entries=16)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _matrix_figure(mat: np.ndarray, words: list[str], grid: tuple[int, int], *, title: str, value: str,
                   diverging: bool = False):
    """A word × patch heatmap: rows are words, columns the patches row by row (r0c0 = top left)."""
    import plotly.graph_objects as go

    gh, gw = grid
    labels = [f"{k}: {w}" for k, w in enumerate(words)]
    cols = [f"r{r}c{c}" for r in range(gh) for c in range(gw)]
    # Weights: sequential from white, zmin 0 (a weight of 0 is blank, every larger weight darker; no
    # dark-to-bright scale whose low end reads as "something"). Score contributions: diverging around 0.
    scale = {"colorscale": "RdBu", "reversescale": True, "zmid": 0.0} if diverging else {"colorscale": "Blues", "zmin": 0}
    fig = go.Figure(go.Heatmap(z=mat, x=cols, y=labels, colorbar={"title": value}, **scale,
                               hovertemplate=f"word %{{y}}<br>patch %{{x}}<br>{value} %{{z:.4f}}<extra></extra>"))
    fig.update_layout(height=max(260, 26 * len(labels) + 140), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title=f"{title}; patches row by row from the top left",
                      yaxis={"autorange": "reversed"},
                      xaxis={"tickmode": "array", "tickvals": [f"r{r}c0" for r in range(gh)],
                             "ticktext": [f"row {r}" for r in range(gh)], "title": f"patch ({gh} rows × {gw} columns)"})
    return fig


def _decomposition(encoder, image, text: str):
    from mmexplore.heatmaps.decomposition import decompose_score
    from mmexplore.models.cache import image_digest

    return session_cached("decomposition", cache_key(encoder.model_id, image_digest(image), text),
                          lambda: decompose_score(encoder, image, text), max_entries=16)


def _decomposition_caption(d) -> str:
    from mmexplore.heatmaps.decomposition import REMAINDER_PARTS

    parts = "; ".join(f"{REMAINDER_PARTS[k]} {v:+.3f}" for k, v in d.remainder.items())
    return (f"Cells sum to **{d.total:.3f}**; remainder **R = {d.remainder_total:+.3f}** ({parts}). "
            f"Sum + R = {d.total + d.remainder_total:.4f} = the pair's score {d.score:.4f} "
            f"(s·cos{' + b' if d.remainder.get('bias') else ''}; rounding error {d.error:.1e}). "
            "Each cell is the word's share of the caption embedding dotted with the patch's share of the image "
            "embedding (attention direct effects, final LayerNorm at its actual scale), in logit units.")


st.title("Heatmaps")
st.caption("Which part of the image does each word of a caption point to, and which words drive the score? "
           "The methods that apply to the loaded model, side by side with the image.")
widgets.explain("What am I looking at? (methods and failure modes)", EXPLANATION)

ds = widgets.require_data(min_images=1, min_texts=0)
encoder = widgets.current_encoder()

data_key = ds.embedding_key()
left, right = st.columns([1, 2])
with left:
    i = st.selectbox("Image", range(ds.n_images), format_func=lambda k: ds.image_names[k],
                     key=widgets.keep("heat_image", 0, valid=range(ds.n_images)))
    choices = _caption_choices(ds, i)
    # A newly picked image starts from its own caption; a rerun or a return to the page keeps the choice.
    widgets.reset_when("heat_caption", (data_key, i), choices[0], unless=(OWN,))
    choice = st.selectbox("Caption", choices, key=widgets.keep("heat_caption", choices[0], valid=choices))
    text = choice
    if choice == OWN:
        text = st.text_input("Your caption", key=widgets.keep("heat_own", ""), placeholder="a red circle left of a blue square")
    default_phrase = _default_phrase(ds, i, text or "")
    widgets.reset_when("heat_phrase", (data_key, i, text), default_phrase)
    phrase = st.text_input(
        "Phrase to map (optional)",
        key=widgets.keep("heat_phrase", default_phrase),
        help="Embedded on its own; e.g. 'small red circle'. Its map is shown large below.",
    )
with right:
    c1, c2 = st.columns(2)
    # Only the registered methods that apply to this model; the others are named with the reason.
    usable = list_methods(encoder)
    unusable = {m: get_method(m).unsupported(encoder) for m in list_methods() if m not in usable}
    if not usable:
        st.error("No heatmap method applies to this model: " + "; ".join(f"{m}: {why}" for m, why in unusable.items()))
        st.stop()
    method = c1.radio("Method", usable, horizontal=True, key=widgets.keep("heat_method", usable[0], valid=usable),
                      format_func=lambda m: get_method(m).label)
    if unusable:
        c1.caption("Not for this model: " + "; ".join(f"{get_method(m).label} ({why})" for m, why in unusable.items()))
    cmap = c2.selectbox("Colour map", COLORMAPS, key=widgets.keep("heat_cmap", COLORMAPS[0], valid=COLORMAPS))
    opacity = c1.slider("Opacity", 0.0, 1.0, step=0.05, key=widgets.keep("heat_opacity", 0.55))
    smooth = c2.slider("Smoothing (patches)", 0.0, 2.0, step=0.25, key=widgets.keep("heat_smooth", 0.0))
    with st.expander("Method settings"):
        word_features = st.radio("Word features", WORD_FEATURES, horizontal=True,
                                 key=widgets.keep("heat_word_features", WORD_FEATURES[0], valid=WORD_FEATURES),
                                 help="context: the word's token state inside the caption; alone: the word embedded on its own")
        start_layer = 0
        if "relevancy" in usable:  # only class-token open_clip ViTs have blocks to start from
            n_layers = len(encoder.model.visual.transformer.resblocks)
            start_layer = st.slider("Relevancy: first layer", 0, n_layers - 1,
                                    key=widgets.keep("heat_start_layer", 0, valid=range(n_layers)))

if not (text or "").strip():
    st.info("Type a caption (or pick one above) to see its heatmaps.")
    st.stop()

try:
    res = _compute(encoder, ds.images[i], text.strip(), (phrase or "").strip(), method, word_features, start_layer)
except MMExploreError as exc:  # e.g. a model whose towers heatmaps do not support
    widgets.show_error(exc)
    st.stop()

if res.note:
    st.warning(res.note, icon="✂️")
widgets.readability_notes(widgets.read_text(text.strip()), what="caption")
phrase_read = widgets.read_text(res.phrases[0]) if res.phrases else None
if not res.words:
    st.info("The caption has no words the tokenizer keeps.")
    st.stop()

image = ds.images[i]
style = {"cmap": cmap, "opacity": opacity, "smooth": smooth}
size = (192, round(192 * image.size[1] / image.size[0]))
if res.phrases:
    a, b, c = st.columns([1, 1, 2])
    a.image(image.resize(size), caption="image")
    b.image(overlay(image, res, res.phrases[0], size=size, **style), caption=f'phrase: "{widgets.no_links(res.phrases[0])}"')
    x, y = res.peak(res.phrases[0])
    scene = ds.scenes[i] if i < len(ds.scenes) else None
    msg = f"Peak of the phrase map at pixel ({x:.0f}, {y:.0f}) of the {image.size[0]}×{image.size[1]} image."
    if phrase_read is not None and phrase_read["unreadable"]:
        # A map is drawn for any string; a peak for words the model cannot read locates nothing.
        msg = (f"The model cannot read the phrase ({phrase_read['unknown_share']:.0%} of its words unknown: "
               f"{', '.join(phrase_read['unknown_words'][:4])}), so its map and peak mean nothing.")
    elif scene is not None:
        from mmexplore.data.shapes import object_masks, objects_named
        from mmexplore.heatmaps.pointing import check_peak

        named = objects_named(scene, res.phrases[0])  # "triangle" names every triangle of the scene
        if named:
            check = check_peak(res, res.phrases[0], object_masks(scene, image.size[0])[named].any(axis=0))
            if check["inside"]:
                msg += " It lies **inside** the named object ✅"
            elif check["patch_overlap"] > 0:
                msg += (f" Its patch **overlaps** the named object ({check['patch_overlap']:.0%} of the patch), but the"
                        " patch centre falls just outside the shape"
                        + (": the object lies between patch centres, so no peak can land inside it ✅"
                           if not check["reachable"] else " ⚠️"))
            else:
                msg += " It lies **outside** the named object ❌"
    c.markdown(msg)

st.subheader("Which words drive the score")
word_attribution_view(encoder, image, text.strip(), key_prefix="heat")

st.subheader(f"Per word ({res.method})")
all_words = list(range(len(res.words)))
widgets.reset_when("heat_words", tuple(res.words), all_words)
show = st.multiselect("Words shown", all_words, format_func=lambda k: f"{k}: {res.words[k]}",
                      key=widgets.keep("heat_words", all_words, valid=all_words))
st.image(colorbar_image(cmap, 320, 12), caption="colour scale: each map from its lowest weight (left) to its highest "
         "(right), scaled on its own; exact weights in the word × patch matrix below", width=320)
cols = st.columns(NCOLS)
for n, k in enumerate(show):
    cols[n % NCOLS].image(overlay(image, res, k, size=(160, round(160 * image.size[1] / image.size[0])), **style),
                          caption=widgets.no_links(res.words[k]))

grid = overlay_grid(image, res, [*show, *res.phrases], **style)
st.download_button("Download overlays (PNG)", data=_png(grid), file_name=f"heatmaps_{res.method}.png", mime="image/png",
                   key="heat_dl_png", on_click="ignore")

with st.expander("Word × patch matrix", expanded=False):
    views = ["weights", "score"] if method == "attention" else ["weights"]
    view = st.radio("Matrix", views, horizontal=True, key=widgets.keep("heat_matrix_view", views[0], valid=views),
                    format_func=lambda v: {"weights": f"{res.method} weights (rows sum to 1)",
                                           "score": "score contributions (exact decomposition)"}[v])
    if view == "score":
        try:
            dec = _decomposition(encoder, image, text.strip())
        except MMExploreError as exc:
            widgets.show_error(exc)
        else:
            st.plotly_chart(_matrix_figure(dec.contributions, dec.words, dec.grid, title="word × patch share of the score",
                                           value="logit", diverging=True), key="heat_matrix_score")
            st.caption(_decomposition_caption(dec))
    else:
        mat = res.maps.reshape(len(res.words), -1)
        st.plotly_chart(_matrix_figure(mat, res.words, res.grid, title=f"word × patch ({res.method})", value="weight"),
                        key="heat_matrix")
        st.caption(f"Each row sums to 1. Max weight {float(np.max(mat)):.3f}; uniform would be {1 / mat.shape[1]:.3f}.")
