"""The app's one cache seam (mmexplore_app.cache): keys, LRU eviction, nothing stored on st.stop()."""

from __future__ import annotations

import ast
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    import streamlit as st

    from mmexplore_app.cache import cache_key, session_cached, session_cached_many

    calls = st.session_state.setdefault("calls", [])

    def compute(tag):
        calls.append(tag)
        return f"value {tag}"

    for tag in st.session_state.get("tags", []):
        session_cached("demo", cache_key("model@1", "content", tag), lambda tag=tag: compute(tag), max_entries=2)
    keys = [cache_key("model@1", d, "t") for d in st.session_state.get("many", [])]
    if keys:
        session_cached_many("many", keys, lambda todo: [calls.append(("many", k)) or f"r{k}" for k in todo], max_entries=3)
    if st.session_state.get("stop"):
        session_cached("demo", cache_key("model@1", "content", "stopped"), st.stop)


def test_session_cache_computes_once_and_evicts_the_least_recently_used():
    from mmexplore_app.cache import entries

    at = AppTest.from_function(_script)
    at.session_state["tags"] = ["a", "b", "a"]
    at.run()
    assert at.session_state["calls"] == ["a", "b"]  # the second "a" was a hit
    at.session_state["tags"] = ["a", "c"]  # "a" was used last, so "b" goes
    at.run()
    assert at.session_state["calls"] == ["a", "b", "c"]
    assert [k[2] for k in entries(at.session_state, "demo")] == ["a", "c"]
    at.session_state["stop"] = True  # compute stopped the script: nothing stored
    at.run()
    assert [k[2] for k in entries(at.session_state, "demo")] == ["a", "c"]


def test_session_cached_many_computes_only_the_missing_items_in_one_batch():
    at = AppTest.from_function(_script)
    at.session_state["many"] = ["d1", "d2"]
    at.run()
    at.session_state["many"] = ["d2", "d3", "d1"]
    at.run()
    assert at.session_state["calls"] == [("many", 0), ("many", 1), ("many", 1)]  # only d3 (index 1) the second time


def test_pages_keep_no_memo_of_their_own():
    """Computed results go through mmexplore_app.cache: no page stores a dict of results in session state."""
    offenders = []
    for path in sorted((ROOT / "mmexplore_app").rglob("*.py")):
        if path.name == "cache.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault" \
                    and node.args and isinstance(node.args[-1], ast.Dict) and not node.args[-1].keys \
                    and ast.unparse(node.args[0]) != "KEPT_KEY":  # widget values kept by widgets.keep(), not results
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "hand-made memo caches: " + ", ".join(offenders)


def test_pages_touch_session_state_only_through_helpers():
    """Pages (and the sidebar, the views) read and write their values through mmexplore_app.state helpers,
    never st.session_state; only the helper modules themselves (state, cache, widgets) touch it."""
    offenders = []
    helpers = {"state.py", "cache.py", "widgets.py"}
    app = ROOT / "mmexplore_app"
    paths = [*sorted((app / "pages").glob("*.py")), *(p for p in sorted(app.glob("*.py")) if p.name not in helpers),
             ROOT / "app.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "session_state":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "pages touching st.session_state: " + ", ".join(offenders)


def test_joint_map_selection_reruns_only_its_fragment():
    """The map with on_select="rerun" sits inside an st.fragment: a selection does not rerun the page."""
    tree = ast.parse((ROOT / "mmexplore_app" / "pages" / "joint_space.py").read_text(encoding="utf-8"))
    fragments = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                 and any(ast.unparse(d) == "st.fragment" for d in f.decorator_list)]
    selecting = [c for f in fragments for c in ast.walk(f) if isinstance(c, ast.Call)
                 and any(k.arg == "on_select" for k in c.keywords)]
    assert len(fragments) == 1 and len(selecting) == 1
