"""The app's one cache seam: what a session computed, keyed on model id + content + parameters.

Three kinds of reuse, one rule each:

* ``st.cache_resource`` — process-wide objects shared by every session and never copied: loaded
  models (:func:`mmexplore_app.widgets.load_encoder`).
* ``st.cache_data`` — pure functions of small hashable inputs, shared by every session and copied on
  each hit: the sample sets (:mod:`mmexplore_app.sidebar`), the shipped order family's figures
  (:mod:`mmexplore_app.order_family_view`), the Train page's probe thumbnails and snapshot matrices.
* :func:`session_cached` (this module) — results computed from a session's own data (its images,
  uploads, the model it picked): embeddings, heatmaps, relation labels, search indexes, projections,
  probe scores. They live in the session (another user's uploads never show up), are not copied
  (a million-point embedding set is returned as is), and each namespace keeps its ``max_entries``
  most recently used entries.

Keys are tuples made by :func:`cache_key`: the model id (``Encoder.model_id``, which names the weights'
content), a content key of the data (``Dataset.content_key()``, an image digest, an upload's hash) and
the parameters that change the result. Nothing else in the app keeps a memo of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
STATE_KEY = "_session_cache"


def cache_key(model_id: str | None, content: Hashable, *params: Hashable) -> tuple:
    """``(model_id, content, *params)``: the key of a result of ``model_id`` on ``content`` with ``params``."""
    return (model_id, content, *params)


def _namespace(name: str) -> OrderedDict:
    store: dict[str, OrderedDict] = st.session_state.setdefault(STATE_KEY, {})
    return store.setdefault(name, OrderedDict())


def _put(ns: OrderedDict, key: Hashable, value: Any, max_entries: int) -> None:
    ns[key] = value
    ns.move_to_end(key)
    while len(ns) > max_entries:
        ns.popitem(last=False)  # least recently used first


def session_cached(namespace: str, key: Hashable, compute: Callable[[], T], *, max_entries: int = 4) -> T:
    """``compute()`` once per ``key`` in this session; the ``max_entries`` most recent keys are kept.

    ``compute`` may call ``st.stop()`` or raise: nothing is stored then, and the next run tries again.
    """
    ns = _namespace(namespace)
    if key in ns:
        ns.move_to_end(key)
        return ns[key]
    value = compute()
    _put(ns, key, value, max_entries)
    return value


def is_cached(namespace: str, key: Hashable) -> bool:
    """Whether ``key`` is cached (a page may ask before offering a costly action, e.g. an Encode button)."""
    return key in _namespace(namespace)


def session_cached_many(
    namespace: str,
    keys: Sequence[Hashable],
    compute_missing: Callable[[list[int]], Sequence[T]],
    *,
    max_entries: int = 512,
) -> list[T]:
    """One value per key; ``compute_missing(indices)`` computes those not cached, in one batch.

    For per-item results computed faster together (the relation label of many pairs)."""
    ns = _namespace(namespace)
    todo = [k for k, key in enumerate(keys) if key not in ns]
    fresh = dict(zip(todo, compute_missing(todo), strict=True)) if todo else {}
    out = [fresh[k] if k in fresh else ns[key] for k, key in enumerate(keys)]
    for k, key in enumerate(keys):
        _put(ns, key, out[k], max_entries)
    return out


def entries(state: Mapping[str, Any], namespace: str) -> OrderedDict:
    """The cached entries of ``namespace`` in a session state (tests read them from an AppTest)."""
    try:
        store = state[STATE_KEY]
    except KeyError:
        return OrderedDict()
    return store.get(namespace, OrderedDict())


def clear(namespace: str | None = None) -> None:
    """Forget one namespace (or everything this session cached)."""
    store: dict[str, OrderedDict] = st.session_state.setdefault(STATE_KEY, {})
    if namespace is None:
        store.clear()
    else:
        store.pop(namespace, None)
