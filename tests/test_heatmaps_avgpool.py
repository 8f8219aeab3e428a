"""Attention heatmaps on average-pooled ViTs (the order family's layout model): exact patch features."""

import numpy as np
import pytest
import torch

from mmexplore.errors import ModelLoadError
from mmexplore.heatmaps import methods as hm
from mmexplore.heatmaps.features import dense_patch_features
from mmexplore.models.encoder import Encoder
from mmexplore.training.trainer import build_model, build_tokenizer


@pytest.fixture(scope="module")
def avg_encoder():
    torch.manual_seed(0)
    tok = build_tokenizer()
    model, preprocess, _ = build_model("mmexplore-shapes-o64-sincos-avg", tok.vocab_size, "cpu")
    model.eval()
    return Encoder(model, preprocess, tok, name="avg", model_id="avg-test", device="cpu", dtype="float32")


def test_the_patch_features_of_an_average_pooled_vit_decompose_its_embedding(avg_encoder):
    from mmexplore.data.shapes import make_scene, render_scene

    assert avg_encoder.facts.pooling == "average"
    images = [render_scene(make_scene(s), 64) for s in (1, 2)]
    pixels = torch.stack([avg_encoder.preprocess(im) for im in images])
    dense = dense_patch_features(avg_encoder, pixels)
    assert dense.shape == (2, 64, 64)  # 8 × 8 patches, embedding 64
    with torch.no_grad():
        pooled = avg_encoder.model.encode_image(pixels)
    # The embedding is the mean of the patch features, exactly (no value-path approximation).
    np.testing.assert_allclose(dense.mean(1).numpy(), pooled.numpy(), atol=1e-5)
    with pytest.raises(ModelLoadError, match="class-token"):
        dense_patch_features(avg_encoder, pixels, mode="value_residual")


def test_attention_applies_to_average_pooled_vits_and_relevancy_says_why_not(avg_encoder):
    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene

    assert hm.list_methods(avg_encoder) == ["attention"]
    ok, why = hm.get_method("relevancy").applies(avg_encoder)
    assert not ok and "class token" in why
    scene = make_scene(4, n_objects=2)
    res = hm.compute_heatmaps(avg_encoder, [render_scene(scene, 64)], [canonical_caption(scene).text],
                              method="attention")[0]
    assert np.isfinite(np.asarray(res.maps)).all()


def test_the_dense_training_term_reads_the_same_patch_features(avg_encoder, monkeypatch):
    """``--dense-weight`` on an average-pooled tower aligns the features the heatmap shows."""
    import random

    import mmexplore.heatmaps.features as features
    from mmexplore.data.shapes import make_scene, render_scene
    from mmexplore.heatmaps.features import dense_from_average_pool, visual_pass
    from mmexplore.training.dense import dense_step

    def no_value_path(*a, **k):
        raise AssertionError("an average-pooled tower has no MaskCLIP value path to train")

    monkeypatch.setattr(features, "dense_from_last_input", no_value_path)
    model = avg_encoder.model
    scenes = [make_scene(s, n_objects=2) for s in (5, 6)]
    pixels = torch.stack([avg_encoder.preprocess(render_scene(s, 64)) for s in scenes])
    img, loss = dense_step(model, pixels, scenes, avg_encoder.tokenizer, random.Random(0))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    with torch.no_grad():
        tokens = visual_pass(model.visual, pixels).tokens
        np.testing.assert_allclose(dense_from_average_pool(model.visual, tokens).mean(1).numpy(),
                                   model.encode_image(pixels).numpy(), atol=1e-5)
        np.testing.assert_allclose(img.numpy(), torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy(),
                                   atol=1e-5)
    model.zero_grad(set_to_none=True)
