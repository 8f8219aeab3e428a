"""AppTest of the joint-space and CCA pages, and the large-data rendering of the joint map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest_utils import HOME, figure_spec, new_app, open_page, plotly_charts, sample_dataset

ROOT = Path(__file__).resolve().parents[1]
# The pages' behaviour is under test, not the model's quality: without the bundled checkpoint a
# random-weight model of the same architecture provides the embeddings.
MODEL = "bundled" if (ROOT / "mmexplore/assets/bundled/open_clip_config.json").exists() else "mmexplore-shapes-s:random"


def metric(at, prefix):
    return next(m.value for m in at.metric if m.label.startswith(prefix))


@pytest.fixture(scope="module")
def joint_page():
    at = new_app(dataset=sample_dataset("shapes"), model=MODEL)
    at.session_state["joint_method"] = "pca"  # fast; UMAP is covered in test_projection.py
    at.run()
    at.switch_page("mmexplore_app/pages/joint_space.py")
    at.run()
    return at


def test_joint_page_shows_map_and_gap(joint_page):
    at = joint_page
    assert not at.exception
    charts = plotly_charts(at)
    assert len(charts) == 2  # the map and the gap bars
    gap = float(metric(at, "Δ"))
    assert gap > 0.05  # images and captions sit apart
    assert "true pairs" in " ".join(str(c.value) for c in at.caption)


def test_joint_page_centring_closes_the_gap(joint_page):
    at = joint_page
    gap0 = float(metric(at, "Δ"))
    at.toggle(key="joint_center").set_value(True).run()
    assert not at.exception
    assert float(metric(at, "Δ")) == pytest.approx(0.0, abs=1e-3)
    at.toggle(key="joint_center").set_value(False).run()
    at.slider(key="joint_shift").set_value(0.5).run()
    assert float(metric(at, "Δ")) < gap0  # λ = 0.5 pulls the clouds together
    at.radio(key="joint_dims").set_value(3).run()
    assert not at.exception and len(plotly_charts(at)) == 2


def test_joint_page_small_and_empty_data():
    at = open_page("mmexplore_app/pages/joint_space.py", samples=None, model=MODEL)
    assert not at.exception
    assert any("needs at least" in str(i.value) for i in at.info)
    at = new_app(dataset=sample_dataset("shapes", n=3), model=MODEL)
    at.session_state["joint_method"] = "tsne"
    at.run()
    at.switch_page("mmexplore_app/pages/joint_space.py")
    at.run()
    assert not at.exception
    assert any("perplexity lowered" in str(c.value) for c in at.caption)


def test_joint_page_upload_source_asks_for_file(joint_page):
    at = joint_page
    at.radio(key="joint_source").set_value("Embeddings file (.npz / .parquet)").run()
    assert not at.exception
    assert any("Upload an embeddings file" in str(i.value) for i in at.info)


def test_cca_page():
    at = open_page("mmexplore_app/pages/cca.py", model=MODEL)
    assert not at.exception
    assert len(plotly_charts(at)) == 3  # correlation bars, canonical scatter, R@1 against k
    assert "CCA space" in " ".join(m.label for m in at.metric)
    at.slider(key="cca_top_k").set_value(2).run()
    assert not at.exception
    assert any(m.label == "CCA space, top 2 components" for m in at.metric)
    at.select_slider(key="cca_reg").set_value(0.0).run()  # 8 pairs in 128 dims: too few without a ridge
    assert any("needs at least 130" in str(i.value) for i in at.info)


def test_cca_page_too_few_pairs():
    at = open_page("mmexplore_app/pages/cca.py", n=2, model=MODEL)
    assert not at.exception
    assert any("at least 3" in str(i.value) and "has 2" in str(i.value) for i in at.info)


def test_large_map_is_sampled_with_density():
    from mmexplore.projection import project_joint
    from mmexplore_app.joint_figures import joint_scatter

    rng = np.random.default_rng(0)
    n = 50_000
    img = rng.normal(size=(n, 16)).astype(np.float32) + 2
    txt = rng.normal(size=(n, 16)).astype(np.float32) - 2
    res = project_joint(img, txt, method="pca")
    assert len(res.points) == 2 * n and res.gap.n_pairs == n  # full data kept
    fig, counts = joint_scatter(res, [f"i{k}" for k in range(n)], [f"t{k}" for k in range(n)], max_points=4000, density=True)
    assert counts["points"] == 2 * n and counts["drawn"] <= 4000
    kinds = [t.type for t in fig.data]
    assert kinds.count("heatmap") == 2 and "scattergl" in kinds
    drawn = sum(len(t.x) for t in fig.data if t.type == "scattergl" and t.mode == "markers")
    assert drawn == counts["drawn"]


def _embeddings_folder(folder: Path, n: int = 300, dim: int = 16) -> None:
    """A small ``mmexplore embed`` folder of n (image, caption) pairs, written without a model."""
    import pyarrow as pa

    from mmexplore.embeddings.shards import ShardWriter

    rng = np.random.default_rng(3)
    img = rng.standard_normal((n, dim)).astype(np.float32)
    txt = img + rng.standard_normal((n, dim)).astype(np.float32) + 1.0
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    rows = np.arange(n)
    items = pa.table({"id": [f"{r:016x}" for r in rows], "row": rows, "path": [f"/x/img{r}.png" for r in rows],
                      "caption": [f"caption {r}" for r in rows], "image_caption": [f"caption {r}" for r in rows],
                      "image_first": np.ones(n, bool), "text_first": np.ones(n, bool)})
    writer = ShardWriter(folder, "synthetic@test", "synthetic", dim, "test")
    writer.write_shard(items, img, None, txt, np.ones(n, bool))
    writer.finish()


def test_joint_and_cca_pages_read_an_embeddings_folder_and_draw_every_point(tmp_path):
    _embeddings_folder(tmp_path / "emb")
    at = open_page("mmexplore_app/pages/joint_space.py", model=MODEL)
    at.radio(key="joint_source").set_value("Embeddings folder (mmexplore embed)").run()
    at.text_input(key="joint_embdir").input(str(tmp_path / "emb")).run()
    at.selectbox(key="joint_method").set_value("pca").run()
    at.select_slider(key="joint_max_points").set_value(0).run()  # every point
    assert not at.exception
    assert any("All 600 points drawn" in c.value for c in at.caption)
    fig = figure_spec(at, 0)
    markers = [t for t in fig["data"] if t.get("mode") == "markers"]
    assert [t["name"] for t in markers] == ["images", "texts"]
    assert all(t["x"]["dtype"] == "f4" and "text" not in t for t in markers)  # typed arrays, no label strings
    cca = open_page("mmexplore_app/pages/cca.py", model=MODEL)
    cca.radio(key="cca_source").set_value("Embeddings folder (mmexplore embed)").run()
    cca.text_input(key="cca_embdir").input(str(tmp_path / "emb")).run()
    assert not cca.exception
    assert any("300 images" in c.value for c in cca.caption)


def test_cca_page_ranks_a_stated_sample_of_queries_and_draws_recall_up_to_one(tmp_path):
    """Issue 20, items 6 and 9: a large held-out set is ranked for a stated random sample of queries
    (every held-out caption a candidate), with progress; the R@1 chart's axis goes past 1.0."""
    _embeddings_folder(tmp_path / "emb", n=8000)
    at = open_page("mmexplore_app/pages/cca.py", model=MODEL)
    at.radio(key="cca_source").set_value("Embeddings folder (mmexplore embed)").run()
    at.text_input(key="cca_embdir").input(str(tmp_path / "emb")).run()
    assert not at.exception
    assert any("random sample of 2,000 queries" in c.value and "against all 2,400" in c.value for c in at.caption)
    recall = next(figure_spec(at, k) for k in range(len(plotly_charts(at)))
                  if figure_spec(at, k)["layout"].get("yaxis", {}).get("title", {}).get("text") == "R@1")
    assert recall["layout"]["yaxis"]["range"][1] > 1.0
    at.slider(key="cca_top_k").set_value(3).run()  # a k off the ladder: computed alone
    assert not at.exception
    assert any(m.label == "CCA space, top 3 components" for m in at.metric)


