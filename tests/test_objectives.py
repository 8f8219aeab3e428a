"""Each objective equals a direct computation of its formula on a tiny batch (loops, numpy)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmexplore.training.objectives import (  # noqa: E402
    OBJECTIVES,
    REGULARIZERS,
    LossInputs,
    clip_loss,
    decorrelation,
    mean_abs_dim_corr,
    multi_positive_loss,
    negclip_loss,
    sigmoid_loss,
)


def unit(rng, n, d=5):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def T(x):
    return torch.tensor(x, dtype=torch.float64)


def lse(v):
    v = np.asarray(v, float)
    m = v.max()
    return m + math.log(np.exp(v - m).sum())


S = 7.0


def test_registry_lists_every_objective_with_its_formula():
    assert {"clip", "negclip", "multi-positive", "sigmoid"} <= set(OBJECTIVES)
    for obj in OBJECTIVES.values():
        assert "L" in obj.formula and obj.summary
    assert "decorrelation" in REGULARIZERS and "C" in REGULARIZERS["decorrelation"].formula


def test_clip_is_symmetric_infonce():
    rng = np.random.default_rng(0)
    x, y = unit(rng, 4), unit(rng, 4)
    caps = ["a", "b", "c", "d"]
    got = clip_loss(LossInputs(img=T(x), txt=T(y), scale=T(S), captions=caps))
    sim = S * x @ y.T
    i2t = np.mean([-(sim[i, i] - lse(sim[i])) for i in range(4)])
    t2i = np.mean([-(sim[j, j] - lse(sim[:, j])) for j in range(4)])
    assert float(got["loss"]) == pytest.approx(0.5 * (i2t + t2i), abs=1e-9)
    assert float(got["i2t"]) == pytest.approx(i2t, abs=1e-9)


def test_identical_captions_are_masked_not_pushed_apart():
    rng = np.random.default_rng(1)
    x, y = unit(rng, 3), unit(rng, 3)
    caps = ["a red circle", "a red circle", "a blue square"]
    got = float(clip_loss(LossInputs(img=T(x), txt=T(y), scale=T(S), captions=caps))["loss"])
    sim = S * x @ y.T
    # Image 0's row leaves out column 1 (the same text), image 1's leaves out column 0; columns alike.
    keep = [[0, 2], [1, 2], [0, 1, 2]]
    i2t = np.mean([-(sim[i, i] - lse(sim[i, keep[i]])) for i in range(3)])
    t2i = np.mean([-(sim[j, j] - lse(sim[keep[j], j])) for j in range(3)])
    assert got == pytest.approx(0.5 * (i2t + t2i), abs=1e-9)


def test_negclip_adds_hard_negatives_to_the_image_to_text_softmax_only():
    rng = np.random.default_rng(2)
    x, y, n = unit(rng, 3), unit(rng, 3), unit(rng, 3)
    caps = ["a", "b", "c"]
    negs = [["a'"], ["b'"], ["c'"]]
    got = negclip_loss(LossInputs(img=T(x), txt=T(y), neg=T(n), scale=T(S), captions=caps, neg_texts=negs))
    sim, simn = S * x @ y.T, S * x @ n.T
    i2t = np.mean([-(sim[i, i] - lse(np.r_[sim[i], simn[i]])) for i in range(3)])
    t2i = np.mean([-(sim[j, j] - lse(sim[:, j])) for j in range(3)])
    assert float(got["loss"]) == pytest.approx(0.5 * (i2t + t2i), abs=1e-9)
    plain = clip_loss(LossInputs(img=T(x), txt=T(y), scale=T(S), captions=caps))
    assert float(got["i2t"]) > float(plain["i2t"])  # negatives only make the task harder


def test_a_negative_equal_to_the_true_caption_is_masked():
    rng = np.random.default_rng(3)
    x, y, n = unit(rng, 2), unit(rng, 2), unit(rng, 2)
    caps = ["a", "b"]
    with_same = negclip_loss(LossInputs(img=T(x), txt=T(y), neg=T(n), scale=T(S), captions=caps,
                                        neg_texts=[["a"], ["b'"]]))
    sim, simn = S * x @ y.T, S * x @ n.T
    # Image 0's row drops the negative "a" (its own caption) but keeps image 1's negative "b'".
    i2t = np.mean([-(sim[0, 0] - lse(np.r_[sim[0], simn[0, 1]])), -(sim[1, 1] - lse(np.r_[sim[1], simn[1]]))])
    assert float(with_same["i2t"]) == pytest.approx(i2t, abs=1e-9)


def test_multi_positive_matches_each_caption_on_its_own():
    rng = np.random.default_rng(4)
    b = 3
    x, y, p = unit(rng, b), unit(rng, b), unit(rng, b)  # two positives per image: y_i and p_i
    caps, pos = ["a", "b", "c"], [["a2"], ["b2"], ["c2"]]
    got = multi_positive_loss(LossInputs(img=T(x), txt=T(y), pos=T(p), scale=T(S), captions=caps, pos_texts=pos))
    cols = np.r_[y, p]  # columns: y_0..y_2, p_0..p_2
    owner = [0, 1, 2, 0, 1, 2]
    sim = S * x @ cols.T
    i2t, t2i = [], []
    for c in range(2 * b):
        i = owner[c]
        keep = [j for j in range(2 * b) if owner[j] != i or j == c]  # the other positive of i is left out
        i2t.append(-(sim[i, c] - lse(sim[i, keep])))
        t2i.append(-(sim[i, c] - lse(sim[:, c])))
    assert float(got["i2t"]) == pytest.approx(np.mean(i2t), abs=1e-9)
    assert float(got["t2i"]) == pytest.approx(np.mean(t2i), abs=1e-9)
    assert float(got["loss"]) == pytest.approx(0.5 * (np.mean(i2t) + np.mean(t2i)), abs=1e-9)
    # Not one soft target sharing the mass (1/2 each) over the full row:
    soft = np.mean([-(0.5 * (sim[i, i] + sim[i, b + i])) + lse(sim[i]) for i in range(b)])
    assert abs(float(got["i2t"]) - soft) > 1e-3


def test_sigmoid_is_the_pairwise_siglip_loss_with_its_bias():
    rng = np.random.default_rng(5)
    x, y, n = unit(rng, 3), unit(rng, 3), unit(rng, 3)
    caps, negs = ["a", "b", "a"], [["x"], ["y"], ["z"]]
    bias = -2.5
    got = sigmoid_loss(LossInputs(img=T(x), txt=T(y), neg=T(n), scale=T(S), bias=T(bias), captions=caps,
                                  neg_texts=negs))
    cols, texts = np.r_[y, n], [*caps, "x", "y", "z"]
    total = 0.0
    for i in range(3):
        for j in range(6):
            z = 1.0 if texts[j] == caps[i] else -1.0  # "a" is true of images 0 and 2
            total += math.log1p(math.exp(-z * (S * x[i] @ cols[j] + bias)))
    assert float(got["loss"]) == pytest.approx(total / 3, abs=1e-9)
    assert float(got["pos"] + got["neg"]) == pytest.approx(total / 3, abs=1e-9)


def test_decorrelation_is_the_mean_squared_off_diagonal_correlation():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(16, 4)), rng.normal(size=(16, 4))

    def ref(z):
        c = np.corrcoef(z, rowvar=False)
        return ((c - np.diag(np.diag(c))) ** 2).sum() / (4 * 3)

    assert float(decorrelation(T(a), T(b))) == pytest.approx(0.5 * (ref(a) + ref(b)), rel=1e-4)
    same = np.repeat(rng.normal(size=(16, 1)), 4, axis=1)
    assert float(decorrelation(T(same), T(same))) == pytest.approx(1.0, abs=1e-3)
    assert mean_abs_dim_corr(same) == pytest.approx(1.0, abs=1e-6)
