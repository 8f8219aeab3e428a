"""Train: watch a small CLIP learn its connections, live; replay runs; compare them."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from mmexplore.data.renderers import RENDERERS, renderer_names
from mmexplore.errors import MMExploreError
from mmexplore.training import runs as runs_lib
from mmexplore.training.augment import AUGMENTATIONS
from mmexplore.training.data import NEGATIVE_LABELS, NEGATIVE_WEIGHTS
from mmexplore.training.objectives import OBJECTIVES, REGULARIZERS
from mmexplore.training.presets import PRESETS, QUICK, preset_config
from mmexplore_app import state, widgets
from mmexplore_app.figures import image_data_uri, matrix_heatmap
from mmexplore_app.train_figures import (
    EVAL_LABELS,
    curves_figure,
    replay_figure,
)
from mmexplore_app.train_job import JOBS, Busy

CUSTOM = "Custom"
ARCHS = {"mmexplore-shapes-xs": "smallest (0.23 M parameters, 32 px input)",
         "mmexplore-shapes-s": "small (1.7 M parameters, 64 px input; the bundled model's size)"}

EXPLANATION = r"""
**What trains here.** A CLIP of its own: a vision transformer and a text transformer, each ending in a
vector of the joint space, trained from random weights on the shapes world (every batch freshly drawn).
Every 25 steps the run embeds 100 **held-out** scenes (never trained on) and measures what the app's
other pages show: retrieval R@1 both ways (chance: 1/100), **colour binding** (does the true caption beat
the one with two colours swapped?), **relation order** ("A left of B" against "B left of A"), the
**modality gap** ‖mean image − mean caption‖ and the **dimension correlation** (how redundant the
embedding's dimensions are).

**Objectives** (the formulas are in `mmexplore.training.objectives`):
- *CLIP*: symmetric InfoNCE, $L=\tfrac12[\mathrm{CE}(sXY^\top)+\mathrm{CE}(sYX^\top)]$ with $s=1/\tau$ learned.
- *NegCLIP*: each image also meets hard-negative captions (attribute, colour, relation-order or count
  swaps) in its softmax, and optionally its counterfactual twin (same objects, positions or colours swapped).
- *Multi-positive*: two true captions per image, each its own target; the other positive is masked out of
  its softmax rather than sharing the probability mass.
- *Sigmoid* (SigLIP): every image–caption pair is its own yes/no decision,
  $-\log\sigma(z_{ij}(s\,x_i\!\cdot\!y_j+b))$, with learned scale $s$ and bias $b$.
- *Decorrelation* (any objective): $\lambda\cdot$ mean squared off-diagonal correlation of the embedding dimensions.

**How long.** On two CPU cores a 2-minute run of the smallest model makes ~300–400 steps of 64 images and
reaches a held-out R@1 far above chance (README, *Training lab*, has the measured curves of each preset).
Relation order stays near chance at this budget: the shipped `bundled` model trained 140 minutes and still
sits at 0.48–0.54 there. Longer runs and the larger model add retrieval accuracy and colour binding; a
GPU (used automatically when present) runs the same steps many times faster.
"""


# ------------------------------------------------------------------------------------------ settings
FIELD_DEFAULTS = {"tr_negatives": 0, "tr_pair_fraction": 0.0, "tr_positives": 1, "tr_objective": "clip"}


def _apply_preset() -> None:
    """Copy the chosen preset's settings into the form's widgets (on change of the preset)."""
    label = state.value("tr_preset")
    preset = next((p for p in PRESETS.values() if p.label == label), None)
    if preset is None:
        return
    f = {**QUICK, **preset.fields}
    state.set_value("tr_objective", f["objective"])
    state.set_value("tr_negatives", int(f.get("negatives") or 0))
    state.set_value("tr_pair_fraction", float(f.get("pair_fraction", 0.0)))
    state.set_value("tr_positives", int(f.get("positives") or 1))


def _settings_form() -> None:
    labels = [p.label for p in PRESETS.values()] + [CUSTOM]
    if state.value("tr_preset") is None:
        state.set_value("tr_preset", PRESETS["negclip"].label)
        _apply_preset()
    preset_label = st.radio("Preset", labels, key="tr_preset", horizontal=True, on_change=_apply_preset)
    preset = next((p for p in PRESETS.values() if p.label == preset_label), None)
    st.caption(preset.description if preset else "set the objective and every setting yourself")
    c1, c2, c3 = st.columns(3)
    with c1:
        objective = st.selectbox("Objective", list(OBJECTIVES), key="tr_objective", disabled=preset is not None,
                                 format_func=lambda n: f"{n} — {OBJECTIVES[n].summary}")
        learned = st.checkbox("Learn τ", value=True, key="tr_tau_learned", help="off: fix the temperature")
        tau = None if learned else st.slider("τ (fixed)", 0.01, 1.0, 0.07, 0.01, key="tr_tau")
        reg_on = st.checkbox("Decorrelation regulariser", key="tr_reg", help=REGULARIZERS["decorrelation"].summary)
        reg_weight = st.number_input("weight λ", 0.0, 100.0, 1.0, 0.5, key="tr_reg_w", disabled=not reg_on)
    with c2:
        negatives = st.number_input("Hard negatives per image", 0, 3, key="tr_negatives",
                                    disabled=objective == "clip", help="text swaps added to each image's softmax")
        kinds = st.multiselect("Hard-negative kinds", list(NEGATIVE_LABELS), default=list(NEGATIVE_WEIGHTS),
                               format_func=NEGATIVE_LABELS.get, key="tr_kinds")
        pair_fraction = st.slider("Counterfactual image twins (share of the batch)", 0.0, 0.5, key="tr_pair_fraction",
                                  step=0.05, help="pairs of scenes with positions or colours swapped (needs negatives)")
        positives = st.number_input("True captions per image", 1, 4, key="tr_positives",
                                    help="multi-positive: each its own target")
        augment = st.selectbox("Image variation", list(AUGMENTATIONS), key="tr_augment",
                               format_func=lambda n: f"{n} — {AUGMENTATIONS[n].description}")
        trainable = renderer_names(trainable=True)
        drawn_by = st.multiselect("Drawn by", list(trainable), default=["train"], key="tr_renderers",
                                  help="each training image by one of these renderers, at random ("
                                  + "; ".join(f"{n}: {RENDERERS[n].label}" for n in trainable)
                                  + "); training on alt makes it no longer independent, and the hand-drawn "
                                  "sketches are never trained on")
    with c3:
        arch = st.selectbox("Model size", list(ARCHS), format_func=ARCHS.get, key="tr_arch")
        batch = st.select_slider("Batch size", [16, 32, 64, 128], value=64, key="tr_batch")
        budget = st.radio("Budget", ["minutes", "steps"], horizontal=True, key="tr_budget")
        if budget == "minutes":
            amount = st.number_input("Minutes", 0.1, 60.0, 2.0, 0.5, key="tr_minutes")
        else:
            amount = st.number_input("Steps", 1, 100_000, 300, 50, key="tr_steps")
        name = st.text_input("Run name", key="tr_name",
                             placeholder=f"{(preset.name if preset else objective)}-{datetime.now():%H%M%S}")
    state.set_value("tr_request", {
        "preset": preset.name if preset else None, "objective": objective, "tau": tau,
        "regularizer": "decorrelation" if reg_on else None, "reg_weight": float(reg_weight) if reg_on else None,
        "negatives": 0 if objective == "clip" else int(negatives), "negative_kinds": list(kinds),
        "pair_fraction": float(pair_fraction), "positives": int(positives), "arch": arch, "batch_size": int(batch),
        "augment": str(augment), "train_renderers": list(drawn_by),
        "minutes": float(amount) if budget == "minutes" else None,
        "steps": int(amount) if budget == "steps" else QUICK["steps"],
        "name": (name or "").strip() or f"{(preset.name if preset else objective)}-{datetime.now():%Y%m%d-%H%M%S}",
    })


def _start() -> None:
    req = dict(state.value("tr_request"))
    try:
        name = runs_lib.check_run_name(req.pop("name"))
        if (runs_lib.runs_dir() / name).exists():
            raise MMExploreError(f"a run named '{name}' already exists: pick another name")
        if not req["negative_kinds"]:
            raise MMExploreError("pick at least one hard-negative kind (or set hard negatives to 0)")
        if not req["train_renderers"]:
            raise MMExploreError("pick at least one renderer to draw the training images")
        preset = req.pop("preset") or "clip"
        # One core stays with the web server: torch threads fighting it for the last core run ~10× slower.
        threads = max(1, (os.cpu_count() or 2) - 1)
        cfg = preset_config(preset, out=str(runs_lib.runs_dir() / name), name=name, threads=threads,
                            device=widgets.active_model_choice()[1], **req)
        JOBS.start(cfg)
    except Busy as exc:
        st.warning(str(exc), icon=":material/hourglass:")
    except MMExploreError as exc:
        widgets.show_error(exc)


# ------------------------------------------------------------------------------------------ live view
@st.cache_data(show_spinner=False, max_entries=4)
def _probe_thumbnails(seeds: tuple[int, ...]) -> list[str]:
    from mmexplore.data.shapes import make_scene, render_scene

    return [image_data_uri(render_scene(make_scene(s), 96), 64) for s in seeds]


@st.cache_data(show_spinner=False, max_entries=4)
def _live_matrix_figure(out: str, step: int) -> object | None:
    """The probe matrix of one snapshot (cached: the panel redraws every second, the snapshot every 25 steps)."""
    from mmexplore_app.train_job import latest_probe

    probe = latest_probe(Path(out))
    if probe is None:
        return None
    k = probe["image"].shape[0]
    sims = probe["image"] @ probe["caption"].T
    fig = matrix_heatmap(sims, image_names=[f"image {i + 1}" for i in range(k)], texts=probe["captions"],
                         pairs=np.eye(k, dtype=bool), thumbnails=_probe_thumbnails(tuple(probe["scene_seeds"])),
                         show_values=False,
                         title=f"held-out probe, step {probe['step']}: cosine of each image with each caption")
    fig.update_layout(height=480)
    return fig


def _live_matrix(job) -> None:
    step = job.latest_snapshot_step()
    fig = _live_matrix_figure(str(job.out), step) if step is not None else None
    if fig is None:
        st.caption("The similarity matrix appears with the first held-out evaluation.")
        return
    st.plotly_chart(fig, key="tr_live_matrix", width="stretch")


def _live_panel() -> None:
    job = JOBS.current()
    if job is None:
        return
    running = job.running

    @st.fragment(run_every=1.0 if running else None)
    def panel() -> None:
        if running and not job.running:  # it ended while we watched: redraw the whole page once
            st.rerun(scope="app")
        status = job.status  # reads the new events
        steps, evals = list(job.steps), list(job.evals)
        cfg = job.config
        budget = f"{cfg.get('minutes'):g} min" if cfg.get("minutes") else f"{cfg.get('steps')} steps"
        head = st.columns([3, 1])
        head[0].markdown(f"**Run `{job.name}`** · {(job.start_event or {}).get('objective', '…')} · "
                         f"{cfg.get('arch', '…')} · batch {cfg.get('batch_size', '…')} · budget {budget} · **{status}**")
        if job.running and head[1].button("Stop", key="tr_stop", icon=":material/stop:", width="stretch"):
            job.stop()
            st.toast("Stopping after this step; the model will be saved.")
        st.progress(min(1.0, job.progress()), text=f"step {job.step}" if job.start_event else "starting the worker…")
        if job.error:
            widgets.show_error(f"the run failed: {job.error}")
        last = steps[-1] if steps else {}
        ev = evals[-1] if evals else {}
        m = st.columns(6)
        m[0].metric("loss", f"{last['loss']:.3f}" if last.get("loss") is not None else "–")
        m[1].metric("τ", f"{last['tau']:.3f}" if last.get("tau") else "–")
        m[2].metric("i→t R@1", f"{ev['i2t@1']:.2f}" if ev.get("i2t@1") is not None else "–",
                    help="held-out image→text recall@1; chance: 0.01 (100 held-out scenes)")
        m[3].metric("t→i R@1", f"{ev['t2i@1']:.2f}" if ev.get("t2i@1") is not None else "–",
                    help="held-out text→image recall@1")
        m[4].metric("gap", f"{ev['modality_gap']:.2f}" if ev.get("modality_gap") is not None else "–",
                    help="modality gap ‖mean image − mean caption embedding‖ (held-out)")
        m[5].metric("samples/s", f"{last.get('samples_per_s', 0):.0f}" if last else "–")
        if steps:
            left, right = st.columns(2)
            sdf = pd.DataFrame([{"step": e["step"], "loss": e["loss"], **{f"loss: {k}": v for k, v in e["terms"].items()}}
                                for e in steps]).set_index("step")
            left.caption("Loss and its terms (per step)")
            left.line_chart(sdf, height=220)
            odf = pd.DataFrame([{"step": e["step"], "τ": e["tau"], "lr × 100": e["lr"] * 100,
                                 "batch hard-negative acc": e.get("hard_neg_acc")} for e in steps]).set_index("step")
            right.caption("τ, learning rate, hard-negative accuracy in the batch")
            right.line_chart(odf, height=220)
        if evals:
            left, right = st.columns(2)
            edf = pd.DataFrame([{"step": e["step"], **{EVAL_LABELS[k]: e.get(k) for k in
                                 ("i2t@1", "t2i@1", "color_binding", "relation_order")}} for e in evals]).set_index("step")
            left.caption("Held-out figures (100 scenes never trained on)")
            left.line_chart(edf, height=240)
            gdf = pd.DataFrame([{"step": e["step"], "modality gap": e.get("modality_gap"),
                                 "dimension correlation": e.get("dim_corr")} for e in evals]).set_index("step")
            right.caption("Modality gap and dimension correlation (held-out)")
            right.line_chart(gdf, height=240)
            if steps:
                rate = steps[-1].get("samples_per_s")
                device = (job.start_event or {}).get("device", "")
                st.caption(f"{rate:.0f} samples/s on {device}" if rate else "")

    @st.fragment(run_every=5.0 if running else None)
    def matrix() -> None:
        # Its own, slower fragment: the figure changes every 25 steps and is the heaviest element, so the
        # 1 s refresh above never re-sends it (a chart re-sent every second is drawn faded most of the time).
        _live_matrix(job)

    panel()
    matrix()
    if not job.running and job.status != "failed":
        _after_run(job)


def _after_run(job) -> None:
    st.markdown(f"**Run `{job.name}` {job.status}** at step {job.step}. Its model is `run:{job.name}`.")
    c1, c2, c3 = st.columns(3)
    with c1:
        new = st.text_input("Name this run", value=job.name, key="tr_rename")
        if st.button("Rename", key="tr_rename_btn") and new.strip() != job.name:
            try:
                dst = runs_lib.rename_run(job.name, new)
                job.out = dst
                st.rerun()
            except MMExploreError as exc:
                widgets.show_error(exc)
    with c2:
        if st.button("Use this model in every page", key="tr_use", icon=":material/input:"):
            widgets.forget_model(f"run:{job.name}")
            if widgets.switch_model(f"run:{job.name}", widgets.active_model_choice()[1]):
                st.success(f"Now using run:{job.name} — open Similarity or Probes.")
            else:
                widgets.show_error(state.value(widgets.MODEL_ERROR_KEY) or "could not load the run")
    with c3:
        more = st.number_input("Train on for (minutes)", 0.1, 60.0, 1.0, 0.5, key="tr_more")
        if st.button("Resume", key="tr_resume", icon=":material/play_arrow:"):
            try:
                # The budget becomes minutes: what it trained so far plus the extra time.
                JOBS.resume(job.out, minutes=job.elapsed_s() / 60 + float(more), steps=QUICK["steps"])
                st.rerun()
            except Busy as exc:
                st.warning(str(exc))
            except MMExploreError as exc:
                widgets.show_error(exc)


# ------------------------------------------------------------------------------------------ tabs
def _train_tab() -> None:
    job = JOBS.current()
    if job is not None and job.running:
        st.info(f"Run `{job.name}` is training on this server: one run at a time. Watch it below, or stop it "
                "to start another.", icon=":material/model_training:")
    with st.expander("Settings", expanded=job is None or not job.running):
        _settings_form()
        if st.button("Start training", type="primary", key="tr_start", icon=":material/play_arrow:"):
            _start()
            st.rerun()
    _live_panel()


def _replay_sources() -> dict[str, str]:
    sources = {f"shipped: {r['run']}": r["path"] for r in runs_lib.list_runs(runs_lib.SHIPPED_REPLAYS)}
    for r in runs_lib.list_runs():
        if (Path(r["path"]) / "snapshots" / "probe.json").is_file():
            sources[f"run: {r['run']}"] = r["path"]
    return sources


@st.cache_data(show_spinner=False, max_entries=8)
def _replay_figures(path: str, mtime: float) -> tuple:  # mtime: a run that went on is read again
    from mmexplore.training.probeset import load_replay

    replay = load_replay(path)
    return replay_figure(replay), len(replay.steps)


def _replay_tab() -> None:
    sources = _replay_sources()
    if not sources:
        st.caption("No replays yet: a run saves snapshots every 25 steps.")
        return
    label = st.selectbox("Replay", list(sources), key="tr_replay")
    path = sources[label]
    probe = Path(path) / "snapshots" / "probe.json"
    try:
        fig, n = _replay_figures(path, probe.stat().st_mtime)
    except (OSError, ValueError) as exc:
        widgets.show_error(f"cannot read this replay: {exc}")
        return
    st.caption(f"{n} snapshots of the held-out probe (images ●, their captions ◆, hard negatives ✕). "
               "Press ▶ or drag the slider: the pairs draw together, the diagonal appears, the gap changes.")
    st.plotly_chart(fig, key="tr_replay_fig", width="stretch")


def _compare_tab() -> None:
    rows = runs_lib.list_runs() + runs_lib.list_runs(runs_lib.SHIPPED_REPLAYS)
    if not rows:
        st.caption("No runs yet.")
        return
    by_label = {(r["run"] if not r["path"].startswith(str(runs_lib.SHIPPED_REPLAYS)) else f"shipped:{r['run']}"): r
                for r in rows}
    chosen = st.multiselect("Runs", list(by_label), default=list(by_label)[:4], key="tr_compare")
    if not chosen:
        return
    table = [runs_lib.summarize(Path(by_label[c]["path"])) for c in chosen]
    df = pd.DataFrame([{h: r.get(k) for k, h in runs_lib.COMPARE_COLUMNS} for r in table])
    st.dataframe(df, hide_index=True, width="stretch")
    st.caption("The same table as `mmexplore runs compare " + " ".join(r["run"] for r in table) + "`.")
    curves = {c: runs_lib.curves(Path(by_label[c]["path"])) for c in chosen}
    x = st.radio("Along", ["elapsed_s", "step"], horizontal=True, key="tr_compare_x",
                 format_func={"elapsed_s": "wall-clock seconds", "step": "steps"}.get)
    cols = st.columns(3)
    for i, key in enumerate(("i2t@1", "t2i@1", "color_binding", "relation_order", "modality_gap", "loss")):
        kind = "step" if key == "loss" else "eval"
        fig = curves_figure({c: v[kind][::5] if kind == "step" else v[kind] for c, v in curves.items()}, key,
                            EVAL_LABELS.get(key, key), x=x)
        cols[i % 3].plotly_chart(fig, key=f"tr_cmp_{key}", width="stretch")

st.title("Train")
st.caption("Train a small CLIP on the shapes world and watch it learn: the curves, the temperature, the "
           "modality gap and the similarity matrix of held-out scenes, live.")
widgets.explain("What am I looking at?", EXPLANATION)
t_train, t_replay, t_compare = st.tabs(["Train", "Replay", "Compare runs"])
with t_train:
    _train_tab()
with t_replay:
    _replay_tab()
with t_compare:
    _compare_tab()
