"""Shared fixtures. Tests never touch the network: HF_HUB_OFFLINE is forced here too."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No background UMAP compile in every app a test starts (tests that want it set MMEXPLORE_WARM_UP=1).
os.environ.setdefault("MMEXPLORE_WARM_UP", "0")

import pytest


@pytest.fixture(scope="session")
def encoder():
    """The bundled model on CPU (loaded once per test session)."""
    from mmexplore.models import load_model

    return load_model("bundled", "cpu")


@pytest.fixture(scope="session")
def shapes_scenes():
    """A few fixed shapes-world scenes with two objects (held-out seeds)."""
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene

    return [make_scene(HELD_OUT_SEED_START + 500 + i, n_objects=2) for i in range(8)]
