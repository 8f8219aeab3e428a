"""The Train page under AppTest: it starts a run, shows progress, stops it, lists it and loads it."""

from __future__ import annotations

import time

import pytest
from apptest_utils import open_page

from mmexplore.settings import reload_settings

PAGE = "mmexplore_app/pages/train.py"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMEXPLORE_RUNS_DIR", str(tmp_path))  # the worker process inherits it
    reload_settings()
    yield tmp_path
    monkeypatch.delenv("MMEXPLORE_RUNS_DIR")
    reload_settings()


def _texts(at) -> str:
    return " ".join(str(m.value) for m in [*at.markdown, *at.info, *at.caption, *at.warning])


def test_page_opens_and_replays_play_without_training(runs_dir):
    at = open_page(PAGE, samples=None)
    assert not at.exception
    assert at.radio(key="tr_preset").value == "NegCLIP"
    assert {"Plain CLIP", "NegCLIP", "Multi-positive", "Sigmoid (SigLIP)", "Custom"} <= set(at.radio(key="tr_preset").options)
    # Training-time variation: the registries' names, the held-out sketch renderer not offered.
    from mmexplore.data.renderers import RENDERERS
    from mmexplore.training.augment import AUGMENTATIONS

    assert [o.split(" — ")[0] for o in at.selectbox(key="tr_augment").options] == list(AUGMENTATIONS)
    assert at.multiselect(key="tr_renderers").options == ["train", "alt"]
    assert "sketch" in RENDERERS and not RENDERERS["sketch"].trainable
    at.selectbox(key="tr_augment").set_value("style").run()
    at.multiselect(key="tr_renderers").select("alt").run()
    assert at.session_state["tr_request"]["augment"] == "style"
    assert at.session_state["tr_request"]["train_renderers"] == ["train", "alt"]
    assert not at.exception
    replays = at.selectbox(key="tr_replay").options
    assert any(o.startswith("shipped:") for o in replays)  # the shipped replays need no training
    assert len(at.get("plotly_chart")) >= 1


@pytest.mark.slow  # trains in a worker process (~30 s idle, minutes on a loaded machine): `make test-slow`
def test_start_progress_stop_list_and_use(runs_dir):
    from mmexplore_app.train_job import JOBS

    at = open_page(PAGE, samples=None)
    at.radio(key="tr_preset").set_value("Plain CLIP").run()
    at.radio(key="tr_budget").set_value("steps").run()
    at.number_input(key="tr_steps").set_value(5000).run()
    at.select_slider(key="tr_batch").set_value(16).run()
    at.text_input(key="tr_name").input("apptest-run").run()
    at.button(key="tr_start").click().run()
    assert not at.exception
    job = JOBS.current()
    assert job is not None and job.name == "apptest-run"
    deadline = time.time() + 240
    while time.time() < deadline and len(job.steps) < 3:
        time.sleep(1)
        job.refresh()
    assert len(job.steps) >= 3, job.error
    at.run()
    assert "is training on this server" in _texts(at)
    assert at.metric[0].label == "loss" and at.metric[0].value != "–"
    # A second start while it trains: a clear message, the first run untouched.
    at.text_input(key="tr_name").input("second").run()
    at.button(key="tr_start").click().run()
    assert "one run at a time" in _texts(at) and JOBS.current().name == "apptest-run"
    at.button(key="tr_stop").click().run()
    JOBS.wait(timeout=240)
    at.run()
    assert not at.exception
    assert job.status == "stopped", job.error
    assert "apptest-run stopped" in _texts(at).replace("`", "")
    assert "apptest-run" in at.multiselect(key="tr_compare").options
    at.button(key="tr_use").click().run()
    assert not at.exception
    assert at.session_state["model_spec"] == "run:apptest-run"
    # The stopped run is a model like any other: Similarity and Probes work with it.
    from apptest_utils import sample_dataset

    at.session_state["dataset"] = sample_dataset("shapes", n=4)
    for other in ("mmexplore_app/pages/similarity.py", "mmexplore_app/pages/probes.py"):
        at.switch_page(other)
        at.run()
        assert not at.exception and not at.error, other
        assert "run:apptest-run" in " ".join(str(c.value) for c in at.sidebar.caption)
