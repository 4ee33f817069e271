"""The bundle manifest round-trips, is written atomically, and rejects bad files clearly."""

from __future__ import annotations

import json

import pytest

from fiqa_edge._atomic import atomic_path
from fiqa_edge.errors import ManifestError
from fiqa_edge.manifest import MANIFEST_NAME, SCHEMA_VERSION, Manifest, sha256_file
from fiqa_edge.preprocess import PreprocessSpec


def _manifest() -> Manifest:
    return Manifest(
        arch="fiqa_edgenext_xxs",
        preprocessing=PreprocessSpec(input_size=352),
        model_file="model.onnx",
        backend="onnxruntime",
        precision="int8",
        source_sha256="ab" * 32,
        figures={"parity": {"srcc": 0.999}},
    )


def test_round_trip(tmp_path):
    m = _manifest()
    path = m.save(tmp_path)
    assert path.name == MANIFEST_NAME
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["input_size"] == 352
    assert data["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert data["score"] == {"range": [0.0, 1.0], "higher_is_better": True}
    again = Manifest.load(tmp_path)
    assert again.to_dict() == m.to_dict()


def test_invalid_manifests_name_the_file(tmp_path):
    path = tmp_path / MANIFEST_NAME
    with pytest.raises(ManifestError, match="no such manifest"):
        Manifest.load(tmp_path)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match=str(path)):
        Manifest.load(path)
    path.write_text(json.dumps({"schema_version": 1, "arch": "x"}))
    with pytest.raises(ManifestError, match="invalid manifest"):
        Manifest.load(path)
    future = _manifest().to_dict() | {"schema_version": SCHEMA_VERSION + 1}
    path.write_text(json.dumps(future))
    with pytest.raises(ManifestError, match="upgrade fiqa-edge"):
        Manifest.load(path)
    with pytest.raises(ManifestError, match="precision"):
        Manifest(arch="a", preprocessing=PreprocessSpec(input_size=8), model_file="m", precision="int4")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model.onnx"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("conversion failed")
    assert final.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    bundle = tmp_path / "bundle"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(bundle, directory=True) as tmp:
            (tmp / "model.onnx").write_text("half")
            raise KeyboardInterrupt
    assert not bundle.exists()
    with atomic_path(bundle, directory=True) as tmp:
        (tmp / "model.onnx").write_text("whole")
    assert (bundle / "model.onnx").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "model.onnx"]


def test_sha256(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_framing_round_trips_and_older_manifests_have_none(tmp_path):
    from fiqa_edge.assets import DEFAULT_BUNDLE
    from fiqa_edge.framing import LFW_FRAMING

    m = _manifest()
    m.framing = LFW_FRAMING
    m.save(tmp_path)
    assert Manifest.load(tmp_path).framing == LFW_FRAMING
    stored = json.loads((DEFAULT_BUNDLE / MANIFEST_NAME).read_text())
    older = {k: v for k, v in stored.items() if k not in ("framing", "scale")} | {"schema_version": 1}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(older))
    loaded = Manifest.load(tmp_path)
    assert loaded.framing is None and loaded.scale is None
