"""The app's data-in logic (mmexplore_app.data_input, mmexplore_app.state) without Streamlit."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from mmexplore_app import data_input as di
from mmexplore_app.state import Dataset


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 16), color).save(buf, "PNG")
    return buf.getvalue()


def _ds() -> Dataset:
    out = di.add_image_files(Dataset(), [("a.png", _png("red")), ("b.png", _png("blue"))])
    return di.add_captions(out.dataset, ["red", "blue", "green"]).dataset


def test_add_image_files_reports_each_bad_file_and_keeps_the_rest():
    start = _ds()
    out = di.add_image_files(start, [("x.png", b"garbage"), ("c.png", _png("green")), ("e.gif", b"")])
    assert out.added == 1 and out.dataset.image_names == ["a.png", "b.png", "c.png"]
    assert len(out.errors) == 2 and out.errors[0].startswith("x.png") and out.errors[1].startswith("e.gif")
    assert start.n_images == 2  # the input data set is never modified
    assert out.dataset.pairs.shape == (3, 3) and not out.dataset.pairs[2].any()


def test_add_image_files_limit_and_duplicate_names():
    out = di.add_image_files(_ds(), [("a.png", _png("red")), ("z.png", _png("red"))], max_images=3)
    assert out.dataset.image_names == ["a.png", "b.png", "a (2).png"]
    assert any("z.png" in e and "limit of 3 images" in e for e in out.errors)


def test_add_captions_dedup_length_and_limit():
    assert di.split_captions("  one \n\n two\none\n") == ["one", "two"]
    out = di.add_captions(_ds(), ["red", "x" * (di.MAX_CAPTION_CHARS + 1), "new one", "another"], max_texts=4)
    assert out.dataset.texts == ["red", "blue", "green", "new one"]
    assert len(out.errors) == 2  # too long, and over the limit


def test_add_pairs_file_matches_by_file_name_and_reports_missing_images():
    data = b'{"image": "dir/a.png", "text": "red"}\n{"image": "b.png", "text": "dark"}\n{"image": "q.png", "text": "q"}\n'
    out = di.add_pairs_file(_ds(), "pairs.jsonl", data)
    ds = out.dataset
    assert ds.texts == ["red", "blue", "green", "dark"]
    assert ds.pairs[0, 0] and ds.pairs[1, 3] and ds.pairs.sum() == 2
    assert any("q.png" in e for e in out.errors)
    bad = di.add_pairs_file(_ds(), "pairs.csv", b"foo,bar\n1,2\n")
    assert bad.dataset.texts == ["red", "blue", "green"] and "not a pairs file" in bad.errors[0]


def test_pairs_table_round_trip_with_edits():
    ds = di.pair_in_order(_ds())
    assert ds.pairs.tolist() == [[True, False, False], [False, True, False]]
    frame = di.pairs_frame(ds)
    assert list(frame.columns) == ["caption", "note", "1: a.png", "2: b.png"]
    same = di.apply_pairs_frame(ds, frame).dataset
    assert same.texts == ds.texts and np.array_equal(same.pairs, ds.pairs)
    edited = frame.copy()
    edited.loc[2, "caption"] = "green-ish"  # edit a caption
    edited.loc[2, "2: b.png"] = True  # tick a pair
    edited = edited.drop(index=0)  # delete a row
    extra = pd.DataFrame([{"caption": "blue", "note": None, "1: a.png": True, "2: b.png": None},  # duplicate
                          {"caption": None, "note": None, "1: a.png": None, "2: b.png": None}])  # empty row
    edited = pd.concat([edited, extra], ignore_index=True)
    out = di.apply_pairs_frame(ds, edited).dataset
    assert out.texts == ["blue", "green-ish"]
    assert out.pairs.tolist() == [[True, False], [True, True]]
    assert out.pairs.shape == (2, 2)


def test_dataset_add_remove_and_content_key():
    ds = _ds()
    key, emb_key = ds.content_key(), ds.embedding_key()
    ds.pairs[0, 0] = True
    assert ds.content_key() != key  # pairs are part of the key
    assert ds.embedding_key() == emb_key  # but not of the embeddings' key
    ds.remove_texts([1])
    assert ds.texts == ["red", "green"] and ds.pairs.shape == (2, 2)
    ds.remove_images([0])
    assert ds.image_names == ["b.png"] and ds.pairs.shape == (1, 2) and ds.scenes == [None]
    cols = ds.add_texts(["green", "new"])
    assert cols == [1, 2] and ds.pairs.shape == (1, 3)


def test_embedding_key_hashes_each_image_once_and_stays_exact(monkeypatch):
    import mmexplore.models.cache as cache

    calls = []
    real = cache.image_digest

    def counting(im):
        calls.append(im)
        return real(im)

    monkeypatch.setattr(cache, "image_digest", counting)
    ds = _ds()
    ds.embedding_key()
    n_first = len(calls)
    assert n_first == ds.n_images
    for _ in range(3):  # page reruns: no pixel is hashed again
        ds.embedding_key()
        ds.content_key()
    assert len(calls) == n_first

    # After edits, the key equals that of a data set built from scratch with the same content.
    extra = Image.new("RGB", (8, 8), "yellow")
    ds.add_images([extra], ["c.png"])
    ds.remove_images([0])
    fresh = Dataset(list(ds.images), list(ds.image_names), list(ds.texts), ds.pairs.copy())
    assert ds.embedding_key() == fresh.embedding_key()
    assert ds.copy().embedding_key() == ds.embedding_key()
    # Different pixels give a different key.
    other = Dataset([Image.new("RGB", (8, 8), "black"), *ds.images[1:]], list(ds.image_names), list(ds.texts))
    assert other.embedding_key() != ds.embedding_key()


def test_a_pairs_row_with_an_over_long_caption_is_reported_as_dropped():
    """Issue 20, item 4: the row used to vanish behind "2 rows, 1 new captions"."""
    long = "a red circle " * 1600  # ~20,000 characters
    data = f"image,text\na.png,a new caption\nb.png,{long}\n".encode()
    out = di.add_pairs_file(_ds(), "pairs.csv", data)
    assert out.dataset.texts[-1] == "a new caption" and long.strip() not in out.dataset.texts
    assert any("1 row(s) dropped" in e and f"{di.MAX_CAPTION_CHARS}-character limit" in e and "row 2" in e
               for e in out.errors)
    assert "1 dropped" in out.notes[0]


def test_pairs_table_of_256_images_builds_without_fragmentation_warnings():
    """Issue 20, item 10: 312 pandas PerformanceWarnings with 256 images."""
    import warnings

    ds = di.add_image_files(Dataset(), [(f"i{k}.png", _png("red")) for k in range(256)], max_images=256).dataset
    ds = di.add_captions(ds, [f"caption {k}" for k in range(20)]).dataset
    ds.pairs[3, 5] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        df = di.pairs_frame(ds)
    assert df.shape == (20, 258) and bool(df.iloc[5]["4: i3.png"]) and int(df.iloc[:, 2:].to_numpy().sum()) == 1
    assert di.apply_pairs_frame(ds, df).dataset.pairs.sum() == 1


def test_empty_data_set_pairs_table():
    df = di.pairs_frame(Dataset())
    assert list(df.columns) == [di.CAPTION_COL, di.NOTE_COL] and len(df) == 0


def test_svg_and_a_text_file_named_npz_get_messages_that_name_the_problem():
    """Issue 20, item 10."""
    import pytest

    from mmexplore.data.pairs import parse_pairs
    from mmexplore.errors import InputError
    from mmexplore.projection.embeddings_io import parse_embeddings

    out = di.add_image_files(_ds(), [("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'), ("c.png", _png("green"))])
    assert out.added == 1 and any(e.startswith("logo.svg") and "SVG" in e for e in out.errors)
    assert "svg" in di.UPLOAD_TYPES
    with pytest.raises(InputError) as exc:
        parse_embeddings(b"just sixteen byt", "emb.npz")
    assert "not an .npz file" in str(exc.value) and "pickled" not in str(exc.value)
    with pytest.raises(InputError) as exc:
        parse_pairs(b"image,text\na.png,caf\xe9\n", "pairs.csv")
    assert "position" in str(exc.value) and "(byte" not in str(exc.value)


def test_a_bare_path_as_model_spec_says_it_needs_the_architecture():
    import pytest

    from mmexplore.errors import ModelLoadError
    from mmexplore.models.specs import parse_spec

    with pytest.raises(ModelLoadError, match="ARCH:/path/to/weights"):
        parse_spec("/models/clip.safetensors")
def test_pairs_rows_match_the_first_loaded_image_of_a_file_name():
    # Two folders' a.png: every page (Home's pairs file, Relation's batch) uses the first one loaded.
    ds = di.add_image_files(Dataset(), [("x/a.png", _png("red")), ("y/a.png", _png("blue")), ("b.png", _png("green"))]).dataset
    rows = [{"image": "a.png", "text": "t1"}, {"image": "sub/b.png", "text": "t2"}, {"image": "c.png", "text": "t3"}]
    found, missing = di.match_pair_rows(ds, rows)
    assert [(i, r["text"]) for i, r in found] == [(0, "t1"), (2, "t2")]
    assert missing == ["c.png"]
