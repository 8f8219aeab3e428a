import numpy as np
import pytest

from mmexplore.metrics.similarity import (
    cosine_matrix,
    infonce_loss,
    recall_at_k,
    similarity_report,
)


def _direct(img, txt, scale):
    """Plain numpy reference of docs/design.md §4, written independently of the module."""
    a = img / np.linalg.norm(img, axis=1, keepdims=True)
    b = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    cos = a @ b.T
    logits = scale * cos
    e_r = np.exp(logits - logits.max(1, keepdims=True))
    p_i2t = e_r / e_r.sum(1, keepdims=True)
    e_c = np.exp(logits - logits.max(0, keepdims=True))
    p_t2i = e_c / e_c.sum(0, keepdims=True)
    n = len(img)
    ce_i = -np.mean([np.log(p_i2t[k, k]) for k in range(n)])
    ce_t = -np.mean([np.log(p_t2i[k, k]) for k in range(n)])
    return cos, logits, p_i2t, p_t2i, 0.5 * (ce_i + ce_t)


def test_report_matches_direct_numpy():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(6, 16)), rng.normal(size=(6, 16))
    rep = similarity_report(img, txt, logit_scale=20.0)
    cos, logits, p_i2t, p_t2i, loss = _direct(img, txt, 20.0)
    np.testing.assert_allclose(rep.cosine, cos, atol=1e-6)
    np.testing.assert_allclose(rep.logits, logits, atol=1e-4)
    np.testing.assert_allclose(rep.probs_i2t, p_i2t, atol=1e-6)
    np.testing.assert_allclose(rep.probs_t2i, p_t2i, atol=1e-6)
    assert rep.infonce_loss == pytest.approx(loss, abs=1e-5)
    np.testing.assert_allclose(rep.probs_i2t.sum(1), 1.0)
    np.testing.assert_allclose(rep.probs_t2i.sum(0), 1.0)


def test_recall_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.7, 0.1], [0.1, 0.2, 0.3]])
    pairs = np.eye(3, dtype=bool)
    assert recall_at_k(scores, pairs, 1) == pytest.approx(2 / 3)  # row 1 ranks column 0 first
    assert recall_at_k(scores, pairs, 2) == pytest.approx(1.0)
    assert recall_at_k(scores, pairs, 99) == 1.0  # K clipped to the number of columns


def test_many_to_many_pairs():
    # Image 0 has two true captions; either one at rank 1 counts as a hit.
    img = np.array([[1.0, 0.0], [0.0, 1.0]])
    txt = np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]])
    pairs = np.array([[True, True, False], [False, False, True]])
    rep = similarity_report(img, txt, logit_scale=10.0, pairs=pairs)
    assert rep.recall["i2t@1"] == 1.0
    assert rep.recall["t2i@1"] == 1.0
    # Soft targets: image 0 spreads its target over its two captions.
    lp = rep.logits - np.log(np.exp(rep.logits).sum(1, keepdims=True))
    i2t = -(0.5 * lp[0, 0] + 0.5 * lp[0, 1] + lp[1, 2]) / 2
    lpt = rep.logits - np.log(np.exp(rep.logits).sum(0, keepdims=True))
    t2i = -(lpt[0, 0] + lpt[0, 1] + lpt[1, 2]) / 3
    assert rep.infonce_loss == pytest.approx(0.5 * (i2t + t2i), abs=1e-6)


def test_no_pairs_gives_nan_and_json_none():
    rep = similarity_report(np.eye(2), np.eye(3)[:, :2], logit_scale=1.0)
    assert np.isnan(rep.infonce_loss)
    assert rep.to_dict()["infonce_loss"] is None


def test_dimension_mismatch_is_reported():
    with pytest.raises(ValueError, match="dims differ"):
        cosine_matrix(np.ones((2, 3)), np.ones((2, 4)))


def test_infonce_is_low_for_perfect_alignment():
    e = np.eye(4)
    assert infonce_loss(100 * e, np.eye(4, dtype=bool)) < 1e-6


def test_sigmoid_rule_matches_open_clip_siglip_loss():
    """Sigmoid rule: pairwise σ(s·cos + b) and the loss of open_clip's own SigLipLoss."""
    import torch
    from open_clip.loss import SigLipLoss
    from scipy.special import expit

    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    scale, bias = 10.0, -4.0
    rep = similarity_report(img, txt, logit_scale=scale, logit_bias=bias)
    cos = cosine_matrix(img, txt)
    assert rep.rule == "sigmoid" and rep.loss_name == "sigmoid" and rep.logit_bias == bias
    np.testing.assert_allclose(rep.logits, scale * cos + bias, atol=1e-9)
    np.testing.assert_allclose(rep.probs_pair, expit(scale * cos + bias), atol=1e-12)
    a = torch.nn.functional.normalize(torch.tensor(img), dim=-1)
    b = torch.nn.functional.normalize(torch.tensor(txt), dim=-1)
    ref = SigLipLoss()(a, b, torch.tensor(scale, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64))
    assert rep.sigmoid_loss == pytest.approx(float(ref), rel=1e-6)  # embeddings are float32 here
    assert rep.loss == rep.sigmoid_loss
    # InfoNCE is not this model's objective: not reported; recall is the same as under softmax.
    assert np.isnan(rep.infonce_loss) and rep.to_dict()["infonce_loss"] is None
    assert rep.recall == similarity_report(img, txt, logit_scale=scale).recall
    d = rep.to_dict()
    assert d["rule"] == "sigmoid" and d["loss_name"] == "sigmoid" and d["loss"] == pytest.approx(rep.sigmoid_loss)


def test_sigmoid_loss_counts_unmarked_cells_as_negatives():
    logits = np.array([[3.0, -2.0, 0.5], [-1.0, 4.0, 0.0]])
    pairs = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    z = np.where(pairs, 1.0, -1.0)
    expected = -np.log(1 / (1 + np.exp(-z * logits))).sum() / 2
    from mmexplore.metrics.similarity import sigmoid_loss

    assert sigmoid_loss(logits, pairs) == pytest.approx(expected, rel=1e-12)


def test_softmax_rule_has_no_sigmoid_fields():
    rep = similarity_report(np.eye(3), np.eye(3), logit_scale=10.0)
    assert rep.rule == "softmax" and rep.probs_pair is None and np.isnan(rep.sigmoid_loss)
    assert rep.loss == rep.infonce_loss and rep.to_dict()["loss_name"] == "infonce"
