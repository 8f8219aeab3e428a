"""The heatmap-method registry: one entry plus its function is a new method for the core, the CLI and the page."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from mmexplore.errors import InputError, ModelLoadError
from mmexplore.heatmaps import methods as hm


@dataclass(frozen=True)
class CentreConfig:
    width: float = 1.0


def _centre_maps(encoder, pixels, targets, cfg):
    """Every target points at the grid's centre: a Gaussian bump of ``width`` patches."""
    gh, gw = (int(g) for g in encoder.model.visual.grid_size)
    yy, xx = np.mgrid[0:gh, 0:gw]
    bump = np.exp(-((yy - (gh - 1) / 2) ** 2 + (xx - (gw - 1) / 2) ** 2) / (2 * cfg.width**2)).ravel()
    return [np.tile(bump, (int(t.shape[0]), 1)) for t in targets]


@pytest.fixture
def with_toy_methods(monkeypatch):
    """Registers "centre" (applies everywhere) and "never" (applies to no model), as a new method would be."""
    registry = dict(hm._REGISTRY)
    registry["centre"] = hm.HeatmapMethod("centre", CentreConfig, _centre_maps, lambda enc: None, label="centre bump")
    registry["never"] = hm.HeatmapMethod("never", CentreConfig, _centre_maps, lambda enc: "needs a ResNet tower",
                                         label="never")
    monkeypatch.setattr(hm, "_REGISTRY", registry)
    return registry


def test_builtin_methods_are_registered_with_configs():
    assert hm.list_methods() == ["attention", "relevancy", "gradcam"]
    assert hm.get_method(" Attention ").name == "attention"
    with pytest.raises(InputError, match=r"saliency.*attention"):
        hm.get_method("saliency")
    # Options of another method are ignored (one option set drives several methods); typos are not.
    assert hm.get_method("attention").make_config({"start_layer": 3}) == hm.AttentionConfig()
    assert hm.get_method("relevancy").make_config({"start_layer": 3}).start_layer == 3
    with pytest.raises(InputError, match="strat_layer"):
        hm.get_method("relevancy").make_config({"strat_layer": 3})
    with pytest.raises(InputError, match="dense mode"):
        hm.get_method("attention").make_config({"dense_mode": "nosuch"})


def test_builtin_methods_apply_to_the_bundled_vit_and_record_resolved_params(encoder, shapes_scenes):
    from mmexplore.data.shapes import canonical_caption, render_scene

    assert hm.list_methods(encoder) == ["attention", "relevancy"]
    assert hm.get_method("relevancy").applies(encoder) == (True, "")
    cap = canonical_caption(shapes_scenes[0])
    res = hm.compute_heatmaps(encoder, [render_scene(shapes_scenes[0], 64)], [cap.text], method="attention")[0]
    assert res.params["temperature"] == pytest.approx(float(encoder.logit_scale))
    assert res.params["dense_mode"] == "value" and "start_layer" not in res.params


def test_a_new_method_is_one_entry_for_core_pointing_and_cli(with_toy_methods, encoder, shapes_scenes, capsys, tmp_path):
    from mmexplore.cli import main
    from mmexplore.data.shapes import canonical_caption, render_scene
    from mmexplore.heatmaps import pointing_game

    cap = canonical_caption(shapes_scenes[0])
    image = render_scene(shapes_scenes[0], 64)
    res = hm.compute_heatmaps(encoder, [image], [cap.text], phrases=[["circle"]], method="centre", width=0.5)[0]
    gh, gw = res.grid
    assert res.method == "centre" and res.params["width"] == 0.5
    assert np.allclose(res.maps.reshape(len(res.words), -1).sum(axis=1), 1.0)
    assert res.phrase_maps.shape == (1, gh, gw)

    # The predicate with its reason: "never" is listed but not offered for this model, and says why.
    assert hm.list_methods(encoder) == ["attention", "relevancy", "centre"]
    assert hm.get_method("never").applies(encoder) == (False, "needs a ResNet tower")
    with pytest.raises(ModelLoadError, match="needs a ResNet tower"):
        hm.compute_heatmaps(encoder, [image], [cap.text], method="never")

    report = pointing_game(encoder, shapes_scenes[:2], methods=["centre"], width=0.5)
    assert set(report["methods"]) == {"centre"} and 0.0 <= report["methods"]["centre"]["accuracy"] <= 1.0

    image.save(tmp_path / "s.png")
    code = main(["heatmap", "--image", str(tmp_path / "s.png"), "--text", cap.text, "--method", "centre",
                 "--model", "bundled", "--device", "cpu", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["method"] == "centre"
    code = main(["eval", "pointing", "--scenes", "2", "--model", "bundled", "--device", "cpu", "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)["pointing"]
    assert code == 0 and list(report["methods"]) == ["attention", "relevancy", "centre"]
    assert report["skipped"]["never"] == "needs a ResNet tower"
    assert set(report["skipped"]) == {"never", "gradcam"}  # Grad-CAM is for ResNet towers


def test_heatmaps_page_offers_the_registry_methods_that_apply(with_toy_methods):
    from apptest_utils import open_page

    at = open_page("mmexplore_app/pages/heatmaps.py", samples="shapes", n=2)
    assert not at.exception
    radio = at.radio(key="heat_method")
    assert list(radio.options) == ["attention (MaskCLIP)", "gradient relevancy", "centre bump"]
    assert any("never (needs a ResNet tower)" in str(c.value) for c in at.caption)
    radio.set_value("centre").run()
    assert not at.exception
    assert any("(centre)" in str(h.value) for h in at.subheader)
