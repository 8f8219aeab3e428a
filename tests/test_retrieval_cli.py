"""CLI of search and probes: JSON contract (docs/design.md §8) and bad input (exit 2, one line)."""

from __future__ import annotations

import pytest
from clirun import run_json

from mmexplore.cli import main
from mmexplore.data.shapes import HELD_OUT_SEED_START, canonical_caption, make_scene, render_scene


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("search_scenes")
    captions = {}
    for i in range(6):
        scene = make_scene(HELD_OUT_SEED_START + 800 + i, n_objects=2)
        render_scene(scene, 128).save(d / f"s{i}.png")
        captions[f"s{i}.png"] = canonical_caption(scene).text
    (d / "captions.csv").write_text("image,text\n" + "".join(f"{k},{v}\n" for k, v in captions.items()))
    return d, captions


def run_bad(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_index_build_and_search(capsys, scene_folder, tmp_path):
    folder, captions = scene_folder
    built = run_json(capsys, "index", "build", str(folder / "captions.csv"), "--index", str(tmp_path / "ix"), "--no-progress")
    assert built["sizes"] == {"image": 6, "text": 6} and built["kinds"]["image"]["backend"] == "exact"
    # text -> image: each result has path and score, best first; captions included.
    target = "s2.png"
    res = run_json(capsys, "search", "--index", str(tmp_path / "ix"), "--text", captions[target], "--k", "3")
    assert [set(r) >= {"path", "score", "caption"} for r in res["results"]] == [True] * 3
    scores = [r["score"] for r in res["results"]]
    assert scores == sorted(scores, reverse=True)
    # image -> image: the image itself comes first with cosine 1.
    res = run_json(capsys, "search", "--index", str(tmp_path / "ix"), "--image", str(folder / target), "--k", "2")
    assert res["results"][0]["path"].endswith(target) and res["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    # image -> text returns captions.
    res = run_json(capsys, "search", "--index", str(tmp_path / "ix"), "--image", str(folder / target), "--target", "text")
    assert len(res["results"]) == 6 and all(r["caption"] for r in res["results"])
    # Re-running the build redoes nothing.
    again = run_json(capsys, "index", "build", str(folder / "captions.csv"), "--index", str(tmp_path / "ix"), "--no-progress")
    assert again["embedded"] == 0 and again["skipped"] == 12


def test_search_bad_input(capsys, scene_folder, tmp_path):
    folder, _ = scene_folder
    assert "not a search index" in run_bad(capsys, "search", "--index", str(tmp_path), "--text", "x")
    run_json(capsys, "index", "build", str(folder), "--index", str(tmp_path / "ix"), "--no-progress")
    assert "exactly one query" in run_bad(capsys, "search", "--index", str(tmp_path / "ix"))
    assert "no texts" in run_bad(capsys, "search", "--index", str(tmp_path / "ix"), "--text", "a", "--target", "text")
    assert "--k" in run_bad(capsys, "search", "--index", str(tmp_path / "ix"), "--text", "a", "--k", "0")
    assert "nope.png" in run_bad(capsys, "search", "--index", str(tmp_path / "ix"), "--image", str(tmp_path / "nope.png"))
    err = run_bad(capsys, "search", "--index", str(tmp_path / "ix"), "--text", "a", "--model", "mmexplore-shapes-xs:random")
    assert "mmexplore-shapes-xs:random" in err and "bundled@" in err
    assert "no such file" in run_bad(capsys, "index", "build", str(tmp_path / "missing"), "--index", str(tmp_path / "o"))


def test_probe_json(capsys, scene_folder):
    folder, captions = scene_folder
    res = run_json(capsys, "probe", "--image", str(folder / "s0.png"), "--text", captions["s0.png"])
    assert res["caption"] == captions["s0.png"]
    kinds = {p["kind"] for p in res["perturbations"]}
    assert {"word_shuffle", "word_drop", "negation"} <= kinds
    for p in res["perturbations"]:
        assert p["passed"] == (res["score"] > p["score"])
    assert "empty" in run_bad(capsys, "probe", "--image", str(folder / "s0.png"), "--text", "  ")


def test_eval_compositional_json_and_missing_variant(capsys):
    res = run_json(capsys, "eval", "compositional", "--models", "bundled,bundled-nosuchvariant", "--scenes", "6",
                   "--renderer", "train")
    assert "missing" in res["models"]["bundled-nosuchvariant"]
    acc = res["models"]["bundled"]["accuracy"]["train"]
    assert set(acc) == {"attribute_swap", "relation_swap", "word_shuffle", "word_drop", "negation"}
    assert all(set(v) == {"model", "bag_of_words", "n"} for v in acc.values())
    assert res["reference"]["figures"]["NegCLIP"]["vg_relation"] == 0.81
    assert "bundled-nosuchvariant" in run_bad(capsys, "eval", "compositional", "--models", "bundled-nosuchvariant")


def test_eval_compositional_lists_the_shipped_order_family_side_by_side(capsys):
    """The default comparison is the order family (plain CLIP, NegCLIP, spatial bias) and bundled; all load."""
    from mmexplore.models.specs import ORDER_FAMILY
    from mmexplore.settings import Settings

    res = run_json(capsys, "eval", "compositional", "--scenes", "4", "--device", "cpu")
    assert list(res["models"]) == [*ORDER_FAMILY, "bundled"] and len(ORDER_FAMILY) == 3
    assert res["renderers"] == ["train", "alt", "sketch"]  # every registered renderer by default
    for spec in ORDER_FAMILY:
        assert "missing" not in res["models"][spec], res["models"][spec]
        for renderer in ("train", "alt", "sketch"):
            acc = res["models"][spec]["accuracy"][renderer]
            assert acc["relation_swap"]["bag_of_words"] == 0.5 and 0 <= acc["relation_swap"]["model"] <= 1
    # The text table names every model; a shared server offers them (its default allow-list).
    main(["eval", "compositional", "--scenes", "2", "--renderer", "alt", "--device", "cpu"])
    text = capsys.readouterr().out
    assert all(spec in text for spec in ORDER_FAMILY)
    assert set(ORDER_FAMILY) <= set(Settings.allowed_models)


def test_eval_renderer_choices_come_from_the_registry(capsys):
    """``--renderer`` offers every registered renderer plus ``all`` and ``both``; ``sketch`` alone works."""
    from mmexplore.cli import build_parser
    from mmexplore.data.renderers import RENDERERS

    parser = build_parser()
    for argv in (["eval", "compositional"], ["eval", "retrieval"]):
        args = parser.parse_args([*argv, "--renderer", "sketch"])
        assert args.renderer == "sketch"
        assert parser.parse_args(argv).renderer == "all"
    res = run_json(capsys, "eval", "compositional", "--renderer", "sketch", "--scenes", "5", "--models", "bundled",
                   "--device", "cpu")
    assert res["renderers"] == ["sketch"] and set(res["models"]["bundled"]["accuracy"]) == {"sketch"}
    assert res["models"]["bundled"]["accuracy"]["sketch"]["relation_swap"]["n"] == 5
    res = run_json(capsys, "eval", "retrieval", "--renderer", "both", "--scenes", "3", "--device", "cpu")
    assert list(res["retrieval"]) == ["train", "alt"]
    assert "sketch" in run_bad(capsys, "eval", "retrieval", "--renderer", "crayon")  # the usage line lists it
    assert len(RENDERERS) == 3
