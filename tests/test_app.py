"""Streamlit AppTest tests of the shell, the Home (data) page and the Similarity page.

Other pages' own tests live with their features; here every page is at least opened with and
without data. The model is the bundled one (see ``apptest_utils.test_model_spec``).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from apptest_utils import (
    PAGES,
    figure_spec,
    heatmap_values,
    new_app,
    open_page,
    sample_dataset,
    test_model_spec,
)
from PIL import Image

from mmexplore.data.samples import shapes_samples
from mmexplore_app.state import Dataset


def _png(color: str, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def _messages(elements) -> list[str]:
    return [str(e.value) for e in elements]


def _frame_with(at, column: str):
    """The first st.dataframe on the page that has ``column`` (AppTest dataframes carry no key)."""
    for e in at.dataframe:
        if column in e.value.columns:
            return e.value
    raise AssertionError(f"no table with a {column!r} column")


# ---------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_with_shapes_samples(page):
    at = open_page(page, samples="shapes")
    assert not at.exception, at.exception
    assert at.title, f"{page} shows no title"
    assert at.session_state["dataset"].n_images == 8
    # The shared sidebar is on every page: model facts and the data summary.
    side = " ".join(_messages(at.sidebar.caption))
    assert "embed dim" in side and "8 images" in side


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads_without_data(page):
    at = open_page(page, samples=None)
    assert not at.exception, at.exception
    assert not at.error, _messages(at.error)


def test_bundled_banner_and_sidebar_samples_button():
    at = new_app(dataset=None)
    at.run()
    assert not at.exception
    if test_model_spec() == "bundled":
        assert any("synthetic shapes" in m for m in _messages(at.info))
    at.sidebar.button(key="sb_samples_shapes").click().run()
    ds = at.session_state["dataset"]
    assert ds.n_images == 8 and ds.n_texts > 8 and ds.source == "shapes samples"
    assert all(s is not None for s in ds.scenes)  # ground truth kept
    at.sidebar.button(key="sb_samples_photos").click().run()
    ds = at.session_state["dataset"]
    assert ds.source == "photo samples" and all(s is None for s in ds.scenes)
    at.button(key="home_samples_shapes").click().run()  # the same from the Home page
    assert at.session_state["dataset"].source == "shapes samples"
    assert at.dataframe, "the pairs table is shown"


# ---------------------------------------------------------------------------- similarity page
def _cli_similarity(capsys, tmp_path, ds: Dataset) -> dict:
    """``mmexplore similarity --json`` on the same images (saved losslessly) and captions."""
    from mmexplore.cli import main

    paths = []
    for k, im in enumerate(ds.images):
        p = tmp_path / f"img{k}.png"
        im.save(p)
        paths.append(str(p))
    capsys.readouterr()
    rc = main(["similarity", "--images", *paths, "--texts", *ds.texts, "--model", test_model_spec(), "--device", "cpu", "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_similarity_page_equals_cli_one_to_one(capsys, tmp_path):
    s = shapes_samples(n=5, negatives=False)
    ds = Dataset.from_samples(s)  # 5 × 5, image k ↔ caption k, as the CLI pairs --images/--texts
    cli = _cli_similarity(capsys, tmp_path, ds)
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds)
    assert not at.exception, at.exception
    views = {
        "cosine": "cosine",
        "logits (× logit scale)": "logits",
        "softmax over captions (image → text)": "probs_i2t",
        "softmax over images (text → image)": "probs_t2i",
    }
    for view, field in views.items():
        at.radio(key="sim_view_softmax").set_value(view).run()
        z = heatmap_values(at)
        assert z.shape == (5, 5)
        np.testing.assert_allclose(z, np.array(cli[field]), atol=2e-5, err_msg=view)
    # Rows of the i→t softmax and columns of the t→i softmax sum to one: the views really differ.
    assert np.allclose(np.array(cli["probs_i2t"]).sum(axis=1), 1, atol=1e-4)
    assert f"{cli['infonce_loss']:.3f}" in _messages(at.metric)
    recall = _frame_with(at, "R@1")
    for k in (1, 5, 10):
        assert recall.loc["image → text", f"R@{k}"] == pytest.approx(cli["recall"][f"i2t@{k}"])
        assert recall.loc["text → image", f"R@{k}"] == pytest.approx(cli["recall"][f"t2i@{k}"])


def test_similarity_page_shapes_samples_matrix(capsys, tmp_path):
    ds = sample_dataset("shapes")  # 8 images × (8 true + hard-negative) captions
    cli = _cli_similarity(capsys, tmp_path, ds)
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds)
    assert not at.exception, at.exception
    z = heatmap_values(at)
    np.testing.assert_allclose(z, np.array(cli["cosine"]), atol=2e-5)
    layout = figure_spec(at)["layout"]
    assert len(layout["images"]) == 8  # one thumbnail per row
    outlined = {(round(s["y0"] + 0.5), round(s["x0"] + 0.5)) for s in layout["shapes"] if s.get("name") == "true pair"}
    assert outlined == {(i, j) for i, j in zip(*np.nonzero(ds.pairs), strict=True)}
    best = _frame_with(at, "best caption")
    assert list(best["image"]) == ds.image_names
    cos = np.array(cli["cosine"])
    assert list(best.columns) == ["image", "best caption", "cosine", "true pair", "note"]
    assert list(best["best caption"]) == [ds.texts[j] for j in cos.argmax(axis=1)]
    np.testing.assert_allclose(best["cosine"], cos.max(axis=1), atol=2e-5)
    by_text = _frame_with(at, "best image")  # the other direction: each caption's best image
    assert list(by_text.columns) == ["caption", "best image", "cosine", "true pair", "note"]
    assert list(by_text["caption"]) == ds.texts
    assert list(by_text["best image"]) == [ds.image_names[i] for i in cos.argmax(axis=0)]
    assert list(by_text["true pair"]) == [bool(ds.pairs[i, j]) for j, i in enumerate(cos.argmax(axis=0))]
    assert sum(n.startswith("hard negative") for n in by_text["note"]) > 0
    assert any(b.label.startswith("Download") for b in at.get("download_button"))


def test_similarity_page_without_pairs_says_so():
    ds = sample_dataset("shapes", n=3)
    ds.pairs[:] = False
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds)
    assert not at.exception
    assert any("No true pairs" in m for m in _messages(at.info))
    assert heatmap_values(at).shape == (3, ds.n_texts)


def test_similarity_page_switch_reuses_embeddings():
    at = open_page("mmexplore_app/pages/similarity.py", samples="shapes", n=4)
    from mmexplore_app.cache import entries

    (key, (img, _)), = entries(at.session_state, "embeddings").items()
    at.switch_page("mmexplore_app/pages/home.py")
    at.run()
    at.switch_page("mmexplore_app/pages/similarity.py")
    at.run()
    (key2, (img2, _)), = entries(at.session_state, "embeddings").items()
    assert key2 == key and img2 is img  # the same arrays: nothing was re-encoded
    ds = at.session_state["dataset"].copy()
    ds.pairs[:, :] = False
    ds.pairs[0, 1] = True  # new pairs, same images and captions
    at.session_state["dataset"] = ds
    at.run()
    (_key3, (img3, _)), = entries(at.session_state, "embeddings").items()
    assert img3 is img
    outlined = [s for s in figure_spec(at)["layout"]["shapes"] if s.get("name") == "true pair"]
    assert len(outlined) == 1 and round(outlined[0]["x0"] + 0.5) == 1


def test_png_export_gives_file_or_clear_note():
    at = open_page("mmexplore_app/pages/similarity.py", samples="shapes", n=2)
    at.button(key="sim_fig_png_prepare").click().run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    notes = _messages(at.warning)
    assert "Download figure (PNG)" in labels or any("PNG export is not available" in n for n in notes)
    assert "Download figure (HTML)" in labels


# ---------------------------------------------------------------------------- data in
def test_bad_upload_shows_error_and_keeps_good_files():
    at = open_page("mmexplore_app/pages/home.py", samples="shapes")
    files = [
        ("good.png", _png("red"), "image/png"),
        ("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png"),
        ("good.jpg", _png("blue", fmt="JPEG"), "image/jpeg"),
        ("empty.webp", b"", "image/webp"),
    ]
    at.file_uploader(key="home_image_files").set_value(files).run()
    assert not at.exception, at.exception
    errors = _messages(at.error)
    assert any(e.startswith("broken.png") for e in errors)
    assert any(e.startswith("empty.webp") for e in errors)
    assert not any("good" in e for e in errors)
    ds = at.session_state["dataset"]
    assert ds.n_images == 10  # the 8 samples are still there, plus the two good files
    assert ds.image_names[-2:] == ["good.png", "good.jpg"]
    assert ds.scenes[:8] == sample_dataset("shapes").scenes  # ground truth of the samples kept
    # Another rerun does not add the same uploads twice.
    at.run()
    assert at.session_state["dataset"].n_images == 10


def test_upload_images_captions_and_pairs_file_many_to_many():
    at = open_page("mmexplore_app/pages/home.py", samples=None)
    at.file_uploader(key="home_image_files").set_value(
        [("a.png", _png("red"), "image/png"), ("b.png", _png("blue"), "image/png")]
    ).run()
    at.text_area(key="home_caption_text").input("a red picture\na blue picture").run()
    at.button(key="home_caption_add").click().run()
    pairs_csv = (
        b"image,text\nphotos/a.png,a red picture\na.png,something red\n"
        b"b.png,a blue picture\nb.png,something red\nc.png,x\n"
    )
    at.file_uploader(key="home_pairs_file").set_value(("pairs.csv", pairs_csv, "text/csv")).run()
    assert not at.exception, at.exception
    ds = at.session_state["dataset"]
    assert ds.texts == ["a red picture", "a blue picture", "something red"]
    assert ds.pairs.tolist() == [[True, False, True], [False, True, True]]
    assert any("c.png" in e for e in _messages(at.error))  # the row naming a missing image is reported
    # The similarity page uses these many-to-many pairs.
    at.switch_page("mmexplore_app/pages/similarity.py")
    at.run()
    assert not at.exception
    assert heatmap_values(at).shape == (2, 3)


def test_bad_pairs_file_keeps_data():
    at = open_page("mmexplore_app/pages/home.py", samples="shapes")
    at.file_uploader(key="home_pairs_file").set_value(("bad.csv", b"picture,caption\nx,y\n", "text/csv")).run()
    assert not at.exception
    assert any("bad.csv" in e and "not a pairs file" in e for e in _messages(at.error))
    assert at.session_state["dataset"].n_images == 8


# ---------------------------------------------------------------------------- model picker
@pytest.mark.parametrize(
    ("source", "spec"),
    [
        ("open_clip pretrained (ARCH:TAG)", "ViT-B-32:laion2b_s34b_b79k"),  # offline and not cached
        ("open_clip pretrained (ARCH:TAG)", "NoSuchArch-1:whatever"),
        ("Local weights file (ARCH:/path)", "ViT-B-32:/nonexistent/weights.safetensors"),
    ],
)
def test_unavailable_model_shows_error_and_keeps_old_model(source, spec):
    at = open_page("mmexplore_app/pages/similarity.py", samples="shapes", n=3)
    before = heatmap_values(at)
    old = at.session_state["model_spec"]
    at.sidebar.selectbox(key="sb_model_source").set_value(source).run()
    at.sidebar.text_input(key="sb_model_spec").input(spec).run()
    at.sidebar.button(key="sb_model_load").click().run()
    assert not at.exception, at.exception
    side_errors = _messages(at.sidebar.error)
    assert any(spec in e and f"Still using: {old}" in e for e in side_errors), side_errors
    assert at.session_state["model_spec"] == old
    np.testing.assert_allclose(heatmap_values(at), before)  # the page still works on the old model


def test_unavailable_device_shows_error_and_keeps_old_model():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so choosing it succeeds")
    at = open_page("mmexplore_app/pages/home.py", samples=None)
    old = at.session_state["model_device"]
    at.sidebar.selectbox(key="sb_model_device").set_value("cuda").run()
    at.sidebar.button(key="sb_model_load").click().run()
    assert not at.exception
    assert any("CUDA is not available" in e for e in _messages(at.sidebar.error))
    assert at.session_state["model_device"] == old


def test_photos_with_bundled_model_warn():
    if test_model_spec() != "bundled":
        pytest.skip("the warning is about the bundled model")
    at = open_page("mmexplore_app/pages/similarity.py", samples="photos")
    assert not at.exception
    assert any("knows only the shapes world" in w for w in _messages(at.warning))
    assert heatmap_values(at).shape == (8, 10)


def test_similarity_matrix_marks_hard_negatives_and_keeps_small_cells_blank():
    """Issue 20, items 8 and 9: hard negatives marked on the matrix (label, dashed frame, hover);
    no value text once cells get narrow; caption labels shortened, full text in the hover."""
    ds = sample_dataset("shapes")  # 8 images, 8 true captions plus hard negatives and distractors
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds)
    spec = figure_spec(at)
    hard = [j for j, t in enumerate(ds.texts) if ds.text_notes.get(t, "").startswith("hard negative")]
    assert hard
    ticks = spec["layout"]["xaxis"]["ticktext"]
    assert all(ticks[j].startswith("✗ ") for j in hard) and not ticks[0].startswith("✗")
    frames = [s for s in spec["layout"]["shapes"] if s.get("name") == "hard negative"]
    assert len(frames) == len(hard)
    assert all(len(t) <= 32 for t in ticks)
    trace = next(t for t in spec["data"] if t.get("type") == "heatmap")
    if ds.n_texts > 12:
        assert not trace.get("texttemplate")
    assert any("hard negatives marked" in c.value for c in at.caption)
