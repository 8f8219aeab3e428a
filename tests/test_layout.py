"""The layout readout term (training/layout.py): targets, the term, and a trainer run with it."""

import json
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from trainrun import small_run_config

from mmexplore.data.shapes import Scene, ShapeObject
from mmexplore.models import load_model
from mmexplore.training.layout import LAYOUT_VALUES, layout_loss, layout_targets, layout_terms, make_readout, named_objects
from mmexplore.training.trainer import Trainer, read_events

RED_LEFT = ShapeObject("circle", "red", "small", cx=0.2, cy=0.5, radius=0.08)
BLUE_RIGHT = ShapeObject("square", "blue", "large", cx=0.8, cy=0.4, radius=0.16)
SCENE = Scene(objects=(RED_LEFT, BLUE_RIGHT))


def _index(attr, value):
    return LAYOUT_VALUES.index((attr, value))


def test_targets_are_centres_relative_to_the_objects_centroid():
    presence, centre = layout_targets([SCENE.objects, ()])
    red, blue, circle, large = (_index("color", "red"), _index("color", "blue"), _index("shape", "circle"),
                                _index("size", "large"))
    assert presence[0].sum() == 6  # two colours, two shapes, two sizes
    assert presence[0, red] == 1 and presence[0, _index("color", "green")] == 0
    np.testing.assert_allclose(centre[0, red].numpy(), [-0.3, 0.05], atol=1e-6)
    np.testing.assert_allclose(centre[0, blue].numpy(), [0.3, -0.05], atol=1e-6)
    np.testing.assert_allclose(centre[0, circle].numpy(), centre[0, red].numpy())
    np.testing.assert_allclose(centre[0, large].numpy(), centre[0, blue].numpy())
    assert presence[1].sum() == 0 and centre[1].abs().sum() == 0  # nothing named: no target


def test_a_caption_targets_only_the_objects_it_names_and_swapping_them_flips_the_sign():
    third = ShapeObject("triangle", "green", "small", cx=0.5, cy=0.9, radius=0.08)
    scene = Scene(objects=(RED_LEFT, BLUE_RIGHT, third))
    named = named_objects("a small red circle left of a large blue square", scene)
    assert named == [RED_LEFT, BLUE_RIGHT]
    p, c = layout_targets([named])
    assert p[0, _index("color", "green")] == 0
    assert c[0, _index("color", "red"), 0] < 0 < c[0, _index("color", "blue"), 0]
    swapped = Scene(objects=(replace(RED_LEFT, cx=0.8), replace(BLUE_RIGHT, cx=0.2)))
    _, c2 = layout_targets([named_objects("a small red circle right of a large blue square", swapped)])
    assert c2[0, _index("color", "red"), 0] > 0 > c2[0, _index("color", "blue"), 0]


def test_the_term_is_small_for_a_perfect_readout_and_large_for_a_wrong_one():
    presence, centre = layout_targets([SCENE.objects])
    n = len(LAYOUT_VALUES)

    class Exact(torch.nn.Module):
        def forward(self, x):
            return torch.cat([(presence * 40 - 20), centre.reshape(1, -1)], dim=1).expand(x.shape[0], 3 * n)

    class Mirrored(Exact):
        def forward(self, x):
            return torch.cat([(presence * 40 - 20), -centre.reshape(1, -1)], dim=1).expand(x.shape[0], 3 * n)

    feats = torch.nn.functional.normalize(torch.randn(1, 16), dim=-1)
    assert float(layout_loss(Exact(), feats, presence, centre)) < 1e-3
    assert float(layout_loss(Mirrored(), feats, presence, centre)) > 1.0  # order reversed: 10 × (0.6² + 0.1²) per value


def test_layout_terms_reach_both_towers_through_one_readout():
    readout = make_readout(16, "cpu")
    img = torch.nn.functional.normalize(torch.randn(1, 16), dim=-1).requires_grad_()
    txt = torch.nn.functional.normalize(torch.randn(1, 16), dim=-1).requires_grad_()
    image_term, text_term = layout_terms(readout, img, txt, ["a small red circle left of a large blue square"], [SCENE])
    (image_term + text_term).backward()
    assert img.grad.abs().sum() > 0 and txt.grad.abs().sum() > 0 and readout.weight.grad.abs().sum() > 0


_cfg = partial(small_run_config, steps=12, batch_size=16, eval_every=6, render_size=32, layout_weight=1.0)


def test_a_run_with_the_layout_term_reports_it_saves_a_plain_model_and_resumes(tmp_path):
    first: list = []
    trainer = Trainer(_cfg(tmp_path / "r", steps=6, layout_text_weight=3.0), callbacks=[first.append])
    trainer.run()
    steps = [e for e in first if e["event"] == "step"]
    assert {"layout_image", "layout_text"} <= set(steps[0]["terms"])
    assert all(np.isfinite(e["terms"]["layout_text"]) for e in steps)
    assert (tmp_path / "r" / "checkpoint" / "layout_readout.safetensors").is_file()
    load_model(f"local-dir:{tmp_path / 'r'}", "cpu")  # strict open_clip load: no readout keys in the model
    readout_before = trainer.layout_readout.weight.detach().clone()

    resumed = Trainer.resume(tmp_path / "r", steps=12)
    resumed.setup()
    torch.testing.assert_close(resumed.layout_readout.weight.detach(), readout_before)  # not a fresh readout
    resumed.run()
    logged = [e["step"] for e in read_events(tmp_path / "r" / "train_log.jsonl") if e["event"] == "step"]
    assert logged == list(range(1, 13))
    assert json.loads((tmp_path / "r" / "run.json").read_text())["config"]["layout_weight"] == 1.0


def test_layout_weight_must_be_a_finite_non_negative_number(tmp_path):
    from mmexplore.errors import InputError

    with pytest.raises(InputError, match="layout_weight"):
        Trainer(_cfg(tmp_path, layout_weight=-1.0))
    with pytest.raises(InputError, match="layout_text_weight"):
        Trainer(_cfg(tmp_path, layout_text_weight=float("nan")))
    assert _cfg(tmp_path, layout_weight=1.0).layout_weights() == (1.0, 1.0)
    assert _cfg(tmp_path, layout_weight=1.0, layout_text_weight=3.0).layout_weights() == (1.0, 3.0)
    assert _cfg(tmp_path, layout_weight=0.0, layout_text_weight=2.0).layout_weights() == (0.0, 2.0)
