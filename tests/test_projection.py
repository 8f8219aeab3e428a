"""Projection core, modality-gap maths, CCA (vs scikit-learn and a planted latent) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmexplore.cli import main
from mmexplore.errors import InputError
from mmexplore.projection import (
    CCA,
    Projector,
    cca_retrieval,
    center_modalities,
    display_sample,
    gap_report,
    get_method,
    list_methods,
    modality_gap,
    project_joint,
    shift_along_gap,
)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cones(n=40, d=16, offset=2.0, seed=0):
    """Paired image/text embeddings in two cones around different directions (a modality gap)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, d))
    bias = np.zeros(d)
    bias[0] = offset
    img = unit(shared + bias + 0.3 * rng.normal(size=(n, d)))
    txt = unit(shared - bias + 0.3 * rng.normal(size=(n, d)))
    return img.astype(np.float32), txt.astype(np.float32)


# ----------------------------------------------------------------------------- gap maths
def test_gap_matches_definition_and_centring_removes_it():
    img, txt = cones()
    expected = np.linalg.norm(img.mean(0) - txt.mean(0))
    assert modality_gap(img, txt) == pytest.approx(expected, rel=1e-6)
    assert modality_gap(img, txt) > 0.5  # the planted gap is large
    c_img, c_txt = center_modalities(img, txt)
    assert modality_gap(c_img, c_txt) < 1e-6
    np.testing.assert_allclose(c_img.mean(0), 0, atol=1e-6)
    # Centring moves each cloud rigidly: within-modality differences are unchanged.
    np.testing.assert_allclose(c_img[1] - c_img[0], img[1] - img[0], atol=1e-6)


def test_shift_along_gap_closes_and_widens():
    img, txt = cones()
    g0 = modality_gap(img, txt)
    closed = modality_gap(*shift_along_gap(img, txt, 0.5, renormalize=False))
    assert closed < 1e-6  # λ = ½ moves both means to the midpoint
    assert modality_gap(*shift_along_gap(img, txt, 0.25)) < g0
    assert modality_gap(*shift_along_gap(img, txt, -0.25)) > g0
    s_img, _ = shift_along_gap(img, txt, 0.3)
    np.testing.assert_allclose(np.linalg.norm(s_img, axis=1), 1.0, atol=1e-5)


def test_pair_vs_random_cosine_is_exact():
    img, txt = cones(n=12)
    pairs = np.eye(12, dtype=bool)
    pairs[0, 3] = True  # many-to-many: image 0 has two captions
    rep = gap_report(img, txt, pairs)
    cos = unit(img) @ unit(txt).T
    assert rep.pair_cosine == pytest.approx(cos[pairs].mean(), abs=1e-6)
    assert rep.random_cosine == pytest.approx(cos[~pairs].mean(), abs=1e-6)
    assert rep.n_pairs == 13
    assert rep.pair_cosine > rep.random_cosine + 0.2
    assert set(rep.to_dict()) >= {"gap", "pair_cosine", "random_cosine"}


# ----------------------------------------------------------------------------- registry / projector
def test_registry_and_unknown_method():
    assert set(list_methods()) == {"umap", "pca", "tsne"}
    assert get_method("UMAP").supports_transform and not get_method("tsne").supports_transform
    with pytest.raises(InputError, match=r"Unsupported method 'foo'\. The available methods are \['umap', 'pca', 'tsne'\]"):
        get_method("foo")
    with pytest.raises(InputError, match="unknown parameter"):
        Projector("pca", bogus=1).fit(np.zeros((5, 3)))


@pytest.mark.parametrize("method", ["umap", "pca", "tsne"])
@pytest.mark.parametrize("dims", [2, 3])
def test_three_images_do_not_crash(method, dims):
    img, txt = cones(n=3)
    res = project_joint(img, txt, method=method, dims=dims)
    assert res.points.shape == (6, dims) and np.isfinite(res.points).all()
    assert res.pair_lines.tolist() == [[0, 3], [1, 4], [2, 5]]
    if method != "pca":
        assert res.notes, "small-data adaptation must be reported"
    d = res.to_dict()
    assert len(d["points"]) == 6 and d["modality_gap"] == pytest.approx(modality_gap(img, txt), rel=1e-5)


