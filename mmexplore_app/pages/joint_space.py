"""Joint space: images and captions in one 2-D/3-D map (UMAP, PCA, t-SNE), with the modality gap."""

from __future__ import annotations

import base64

import streamlit as st

from mmexplore.projection import get_method, list_methods, project_joint
from mmexplore_app import state, widgets
from mmexplore_app.cache import cache_key, session_cached
from mmexplore_app.embedding_source import choose_embeddings
from mmexplore_app.joint_figures import gap_figure, joint_scatter, joint_scatter_all

MAX_FIT = 5000  # UMAP / t-SNE are fitted on at most this many points (pairs kept together)
ALL = 0  # "Points drawn at most" value meaning every point
MAX_POINTS = [1000, 2000, 5000, 10_000, 20_000, ALL]


@st.cache_resource
def _process_flags() -> dict[str, bool]:
    """Flags shared by every session of this server process (e.g. whether UMAP's JIT has run)."""
    return {}

EXPLANATION = r"""
Every image and every caption is a unit vector in the same $d$-dimensional space. The map squeezes
them to 2 or 3 dimensions: **blue circles** are images, **red diamonds** captions, and a grey line
joins each true (image, caption) pair.

- **The modality gap.** Contrastive models put images and texts in two separate cones: the mean
  image and the mean caption are far apart, $\Delta = \lVert \bar E_i - \bar E_t \rVert$, even for
  true pairs. That is why the map usually shows *two clouds* with long pair lines between them.
- **Centre each modality** subtracts each cloud's own mean, so $\Delta = 0$ and the clouds overlap;
  the cosine of pairs and of random combinations changes, but which caption is nearest to an image
  does not (retrieval is unchanged by a shift common to all captions).
- **Shift by λ** (Liang et al., 2022) moves images by $-\lambda g$ and captions by $+\lambda g$ along
  the gap vector $g$, then puts them back on the sphere: λ = 0.5 nearly closes the gap, negative λ widens it.
- **True vs random pairs**: the mean cosine of the true pairs against all other combinations.
  CLIP-like models have both far below 1; what matters is the difference.
- **Methods.** PCA is linear (axes are real directions; fast, exact; places new points).
  UMAP keeps neighbourhoods (can place new points). t-SNE keeps local clusters but its distances
  between clusters mean little, and it cannot place new points into an existing map.
"""



def _selected_items(event) -> dict[str, set[int]]:
    """``{"images": {...}, "texts": {...}}`` item indices of the last selection on the map (trace order:
    images first, texts second, as :func:`joint_scatter_all` draws them)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    out: dict[str, set[int]] = {"images": set(), "texts": set()}
    for p in points:
        cd = p.get("customdata")
        if cd is None or p.get("curve_number") not in (0, 1):
            continue
        out["images" if p["curve_number"] == 0 else "texts"].add(int(cd[0] if isinstance(cd, list | tuple) else cd))
    return out


def show_selection(event, fig, es, thumbnails, limit: int = 12) -> None:
    """Images and captions of the points selected on the map (click, box or lasso)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    picked = []
    for p in points:
        name = fig.data[p["curve_number"]].name if p.get("curve_number") is not None else ""
        cd = p.get("customdata")
        idx = int(cd[0] if isinstance(cd, list | tuple) else cd) if cd is not None else None
        if idx is not None and name in ("images", "texts"):
            picked.append((name, idx))
    if not picked:
        st.caption("Click, box- or lasso-select points to see their images and captions here.")
        return
    st.markdown(f"**Selected: {len(picked)} point(s)**" + (f" (first {limit} shown)" if len(picked) > limit else ""))
    cols = st.columns(4)
    for k, (name, idx) in enumerate(picked[:limit]):
        with cols[k % 4]:
            if name == "images":
                if thumbnails is not None:
                    st.image(base64.b64decode(thumbnails[idx].split(",", 1)[1]), width=96)
                st.caption(f"🖼️ {widgets.no_links(es.image_names[idx])}")
            else:
                st.caption(f"💬 {widgets.no_links(es.captions[idx])}")


