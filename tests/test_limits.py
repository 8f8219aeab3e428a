"""Per-session limits: what one session may hold or ask for, and that refusals say so."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mmexplore.errors import InputError
from mmexplore.settings import Settings, reload_settings


def png(w: int, h: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_large_uploads_are_kept_downscaled_and_the_session_pixel_budget_holds():
    from mmexplore_app.data_input import add_image_files
    from mmexplore_app.state import Dataset

    out = add_image_files(Dataset(), [("big.png", png(3000, 1500)), ("small.png", png(64, 64, 1))], max_side=1024)
    assert out.added == 2 and not out.errors
    assert max(out.dataset.images[0].size) == 1024 and out.dataset.images[0].size == (1024, 512)
    assert any("big.png: 3000×1500 pixels, kept downscaled to 1024×512" in n for n in out.notes)
    # a budget of 1 Mpx holds the first 1024×512 image (0.53 Mpx with the small one), not a second one
    again = add_image_files(out.dataset, [("big2.png", png(3000, 1500, 2))], max_side=1024, max_pixels=1_000_000)
    assert again.added == 0 and "at its limit of 1 megapixels" in again.errors[0]
    assert again.dataset.n_images == 2  # nothing lost


def test_settings_read_the_limits():
    s = Settings.from_env({"MMEXPLORE_MAX_SESSION_MEGAPIXELS": "7", "MMEXPLORE_MAX_INDEX_ITEMS": "9",
                           "MMEXPLORE_MAX_REQUEST_ROWS": "11", "MMEXPLORE_MAX_STORED_SIDE": "512"})
    assert (s.max_session_megapixels, s.max_index_items, s.max_request_rows, s.max_stored_side) == (7, 9, 11, 512)
    with pytest.raises(InputError, match="MMEXPLORE_MAX_STORED_SIDE=10 is below the minimum 64"):
        Settings.from_env({"MMEXPLORE_MAX_STORED_SIDE": "10"})


def test_index_build_refuses_a_source_over_the_item_limit(tmp_path):
    from build_worker import SlowFakeEncoder

    from mmexplore.retrieval import build_index

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.png").write_bytes(png(8, 8, i))
    with pytest.raises(InputError, match="5 images and captions, over this server's limit of 4 per index"):
        build_index(folder, tmp_path / "ix", SlowFakeEncoder(0.0), progress=False, max_items=4)
    assert not (tmp_path / "ix" / "index.json").exists()


def test_relation_batch_over_the_request_limit_is_refused(monkeypatch):
    from apptest_utils import open_page

    monkeypatch.setenv("MMEXPLORE_MAX_REQUEST_ROWS", "3")
    reload_settings()
    try:
        at = open_page("mmexplore_app/pages/relation.py")
        at.radio(key="rel_mode").set_value("many pairs").run()
        assert not at.exception
        assert any("this server labels at most 3 per request" in e.value for e in at.error)
        assert not at.get("arrow_data_frame") or all(
            "rel_batch_table" not in str(getattr(d, "key", "")) for d in at.get("arrow_data_frame"))
    finally:
        monkeypatch.undo()
        reload_settings()
