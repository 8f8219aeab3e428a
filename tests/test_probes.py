"""Compositional probes: every perturbation kind on tricky captions, scoring, bag-of-words baseline."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from mmexplore.errors import InputError
from mmexplore.probes import (
    ORDER_KINDS,
    PERTURBATION_KINDS,
    bag_of_words_embeddings,
    evaluate_compositional,
    perturb_caption,
    score_probes,
)


def by_kind(text, **kw):
    return {p.kind: p.text for p in perturb_caption(text, **kw)}


def test_attribute_swap():
    assert by_kind("a red circle left of a blue square")["attribute_swap"] == "a blue circle left of a red square"
    # Equal colours: the swap would change nothing, so the size is swapped instead.
    swapped = by_kind("a small red square above a large red circle")["attribute_swap"]
    assert swapped == "a large red square above a small red circle"
    # Nothing to swap at all: dropped, not counted.
    assert "attribute_swap" not in by_kind("a red circle above a red square")
    assert "attribute_swap" not in by_kind("a dog on a sofa")
    # Case and punctuation kept.
    assert by_kind("Red apples, green pears.")["attribute_swap"] == "Green apples, red pears."


def test_relation_swap():
    assert by_kind("a red circle left of a blue square")["relation_swap"] == "a blue square left of a red circle"
    swapped = by_kind("a picture of a blue square below a red circle")["relation_swap"]
    assert swapped == "a picture of a red circle below a blue square"
    assert by_kind("The cat is on the mat.")["relation_swap"] == "The mat is on the cat."
    assert by_kind("a horse eating the grass")["relation_swap"] == "the grass eating a horse"
    # Symmetric relations and captions without a relation give nothing.
    assert "relation_swap" not in by_kind("a dog next to a cat")
    assert "relation_swap" not in by_kind("a red circle and a blue square")
    # Both sides equal: swapping changes nothing, so it is dropped.
    assert "relation_swap" not in by_kind("a red circle above a red circle")


def test_shuffle_and_drop():
    text = "a large red triangle above a small yellow square"
    got = by_kind(text, seed=3)
    assert sorted(got["word_shuffle"].split()) == sorted(text.split()) and got["word_shuffle"] != text
    dropped = got["word_drop"].split()
    assert 0 < len(dropped) < len(text.split())
    assert by_kind(text, seed=3) == got  # deterministic by seed
    # Repeated words: no order differs, so no shuffle.
    assert "word_shuffle" not in by_kind("the the the")
    # A one-word caption cannot be shuffled or lose a word.
    assert set(by_kind("dog")) == {"negation"}


def test_negation():
    assert by_kind("a red circle left of a blue square")["negation"] == "a red circle not left of a blue square"
    assert by_kind("The cat is on the mat.")["negation"] == "The cat is not on the mat."
    assert by_kind("there is no dog")["negation"] == "there is a dog"  # an existing negation is removed
    assert by_kind("it isn't raining")["negation"] == "it is raining"
    assert by_kind("a dog and a cat")["negation"] == "no dog and a cat"


def test_no_perturbation_equals_its_caption_and_unknown_kind():
    for text in ["a red circle above a red circle", "the the the", "A A", "x", "  spaced   words  here "]:
        for p in perturb_caption(text):
            assert p.text.lower().split() != text.lower().split()
    assert perturb_caption("") == []
    with pytest.raises(InputError, match="unknown perturbation"):
        perturb_caption("a cat", kinds=("rotate",))


class WordEncoder:
    """A text encoder that is a bag of words by construction (order-blind), to test the scorer."""

    model_id = "bow@1"

    def encode_texts(self, texts):
        rng = np.random.default_rng(0)
        table = {}
        out = []
        for t in texts:
            vecs = []
            for w in sorted(t.lower().replace(",", " ").split()):
                if w not in table:
                    table[w] = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(16)
                vecs.append(table[w])
            v = np.mean(vecs, axis=0) if vecs else rng.standard_normal(16)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def test_bag_of_words_ties_on_order_kinds():
    enc = WordEncoder()
    caption = "a large red triangle above a small yellow square"
    img = enc.encode_texts([caption])  # an "image" that matches the caption perfectly
    res = score_probes(enc, img, [caption])[0]
    kinds = {r.kind for r in res.rows}
    assert kinds == set(PERTURBATION_KINDS)
    for r in res.rows:
        if r.kind in ORDER_KINDS:
            assert r.bow_pass == 0.5  # same bag of words: an exact tie
            assert not r.passed  # the order-blind "model" cannot win either
    bow = bag_of_words_embeddings(enc, [caption, "square yellow small a above triangle red large a"])
    np.testing.assert_array_equal(bow[0], bow[1])


def test_bundled_model_reads_some_word_order(encoder):
    res = evaluate_compositional(encoder, n_scenes=24, renderers=("train",))["train"]
    for kind in PERTURBATION_KINDS:
        assert res[kind]["n"] > 0
        assert 0.0 <= res[kind]["model"] <= 1.0
    for kind in ORDER_KINDS:
        assert res[kind]["bag_of_words"] == 0.5
    # The hard-negative model beats the order-blind baseline on attribute binding by a wide margin.
    assert res["attribute_swap"]["model"] >= 0.65
