"""The reading readout term (training/reading.py), the words TextInImage reports for it, the web
mode's contradicting words (``lie``, the defence) and the trainer run with the term."""

import json
import random
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from trainrun import small_run_config

from mmexplore.data.shapes import COLORS, SHAPES, make_scene, object_masks
from mmexplore.models import load_model
from mmexplore.robustness.typographic import TextInImage, _dilate
from mmexplore.training.data import make_batch
from mmexplore.training.reading import READ_WORDS, make_readout, reading_loss, reading_targets
from mmexplore.training.trainer import Trainer, read_events


def test_targets_mark_the_written_words_and_nothing_else():
    t = reading_targets([("red",), ("blue circle",), (), ("banana", "square")])
    assert t.shape == (4, len(READ_WORDS))
    assert t[0].tolist() == [1.0 if w == "red" else 0.0 for w in READ_WORDS]
    assert {READ_WORDS[k] for k in np.flatnonzero(t[1].numpy())} == {"blue", "circle"}
    assert t[2].sum() == 0  # nothing written
    assert {READ_WORDS[k] for k in np.flatnonzero(t[3].numpy())} == {"square"}  # unknown words ignored


def test_the_term_is_low_for_a_readout_that_reads_and_high_for_one_that_misreads():
    targets = reading_targets([(w,) for w in READ_WORDS])
    feats = torch.eye(len(READ_WORDS), 16)
    right, wrong = make_readout(16, "cpu"), make_readout(16, "cpu")
    with torch.no_grad():
        right.weight.zero_(), right.bias.fill_(-4.0), wrong.weight.zero_(), wrong.bias.fill_(-4.0)
        for k in range(len(READ_WORDS)):
            right.weight[k, k] = 1.0
            wrong.weight[(k + 1) % len(READ_WORDS), k] = 1.0  # reads every word as the next one
        assert float(reading_loss(right, feats, targets)) < 0.05
        assert float(reading_loss(wrong, feats, targets)) > 1.0


def _batch(seed, n=40):
    return make_batch(random.Random(seed), n, 1, 128, with_scenes=True, pair_fraction=0.0)


def test_text_in_image_reports_exactly_the_words_it_wrote():
    b = _batch(3)
    plain = TextInImage("web", share=0.5, seed=1, text_only=0.3, cue=0.5)
    assert len(plain((b.images, b.captions, b.negatives, b.scenes))) == 4  # unchanged without report_words
    t = TextInImage("web", share=0.5, seed=1, text_only=0.3, cue=0.5, report_words=True)
    imgs, caps, _, _, words = t((b.images, b.captions, b.negatives, b.scenes))
    assert sum(bool(w) for w in words) == t.written == 20 and t.labels > 0
    for before, after, cap, written in zip(b.images, imgs, caps, words, strict=True):
        changed = not np.array_equal(np.asarray(before), np.asarray(after))
        assert changed == bool(written)
        for phrase in written:
            assert set(phrase.split()) <= set(READ_WORDS)
            assert all(w in cap for w in phrase.split())  # web words agree with the caption (labels included)
    agree = TextInImage("random", share=1.0, seed=0, report_words=True)
    *_, words = agree((b.images, b.captions, b.negatives, b.scenes))
    assert all(len(w) == 1 and w[0] in READ_WORDS for w in words)


def test_lie_writes_a_word_that_contradicts_caption_and_picture_and_negates_with_its_claim():
    b = _batch(9)
    t = TextInImage("web", share=1.0, seed=2, lie=1.0, cue=1.0, report_words=True)
    _, caps, negs, _, words = t((b.images, b.captions, b.negatives, b.scenes))
    assert caps == b.captions and t.cued == 0 and t.lied > 30  # the picture is drawn as it is
    checked = 0
    for cap, neg, scene, (word,) in zip(caps, negs, b.scenes, words, strict=True):
        named = [o for o in scene.objects if f"{o.color} {o.shape}" in cap]
        if not named:
            continue
        diff = [(a, n) for a, n in zip(cap.split(), neg[0].split(), strict=True) if a != n]
        ((true, claimed),) = diff
        assert claimed.strip(",").removesuffix("s") == word != true  # the word contradicts the caption; the
        # hard negative is what it claims
        assert {true.strip(",").removesuffix("s"), word} <= set(COLORS) or \
            {true.strip(",").removesuffix("s"), word} <= set(SHAPES)
        checked += 1
    assert checked > 30
    with pytest.raises(ValueError):
        TextInImage("web", lie=2.0)


def test_dilate_is_the_max_filter_it_replaces():
    for seed in range(6):
        scene = make_scene(seed, n_objects=1)
        mask = Image.fromarray((object_masks(scene, 128)[0] * 255).astype(np.uint8))
        r = max(1, round(scene.objects[0].radius * 128))
        want = np.asarray(mask.filter(ImageFilter.MaxFilter(2 * r + 1))) > 0
        assert np.array_equal(np.asarray(_dilate(mask, r)) > 0, want)


_cfg = partial(small_run_config, steps=6, batch_size=12, eval_every=3, render_size=64, read_weight=1.0)


def test_a_run_with_the_reading_term_reports_it_saves_a_plain_model_and_resumes(tmp_path):
    events: list = []
    words = TextInImage("web", share=0.8, seed=0, text_only=0.3, report_words=True)
    trainer = Trainer(_cfg(tmp_path / "r", steps=3), callbacks=[events.append], batch_transform=words)
    trainer.run()
    steps = [e for e in events if e["event"] == "step"]
    assert all("reading" in e["terms"] and np.isfinite(e["terms"]["reading"]) for e in steps)
    assert (tmp_path / "r" / "checkpoint" / "read_readout.safetensors").is_file()
    load_model(f"local-dir:{tmp_path / 'r'}", "cpu")  # strict open_clip load: no readout keys in the model
    before = trainer.read_readout.weight.detach().clone()
    resumed = Trainer.resume(tmp_path / "r", steps=6, batch_transform=TextInImage(
        "web", share=0.8, seed=0, text_only=0.3, report_words=True))
    resumed.setup()
    torch.testing.assert_close(resumed.read_readout.weight.detach(), before)  # not a fresh readout
    resumed.run()
    assert [e["step"] for e in read_events(tmp_path / "r" / "train_log.jsonl") if e["event"] == "step"] == list(range(1, 7))
    assert json.loads((tmp_path / "r" / "run.json").read_text())["config"]["read_weight"] == 1.0


def test_the_reading_term_needs_written_words_and_a_sane_weight(tmp_path, capsys):
    from mmexplore.cli import main
    from mmexplore.errors import InputError

    with pytest.raises(InputError, match="read_weight"):
        Trainer(_cfg(tmp_path / "neg", read_weight=-1.0))
    base = ["train", "--arch", "mmexplore-shapes-xs", "--steps", "2", "--batch-size", "8", "--eval-every", "0",
            "--eval-scenes", "4", "--render-size", "64", "--threads", "1"]
    assert main([*base, "--out", str(tmp_path / "bad"), "--read-weight", "1"]) == 2
    assert "--read-weight needs --text-in-image" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "bad2"), "--text-lie", "0.5"]) == 2  # needs web
    assert "--text-lie" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "ok"), "--text-in-image", "web", "--text-share", "0.5",
                 "--text-lie", "0.5", "--read-weight", "0.5"]) == 0
    cfg = json.loads((tmp_path / "ok" / "metrics.json").read_text())["config"]
    assert cfg["read_weight"] == 0.5 and cfg["extra"]["lie"] == 0.5