def test_a_map_fitted_on_a_sample_says_so_in_its_title_and_counts():
    """Issue 20, item 7: at 80k points t-SNE/UMAP place a sample; the title and the counts the page's
    "showing N of M" note reads must say so (they claimed all 80,000 and the note was missing)."""
    from mmexplore.projection import project_joint
    from mmexplore_app.joint_figures import joint_scatter

    rng = np.random.default_rng(1)
    n = 40_000
    img = rng.normal(size=(n, 8)).astype(np.float32) + 1
    txt = rng.normal(size=(n, 8)).astype(np.float32) - 1
    res = project_joint(img, txt, method="tsne", max_fit=400)
    fig, counts = joint_scatter(res, [f"i{k}" for k in range(n)], [f"t{k}" for k in range(n)], max_points=5000,
                                density=True)
    assert counts["points"] == 2 * n and counts["projected"] == 400 and counts["drawn"] == 400
    assert not counts["density"]  # nothing beyond the drawn points was placed
    assert fig.layout.title.text == "TSNE of a 400-point sample of 40,000 images and 40,000 texts"


@pytest.mark.slow
def test_the_app_compiles_umap_in_the_background_when_the_server_starts(monkeypatch):
    import threading

    from mmexplore.settings import reload_settings

    monkeypatch.setenv("MMEXPLORE_WARM_UP", "1")
    reload_settings()
    try:
        at = open_page(HOME, samples=None, model=MODEL)
        assert not at.exception
        names = [t.name for t in threading.enumerate()]
        from mmexplore_app import widgets

        assert "mmexplore-umap-warm-up" in names or widgets.warm_up_status()[0] == "done"
    finally:
        monkeypatch.delenv("MMEXPLORE_WARM_UP")
        reload_settings()


def test_gap_bar_labels_sit_inside_their_bars():
    """Issue 20, item 9: two grouped bars' value labels collided above a narrow column."""
    from mmexplore.projection import project_joint
    from mmexplore_app.joint_figures import gap_figure

    rng = np.random.default_rng(2)
    img = rng.normal(size=(60, 8)).astype(np.float32) + 1
    txt = rng.normal(size=(60, 8)).astype(np.float32) - 1
    fig = gap_figure(project_joint(img, txt, method="pca", center=True))
    assert len(fig.data) == 2 and all(t.textposition == "inside" and t.textangle == 0 for t in fig.data)
    assert fig.layout.uniformtext.mode == "hide"
