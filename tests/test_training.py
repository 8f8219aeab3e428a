import json

import numpy as np
import pytest

from mmexplore.models import load_model
from mmexplore.training.train import TrainConfig, train
from mmexplore.training.trainer import Trainer, read_events


def _steps(out):
    return [e for e in read_events(out / "train_log.jsonl") if e["event"] == "step"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(out=str(out), arch="mmexplore-shapes-xs", steps=30, batch_size=32, lr=2e-3,
                      warmup_steps=5, negatives=1, seed=3, eval_every=0, eval_scenes=10, render_size=64)
    metrics = train(cfg, log=lambda s: None)
    return out, metrics


def test_few_steps_lower_the_loss(tiny_run):
    out, _ = tiny_run
    losses = [e["loss"] for e in _steps(out)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


def test_checkpoint_is_an_open_clip_local_dir(tiny_run):
    out, _metrics = tiny_run
    assert (out / "open_clip_model.safetensors").is_file()
    cfg = json.loads((out / "open_clip_config.json").read_text())
    assert {"model_cfg", "preprocess_cfg"} <= set(cfg) and cfg["mmexplore"]["tokenizer"]["kind"] == "compact"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 30 and "train" in saved["eval"] and "alt" in saved["eval"]
    assert saved["objective"] == "negclip"  # "auto" with negatives: the shipped models' recipe
    enc = load_model(f"local-dir:{out}", "cpu")
    assert enc.info.embed_dim == 64 and enc.info.image_size == 32


def test_training_is_reproducible(tiny_run, tmp_path):
    out, _ = tiny_run
    cfg = TrainConfig(out=str(tmp_path), arch="mmexplore-shapes-xs", steps=3, batch_size=32, lr=2e-3,
                      warmup_steps=5, negatives=1, seed=3, eval_every=0, eval_scenes=5, render_size=64)
    train(cfg, log=lambda s: None)
    first = [e["loss"] for e in _steps(out)[:3]]
    again = [e["loss"] for e in _steps(tmp_path)]
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
    batch = make_batch(random.Random(1), 16, 1, 64, False, 0.5)
    assert len(batch) == 16 and batch.captions[0] == batch.negatives[1][0] and batch.captions[1] == batch.negatives[0][0]


def test_batches_follow_the_chosen_negative_kinds_and_positives():
    import random

    from mmexplore.data.shapes import scene_captions
    from mmexplore.training.data import make_batch, negative_weights_for

    batch = make_batch(random.Random(2), 24, 1, 32, True, negative_weights=negative_weights_for(["count_change"]),
                       positives=3)
    assert all(len(p) == 2 for p in batch.positives)
    for scene, cap, pos in zip(batch.scenes, batch.captions, batch.positives, strict=True):
        true = {c.text for c in scene_captions(scene)}
        assert set(pos) <= true
        if len(true - {cap}) >= 2:
            assert cap not in pos and len(set(pos)) == 2
    # Count swaps need count captions: the stream draws them when only that kind is asked for.
    assert sum(any(w in c for w in ("two", "three", "four")) for c in batch.captions) >= 3
    with pytest.raises(ValueError, match="unknown hard-negative kind"):
        negative_weights_for(["colour"])


def _run_cfg(out, **kw):
    base = dict(out=str(out), arch="mmexplore-shapes-xs", steps=20, batch_size=16, lr=2e-3, warmup_steps=3,
                seed=5, eval_every=10, eval_scenes=4, probe_scenes=16, snapshot_every=10, snapshot_scenes=6,
                render_size=64, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_twenty_steps_lower_the_loss_and_write_snapshots(tmp_path):
    events = []
    metrics = Trainer(_run_cfg(tmp_path, objective="negclip", negatives=1), callbacks=[events.append]).run()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 20
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 10, 20]
    for key in ("i2t@1", "t2i@1", "color_binding", "relation_order", "modality_gap", "dim_corr"):
        assert all(e[key] is not None for e in evals), key
    step = next(e for e in events if e["event"] == "step")
    assert {"i2t", "t2i"} <= set(step["terms"]) and step["tau"] == pytest.approx(1 / step["logit_scale"], rel=1e-2)
    assert {"lr", "samples_per_s", "hard_neg_acc"} <= set(step)
    snaps = sorted((tmp_path / "snapshots").glob("step_*.npz"))
    assert [p.name for p in snaps] == ["step_000000.npz", "step_000010.npz", "step_000020.npz"]
    with np.load(snaps[-1], allow_pickle=False) as z:
        assert z["image"].shape == (6, 64) and z["caption"].shape == (6, 64) and z["negative"].shape[0] > 0
        assert all(z[k].dtype != object for k in z.files)
    from mmexplore.training.probeset import load_replay

    replay = load_replay(tmp_path)
    assert list(replay.steps) == [0, 10, 20] and replay.similarity().shape[:2] == (3, 6)
    assert replay.projection().shape == (3, 12 + replay.negative.shape[1], 2)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["status"] == "finished" and run["step"] == 20 and metrics["steps"] == 20


def test_a_stopped_run_is_loadable_and_resume_continues_the_same_run(tmp_path):
    straight: list = []
    Trainer(_run_cfg(tmp_path / "a", snapshot_every=0), callbacks=[straight.append]).run()

    first: list = []
    trainer = Trainer(_run_cfg(tmp_path / "b", snapshot_every=0), callbacks=[first.append])

    def stop_at_10(ev):
        if ev["event"] == "step" and ev["step"] == 10:
            trainer.request_stop()

    trainer.add_callback(stop_at_10)
    trainer.run()
    assert first[-1]["event"] == "end" and first[-1]["status"] == "stopped" and first[-1]["step"] == 10
    assert json.loads((tmp_path / "b" / "run.json").read_text())["status"] == "stopped"
    load_model(f"local-dir:{tmp_path / 'b'}", "cpu")  # the stop left a loadable model

    second: list = []
    Trainer.resume(tmp_path / "b", callbacks=[second.append]).run()
    assert second[0]["event"] == "start" and second[0]["resumed"] and second[0]["step"] == 10
    a = {e["step"]: e["loss"] for e in straight if e["event"] == "step"}
    b = {e["step"]: e["loss"] for e in second if e["event"] == "step"}
    assert sorted(b) == list(range(11, 21))
    np.testing.assert_allclose([b[s] for s in b], [a[s] for s in b], atol=2e-3)
    logged = [e["step"] for e in _steps(tmp_path / "b")]
    assert logged == list(range(1, 21))  # one continuous log


def test_bad_settings_are_refused_with_a_message(tmp_path):
    from mmexplore.errors import InputError

    for kw, msg in [({"objective": "nope"}, "unknown objective"), ({"steps": 0}, "steps"),
                    ({"lr": float("nan")}, "lr"), ({"tau": 0.0}, "tau"), ({"regularizer": "l9"}, "regulariser"),
                    ({"negative_kinds": ["colour"]}, "hard-negative kind")]:
        with pytest.raises(InputError, match=msg):
            Trainer(_run_cfg(tmp_path, **kw))


def test_sigmoid_run_learns_its_bias_and_loads(tmp_path):
    events: list = []
    Trainer(_run_cfg(tmp_path, objective="sigmoid", steps=8, eval_every=0, snapshot_every=0),
            callbacks=[events.append]).run()
    steps = [e for e in events if e["event"] == "step"]
    columns = 16 * 2  # batch 16, one caption and one hard negative each
    first = json.loads((tmp_path / "open_clip_config.json").read_text())["model_cfg"]["init_logit_bias"]
    assert first == pytest.approx(-np.log(columns - 1))  # the prior log-odds of a positive
    assert all(e["logit_bias"] is not None for e in steps)
    assert {"pos", "neg"} <= set(steps[0]["terms"])
    enc = load_model(f"local-dir:{tmp_path}", "cpu")
    assert hasattr(enc.model, "logit_bias")


def test_fixed_tau_stays_fixed_and_the_regulariser_is_reported(tmp_path):
    events: list = []
    Trainer(_run_cfg(tmp_path, objective="clip", tau=0.05, regularizer="decorrelation", reg_weight=0.5, steps=6,
                     eval_every=0, snapshot_every=0), callbacks=[events.append]).run()
    steps = [e for e in events if e["event"] == "step"]
    assert all(e["logit_scale"] == pytest.approx(20.0, rel=1e-3) for e in steps)
    assert all("decorrelation" in e["terms"] and e["hard_neg_acc"] is None for e in steps)


def test_order_twins_are_the_same_objects_in_swapped_places():
    import random

    from mmexplore.data.shapes import canonical_caption, hard_negative, make_scene, relation_between
    from mmexplore.training.data import counterfactual_pair, make_batch, twin_weights_for

    weights = twin_weights_for(["relation_swap"])
    rng = random.Random(4)
    for seed in range(40):
        pair = counterfactual_pair(make_scene(seed, n_objects=2), rng, weights)
        if pair is None:
            continue
        scene, text, twin, twin_text = pair
        cap = canonical_caption(scene)
        assert text == cap.text
        i, rel, j = cap.relation
        # Same objects (shape, colour, size), places exchanged; the twin's caption is the order swap.
        assert [(o.shape, o.color, o.size) for o in twin.objects] == [(o.shape, o.color, o.size) for o in scene.objects]
        assert (twin.objects[i].cx, twin.objects[i].cy) == (scene.objects[j].cx, scene.objects[j].cy)
        assert (twin.objects[j].cx, twin.objects[j].cy) == (scene.objects[i].cx, scene.objects[i].cy)
        assert relation_between(twin.objects[j], twin.objects[i]) == rel
        assert twin_text == hard_negative(cap, "relation_swap", random.Random(0)).text
    batch = make_batch(random.Random(5), 16, 1, 32, True, 1.0, twin_weights=weights)
    for k in range(0, 16, 2):
        a, b = batch.scenes[k], batch.scenes[k + 1]
        assert [o.color for o in a.objects] == [o.color for o in b.objects]  # never a colour twin
        assert batch.negatives[k] == [batch.captions[k + 1]] and batch.negatives[k + 1] == [batch.captions[k]]
    colour = make_batch(random.Random(5), 8, 1, 32, True, 1.0, twin_weights=twin_weights_for(["color_swap"]))
    assert all([o.color for o in colour.scenes[k].objects] != [o.color for o in colour.scenes[k + 1].objects]
               for k in range(0, 8, 2))
    with pytest.raises(ValueError, match="unknown counterfactual-twin kind"):
        twin_weights_for(["size_swap"])


def test_order_negatives_are_object_order_swaps():
    import random

    from mmexplore.data.shapes import canonical_caption
    from mmexplore.training.data import make_batch, negative_weights_for

    batch = make_batch(random.Random(6), 32, 2, 32, True, negative_weights=negative_weights_for(["relation_swap"]))
    swapped = 0
    for scene, cap, negs in zip(batch.scenes, batch.captions, batch.negatives, strict=True):
        if len(scene.objects) < 2:
            continue
        canon = canonical_caption(scene)
        first, second = (scene.objects[k] for k in (canon.relation[0], canon.relation[2]))
        for neg in negs:
            # The same words, the two related objects named in each other's place.
            if neg == cap:  # two identical objects: no swap exists, and the loss masks the copy
                continue
            assert sorted(neg.replace(",", " ").split()) == sorted(cap.replace(",", " ").split())
            assert neg.index(second.color) < neg.index(first.color) or first.color == second.color
            swapped += 1
    assert swapped >= 30


def test_curriculum_draws_two_object_relation_scenes_first(tmp_path):
    from mmexplore.data.shapes import canonical_caption
    from mmexplore.training.data import ShapesStream

    stream = ShapesStream(seed=1, batch_size=24, negatives=1, render_size=32, with_scenes=True, curriculum_steps=3)
    early, late = stream(2), stream(3)
    assert all(len(s.objects) == 2 for s in early.scenes)
    # Every early caption is the scene's relation caption (with or without sizes; maybe an unknown lead-in).
    for scene, cap in zip(early.scenes, early.captions, strict=True):
        assert any(cap.endswith(canonical_caption(scene, with_size=w).text) for w in (True, False))
        assert canonical_caption(scene).relation is not None
    assert {len(s.objects) for s in late.scenes} != {2}
    with pytest.raises(Exception, match="curriculum_steps"):
        _run_cfg(tmp_path, curriculum_steps=-1).validate()


def test_relation_word_negatives_flip_the_relation_and_keep_the_order():
    import random

    from mmexplore.data.shapes import OPPOSITE_RELATION, canonical_caption, hard_negative, hard_negatives, make_scene

    made = 0
    for seed in range(30):
        cap = canonical_caption(make_scene(seed, n_objects=3), prefix="a picture of ")
        neg = hard_negative(cap, "relation_word", random.Random(0))
        rel = cap.relation[1]
        assert neg is not None and neg.kind == "relation_word"
        # The same two phrases in the same places, the relation replaced by its opposite, once.
        assert neg.text == cap.text.replace(f" {rel} ", f" {OPPOSITE_RELATION[rel]} ", 1)
        made += 1
        # Opt-in: never among the kinds every evaluation reports.
        assert "relation_word" not in {n.kind for n in hard_negatives(cap)}
    assert made == 30
    assert hard_negative(canonical_caption(make_scene(3, n_objects=1)), "relation_word", random.Random(0)) is None


def test_twin_groups_are_one_pair_of_objects_in_different_layouts():
    import random

    from mmexplore.data.shapes import canonical_caption, hard_negative
    from mmexplore.training.data import make_batch

    batch = make_batch(random.Random(7), 20, 1, 32, True, 0.8, twin_group=4)
    assert len(batch) == 20
    for g in range(0, 16, 4):  # 16 = 0.8 × 20 rounded down to whole groups of 4
        group = batch.scenes[g:g + 4]
        objects = {tuple((o.shape, o.color, o.size) for o in s.objects) for s in group}
        layouts = {tuple((o.cx, o.cy) for o in s.objects) for s in group}
        assert len(objects) == 1 and len(layouts) == 4  # the same two objects, four layouts
        assert len({s.seed for s in group}) == 1  # same colour jitter and noise: only places differ
        for scene, cap, negs in zip(group, batch.captions[g:g + 4], batch.negatives[g:g + 4], strict=True):
            assert cap == canonical_caption(scene).text
            swap = hard_negative(canonical_caption(scene), "relation_swap", random.Random(0))
            assert negs == [swap.text if swap is not None else cap]
    assert all(len(s.objects) >= 1 for s in batch.scenes[16:])
