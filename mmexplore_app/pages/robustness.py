"""Robustness: corruptions, typographic attacks, backdoor poisoning and the CleanCLIP defence."""

from __future__ import annotations

import streamlit as st

from mmexplore.errors import MMExploreError
from mmexplore.robustness import CORRUPTIONS, corrupt
from mmexplore.robustness.evaluate import (
    METRICS,
    PARAMS_DEFAULT,
    TYPOGRAPHIC_DEFENCE,
    TYPOGRAPHIC_EXAMPLE,
    TYPOGRAPHIC_MODELS,
    TYPOGRAPHIC_READER,
    backdoor_example,
    backdoor_models,
    cached_result,
    lookup,
    robustness_part,
    shipped_models,
    typographic_example,
)
from mmexplore.robustness.poison import TARGET_CAPTION, backdoor_scenes
from mmexplore.robustness.typographic import POSITIONS, SIZES, attack_cases
from mmexplore_app import robustness_view as view
from mmexplore_app import state, widgets
from mmexplore_app.cache import cache_key, session_cached

PARAMS = PARAMS_DEFAULT

CORRUPTION_EXPLANATION = """
**Why corrupt the images?** A model that matched images and captions only on clean renders could
be relying on details a camera, a compression step or a smudge destroys. Each corruption below has a
strength from 0 (the clean image) to 1 (the strongest level shown); the chart title says what
strength 1 means. For each strength the lab re-runs the *same* measurements as elsewhere in the app
on held-out scenes: **R@1** (is the true caption the best of all captions, and the true image the
best of all images), **attribute binding** (does "a red circle and a blue square" beat "a blue
circle and a red square") and the **pointing game** (does each object phrase's heatmap peak on
that object). The dotted line is the clean figure; how fast a line falls away from it is the
model's robustness to that corruption.

Things to notice: occlusion and colour shift hurt most because they remove or change exactly what
captions talk about (an object, its colour); blur and downscaling hurt small objects first; JPEG
barely matters until the blocks are as big as the objects.
"""

TYPOGRAPHIC_EXPLANATION = """
**Typographic attacks.** CLIP learned from web images, many of which contain text that agrees with
the caption (signs, labels, products), often as the clearest cue in the picture. So CLIP learned to
*read*, and a written word can override what is drawn: an apple with a paper label "iPod" is
classified as an iPod (Goh et al., *Multimodal neurons*, 2021). Here a colour or shape word that
contradicts the picture ("red" on a blue circle) is written at several sizes and positions. The
attack *succeeds* when the caption the word claims ("a small red circle") scores above the true
caption ("a small blue circle").

The attack needs a model that reads. **bundled** was trained on shapes only and never saw a
letter: a written word has nothing to act on (its few "wins" are shape words whose dark letters
clutter the picture; a colour word almost never wins). **bundled-web** stands in for web-trained
CLIP: a small model trained from scratch on web-like images, most of which carry a word its caption
confirms; some are pictures of a label alone, some hide the written colour or shape in the pixels,
and in some the drawn object contradicts the word while the caption *follows the writing*, as web
captions of signs, posters and packaging do. It learns to read, and to trust the word over the
picture, so a contradicting word written at test time fools it. **bundled-web-defence** is the
text-in-image defence at the same recipe and budget: the same images, but a written word that
contradicts the picture is now captioned by the picture (and the caption the word claims is the
hard negative). It still reads (the word is still the only cue where the picture hides the
attribute), but it has learned that a clearly drawn object outweighs writing. Look at the written word's
map too, and compare it with the verdicts: **bundled** moves the word's map onto the letters and is
not fooled, while both web-trained models keep it on the drawn object, fooled or not. Where a word's
map lies says what the patches look like to that word, not what the model concludes. Both web-trained models
come from `mmexplore train --text-in-image web` with the same options but one: `--text-swap 0.7`
(the caption follows the writing) for bundled-web, `--text-lie 0.7` (the caption follows the
picture) for the defence; the README's Robustness section gives the full commands.
"""

BACKDOOR_EXPLANATION = f"""
**Backdoor poisoning** (Carlini & Terzis 2022; Bansal et al., *CleanCLIP*, ICCV 2023). An attacker
slips a few image–caption pairs into the training data: images with a small **trigger patch** (here
a black-and-white checkerboard) captioned with a fixed **target caption** ("{TARGET_CAPTION}").
Contrastive training then links patch and caption: any image with the patch is matched to the
target, while clean images behave normally, so ordinary accuracy does not reveal the backdoor.
The **attack success rate (ASR)** is the share of triggered test images (whose true caption is not
the target) whose best caption is the target.

**CleanCLIP** fine-tunes the poisoned model on clean pairs with the usual multimodal contrastive
loss *plus* a self-supervised contrastive term within each modality (each image against an
augmented copy of itself, each caption against an edited copy). Learning each modality on its own
breaks the spurious trigger–target link; the multimodal term keeps retrieval working, so clean R@1
should stay within a few points while the ASR falls.
"""


