"""Shared (classroom) mode under AppTest: no widget reads the server's files outside the data roots.

Each path widget is tried with ``/proc/self/environ``, ``/etc``, a ``..`` escape and a symlink out of
the root, and the whole page (every element, main and sidebar) is searched for the files' contents.
Local mode is checked too: a refused file's contents never appear in an error.
"""

from __future__ import annotations

import os

import pytest
from apptest_utils import open_page

from mmexplore.settings import Settings, reload_settings

SECRET = "TOP-SECRET-CAPTION"
PASSWD = "root:x:0:0"


@pytest.fixture()
def roots(tmp_path, monkeypatch):
    """A data root with one good pairs file, a secret folder beside it, and links leading out."""
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene

    root = tmp_path / "class-data"
    (root / "pics").mkdir(parents=True)
    render_scene(make_scene(HELD_OUT_SEED_START + 7, n_objects=2), 64).save(root / "pics" / "a.png")
    (root / "pics" / "pairs.csv").write_text("image,text\na.png,a shape\n")
    secret = tmp_path / "secret"
    secret.mkdir()
    render_scene(make_scene(HELD_OUT_SEED_START + 8, n_objects=2), 64).save(secret / "hidden.png")
    (secret / "pairs.csv").write_text(f"image,text\nhidden.png,{SECRET}\n")
    (secret / "secret-name.csv").write_text(f"image,text\nhidden.png,{SECRET}\n")
    os.symlink(secret / "pairs.csv", root / "link.csv")
    os.symlink(secret, root / "linkdir")
    # a pairs file inside the root whose image rows point outside it
    (root / "evil").mkdir()
    (root / "evil" / "pairs.csv").write_text(f"image,text\n{secret / 'hidden.png'},{SECRET}\n../../secret/hidden.png,x\n")
    monkeypatch.setenv("MMEXPLORE_MODE", "shared")
    monkeypatch.setenv("MMEXPLORE_DATA_ROOTS", str(root))
    monkeypatch.setenv("MMEXPLORE_CACHE_DIR", str(tmp_path / "cache"))
    reload_settings()
    yield root, secret
    monkeypatch.undo()
    reload_settings()


def page_text(at) -> str:
    """Everything the page sends to the browser, as text (every element's protobuf, main and sidebar)."""
    parts: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def attacks(root, secret) -> list[str]:
    rel = os.path.relpath(secret / "pairs.csv", root)
    return ["/proc/self/environ", "/etc", "/etc/passwd", str(secret), str(secret / "pairs.csv"), rel,
            "link.csv", "linkdir", "linkdir/pairs.csv", str(root / "evil")]


def assert_nothing_leaked(at, secret) -> None:
    text = page_text(at)
    assert not at.exception
    assert SECRET not in text and PASSWD not in text and "secret-name" not in text
    assert f"PATH={os.environ['PATH']}" not in text and str(secret) not in text


@pytest.mark.parametrize("page,prefix", [("mmexplore_app/pages/joint_space.py", "joint"), ("mmexplore_app/pages/cca.py", "cca")])
def test_captions_path_stays_inside_roots(roots, page, prefix):
    root, secret = roots
    at = open_page(page, samples=None)
    at.radio(key=f"{prefix}_source").set_value("Captions file or folder on this computer").run()
    for raw in attacks(root, secret):
        at.text_input(key=f"{prefix}_folder").input(raw).run()
        if any(b.key == f"{prefix}_encode" for b in at.button):
            at.button(key=f"{prefix}_encode").click().run()
        assert_nothing_leaked(at, secret)
        assert at.error, raw  # each one refused
    # the good file inside the root still works
    at.text_input(key=f"{prefix}_folder").input("pics").run()
    at.button(key=f"{prefix}_encode").click().run()
    assert not at.exception and not at.error


def test_search_paths_stay_inside_roots(roots):
    root, secret = roots
    at = open_page("mmexplore_app/pages/search.py", samples=None)
    at.radio(key="search_source").set_value("A folder of images").run()
    for raw in attacks(root, secret):
        at.text_input(key="search_folder").input(raw).run()
        if any(b.key == "search_build" for b in at.button):
            at.button(key="search_build").click().run()
        assert_nothing_leaked(at, secret)
        assert at.error, raw
        assert not any("images:" in str(c.value) for c in at.caption)  # no index was opened
    at.radio(key="search_source").set_value("A saved index folder").run()
    for raw in attacks(root, secret):
        at.text_input(key="search_index_path").input(raw).run()
        assert_nothing_leaked(at, secret)
        assert at.error, raw


