from pathlib import Path

import pytest

from mmexplore.errors import ModelLoadError
from mmexplore.models.specs import BUNDLED_DIR, parse_spec


@pytest.mark.parametrize(
    ("text", "kind", "arch", "tag"),
    [
        ("bundled", "bundled", "", ""),
        ("ViT-B-32:laion2b_s34b_b79k", "pretrained", "ViT-B-32", "laion2b_s34b_b79k"),
        ("ViT-B-32:random", "random", "ViT-B-32", "random"),
        ("  ViT-B-16:openai ", "pretrained", "ViT-B-16", "openai"),
    ],
)
def test_parse_named_specs(text, kind, arch, tag):
    spec = parse_spec(text)
    assert (spec.kind, spec.arch, spec.tag) == (kind, arch, tag)


def test_bundled_points_at_assets():
    assert parse_spec("bundled").path == BUNDLED_DIR
    assert BUNDLED_DIR.name == "bundled" and BUNDLED_DIR.parent.name == "assets"


def test_parse_file_specs():
    spec = parse_spec("ViT-B-32:/tmp/weights.safetensors")
    assert spec.kind == "file" and spec.arch == "ViT-B-32" and spec.path == Path("/tmp/weights.safetensors")
    assert parse_spec("ViT-B-32:./w.bin").kind == "file"
    assert parse_spec("ViT-B-32:weights.pt").kind == "file"


def test_parse_hub_and_local_dir():
    spec = parse_spec("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert spec.kind == "hf-hub" and spec.repo == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert parse_spec("local-dir:/models/x").path == Path("/models/x")


@pytest.mark.parametrize("bad", ["", "   ", "ViT-B-32", "hf-hub:onlyname", ":tag", "ViT-B-32:/tmp/w.txt"])
def test_malformed_specs_name_the_spec(bad):
    with pytest.raises(ModelLoadError) as info:
        parse_spec(bad)
    assert "spec" in str(info.value)