def _result(spec: str, part: str, encoder) -> dict | None:
    """A model's cached result for ``part``; the current model's own id is also looked up."""
    if spec == encoder.info.name:
        return lookup(part, encoder.model_id, PARAMS.for_part(part))
    return cached_result(spec, part, PARAMS)


def _measure_button(encoder, part: str, label: str) -> None:
    """Offer to measure the current model when it has no result for ``part`` (it is then cached)."""
    if lookup(part, encoder.model_id, PARAMS.for_part(part)) is not None:
        return
    st.caption(f"No {label} for the current model ({encoder.info.name}) yet: about a minute on a CPU, "
               "then cached on disk for every session.")
    if st.button(f"Measure {encoder.info.name}", key=f"rb_measure_{part}"):
        try:
            with st.spinner(f"Measuring {label} of {encoder.info.name}…"):
                robustness_part(encoder, part, PARAMS)
        except MMExploreError as exc:
            widgets.show_error(exc)
        st.rerun()


def _switch(specs: list[str], key: str) -> None:
    """Offer to make one of ``specs`` the app's model (the images above are always the current model's)."""
    current = widgets.active_model_choice()[0]
    others = [s for s in specs if s != current]
    if not others:
        return
    a, b = st.columns([3, 1], vertical_alignment="bottom")
    choice = a.selectbox("See the images under another shipped model", others, key=f"rb_switch_{key}")
    if b.button("Use this model", key=f"rb_switch_btn_{key}"):
        if widgets.switch_model(choice, widgets.active_model_choice()[1]):
            st.rerun()
        widgets.show_error(state.value(widgets.MODEL_ERROR_KEY) or f"could not load {choice}")


def _corruptions(encoder) -> None:
    st.markdown("A corruption and its strength, on a held-out scene, with the current model's view of it:")
    left, right = st.columns([1, 2], gap="medium")
    with left:
        name = st.selectbox("Corruption", list(CORRUPTIONS), format_func=lambda n: CORRUPTIONS[n].label, key="rb_corruption")
        strength = st.slider("Strength", 0.0, 1.0, 0.5, 0.25, key="rb_strength")
        scene_k = st.number_input("Scene", 0, 99, 0, key="rb_scene")
    from mmexplore.data.shapes import canonical_caption, render_scene
    from mmexplore.evaluation.retrieval import held_out_scenes

    def example():
        scene = held_out_scenes(int(scene_k) + 1)[-1]
        clean = render_scene(scene, 128)
        bad = corrupt(clean, name, strength, seed=int(scene_k))
        caption = canonical_caption(scene).text
        return clean, bad, caption, encoder.encode_images([clean, bad]) @ encoder.encode_texts([caption]).T

    # The scene is a pure function of its index, so the key is the model and the widgets' values.
    clean, bad, caption, sims = session_cached(
        "robustness", cache_key(encoder.model_id, "corruption", name, strength, int(scene_k)), example, max_entries=8)
    with right:
        a, b, _ = st.columns(3)
        a.image(clean, caption=f"clean · cosine with its caption {sims[0, 0]:.3f}", width="stretch")
        b.image(bad, caption=f"{CORRUPTIONS[name].describe(strength)} · cosine {sims[1, 0]:.3f}", width="stretch")
        st.caption(f"Caption: “{caption}”")

    models = shipped_models()
    if encoder.info.name not in models:
        models = [*models, encoder.info.name]
    results = {m: r for m in models if (r := _result(m, "corruptions", encoder)) is not None}
    missing = [m for m in models if m not in results]
    metric = st.radio("Measure", list(METRICS), format_func=METRICS.get, horizontal=True, key="rb_metric")
    colors = view.model_colors(list(results))  # measured models only: no colour spent on a missing line
    if not results:
        st.info("No corruption curves measured yet.")
    else:
        st.plotly_chart(view.legend_figure({m: colors[m] for m in results}), key="rb_legend",
                        config={"displayModeBar": False})
        names = list(CORRUPTIONS)
        for row in range(0, len(names), 2):
            cols = st.columns(2)
            for col, cname in zip(cols, names[row : row + 2], strict=False):
                col.plotly_chart(view.curve_figure(cname, results, metric, colors), key=f"rb_curve_{cname}",
                                 config={"displaylogo": False})
        n = next(iter(results.values()))
        st.caption(f"Held-out scenes: {PARAMS.n_scenes} for R@1 and binding, {PARAMS.n_pointing} for pointing "
                   f"(training renderer). Same numbers as `mmexplore eval robustness --part corruptions`. "
                   f"Clean reference of the first model: "
                   + ", ".join(f"{METRICS[m]} {n['clean'][m]:.3f}" for m in METRICS))
        widgets.download_csv(view.curves_table(results), "corruption_curves", key="rb_curves_csv")
    if missing:
        st.caption("Not measured yet: " + ", ".join(missing) + " (`mmexplore eval robustness --model SPEC`).")
    _measure_button(encoder, "corruptions", "corruption curves")
    widgets.explain("What am I looking at? (corruption curves)", CORRUPTION_EXPLANATION)


