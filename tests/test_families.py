"""Model families: facts read from the model, and the commands and pages that depend on them.

Each family is a small random-weight model whose tokenizer needs no download: a CLIP ViT, a
SigLIP-style ViT (timm ViT with SigLIP's attention-pool head, sigmoid objective) and a ResNet CLIP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirun import run_json

from mmexplore.cli import main

CLIP_VIT = "mmexplore-shapes-xs:random"
SIGLIP_VIT = "mmexplore-shapes-siglip-xs:random"
RESNET = "mmexplore-shapes-rn-xs:random"
FAMILIES = {CLIP_VIT: "clip-vit", SIGLIP_VIT: "siglip-vit", RESNET: "clip-resnet"}

EXPECTED_FACTS = {
    CLIP_VIT: {"family": "clip-vit", "scoring": "softmax", "logit_bias": None, "vision": "vit",
               "vision_impl": "open_clip.VisionTransformer", "pooling": "class-token", "text_causal": True},
    SIGLIP_VIT: {"family": "siglip-vit", "scoring": "sigmoid", "logit_bias": -10.0, "vision": "vit",
                 "vision_impl": "timm.VisionTransformer", "pooling": "attention-pool", "text_causal": False,
                 "text_pooling": "last"},
    RESNET: {"family": "clip-resnet", "scoring": "softmax", "logit_bias": None, "vision": "resnet",
             "vision_impl": "open_clip.ModifiedResNet", "pooling": "attention-pool", "grid": [4, 4]},
}


@pytest.mark.parametrize("spec", list(EXPECTED_FACTS))
def test_facts_are_read_from_the_model(spec):
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    facts = enc.facts.to_dict()
    for key, value in EXPECTED_FACTS[spec].items():
        assert facts[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert enc.info.family == facts["family"] and enc.info.scoring == facts["scoring"]
    # The score is the model's own logit: s·cos (+ b).
    assert enc.score(0.5) == pytest.approx(enc.logit_scale * 0.5 + (facts["logit_bias"] or 0.0))


def test_facts_do_not_depend_on_the_name(tmp_path):
    """A SigLIP-style model saved under a neutral name is still sigmoid-scored (read from logit_bias)."""
    import open_clip
    from safetensors.torch import save_file

    from mmexplore.models import load_model
    from mmexplore.models.loader import register_project_configs

    enc = load_model(SIGLIP_VIT, "cpu")
    register_project_configs()
    folder = tmp_path / "my-model"
    folder.mkdir()
    cfg = open_clip.get_model_config("mmexplore-shapes-siglip-xs")
    tok = enc.tokenizer
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": cfg,
        "preprocess_cfg": {"size": 64, "mean": [0.5] * 3, "std": [0.5] * 3},
        "mmexplore": {"tokenizer": {"kind": "compact", "kept_bpe_ids": tok.kept_bpe_ids, "context_length": 32}},
    }))
    save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    other = load_model(f"local-dir:{folder}", "cpu")
    assert other.facts.family == "siglip-vit" and other.facts.logit_bias == pytest.approx(-10.0)


@pytest.mark.parametrize("spec", list(EXPECTED_FACTS))
def test_info_reports_facts_and_heatmap_methods(capsys, spec):
    data = run_json(capsys, "info", "--model", spec)
    assert data["facts"]["family"] == FAMILIES[spec] == data["model"]["family"]
    methods = data["heatmap_methods"]
    assert set(methods) >= {"attention", "relevancy"}
    for m in methods.values():
        assert m["applies"] == (m["reason"] == "")
    # Relevancy follows a class token: only the CLIP ViT has one.
    assert methods["relevancy"]["applies"] == (spec == CLIP_VIT)
    if spec != CLIP_VIT:
        assert "class token" in methods["relevancy"]["reason"]


def test_similarity_cli_sigmoid_model(capsys, tmp_path):
    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene

    paths, texts = [], []
    for s in range(3):
        scene = make_scene(9100 + s, n_objects=1)
        p = tmp_path / f"s{s}.png"
        render_scene(scene, 64).save(p)
        paths.append(str(p))
        texts.append(canonical_caption(scene).text)
    data = run_json(capsys, "similarity", "--images", *paths, "--texts", *texts, "--model", SIGLIP_VIT)
    cos, logits = np.array(data["cosine"]), np.array(data["logits"])
    s, b = data["logit_scale"], data["logit_bias"]
    assert data["rule"] == "sigmoid" and data["loss_name"] == "sigmoid" and b == pytest.approx(-10.0)
    np.testing.assert_allclose(logits, s * cos + b, atol=1e-4)
    np.testing.assert_allclose(np.array(data["probs_pair"]), 1 / (1 + np.exp(-logits)), atol=1e-5)
    assert data["infonce_loss"] is None and data["loss"] == data["sigmoid_loss"] > 0
    assert {"i2t@1", "t2i@1"} <= set(data["recall"])
    soft = run_json(capsys, "similarity", "--images", *paths, "--texts", *texts, "--model", CLIP_VIT)
    assert soft["rule"] == "softmax" and soft["probs_pair"] is None and soft["loss"] == soft["infonce_loss"]


def test_similarity_page_sigmoid_model_shows_pairwise_probabilities(capsys, tmp_path):
    """SigLIP-style model: the page's default view is σ(s·cos + b) (as the CLI), its loss is the sigmoid loss."""
    from apptest_utils import heatmap_values, open_page

    from mmexplore.data.samples import shapes_samples
    from mmexplore_app.state import Dataset

    ds = Dataset.from_samples(shapes_samples(n=4, negatives=False))
    paths = []
    for k, im in enumerate(ds.images):
        p = tmp_path / f"{k}.png"
        im.save(p)
        paths.append(str(p))
    cli = run_json(capsys, "similarity", "--images", *paths, "--texts", *ds.texts, "--model", SIGLIP_VIT)
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds, model=SIGLIP_VIT)
    assert not at.exception, at.exception
    radio = at.radio(key="sim_view_sigmoid")
    assert radio.value.startswith("pairwise probability")
    assert not any("softmax over" in o for o in radio.options)
    np.testing.assert_allclose(heatmap_values(at), np.array(cli["probs_pair"]), atol=2e-5)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sigmoid loss (nats)"] == f"{cli['sigmoid_loss']:.3f}"
    assert not any("InfoNCE" in label for label in metrics)
    assert any("sigmoid" in c.value and "b = -10.00" in c.value for c in at.caption)
    radio.set_value("logits (s·cos + b)").run()
    np.testing.assert_allclose(heatmap_values(at), np.array(cli["logits"]), atol=2e-4)


