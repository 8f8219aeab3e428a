import json

import numpy as np
import pytest

from mmexplore.models import load_model
from mmexplore.training.train import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(out=str(out), arch="mmexplore-shapes-xs", steps=30, batch_size=32, lr=2e-3,
                      warmup_steps=5, negatives=1, seed=3, eval_every=0, eval_scenes=10, render_size=64)
    metrics = train(cfg, log=lambda s: None)
    return out, metrics


def test_few_steps_lower_the_loss(tiny_run):
    out, _ = tiny_run
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def test_checkpoint_is_an_open_clip_local_dir(tiny_run):
    out, _metrics = tiny_run
    assert (out / "open_clip_model.safetensors").is_file()
    cfg = json.loads((out / "open_clip_config.json").read_text())
    assert {"model_cfg", "preprocess_cfg"} <= set(cfg) and cfg["mmexplore"]["tokenizer"]["kind"] == "compact"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 30 and "train" in saved["eval"] and "alt" in saved["eval"]
    enc = load_model(f"local-dir:{out}", "cpu")
    assert enc.info.embed_dim == 64 and enc.info.image_size == 32


def test_training_is_reproducible(tiny_run, tmp_path):
    out, _ = tiny_run
    cfg = TrainConfig(out=str(tmp_path), arch="mmexplore-shapes-xs", steps=3, batch_size=32, lr=2e-3,
                      warmup_steps=5, negatives=1, seed=3, eval_every=0, eval_scenes=5, render_size=64)
    train(cfg, log=lambda s: None)
    first = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()[:3]]
    again = [json.loads(x)["loss"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    np.testing.assert_allclose(first, again, atol=1e-3)


def test_counterfactual_pairs_are_true_of_their_twin():
    import random

    from mmexplore.data.shapes import canonical_caption, make_scene, relation_between, scene_captions
    from mmexplore.training.train import counterfactual_pair, make_batch

    rng = random.Random(0)
    made = 0
    for seed in range(60):
        pair = counterfactual_pair(make_scene(seed, n_objects=2), rng)
        if pair is None:
            continue
        made += 1
        scene, text, twin, twin_text = pair
        assert text != twin_text
        assert text == canonical_caption(scene).text
        assert text not in {c.text for c in scene_captions(twin)}
        cap = canonical_caption(scene)
        i, rel, j = cap.relation
        if [o.color for o in twin.objects] == [o.color for o in scene.objects]:
            # Positions swapped: the relation reads the other way round in the twin.
            assert relation_between(twin.objects[j], twin.objects[i]) == rel
        else:
            assert sorted(o.color for o in twin.objects) == sorted(o.color for o in scene.objects)
    assert made > 30
    images, captions, negs = make_batch(random.Random(1), 16, 1, 64, False, 0.5)
    assert len(images) == 16 and captions[0] == negs[1][0] and captions[1] == negs[0][0]
