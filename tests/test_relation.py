"""The semantic relation label: table, chunker, estimators, grounding, generator, calibration, eval, CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from mmexplore.relation import CLASSES, COMPONENTS, class_probabilities, label_for, parse_text
from mmexplore.relation.taxonomy import CMI_VALUES, SC_VALUES, STAT_VALUES, components_for

EXPECTED_TABLE = {
    (0, 0, "0"): "Uncorrelated",
    (0, 1, "0"): "Interdependent",
    (1, 1, "0"): "Complementary",
    (1, 1, "T"): "Illustration",
    (1, 1, "I"): "Anchorage",
    (1, -1, "0"): "Contrasting",
    (1, -1, "T"): "Bad Illustration",
    (1, -1, "I"): "Bad Anchorage",
}


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize(("triple", "name"), sorted(EXPECTED_TABLE.items()))
def test_table_maps_each_valid_triple(triple, name):
    assert label_for(*triple) == name
    assert components_for(name) == triple


def test_every_other_triple_is_invalid():
    invalid = [(c, s, t) for c in CMI_VALUES for s in SC_VALUES for t in STAT_VALUES if (c, s, t) not in EXPECTED_TABLE]
    assert len(invalid) == 10
    for triple in invalid:
        with pytest.raises(ValueError, match="not a class"):
            label_for(*triple)
    with pytest.raises(ValueError):
        label_for(1, 1, "X")


def test_class_probabilities_follow_the_components():
    p = class_probabilities({0: 0.05, 1: 0.95}, {1: 0.1, 0: 0.0, -1: 0.9}, {"0": 0.1, "T": 0.1, "I": 0.8})
    assert abs(sum(p.values()) - 1) < 1e-9
    assert max(p, key=p.get) == "Bad Anchorage"
    p = class_probabilities({0: 0.9, 1: 0.1}, {1: 0.8, 0: 0.2, -1: 0.0}, {"0": 0.9, "T": 0.05, "I": 0.05})
    assert max(p, key=p.get) == "Interdependent"
    assert p["Contrasting"] == 0.0  # SC = −1 had no mass


# --------------------------------------------------------------------------- chunker


def test_chunker_canonical_caption_with_relation():
    p = parse_text("A small blue square left of a large yellow triangle.")
    assert [(x.size, x.color, x.shape) for x in p.phrases] == [("small", "blue", "square"), ("large", "yellow", "triangle")]
    assert [(r.subject, r.relation, r.object) for r in p.relations] == [(0, "left of", 1)]
    assert not p.deictic


def test_chunker_lists_counts_plurals_synonyms_and_punctuation():
    p = parse_text("There are 3 big green balls, a tiny crimson box, and two triangles to the right of it!")
    got = [(x.canonical, x.count) for x in p.phrases]
    assert got == [("three large green circles", 3), ("a small red square", 1), ("two triangles", 2)]
    p = parse_text("A round red shape under a triangle")
    assert p.phrases[0].shape == "circle" and p.phrases[0].color == "red"
    assert p.relations[0].relation == "below"
    p = parse_text("The tiny yellow triangle is on top of the big green square.")
    assert p.relations[0].relation == "above"


def test_chunker_generic_mentions_and_false_friends():
    p = parse_text("Circles have no corners. Squares tile a floor. The rest is in the box.")
    assert [x.canonical for x in p.phrases] == ["circles", "squares"]
    assert all(x.generic for x in p.phrases)  # kinds in general, not depicted objects
    assert not parse_text("She kicked the ball into the box.").phrases


def test_chunker_deictic_and_unrelated_text():
    for text in ("This is the pattern to copy.", "Look here!", "Pictured: the final arrangement.", "Copy this exactly"):
        p = parse_text(text)
        assert p.deictic and not p.phrases, text
    p = parse_text("The stock market fell sharply today.")
    assert not p.deictic and not p.phrases
    assert parse_text("").n_words == 0


# --------------------------------------------------------------------------- grounding on synthetic readings


def _reading(objects, scale_peak=1.0):
    """A fake ImageReading whose objects read as the given (size, colour, shape, x, y)."""
    from mmexplore.relation.grounding import VOCAB, ImageReading

    cos = np.zeros((len(objects), len(VOCAB)))
    for k, (z, c, s, _, _) in enumerate(objects):
        cos[k, VOCAB.index((z, c, s))] = scale_peak
    pos = np.array([[x, y] for *_, x, y in objects], dtype=float)
    return ImageReading(pos, cos, np.zeros_like(cos), np.full(len(objects), 0.05))


SCENE = [("large", "red", "circle", 0.25, 0.5), ("large", "blue", "square", 0.75, 0.5)]


def test_grounding_depicted_contradicted_and_far_phrases():
    from mmexplore.relation.grounding import ground

    rd = _reading(SCENE)
    g = ground("a red circle left of a blue square", rd, scale=20.0)
    assert all(p["p_depicted"] > 0.9 for p in g.phrases)
    assert g.features["contra_max"] < 0.1 and g.features["image_coverage"] > 0.9
    g = ground("a blue circle left of a red square", rd, scale=20.0)
    assert g.features["contra_attr"] > 0.9
    assert {c["kind"] for c in g.contradictions} == {"attribute"}
    g = ground("a green triangle", rd, scale=20.0)  # two edits from everything: unrelated, not contradicting
    assert g.features["dep_max"] < 0.1 and g.features["contra_max"] < 0.1


def test_grounding_relation_and_count_contradictions():
    from mmexplore.relation.grounding import ground

    rd = _reading(SCENE)
    g = ground("a blue square left of a red circle", rd, scale=20.0)
    assert g.features["contra_relation"] > 0.9
    assert any(c["kind"] == "relation" for c in g.contradictions)
    g = ground("two red circles and a blue square", rd, scale=20.0)
    assert g.features["contra_count"] > 0.9
    g = ground("a red circle", rd, scale=20.0)
    assert 0.4 < g.features["image_coverage"] < 0.6  # names one of the two objects


def test_grounding_deictic_text_has_no_phrases():
    from mmexplore.relation.grounding import FEATURE_NAMES, ground

    g = ground("This is how it should look.", _reading(SCENE), scale=20.0)
    assert g.features["deictic"] == 1.0 and g.features["has_phrases"] == 0.0
    assert g.vector().shape == (len(FEATURE_NAMES),)


def test_perturbations_change_one_thing():
    from mmexplore.relation.perturb import canonical_text, perturbations

    p = parse_text("A red ball to the left of a blue box.")
    assert canonical_text(p) == "a red circle left of a blue square"
    texts = dict(perturbations(p))
    assert "a blue square left of a red circle" in texts
    assert "a green circle left of a blue square" in texts
    assert canonical_text(p) not in texts


# --------------------------------------------------------------------------- estimators on clear cases


def _features(**values):
    from mmexplore.relation.grounding import FEATURE_NAMES

    x = np.zeros(len(FEATURE_NAMES))
    for k, v in values.items():
        x[FEATURE_NAMES.index(k)] = v
    return x


def test_component_estimators_on_clear_cases():
    from mmexplore.relation.estimators import CMIEstimator, SCEstimator, STATEstimator

    rng = np.random.default_rng(0)
    agree = [_features(has_phrases=1, dep_max=0.9 + 0.1 * rng.random(), dep_mean=0.9) for _ in range(20)]
    contra = [_features(has_phrases=1, dep_max=0.3, contra_max=0.9 + 0.1 * rng.random(), contra_attr=0.9) for _ in range(20)]
    deictic = [_features(deictic=1) for _ in range(20)]
    unrelated = [_features(has_phrases=float(rng.random() < 0.5)) for _ in range(20)]
    X = np.stack(agree + contra + deictic + unrelated)
    cmi = CMIEstimator().fit(X, [1] * 40 + [0] * 40)
    sc = SCEstimator().fit(X, [1] * 20 + [-1] * 20 + [1] * 20 + [0] * 20)
    assert list(cmi.predict(X)) == [1] * 40 + [0] * 40
    assert list(sc.predict(X)) == [1] * 20 + [-1] * 20 + [1] * 20 + [0] * 20
    caption = [_features(has_phrases=1, image_coverage=1.0, log_words=2.0, n_sentences=1, concept_word_share=0.9)] * 10
    passage = [_features(has_phrases=1, image_coverage=1.0, log_words=4.0, n_sentences=4, concept_word_share=0.1)] * 10
    partial = [_features(has_phrases=1, image_coverage=0.4, log_words=2.5, n_sentences=2, concept_word_share=0.5)] * 10
    Xs = np.stack(caption + passage + partial)
    stat = STATEstimator().fit(Xs, ["I"] * 10 + ["T"] * 10 + ["0"] * 10)
    assert list(stat.predict(Xs)) == ["I"] * 10 + ["T"] * 10 + ["0"] * 10
    with pytest.raises(RuntimeError, match="not fitted"):
        CMIEstimator().predict_proba(X)
    again = type(stat).from_dict(json.loads(json.dumps(stat.to_dict())))
    np.testing.assert_allclose(again.predict_proba(Xs), stat.predict_proba(Xs))


# --------------------------------------------------------------------------- regions and the generator


def test_regions_find_the_objects_in_both_drawing_styles():
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene
    from mmexplore.data.shapes_alt import render_scene_alt
    from mmexplore.relation.regions import propose_regions

    ok = 0
    for s in range(20):
        scene = make_scene(HELD_OUT_SEED_START + 9000 + s)
        ok += len(propose_regions(render_scene(scene, 128))) == len(scene.objects)
        ok += len(propose_regions(render_scene_alt(scene, style_seed=s))) == len(scene.objects)
    assert ok >= 36
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    from PIL import Image

    assert propose_regions(Image.fromarray(noise)) == []  # not a drawing: whole-image fallback


def test_generator_covers_all_classes_with_disjoint_seeds():
    from mmexplore.data.shapes import HELD_OUT_SEED_START
    from mmexplore.relation.dataset import generate_pairs

    train = generate_pairs("train", 3, size=64)
    test = generate_pairs("test", 3, size=64)
    assert [p.label for p in train] == [c for c in CLASSES for _ in range(3)]
    assert all(p.scene.seed < HELD_OUT_SEED_START for p in train)
    assert all(p.scene.seed >= HELD_OUT_SEED_START for p in test)
    for p in train + test:
        parsed = parse_text(p.text)
        cmi, _sc, stat = COMPONENTS[p.label]
        if p.label == "Interdependent":
            assert parsed.deictic
        if cmi == 1:
            assert parsed.phrases, p.text
        if stat == "T":
            assert parsed.n_sentences >= 3
    with pytest.raises(ValueError):
        generate_pairs("dev", 1)


def test_score_labels_confusion_and_macro():
    from mmexplore.relation.metrics import score_labels

    truth = ["Anchorage", "Anchorage", "Uncorrelated", "Bad Anchorage"]
    pred = ["Anchorage", "Bad Anchorage", "Uncorrelated", "Bad Anchorage"]
    r = score_labels(truth, pred)
    assert r["macro_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert r["components"]["sc"] == pytest.approx(0.75) and r["components"]["cmi"] == 1.0
    assert np.asarray(r["confusion"]).sum() == 4 and np.asarray(r["confusion"]).shape == (8, 8)


# --------------------------------------------------------------------------- with the bundled model


def test_calibration_file_loads_and_predicts():
    from mmexplore.relation import calibration_path, load_calibration

    assert calibration_path("bundled").exists()
    cal = load_calibration("bundled")
    assert cal.scale > 0 and cal.meta["n_pairs"] >= 8
    X = np.stack([_features(has_phrases=1, dep_max=1.0)] * 2)
    p = cal.classifier.predict_proba(X)
    assert p.shape == (2, 8) and np.allclose(p.sum(axis=1), 1)
    fallback = load_calibration("ViT-B-32:some-tag")
    assert fallback.meta["fallback"] is True


def test_eval_on_a_small_fixed_set_beats_chance(encoder):
    from mmexplore.relation.evaluate import evaluate_relation

    rep = evaluate_relation(encoder, n_per_class=4, handset=None)
    r = rep["generated_test"]
    assert r["n_pairs"] == 32
    assert r["macro_accuracy"] >= 0.5  # chance is 1/8
    assert r["components"]["cmi"] >= 0.8


def _scene_png(tmp_path):
    from mmexplore.data.shapes import Scene, ShapeObject, render_scene

    red = ShapeObject("circle", "red", "large", 0.28, 0.5, 0.16)
    blue = ShapeObject("square", "blue", "large", 0.72, 0.5, 0.16)
    scene = Scene((red, blue))
    path = tmp_path / "scene.png"
    render_scene(scene, 128).save(path)
    return path


def test_cli_done_when_bad_anchorage(tmp_path, capsys, encoder):
    from mmexplore.cli import main

    img = _scene_png(tmp_path)
    assert main(["relation", "--image", str(img), "--text", "a blue circle left of a red square", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"label", "cmi", "sc", "stat", "probabilities", "evidence"} <= set(out)
    assert set(out["probabilities"]) == set(CLASSES)
    assert out["label"] == "Bad Anchorage" and (out["cmi"], out["sc"], out["stat"]) == (1, -1, "I")
    assert out["evidence"]["contradictions"]


def test_cli_pairs_file_and_bad_input(tmp_path, capsys, encoder):
    from mmexplore.cli import main

    img = _scene_png(tmp_path)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,text\nscene.png,This is the pattern to copy.\nscene.png,a red circle left of a blue square\n")
    assert main(["relation", "--pairs", str(pairs), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert len(res) == 2 and res[0]["label"] == "Interdependent" and res[0]["image"].endswith("scene.png")
    assert main(["relation", "--image", str(img), "--json"]) == 2
    assert "--text" in capsys.readouterr().err
    assert main(["relation", "--image", str(tmp_path / "missing.png"), "--text", "a red circle"]) == 2
    assert "missing.png" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("picture,caption\nscene.png,hi\n")
    assert main(["relation", "--pairs", str(bad)]) == 2
    assert "bad.csv" in capsys.readouterr().err


def test_cli_fit_supervised_mode(tmp_path, capsys, encoder):
    from mmexplore.cli import main
    from mmexplore.relation import load_calibration

    _scene_png(tmp_path)
    rows = ["image,text,label"]
    texts = {
        "Anchorage": ["a red circle left of a blue square", "a large red circle and a large blue square"],
        "Interdependent": ["This is the pattern to copy.", "Look at this one."],
        "Uncorrelated": ["The train was late again.", "Interest rates stay where they are."],
    }
    for label, ts in texts.items():
        rows += [f"scene.png,{t},{label}" for t in ts]
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("\n".join(rows) + "\n")
    out = tmp_path / "sup.json"
    assert main(["relation", "fit", "--pairs", str(labelled), "--out", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_pairs"] == 6 and out.exists()
    cal = load_calibration(path=out)
    assert cal.classifier.mode == "supervised"
    one = tmp_path / "one.csv"
    one.write_text("image,text,label\nscene.png,a red circle,Anchorage\n")
    assert main(["relation", "fit", "--pairs", str(one), "--out", str(out)]) == 2
    assert "two classes" in capsys.readouterr().err


def test_generated_pair_is_reproducible():
    from mmexplore.relation.dataset import make_pair

    a = make_pair("Contrasting", 40_000_123, size=64)
    b = make_pair("Contrasting", 40_000_123, size=64)
    assert (a is None and b is None) or (a.text == b.text and a.scene == b.scene)
    random.seed(0)  # make_pair never uses the global RNG
    c = make_pair("Contrasting", 40_000_123, size=64)
    assert (a is None and c is None) or a.text == c.text


def test_relation_reads_the_shapes_worlds_one_vocabulary():
    import ast
    import itertools
    from pathlib import Path

    from mmexplore.data import shapes
    from mmexplore.relation import grounding, perturb

    assert tuple(itertools.product(shapes.SIZES, shapes.COLORS, shapes.SHAPES)) == grounding.VOCAB
    assert perturb.VALUES is shapes.ATTRIBUTE_VALUES is grounding.ATTRIBUTE_VALUES
    # No relation module spells the vocabulary out again.
    for path in (Path(grounding.__file__).parent).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.List):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                assert not ({"circle", "square", "triangle"} <= words or {"red", "green", "blue", "yellow"} <= words), \
                    f"{path.name}:{node.lineno} declares the vocabulary again"


def test_relation_estimators_are_scikit_learn_estimators_and_choose_c_cross_validates():
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    from mmexplore.relation.calibration import choose_C
    from mmexplore.relation.estimators import CMIEstimator, RelationClassifier
    from mmexplore.relation.grounding import FEATURE_NAMES
    from mmexplore.relation.metrics import score_labels
    from mmexplore.relation.taxonomy import CLASSES

    assert clone(RelationClassifier(mode="supervised", C=3.0)).get_params() == {"mode": "supervised", "C": 3.0}
    assert clone(CMIEstimator(C=0.3)).C == 0.3
    rng = np.random.default_rng(0)
    y = [CLASSES[k % 8] for k in range(120)]
    X = rng.standard_normal((120, len(FEATURE_NAMES))) + np.array([[CLASSES.index(c) * 0.3] for c in y])
    best, scores = choose_C(X, y, grid=(0.1, 1.0, 10.0), folds=3)
    # The same folds by hand: scikit-learn's cross_val_score must give exactly these means.
    ya = np.asarray(y)
    for C in (0.1, 1.0, 10.0):
        accs = [score_labels(list(ya[te]), RelationClassifier(C=C).fit(X[tr], list(ya[tr])).predict(X[te]))["macro_accuracy"]
                for tr, te in StratifiedKFold(3, shuffle=True, random_state=0).split(X, ya)]
        assert scores[C] == np.mean(accs)
    assert best in scores and 0.0 < scores[best] <= 1.0