def test_dense_features_are_the_pool_value_path():
    """With the pool's queries zeroed (uniform attention), the pooled embedding is the mean of the dense features."""
    import copy

    import torch

    from mmexplore.data.shapes import make_scene, render_scene
    from mmexplore.heatmaps.features import dense_patch_features, resnet_attnpool_dense, resnet_last_stage
    from mmexplore.models import load_model

    images = [render_scene(make_scene(s), 96) for s in range(2)]
    enc = load_model(SIGLIP_VIT, "cpu")
    uniform = copy.copy(enc)
    uniform.model = copy.deepcopy(enc.model)
    pool = uniform.model.visual.trunk.attn_pool
    with torch.no_grad():
        pool.q.weight.zero_()
        pool.q.bias.zero_()
    pool.mlp = None  # the head's MLP is nonlinear: the identity holds for the attention part
    px = enc.pixels(images)
    with torch.no_grad():
        torch.testing.assert_close(dense_patch_features(uniform, px).mean(1), uniform.model.encode_image(px), atol=1e-5, rtol=0)

    enc = load_model(RESNET, "cpu")
    model = copy.deepcopy(enc.model)
    ap = model.visual.attnpool
    with torch.no_grad():
        ap.q_proj.weight.zero_()
        ap.q_proj.bias.zero_()
        px = enc.pixels(images)
        fmap = resnet_last_stage(model.visual, px)
        dense = resnet_attnpool_dense(model.visual, fmap)
        mean_token = ap.c_proj(ap.v_proj(fmap.flatten(2).mean(-1) + ap.positional_embedding[0]))
        expected = (dense.sum(1) + mean_token) / (dense.shape[1] + 1)  # the pool also attends to its mean token
        torch.testing.assert_close(expected, model.encode_image(px), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("spec", "methods"), [
    (CLIP_VIT, ["attention", "relevancy"]),
    (SIGLIP_VIT, ["attention"]),
    (RESNET, ["attention", "gradcam"]),
])
def test_heatmaps_for_every_family(spec, methods):
    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene
    from mmexplore.heatmaps import compute_heatmaps, list_methods
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    assert list_methods(enc) == methods
    scene = make_scene(9200, n_objects=2)
    caption = canonical_caption(scene).text
    for method in methods:
        res = compute_heatmaps(enc, [render_scene(scene, 128)], [caption], phrases=[["red circle"]], method=method)[0]
        assert res.grid == tuple(enc.facts.grid) and res.maps.shape[0] == len(res.words)
        np.testing.assert_allclose(res.maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
        assert np.isfinite(res.maps).all() and res.phrase_maps is not None


def test_gradcam_follows_the_gradient_of_the_score():
    """Grad-CAM rows are relu(Σ_c w_c A_c) with w the mean gradient; a target that flips sign flips the weights."""
    import torch

    from mmexplore.data.shapes import make_scene, render_scene
    from mmexplore.heatmaps.features import resnet_last_stage
    from mmexplore.heatmaps.methods import GradCamConfig, _gradcam_maps
    from mmexplore.models import load_model

    enc = load_model(RESNET, "cpu")
    px = enc.pixels([render_scene(make_scene(3), 128)])
    t = torch.nn.functional.normalize(torch.as_tensor(enc.encode_texts(["a red circle"])), dim=-1)
    cam = _gradcam_maps(enc, px, [torch.cat([t, -t])], GradCamConfig())[0]
    a = resnet_last_stage(enc.model.visual, px).detach().requires_grad_(True)
    y = (torch.nn.functional.normalize(enc.model.visual.attnpool(a), dim=-1) * t).sum()
    (g,) = torch.autograd.grad(y, a)
    lin = (g.mean(dim=(2, 3), keepdim=True) * a).sum(1).flatten(1).detach().numpy()[0]
    np.testing.assert_allclose(cam[0], np.maximum(lin, 0), atol=1e-5)
    np.testing.assert_allclose(cam[1], np.maximum(-lin, 0), atol=1e-5)


def test_heatmap_cli_says_why_a_method_does_not_apply(capsys, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "w.png")
    code = main(["heatmap", "--image", str(tmp_path / "w.png"), "--text", "a circle", "--method", "relevancy",
                 "--model", RESNET, "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "'relevancy' does not apply to this ResNet CLIP model" in err and "attention, gradcam" in err
    data = run_json(capsys, "heatmap", "--image", str(tmp_path / "w.png"), "--text", "a circle", "--method", "gradcam",
                    "--model", RESNET)
    assert data["method"] == "gradcam" and data["grid"] == [4, 4] and data["word_attribution"]["rule"] == "softmax"


def test_heatmaps_page_offers_only_the_methods_that_apply():
    from apptest_utils import image_captions, open_page

    at = open_page("mmexplore_app/pages/heatmaps.py", model=RESNET)
    assert not at.exception, at.exception
    radio = at.radio(key="heat_method")
    assert list(radio.options) == ["attention (MaskCLIP)", "Grad-CAM (last stage)"]
    assert any("gradient relevancy" in c.value and "class token" in c.value for c in at.caption)
    radio.set_value("gradcam").run()
    assert not at.exception, at.exception
    from mmexplore_app.cache import entries

    words = entries(at.session_state, "heatmaps")  # keys: (model id, image digest, text, phrase, method, ...)
    assert any(k[4] == "gradcam" for k in words)
    assert len(image_captions(at)) >= 3  # image, phrase overlay, per-word overlays


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "family", "methods"), [
    ("RN50:random", "clip-resnet", ["attention", "gradcam"]),
    ("ViT-B-32:random", "clip-vit", ["attention", "relevancy"]),
])
def test_full_size_architectures_random_weights(spec, family, methods):
    """The real RN50 and ViT-B/32 wiring (7×7 grid, 32-head attention pool; 12 blocks) with random weights."""
    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene
    from mmexplore.heatmaps import compute_heatmaps, list_methods
    from mmexplore.heatmaps.decomposition import decompose_score
    from mmexplore.heatmaps.text_attribution import word_attribution
    from mmexplore.models import load_model

    enc = load_model(spec, "cpu")
    assert enc.facts.family == family and enc.facts.grid == (7, 7) and list_methods(enc) == methods
    scene = make_scene(9300, n_objects=2)
    image, caption = render_scene(scene, 224), canonical_caption(scene).text
    for method in methods:
        res = compute_heatmaps(enc, [image], [caption], method=method)[0]
        assert res.grid == (7, 7) and np.isfinite(res.maps).all()
    d = decompose_score(enc, image, caption)
    assert d.error < 1e-3
    assert np.isfinite(word_attribution(enc, image, caption).scores).all()