def test_one_pair_falls_back_to_pca_with_note():
    img, txt = cones(n=1)
    res = project_joint(img, txt, method="umap", dims=3)
    assert res.method == "pca" and res.points.shape == (2, 3)
    assert any("used PCA instead" in n for n in res.notes)


def test_seeded_and_transform_rules():
    img, txt = cones(n=40, d=64)
    x = np.vstack([img, txt])
    a = Projector("umap", random_state=3).fit(x)
    b = Projector("umap", random_state=3).fit_transform(x)
    np.testing.assert_array_equal(a.embedding_, b)
    assert a.config_.pca_dims == 50  # 64-d input: PCA to 50 dims first, inside the fitted pipeline
    pca = Projector("pca").fit(x)
    np.testing.assert_allclose(pca.transform(x), pca.embedding_, atol=1e-4)
    assert Projector("umap", random_state=0).fit(x).transform(x[:2]).shape == (2, 2)
    tsne = Projector("tsne").fit(x)
    with pytest.raises(InputError, match="cannot place new points"):
        tsne.transform(x[:2])
    with pytest.raises(InputError, match="not fitted"):
        Projector("pca").transform(x)


def test_centring_brings_the_clouds_together_in_pca():
    img, txt = cones(n=50, offset=3.0)

    def cloud_distance(res):
        p = res.points
        return np.linalg.norm(p[res.is_text].mean(0) - p[~res.is_text].mean(0))

    raw = project_joint(img, txt, method="pca")
    centred = project_joint(img, txt, method="pca", center=True)
    assert centred.gap.gap < 1e-5 and raw.gap_raw.gap == pytest.approx(centred.gap_raw.gap)
    assert cloud_distance(centred) < 0.05 * cloud_distance(raw)


def test_large_nonlinear_fit_is_sampled_with_pairs_kept():
    img, txt = cones(n=400, d=8)
    res = project_joint(img, txt, method="pca", max_fit=100)
    assert len(res.points) == 800  # PCA projects everything
    rows = display_sample(400, 400, None, max_points=100, seed=0)
    assert len(rows) <= 100
    imgs, txts = rows[rows < 400], rows[rows >= 400] - 400
    assert set(imgs) == set(txts)  # whole pairs only


# ----------------------------------------------------------------------------- CCA
def sklearn_correlations(x, y, k):
    from sklearn.cross_decomposition import CCA as SkCCA

    sk = SkCCA(n_components=k, max_iter=20000, tol=1e-14).fit(x, y)
    xs, ys = sk.transform(x, y)
    return np.array([np.corrcoef(xs[:, i], ys[:, i])[0, 1] for i in range(k)])


