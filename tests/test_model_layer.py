import pickle
import time

import numpy as np
import pytest
import torch

from mmexplore.data.shapes import make_scene, render_scene
from mmexplore.errors import ModelLoadError
from mmexplore.models import load_model
from mmexplore.models.cache import EmbeddingCache
from mmexplore.models.specs import BUNDLED_DIR


@pytest.fixture(scope="module")
def images():
    return [render_scene(make_scene(s), 96) for s in range(7)]


def test_bundled_info(encoder):
    info = encoder.info.to_dict()
    assert {"name", "embed_dim", "image_size", "device", "dtype", "params"} <= set(info)
    assert info["name"] == "bundled" and info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["embed_dim"] == 128 and info["image_size"] == 64 and info["params"] > 100_000
    assert 1.0 < encoder.logit_scale <= 100.0
    assert encoder.model.training is False


def test_embeddings_are_unit_float32(encoder, images):
    img = encoder.encode_images(images, use_cache=False)
    txt = encoder.encode_texts(["a red circle", "a small blue square left of a large yellow triangle"], use_cache=False)
    assert img.shape == (7, 128) and txt.shape == (2, 128)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)


def test_batching_equals_one_by_one(encoder, images):
    batched = encoder.encode_images(images, batch_size=3, use_cache=False)
    single = np.stack([encoder.encode_images([im], use_cache=False)[0] for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    texts = [f"a {c} circle" for c in ("red", "green", "blue", "yellow")]
    np.testing.assert_allclose(
        encoder.encode_texts(texts, batch_size=2, use_cache=False),
        np.stack([encoder.encode_texts([t], use_cache=False)[0] for t in texts]),
        atol=1e-5,
    )


def test_same_image_embeds_identically_twice(encoder, images):
    a = encoder.encode_images(images[:1], use_cache=False)
    b = encoder.encode_images(images[:1], use_cache=False)
    assert np.array_equal(a, b)


def test_embedding_cache_hits(encoder, images):
    encoder.cache.clear()
    first = encoder.encode_images(images)
    misses = encoder.cache.misses
    calls = []
    second = encoder.encode_images(images, progress=lambda d, t: calls.append((d, t)))
    assert np.array_equal(first, second)
    assert encoder.cache.misses == misses and encoder.cache.hits >= len(images)
    assert calls[-1] == (7, 7)
    # Duplicates inside one call are encoded once (one cache entry) and returned for both positions.
    before = len(encoder.cache)
    dup = encoder.encode_texts(["a green square", "a green square"])
    assert np.array_equal(dup[0], dup[1]) and len(encoder.cache) == before + 1
    # Without the cache nothing is hashed or stored, and the numbers are the same.
    np.testing.assert_array_equal(encoder.encode_texts(["a green square"], use_cache=False)[0], dup[0])
    assert len(encoder.cache) == before + 1


def test_disk_cache_persists(tmp_path):
    a = EmbeddingCache(directory=tmp_path)
    key = EmbeddingCache.key("m", "text", "abc")
    a.put(key, np.arange(4, dtype=np.float32))
    b = EmbeddingCache(directory=tmp_path)
    np.testing.assert_array_equal(b.get(key), np.arange(4, dtype=np.float32))
    assert not list(tmp_path.rglob("*.tmp"))


def test_models_are_cached_per_spec_and_device():
    # Not the session fixture's object: the process keeps only the last few models (an LRU), and the
    # suite loads more than that (one small model per family), so the bundled one may have been reloaded.
    first = load_model("bundled", "cpu")
    assert load_model("bundled", "cpu") is first
    assert load_model(" bundled ", "auto") is first  # auto resolves to cpu here


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("ViT-B-32:laion2b_s34b_b79k", ["ViT-B-32:laion2b_s34b_b79k", "not available offline", "local file"]),
        ("hf-hub:someone/some-clip", ["hf-hub:someone/some-clip", "not available offline"]),
    ],
)
def test_offline_and_not_cached_fails_fast(spec, needles, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_model(spec, "cpu")
    assert time.monotonic() - start < 5.0
    for needle in needles:
        assert needle in str(info.value)


def test_unknown_arch_lists_close_matches():
    with pytest.raises(ModelLoadError) as info:
        load_model("ViT-B-33:openai", "cpu")
    assert "unknown architecture 'ViT-B-33'" in str(info.value) and "ViT-B-32" in str(info.value)


def test_unknown_tag_lists_tags():
    with pytest.raises(ModelLoadError) as info:
        load_model("ViT-B-32:laion2b_s34b_b78k", "cpu")
    assert "laion2b_s34b_b79k" in str(info.value)


def test_missing_weights_file():
    with pytest.raises(ModelLoadError, match="weights file not found"):
        load_model("ViT-B-32:/nonexistent/w.safetensors", "cpu")


def test_local_safetensors_file_loads_like_bundled(encoder, images):
    spec = f"mmexplore-shapes-s:{BUNDLED_DIR / 'open_clip_model.safetensors'}"
    other = load_model(spec, "cpu")
    np.testing.assert_allclose(
        other.encode_images(images[:2], use_cache=False), encoder.encode_images(images[:2], use_cache=False), atol=1e-5
    )
    np.testing.assert_allclose(
        other.encode_texts(["a red circle"], use_cache=False), encoder.encode_texts(["a red circle"], use_cache=False),
        atol=1e-5,
    )


def test_bin_file_loads_without_pickle_code(encoder, tmp_path):
    state = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    good = tmp_path / "w.bin"
    torch.save(state, good)
    m = load_model(f"mmexplore-shapes-s:{good}", "cpu")
    assert m.encode_texts(["a red circle"], use_cache=False).shape == (1, 128)

    class Evil:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ModelLoadError, match=r"could not load evil\.pt"):
        load_model(f"mmexplore-shapes-s:{evil}", "cpu")


def test_random_init_is_deterministic():
    a = load_model("mmexplore-shapes-s:random", "cpu")
    e = a.encode_texts(["a red circle"], use_cache=False)
    from mmexplore.models import clear_loaded_models

    clear_loaded_models()
    b = load_model("mmexplore-shapes-s:random", "cpu")
    np.testing.assert_allclose(e, b.encode_texts(["a red circle"], use_cache=False), atol=1e-6)
    clear_loaded_models()


def test_unknown_device():
    with pytest.raises(ModelLoadError, match="unknown device"):
        load_model("bundled", "tpu")


def test_a_tokenizer_that_cannot_load_is_one_clear_error(monkeypatch):
    """SigLIP configs name a Hugging Face tokenizer; without it (offline, no transformers) loading says so."""
    import open_clip

    def no_tokenizer(name, *a, **k):
        raise ModuleNotFoundError("No module named 'transformers'")

    monkeypatch.setattr(open_clip, "get_tokenizer", no_tokenizer)
    with pytest.raises(ModelLoadError) as info:
        load_model("ViT-B-16-SigLIP:random", "cpu")
    msg = str(info.value)
    assert "ViT-B-16-SigLIP:random" in msg and "tokenizer" in msg and "mmexplore-shapes-siglip-xs:random" in msg