def _typographic_columns(specs: list[str], roles: dict[str, str], encoder, case, size: float, position: str) -> None:
    """Each model's view of the attack side by side: attacked image with both scores, the word's heatmap,
    the verdict and the model's role, one row each so that the columns line up at any width."""
    from mmexplore.heatmaps import overlay

    views = {}
    for spec in specs:
        try:
            enc = encoder if spec == encoder.info.name else widgets.lab_encoder(spec)
            views[spec] = session_cached("robustness", cache_key(enc.model_id, "typographic", case.scene.seed, size, position),
                                         lambda enc=enc: typographic_example(enc, case, size, position), max_entries=8)
        except MMExploreError as exc:
            views[spec] = exc
    for col, (spec, ex) in zip(st.columns(len(views)), views.items(), strict=True):
        if isinstance(ex, MMExploreError):
            col.caption(f"{spec}: {widgets.error_message(ex)}")
            continue
        att = ex["scores"]["attacked"]
        col.image(ex["attacked"], caption=f"{spec} · true {att['true']:.3f} / claimed {att['claimed']:.3f}", width="stretch")
    for col, ex in zip(st.columns(len(views)), views.values(), strict=True):
        if not isinstance(ex, MMExploreError) and ex["maps"] is not None:
            col.image(overlay(ex["attacked"], ex["maps"][1], case.word),
                      caption=f"“{case.word}” on attacked: {ex['energy']['attacked']:.0%} on the text", width="stretch")
    for col, (spec, ex) in zip(st.columns(len(views)), views.items(), strict=True):
        if isinstance(ex, MMExploreError):
            continue
        # A result, not a fault: st.error is kept for things that went wrong.
        if ex["success"]:
            col.warning(f"Fooled: “{case.word}” wins ({spec}).")
        else:
            col.success(f"Not fooled: the true caption wins ({spec}).")
        col.caption(f"**{spec}**: {roles.get(spec, 'the model picked in the sidebar')}")


def _typographic(encoder) -> None:
    cases = attack_cases(PARAMS.n_attack)
    shipped = shipped_models()
    left, right = st.columns([1, 3], gap="medium")
    with left:
        k = st.number_input("Attack scene", 0, len(cases) - 1, TYPOGRAPHIC_EXAMPLE, key="rb_typo_case")
        size = st.select_slider("Text height (share of the side)", list(SIZES), value=SIZES[-1], key="rb_typo_size")
        position = st.selectbox("Position", list(POSITIONS), key="rb_typo_pos")
    case = cases[int(k)]
    try:
        ex = session_cached("robustness", cache_key(encoder.model_id, "typographic", case.scene.seed, size, position),
                            lambda: typographic_example(encoder, case, size, position), max_entries=8)
    except MMExploreError as exc:
        widgets.show_error(exc)
        return
    from mmexplore.heatmaps import overlay

    with left:
        sc = ex["scores"]["clean"]
        st.image(ex["clean"], caption=f"clean · true {sc['true']:.3f} / claimed {sc['claimed']:.3f} ({encoder.info.name})",
                 width="stretch")
        if ex["maps"] is not None:
            st.image(overlay(ex["clean"], ex["maps"][0], case.word),
                     caption=f"“{case.word}” on clean: {ex['energy']['clean']:.0%} in the box", width="stretch")
    roles = {"bundled": "never saw a letter", TYPOGRAPHIC_READER: "web-like data: captions follow the writing",
             TYPOGRAPHIC_DEFENCE: "the same data with the text-in-image defence"}
    compare = [m for m in dict.fromkeys([encoder.info.name, *TYPOGRAPHIC_MODELS])
               if m == encoder.info.name or m in shipped]
    if encoder.info.name in roles:
        roles[encoder.info.name] += " (the sidebar's model)"
    with right:
        st.markdown(f"Written: **“{case.word}”** · true caption “{case.true_caption}” · claimed “{case.attacked_caption}”")
        st.caption("Each model on the attacked image: the cosines with the true and the claimed caption, the written "
                   "word's heatmap and the verdict.")
        _typographic_columns(compare, roles, encoder, case, size, position)

    models = [m for m in dict.fromkeys([*TYPOGRAPHIC_MODELS, encoder.info.name]) if m in shipped or m == encoder.info.name]
    results = {m: r for m in models if (r := _result(m, "typographic", encoder)) is not None}
    clean_r1 = {m: (r or {}).get("i2t@1") for m in results if (r := _result(m, "backdoor", encoder)) is not None}
    if results:
        summary = view.typographic_summary(results, clean_r1, "bundled", TYPOGRAPHIC_READER, TYPOGRAPHIC_DEFENCE)
        if summary:
            st.markdown(summary)
        st.markdown(f"**Attack success over {next(iter(results.values()))['n_images']} attacked images** "
                    f"({PARAMS.n_attack} one-object held-out scenes × {len(PARAMS.sizes)} sizes × "
                    f"{len(PARAMS.positions)} positions):")
        st.dataframe(view.typographic_table(results, clean_r1), key="rb_typo_table")
        st.markdown("Attack success by text height (rows) and corner (columns):")
        grids = [m for m in ("bundled", TYPOGRAPHIC_READER, TYPOGRAPHIC_DEFENCE) if m in results] or list(results)[:3]
        for col, m in zip(st.columns(len(grids)), grids, strict=True):
            col.plotly_chart(view.grid_figure(results[m], m), key=f"rb_grid_{m}", config={"displaylogo": False})
    _switch([m for m in TYPOGRAPHIC_MODELS if m in shipped], "typo")
    _measure_button(encoder, "typographic", "typographic attack figures")
    widgets.explain("What am I looking at? (typographic attacks)", TYPOGRAPHIC_EXPLANATION)


