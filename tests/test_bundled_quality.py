"""Smoke test of the shipped model: it must prefer true captions to their hard negatives."""

import random

import numpy as np

from mmexplore.data.shapes import canonical_caption, hard_negative, render_scene
from mmexplore.data.shapes_alt import render_scene_alt


def test_true_captions_beat_swaps(encoder, shapes_scenes):
    wins = {"relation_swap": [], "color_swap": [], "shape_change": []}
    for scene in shapes_scenes:
        cap = canonical_caption(scene)
        for render in (lambda s: render_scene(s, 128), lambda s: render_scene_alt(s, style_seed=2)):
            img = encoder.encode_images([render(scene)], use_cache=False)[0]
            for kind in wins:
                neg = hard_negative(cap, kind, random.Random(0))
                if neg is None:
                    continue
                t = encoder.encode_texts([cap.text, neg.text], use_cache=False)
                wins[kind].append(float(img @ t[0]) > float(img @ t[1]))
    overall = np.mean([w for ws in wins.values() for w in ws])
    assert overall >= 0.75, wins


def test_retrieval_on_small_held_out_set(encoder, shapes_scenes):
    from mmexplore.metrics.similarity import similarity_report

    images = [render_scene(s, 128) for s in shapes_scenes]
    texts = [canonical_caption(s).text for s in shapes_scenes]
    rep = similarity_report(encoder.encode_images(images), encoder.encode_texts(texts), logit_scale=encoder.logit_scale)
    assert rep.recall["i2t@1"] >= 0.6 and rep.recall["t2i@1"] >= 0.6