def test_model_picker_offers_only_the_allow_list(roots):
    at = open_page("mmexplore_app/pages/home.py", samples=None)
    assert not at.exception
    assert not any(t.key == "sb_model_spec" for t in at.text_input)  # no spec, so no path, can be typed
    options = list(at.selectbox(key="sb_model_allowed").options)
    assert options[:3] == ["bundled", "bundled-nodense", "bundled-noneg"]
    assert options == list(Settings.allowed_models)  # the shipped models, nothing typed


def test_the_default_allow_list_is_every_shipped_model():
    # A model shipped in mmexplore/assets/ but missing here would be unreachable on a shared server
    # (and a listed one that is not shipped would fail to load).
    from mmexplore.robustness.evaluate import shipped_models

    assert set(Settings.allowed_models) == set(shipped_models())


def test_shared_mode_without_roots_offers_no_server_source(monkeypatch):
    monkeypatch.setenv("MMEXPLORE_MODE", "shared")
    monkeypatch.delenv("MMEXPLORE_DATA_ROOTS", raising=False)
    reload_settings()
    try:
        at = open_page("mmexplore_app/pages/joint_space.py", samples=None)
        assert len(at.radio(key="joint_source").options) == 2
        at.switch_page("mmexplore_app/pages/search.py").run()
        assert list(at.radio(key="search_source").options) == ["Current data set"]
    finally:
        monkeypatch.undo()
        reload_settings()


def test_local_mode_errors_never_show_file_contents(tmp_path):
    (tmp_path / "env.csv").write_text("API_TOKEN=hunter2,OTHER=x\n1,2\n")
    at = open_page("mmexplore_app/pages/joint_space.py", samples=None)
    at.radio(key="joint_source").set_value("Captions file or folder on this computer").run()
    for raw in ("/proc/self/environ", str(tmp_path / "env.csv"), "/etc/passwd", "/etc"):
        at.text_input(key="joint_folder").input(raw).run()
        at.button(key="joint_encode").click().run()
        text = page_text(at)
        assert not at.exception and at.error, raw
        assert "hunter2" not in text and "API_TOKEN" not in text and PASSWD not in text
        assert f"PATH={os.environ['PATH']}" not in text


@pytest.mark.parametrize("page,key,source", [
    ("mmexplore_app/pages/joint_space.py", "joint_embdir", ("joint_source", "Embeddings folder (mmexplore embed)")),
    ("mmexplore_app/pages/cca.py", "cca_embdir", ("cca_source", "Embeddings folder (mmexplore embed)")),
    ("mmexplore_app/pages/search.py", "search_emb_path", ("search_source", "An embeddings folder (mmexplore embed)")),
])
def test_embeddings_folder_paths_stay_inside_roots(roots, page, key, source):
    import json

    root, secret = roots
    # a folder inside the root whose manifest is a link to one outside (naming a secret model)
    (secret / "manifest.json").write_text(json.dumps({"model_id": SECRET, "model": SECRET, "embed_dim": 8, "rows": 1}))
    (root / "embs").mkdir()
    os.symlink(secret / "manifest.json", root / "embs" / "manifest.json")
    at = open_page(page, samples=None)
    at.radio(key=source[0]).set_value(source[1]).run()
    for raw in [*attacks(root, secret), "embs"]:
        at.text_input(key=key).input(raw).run()
        assert_nothing_leaked(at, secret)
        assert at.error, raw


def test_saved_index_folder_with_a_file_linked_outside_is_refused(roots):
    import json

    root, secret = roots
    (secret / "index.json").write_text(json.dumps({"model_id": SECRET, "model": SECRET}))
    (root / "ix").mkdir()
    os.symlink(secret / "index.json", root / "ix" / "index.json")
    at = open_page("mmexplore_app/pages/search.py", samples=None)
    at.radio(key="search_source").set_value("A saved index folder").run()
    at.text_input(key="search_index_path").input("ix").run()
    assert_nothing_leaked(at, secret)
    assert "not available on this server" in " ".join(str(e.value) for e in at.error)
