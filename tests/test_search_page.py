"""The search page under AppTest: builds an index of the data set, searches by text, clicks a result."""

from __future__ import annotations

from apptest_utils import image_captions, open_page

PAGE = "mmexplore_app/pages/search.py"



def test_text_query_then_click_result_as_next_query():
    at = open_page(PAGE, samples="shapes", n=6)
    assert not at.exception
    assert any("images: 6" in c.value and "exact" in c.value for c in at.caption)  # size, kind, model shown
    at.text_input(key="search_text").input("a red circle").run()
    assert not at.exception
    shown = image_captions(at)
    scores = [float(c.split(" · ")[0]) for c in shown]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    # Clicking "use as query" under the second result searches with that image: it comes first, cosine 1.
    second = shown[1].split(" · ")[1]
    at.button(key="search_use_1").click().run()
    assert not at.exception
    shown = image_captions(at)
    assert shown[0] == "query image"
    assert shown[1].split(" · ")[1] == second and float(shown[1].split(" · ")[0]) > 0.999


def test_captions_as_targets_and_bad_folder(tmp_path):
    at = open_page(PAGE, samples="shapes", n=4)
    at.text_input(key="search_text").input("a blue square").run()
    at.radio(key="search_target").set_value("text").run()
    assert not at.exception
    assert at.button(key="search_use_0") is not None
    at.radio(key="search_source").set_value("A folder of images").run()
    at.text_input(key="search_folder").input(str(tmp_path / "missing")).run()
    at.button(key="search_build").click().run()
    assert not at.exception
    assert any("missing" in e.value for e in at.error)


def test_empty_dataset_note():
    at = open_page(PAGE, samples=None)
    assert not at.exception
    assert any("empty" in i.value for i in at.info)


def test_build_index_of_a_folder_on_the_page(tmp_path, monkeypatch):
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene

    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(3):
        render_scene(make_scene(HELD_OUT_SEED_START + 900 + i, n_objects=2), 96).save(folder / f"pic{i}.png")
    (folder / "broken.png").write_bytes(b"junk")
    monkeypatch.setenv("MMEXPLORE_CACHE_DIR", str(tmp_path / "cache"))
    at = open_page(PAGE, samples="shapes", n=2)
    at.radio(key="search_source").set_value("A folder of images").run()
    at.text_input(key="search_folder").input(str(folder)).run()
    at.button(key="search_build").click().run()
    assert not at.exception
    assert any("broken.png" in w.value for w in at.warning)  # bad file reported, others indexed
    assert any("images: 3" in c.value for c in at.caption)
    at.text_input(key="search_text").input("a small red circle").run()
    names = [c.split(" · ")[1] for c in image_captions(at)]
    assert sorted(names) == ["pic0.png", "pic1.png", "pic2.png"]


def test_search_an_embeddings_folder_from_mmexplore_embed(tmp_path, monkeypatch):
    from mmexplore.data.shapes import HELD_OUT_SEED_START, make_scene, render_scene
    from mmexplore.embeddings.job import EmbedOptions, embed
    from mmexplore.settings import reload_settings

    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(5):
        render_scene(make_scene(HELD_OUT_SEED_START + 950 + i, n_objects=2), 64).save(folder / f"p{i}.png")
    embed(str(folder), tmp_path / "emb", "bundled", EmbedOptions(engine="local", progress=False))
    monkeypatch.setenv("MMEXPLORE_INDEX_DIR", str(tmp_path / "indexes"))
    reload_settings()
    try:
        at = open_page(PAGE, samples="shapes", n=2)
        at.radio(key="search_source").set_value("An embeddings folder (mmexplore embed)").run()
        at.text_input(key="search_emb_path").input(str(tmp_path / "emb")).run()
        assert not at.exception
        assert any("images: 5" in c.value for c in at.caption)
        at.text_input(key="search_text").input("a small red circle").run()
        names = sorted(c.split(" · ")[1] for c in image_captions(at))
        assert names == [f"p{i}.png" for i in range(5)]
        at.text_input(key="search_emb_path").input(str(tmp_path / "pics")).run()  # not an embeddings folder
        assert any("not an embeddings folder" in e.value for e in at.error)
    finally:
        monkeypatch.delenv("MMEXPLORE_INDEX_DIR")
        reload_settings()