def test_cca_matches_sklearn():
    rng = np.random.default_rng(1)
    n, p, q = 400, 6, 5
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, p)) + rng.normal(size=(n, p))
    y = z @ rng.normal(size=(3, q)) + rng.normal(size=(n, q))
    ours = CCA(reg=0.0).fit(x, y)
    np.testing.assert_allclose(ours.correlations_, sklearn_correlations(x, y, 5), atol=1e-4)
    tx, ty = ours.transform(x, y)
    got = [np.corrcoef(tx[:, i], ty[:, i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(got, ours.correlations_, atol=1e-8)
    # Canonical variates have unit variance and are uncorrelated with each other.
    np.testing.assert_allclose(np.cov(tx.T), np.eye(5), atol=1e-8)
    assert ours.x_weights_.shape == (6, 5) and ours.y_weights_.shape == (5, 5)


def test_cca_recovers_planted_correlations():
    rng = np.random.default_rng(7)
    n, planted = 20000, np.array([0.9, 0.6, 0.3])
    z = rng.normal(size=(n, 3))
    # Each latent reaches X and Y with noise chosen so that corr(x_k, y_k) = ρ_k.
    noise_sd = np.sqrt(1 / planted - 1)  # corr(z + σε, z + σε') = 1 / (1 + σ²) = ρ
    x_lat = z + noise_sd * rng.normal(size=(n, 3))
    y_lat = z + noise_sd * rng.normal(size=(n, 3))
    x = np.hstack([x_lat, rng.normal(size=(n, 5))]) @ rng.normal(size=(8, 8))  # mixed, plus nuisance
    y = np.hstack([y_lat, rng.normal(size=(n, 4))]) @ rng.normal(size=(7, 7))
    corr = CCA(reg=0.0).fit(x, y).correlations_
    np.testing.assert_allclose(corr[:3], planted, atol=0.02)
    assert corr[3:].max() < 0.05
    # A regulariser shrinks the correlations but keeps their order.
    reg = CCA(reg=1.0).fit(x, y).correlations_
    assert (reg[:3] < corr[:3]).all() and (np.diff(reg[:3]) < 0).all()


def test_cca_signs_and_errors():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    c = CCA(reg=0.1).fit(x, y)
    top = c.x_weights_[np.argmax(np.abs(c.x_weights_), axis=0), np.arange(3)]
    assert (top > 0).all()
    with pytest.raises(InputError, match="at least 3 pairs, got 2"):
        CCA(reg=0.1).fit(x[:2], y[:2])
    with pytest.raises(InputError, match=r"at least 6 pairs, got 5.*reg > 0"):
        CCA(reg=0.0).fit(x[:5], y[:5])
    with pytest.raises(InputError, match="paired rows"):
        CCA().fit(x, y[:10])
    with pytest.raises(InputError, match="not fitted"):
        CCA().transform(x)


def test_cca_retrieval_beats_raw_when_spaces_are_rotated():
    rng = np.random.default_rng(3)
    n, d = 600, 16
    z = rng.normal(size=(n, d))
    img = z + 0.3 * rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    txt = (z + 0.3 * rng.normal(size=(n, d))) @ q  # same content, rotated: raw cosine is lost
    res = cca_retrieval(img, txt, reg=0.01)
    assert res.held_out and res.n_eval == 180
    assert max(res.recall_cca) > res.recall_raw + 0.3
    assert res.ks[-1] == 16 and len(res.recall_cca) == len(res.ks)


# ----------------------------------------------------------------------------- CLI
def run_cli(capsys, *argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, out


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory):
    img, txt = cones(n=60)
    p = tmp_path_factory.mktemp("emb") / "emb.npz"
    np.savez(p, image=img, text=txt, captions=np.array([f"caption {k}" for k in range(60)]))
    return p


def test_cli_project_json(capsys, npz_file):
    code, out = run_cli(capsys, "project", "--embeddings", str(npz_file), "--method", "pca", "--dims", "3", "--center")
    assert code == 0, out.err
    data = json.loads(out.out)
    assert len(data["points"]) == 120 and {"x", "y", "z", "modality", "label"} <= set(data["points"][0])
    assert data["points"][60]["label"] == "caption 0" and data["points"][60]["modality"] == "text"
    assert data["modality_gap"] < 1e-5 < data["modality_gap_raw"]
    assert len(data["pairs"]) == 60


def test_cli_cca_json(capsys, npz_file):
    code, out = run_cli(capsys, "cca", "--embeddings", str(npz_file))
    assert code == 0, out.err
    data = json.loads(out.out)
    corr = np.array(data["correlations"])
    assert len(corr) == 16 and (np.diff(corr) <= 1e-12).all() and 0.5 < corr[0] <= 1
    assert data["n_pairs"] == 60 and "recall_raw" in data["retrieval"]


def test_cli_encodes_images(capsys, tmp_path):
    from pathlib import Path

    from mmexplore.data.shapes import canonical_caption, make_scene, render_scene

    # The CLI's JSON shape is under test, not the model's quality: a random-weight model will do.
    bundled = (Path(__file__).parents[1] / "mmexplore/assets/bundled/open_clip_config.json").exists()
    model = "bundled" if bundled else "mmexplore-shapes-s:random"
    paths, texts = [], []
    for s in range(3):
        scene = make_scene(9100 + s, n_objects=1)
        render_scene(scene, 64).save(tmp_path / f"s{s}.png")
        paths.append(str(tmp_path / f"s{s}.png"))
        texts.append(canonical_caption(scene).text)
    code, out = run_cli(capsys, "project", "--model", model, "--device", "cpu", "--images", *paths, "--texts", *texts)
    assert code == 0, out.err
    data = json.loads(out.out)
    assert len(data["points"]) == 6 and data["notes"] and data["modality_gap"] > 0
    code, out = run_cli(capsys, "cca", "--model", model, "--device", "cpu", "--images", *paths, "--texts", *texts)
    assert code == 0, out.err
    assert len(json.loads(out.out)["correlations"]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["project", "--embeddings", "MISSING.npz"], "no such file"),
        (["project", "--embeddings", "NPZ", "--method", "isomap"], "Unsupported method 'isomap'"),
        (["project", "--embeddings", "NPZ", "--dims", "4"], "argument --dims: must be between 2 and 3"),
        (["cca", "--embeddings", "BAD"], "not an embeddings file: no image/text array(s)"),
        (["cca", "--embeddings", "NPZ", "--reg", "-1"], "argument --reg: must be in [0, inf)"),
        (["cca", "--images", "a.png"], "no captions"),
        (["cca", "--images", "a.png", "b.png", "--texts", "x"], "2 images but 1 texts"),
    ],
)
def test_cli_bad_input_exits_2(capsys, npz_file, tmp_path, argv, message):
    bad = tmp_path / "bad.npz"
    np.savez(bad, foo=np.zeros(3))
    argv = [str(npz_file) if a == "NPZ" else str(bad) if a == "BAD" else a for a in argv]
    code, out = run_cli(capsys, *argv)
    assert code == 2
    assert message in out.err and out.err.count("\n") == 1 and "Traceback" not in out.err


def test_paired_recall_at_1_matches_the_full_ranking_with_ties():
    from mmexplore.metrics.similarity import cosine_matrix, paired_recall_at_1, recall_at_k

    rng = np.random.default_rng(4)
    a = rng.standard_normal((257, 6)).astype(np.float32)
    b = a + 1.5 * rng.standard_normal((257, 6)).astype(np.float32)
    b[10] = b[3]  # a tie: the earlier row wins, as in the stable sort
    b[40] = b[41]
    full = recall_at_k(cosine_matrix(a, b), np.eye(257, dtype=bool), 1)
    assert paired_recall_at_1(a, b, block=50) == pytest.approx(full)
    rows = np.array([3, 10, 40, 41, 100])
    sub = recall_at_k(cosine_matrix(a[rows], b), np.eye(257, dtype=bool)[rows], 1)
    assert paired_recall_at_1(a, b, rows, block=2) == pytest.approx(sub)


def test_cca_retrieval_samples_queries_and_reports_progress():
    rng = np.random.default_rng(5)
    img = rng.standard_normal((4000, 12)).astype(np.float32)
    txt = img @ rng.standard_normal((12, 12)).astype(np.float32) + 0.8 * rng.standard_normal((4000, 12)).astype(np.float32)
    calls = []
    res = cca_retrieval(img, txt, reg=0.01, max_queries=300, progress=lambda d, t: calls.append((d, t)))
    full = cca_retrieval(img, txt, reg=0.01, max_queries=None)
    assert res.n_eval == full.n_eval == 1200 and res.n_queries == 300 and full.n_queries == 1200
    assert calls[-1] == (2 * (len(res.ks) + 1),) * 2 and len(calls) == calls[-1][1]
    # The sample estimates the full figure within a few standard errors (0.5 / sqrt(300) ≈ 0.03).
    assert abs(res.recall_cca[-1] - full.recall_cca[-1]) < 0.1