@st.fragment
def _map(res, es, loaded, *, draw_all: bool, max_points: int, show_lines: bool, density: bool, dims: int) -> None:
    """The map, the selection's items and the export. A fragment: selecting points on the map reruns
    only this part, not the projection controls or the gap panel."""
    if draw_all:
        fig, drawn = joint_scatter_all(res, _selected_items(state.value("joint_scatter")))
    else:
        fig, drawn = joint_scatter(res, es.image_names, es.captions, max_points=max_points or 20_000,
                                   show_lines=show_lines, density=density, thumbnails=loaded.thumbnails)
    event = st.plotly_chart(fig, key="joint_scatter", config={"displaylogo": False}, on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    show_selection(event, fig, es, loaded.thumbnails)
    for note in res.notes:
        st.caption(f"ℹ️ {note}")
    if draw_all:
        st.caption(f"All {drawn['drawn']:,} points drawn (WebGL). Box- or lasso-select to join the selection's "
                   f"true pairs ({drawn['lines']:,} drawn) and list their images and captions.")
    if drawn["drawn"] < drawn["points"]:
        why = (f"{res.method.upper()} placed a {drawn['projected']:,}-point sample (pairs kept together; PCA places "
               "every point)" if drawn["projected"] < drawn["points"] else "a random sample of whole pairs is drawn "
               "so the chart stays responsive")
        if drawn["density"]:
            shade = ("; the shaded density underneath counts every point." if drawn["projected"] == drawn["points"]
                     else f"; the shaded density underneath counts the {drawn['projected']:,} placed points.")
        elif density:
            shade = "; no density layer: every placed point is drawn already."
        else:
            shade = "."
        st.info(f"Showing {drawn['drawn']:,} of {drawn['points']:,} points: {why}{shade} The gap figures use all points.",
                icon="🎯")
    widgets.download_figure(fig, f"joint_{res.method}_{dims}d", key="joint_dl", png=False)


st.title("Joint space")
widgets.explain("What am I looking at?", EXPLANATION)
loaded = choose_embeddings("joint")
es = loaded.data

c1, c2, c3, c4 = st.columns([1.2, 0.8, 1, 1.4])
methods = list_methods()
method = c1.selectbox("Method", methods, key=widgets.keep("joint_method", methods[0], valid=methods), format_func=str.upper,
                      help="\n\n".join(f"**{m}**: {get_method(m).description}" for m in list_methods()))
dims = c2.radio("Dimensions", [2, 3], horizontal=True, key=widgets.keep("joint_dims", 2, valid=(2, 3)))
center = c3.toggle("Centre each modality", key=widgets.keep("joint_center", False),
                   help="subtract each modality's mean: closes the gap")
shift = c4.slider("Shift along the gap λ", -0.5, 1.0, step=0.05, key=widgets.keep("joint_shift", 0.0),
                  help="images −λ·g, texts +λ·g, re-normalised; 0.5 closes the gap")
total = len(es.image) + len(es.text)
with st.expander("Display options", expanded=total > 20_000):
    d1, d2, d3 = st.columns(3)
    max_points = d1.select_slider(
        "Points drawn at most", MAX_POINTS, key=widgets.keep("joint_max_points", 5000, valid=MAX_POINTS),
        format_func=lambda v: "every point" if v == ALL else f"{v:,}",
        help="every point: one WebGL layer per modality (tested at 1M); PCA projects them all, UMAP and t-SNE "
             f"only a {MAX_FIT:,}-point sample")
    show_lines = d2.toggle("Lines between true pairs", key=widgets.keep("joint_lines", True))
    draw_all = max_points == ALL and dims == 2
    density = d3.toggle("Density of all points underneath", key=widgets.keep("joint_density", total > max_points > 0),
                        disabled=total <= max_points or dims == 3 or draw_all)

try:
    # umap-learn switches to pynndescent above 4,096 points, and numba compiles that code on its first
    # use in a server process (~35 s on 2 cores, measured in benchmarks/projection.py): say so up front.
    status, elapsed = widgets.warm_up_status()
    first_umap = method == "umap" and status != "done" and not _process_flags().get("umap_done")
    note = ""
    if first_umap and status == "running":
        note = (" UMAP's code has been compiling in the background since the server started "
                f"({elapsed:.0f} s so far; once per server, 15–40 s in all): this first map waits for it.")
    elif first_umap:
        note = " The first UMAP map of a server compiles UMAP's code once (15–40 s on 2 cores)."
    with st.spinner(f"Projecting {total:,} points with {method.upper()}…{note}"):
        res = session_cached("joint", cache_key(None, loaded.key, method, dims, center, shift), lambda: project_joint(
            es.image, es.text, es.pairs, method=method, dims=dims, center=center, shift=shift, max_fit=MAX_FIT))
except Exception as exc:  # one message, never a traceback
    widgets.show_error(exc)
    st.stop()
if first_umap:
    _process_flags()["umap_done"] = True

left, right = st.columns([3, 1.15], gap="medium")
with right:
    st.subheader("Modality gap")
    delta = res.gap.gap - res.gap_raw.gap
    st.metric("Δ = ‖mean(images) − mean(texts)‖", f"{res.gap.gap:.3f}",
              delta=f"{delta:+.3f} vs as given" if (center or shift) else None, delta_color="inverse")
    st.metric("mean cosine, true pairs", f"{res.gap.pair_cosine:.3f}" if res.gap.n_pairs else "— (none marked)")
    st.metric("mean cosine, random pairs", f"{res.gap.random_cosine:.3f}")
    st.plotly_chart(gap_figure(res), key="joint_gap_fig", config={"displaylogo": False})
    st.caption(f"{res.gap.n_images:,} images · {res.gap.n_texts:,} texts · {res.gap.n_pairs:,} true pairs · "
               f"source: {es.source}")
with left:
    _map(res, es, loaded, draw_all=draw_all, max_points=max_points, show_lines=show_lines, density=density, dims=dims)