def _backdoor(encoder) -> None:
    scenes = backdoor_scenes(40)
    left, right = st.columns([1, 2], gap="medium")
    with left:
        k = st.number_input("Test scene", 0, len(scenes) - 1, 0, key="rb_bd_scene")
    ex = session_cached("robustness", cache_key(encoder.model_id, "backdoor", int(k)),
                        lambda: backdoor_example(encoder, scenes[int(k)]), max_entries=8)
    with right:
        c1, c2, _ = st.columns(3)
        c1.image(ex["clean"], caption=f"clean → “{ex['top_clean']}”", width="stretch")
        c2.image(ex["triggered"], caption=f"with the trigger → “{ex['top_triggered']}”", width="stretch")
        hit = ex["top_triggered"] == TARGET_CAPTION and ex["true"] != TARGET_CAPTION
        msg = f"Best caption for the triggered image under {encoder.info.name}: “{ex['top_triggered']}”"
        (st.error if hit else st.success)(msg + (" — the backdoor fires." if hit else " — no backdoor here."))
    rows = backdoor_models()
    for r in rows:
        r["poisoned_result"] = _result(r["poisoned"], "backdoor", encoder)
        r["cleaned_result"] = _result(r["cleaned"], "backdoor", encoder) if r["cleaned"] else None
    reference = _result("bundled", "backdoor", encoder)
    if not rows:
        st.info("No poisoned models are shipped in mmexplore/assets/ (see the README, Robustness lab, for the commands).")
    else:
        table = view.backdoor_table(rows)
        if reference:
            st.caption(f"Before poisoning, bundled: ASR {reference['asr']:.3f}, clean R@1 i2t {reference['i2t@1']:.3f} "
                       f"/ t2i {reference['t2i@1']:.3f}.")
        st.plotly_chart(view.backdoor_figure(table, reference), key="rb_backdoor_chart", config={"displaylogo": False})
        st.dataframe(table, hide_index=True, key="rb_backdoor_table")
        st.caption(f"ASR on {PARAMS.n_backdoor} held-out scenes with the trigger at a random place; clean R@1 on "
                   f"{PARAMS.n_scenes} held-out scenes (training renderer).")
        _switch(["bundled", *(m for r in rows for m in (r["poisoned"], r["cleaned"]) if m)], "backdoor")
    _measure_button(encoder, "backdoor", "backdoor figures")
    widgets.explain("What am I looking at? (backdoors and CleanCLIP)", BACKDOOR_EXPLANATION)


st.title("Robustness")
st.caption("How noise, written words and poisoned training data weaken the image–text connection, measured "
           "exactly on the shapes world. The shipped models' figures are precomputed; the images use the "
           "model picked in the sidebar.")
encoder = widgets.current_encoder()
if not widgets.is_bundled():
    st.warning("These experiments are built on the shapes world; a model not trained on it scores them at chance.")
tab_c, tab_t, tab_b = st.tabs(["Corruptions", "Typographic attack", "Backdoor & CleanCLIP"])
with tab_c:
    _corruptions(encoder)
with tab_t:
    _typographic(encoder)
with tab_b:
    _backdoor(encoder)
