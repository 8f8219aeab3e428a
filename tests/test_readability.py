"""What the model reads of a text (issue 20, items 3 and 5): unknown words, negation, truncation,
"cannot tell" on Relation, notes on every page and CLI result, the world check from what the model reads."""

from __future__ import annotations

import json

import pytest
from apptest_utils import image_captions, open_page, sample_dataset

from mmexplore.models.readability import read_text

FOREIGN = ["un grand cercle rouge à gauche d'un petit carré bleu", "ein großer roter Kreis links von einem Quadrat",
           "左に赤い丸", "🔴 ⬅️ 🟦"]


def test_the_bundled_model_reads_shapes_words_and_not_foreign_text(encoder):
    ok = read_text(encoder, "a large red circle left of a small blue square")
    assert ok.unknown == () and ok.unknown_share == 0.0 and not ok.unreadable and ok.notes() == []
    for text in FOREIGN:
        r = read_text(encoder, text)
        assert r.unreadable and r.unknown_share >= 0.75, (text, r)
    neg = read_text(encoder, "a red circle not right of a blue square")
    assert neg.negations == ("not",) and any("negat" in n for n in neg.notes())
    long = read_text(encoder, "a red circle " * 30)
    assert long.truncated and any("reads only the first 32" in n for n in long.notes())
    assert read_text(encoder, "purple hexagon").unreadable


def test_a_full_bpe_model_reads_latin_text_and_flags_other_scripts():
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    assert read_text(tok, "a dog running on the beach").unknown == ()
    assert read_text(tok, "un chien sur la plage").unknown == ()  # Latin script: BPE pieces it has seen
    assert read_text(tok, "左に赤い丸").unreadable
    assert read_text(tok, "🐶🏖️").unreadable


def test_relation_says_cannot_tell_for_text_or_images_the_model_cannot_read(encoder):
    from mmexplore.data.samples import photo_samples, shapes_samples
    from mmexplore.relation import load_calibration, relate

    cal = load_calibration("bundled")
    s = shapes_samples(n=8)
    own = relate(encoder, s.images[:3], s.texts[:3], calibration=cal)
    assert all(r.label == r.model_label and not r.extra["cannot_tell"] for r in own)
    negated = s.texts[4].replace(" left of ", " not left of ")
    res = relate(encoder, [s.images[4]] * 5, [*FOREIGN, negated], calibration=cal)
    for r in res:
        assert r.label == "cannot tell" and r.extra["cannot_tell"], r.text
        assert r.explanation.startswith("Cannot tell:") and r.model_label in r.probabilities
    assert "negat" in res[-1].extra["cannot_tell"][0]
    photo = photo_samples()
    r = relate(encoder, photo.images[:1], photo.texts[:1], calibration=cal)[0]
    assert r.label == "cannot tell" and any("no object it knows" in why for why in r.extra["cannot_tell"])


def test_relation_page_shows_cannot_tell_with_the_reason():
    at = open_page("mmexplore_app/pages/relation.py", samples="shapes", n=4)
    at.selectbox(key="rel_text_choice").set_value("✎ type a text…").run()
    at.text_area(key="rel_own").input(FOREIGN[2]).run()
    assert not at.exception
    assert at.metric[0].value == "cannot tell"
    assert any("Cannot tell" in w.value and "cannot read" in w.value for w in at.warning)


def test_search_page_warns_for_a_query_the_model_cannot_read():
    at = open_page("mmexplore_app/pages/search.py", samples="shapes", n=4)
    at.text_input(key="search_text").input("左に赤い丸").run()
    assert not at.exception
    assert any("cannot read this query" in w.value for w in at.warning)
    at.text_input(key="search_text").input("a red circle " * 30).run()
    assert any("reads only the first 32" in i.value for i in at.info)  # truncation noted


def test_heatmaps_page_says_a_peak_of_an_unreadable_phrase_means_nothing():
    at = open_page("mmexplore_app/pages/heatmaps.py", samples="shapes", n=3)
    at.text_input(key="heat_phrase").input("purple hexagon").run()
    assert not at.exception
    checks = [m.value for m in at.markdown if "phrase" in m.value and ("Peak" in m.value or "cannot read" in m.value)]
    assert checks and "cannot read the phrase" in checks[0] and "inside" not in checks[0]
    assert 'phrase: "purple hexagon"' in image_captions(at)


def test_probes_page_warns_for_a_caption_the_model_cannot_read():
    at = open_page("mmexplore_app/pages/probes.py", samples="shapes", n=3)
    at.selectbox(key="probe_caption").set_value("✎ type a caption…").run()
    at.text_input(key="probe_own").input(FOREIGN[0]).run()
    assert not at.exception
    assert any("cannot read this caption" in w.value for w in at.warning)


def _drawn(kind: str, color: str):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (128, 128), "white")
    d = ImageDraw.Draw(im)
    if kind == "circle":
        d.ellipse([34, 34, 94, 94], fill=color)
    elif kind == "square":
        d.rectangle([34, 34, 94, 94], fill=color)
    else:
        d.polygon([(64, 30), (100, 96), (28, 96)], fill=color)
    return im


@pytest.mark.parametrize("which", ["drawn", "photos"])
def test_similarity_decides_the_world_warning_from_what_the_model_reads(which):
    from mmexplore_app.state import Dataset

    if which == "drawn":  # Pillow-drawn shapes: no generated scenes behind them, yet in the shapes world
        ds = Dataset()
        ds.add_images([_drawn("circle", "red"), _drawn("square", "blue"), _drawn("triangle", "green")],
                      ["red.png", "blue.png", "green.png"])
        ds.add_texts(["a large red circle", "a large blue square", "a large green triangle"])
        ds.pairs[[0, 1, 2], [0, 1, 2]] = True
    else:
        ds = sample_dataset("photos")
    at = open_page("mmexplore_app/pages/similarity.py", dataset=ds)
    assert not at.exception
    warned = [w.value for w in at.warning if "reads no shapes-world object" in w.value]
    if which == "drawn":
        assert not warned
    else:
        assert warned and f"of {ds.n_images} images" in warned[0]
        assert any("cannot read" in w.value and "captions" in w.value for w in at.warning)  # English photo captions
    assert any("Caption words the model cannot read" in c.value for c in at.caption)


def test_cli_reports_the_share_of_unread_words(tmp_path, capsys):
    from mmexplore.cli import main
    from mmexplore.data.samples import shapes_samples

    s = shapes_samples(n=1)
    img = tmp_path / "scene.png"
    s.images[0].save(img)
    assert main(["relation", "--image", str(img), "--text", FOREIGN[0]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cannot tell") and "words the model cannot read: 100%" in out
    assert main(["similarity", "--images", str(img), "--texts", s.texts[0], FOREIGN[1], "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert [r["unreadable"] for r in d["readability"]] == [False, True] and 0.4 < d["unknown_word_share"] < 1
    assert "mmexplore: warning:" in captured.err
