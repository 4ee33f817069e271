"""The app-facing scorer: same scores on every backend and input kind, streaming, safe on bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fiqa_edge.assets import DEFAULT_BUNDLE, DEFAULT_MODEL
from fiqa_edge.cli import main
from fiqa_edge.errors import CheckpointError, FiqaError, ImageError, MissingDependencyError
from fiqa_edge.manifest import Manifest, sha256_file
from fiqa_edge.scorer import QualityScorer, ScoreResult


@pytest.fixture(scope="module")
def torch_scores(faces):
    scorer = QualityScorer.load(DEFAULT_MODEL, backend="torch")
    return scorer.score_batch(faces)


@pytest.fixture(scope="module")
def onnx_scorer():
    return QualityScorer.load(DEFAULT_BUNDLE)


def test_bundled_onnx_is_the_bundled_checkpoint_converted():
    manifest = Manifest.load(DEFAULT_BUNDLE)
    assert manifest.source_sha256 == sha256_file(DEFAULT_MODEL)
    assert (manifest.backend, manifest.precision) == ("onnxruntime", "fp32")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_give_the_torch_scores(faces, torch_scores, backend):
    scorer = QualityScorer.load(DEFAULT_BUNDLE, backend=backend, threads=1)
    assert scorer.backend.name == backend
    assert np.abs(scorer.score_batch(faces) - torch_scores).max() <= 1e-4
    assert torch_scores.std() > 0.005  # the faces score differently: the comparison has teeth


def test_every_input_kind_gives_the_same_score(onnx_scorer, faces):
    path = faces[3]
    expected = onnx_scorer.score(path)
    image = Image.open(path)
    assert onnx_scorer.score(str(path)) == expected
    assert onnx_scorer.score(path.read_bytes()) == expected
    assert onnx_scorer.score(image) == expected
    assert onnx_scorer.score(np.asarray(image.convert("RGB"))) == expected


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((0, 5, 3), np.uint8), 42])
def test_wrong_in_memory_inputs_are_refused_in_one_line(onnx_scorer, bad):
    with pytest.raises(ImageError) as info:
        onnx_scorer.score(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("workers, batch_size", [(0, 1), (0, 3), (2, 8), (3, 4)])
def test_score_paths_streams_in_order_past_bad_files(onnx_scorer, faces, bad_files, workers, batch_size):
    inputs = [faces[0], bad_files["truncated"], faces[1], bad_files["empty"], bad_files["missing"],
              *faces[2:9], bad_files["directory"], faces[9]]
    results = list(onnx_scorer.score_paths(inputs, batch_size=batch_size, workers=workers))
    assert [r.path for r in results] == [str(p) for p in inputs]
    good = [r for r in results if r.error is None]
    assert len(good) == 10 and all(r.score is not None for r in good)
    assert [r.error is not None for r in results] == [p in bad_files.values() for p in inputs]
    expected = onnx_scorer.score_batch([p for p in inputs if p in faces])
    assert np.abs(np.array([r.score for r in good]) - expected).max() <= 1e-6


def test_score_paths_holds_a_bounded_window_of_a_generator(onnx_scorer, faces):
    consumed = []

    def source():
        for i in range(200):
            consumed.append(i)
            yield faces[i % len(faces)]

    stream = onnx_scorer.score_paths(source(), batch_size=4, workers=2)
    first = [next(stream) for _ in range(4)]
    assert all(isinstance(r, ScoreResult) and r.error is None for r in first)
    assert len(consumed) <= 4 + 2 * 4 + 2 + 1  # the yielded batch + the decode window, never the whole stream
    assert sum(1 for _ in stream) == 196


def test_tiny_and_odd_images_score(onnx_scorer, odd_images, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (120, 90, 80)).save(tiny)
    scores = [onnx_scorer.score(p) for p in (tiny, *odd_images.values())]
    assert all(np.isfinite(scores))


def test_pixel_limit_refuses_large_images_with_a_clear_message(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(big)
    scorer = QualityScorer.load(DEFAULT_BUNDLE, max_pixels=50_000)
    with pytest.raises(ImageError, match=r"big.png: 300×200 is 60,000 pixels, over the limit of 50,000"):
        scorer.score(big)
    result = CliRunner().invoke(main, ["score", str(big), "--max-pixels", "50000", "-q"])
    assert result.exit_code == 1 and "over the limit" in result.stderr
    assert CliRunner().invoke(main, ["score", str(big), "--max-pixels", "60000", "-q"]).exit_code == 0


def test_unreadable_file_is_one_line_and_the_rest_are_scored(onnx_scorer, tmp_path, faces, monkeypatch):
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(faces[0].read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads any file: make opening it fail as it does for other users
        real_open = Image.open

        def guarded_open(fp, *args, **kwargs):
            if str(fp) == str(locked):
                raise PermissionError(13, "Permission denied", str(fp))
            return real_open(fp, *args, **kwargs)

        monkeypatch.setattr(Image, "open", guarded_open)
    first, second = onnx_scorer.score_paths([locked, faces[1]], workers=2)
    assert first.error == f"{locked}: permission denied" and first.score is None
    assert second.error is None and second.score is not None


def test_model_file_errors_name_the_file_and_what_was_expected(tmp_path, faces):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(CheckpointError, match="nope.onnx: no such model file"):
        QualityScorer.load(missing)
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes((DEFAULT_BUNDLE / "model.onnx").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.onnx: not an ONNX model"):
        QualityScorer.load(truncated)
    jpeg_as_onnx = tmp_path / "face.onnx"
    jpeg_as_onnx.write_bytes(faces[0].read_bytes())
    with pytest.raises(CheckpointError, match="face.onnx: not an ONNX model"):
        QualityScorer.load(jpeg_as_onnx)
    with pytest.raises(FiqaError, match=r"notes.txt: cannot tell which backend reads a \.txt file"):
        (tmp_path / "notes.txt").write_text("x")
        QualityScorer.load(tmp_path / "notes.txt")


def test_model_for_another_backend_is_refused(tmp_path):
    with pytest.raises(CheckpointError) as info:
        QualityScorer.load(DEFAULT_MODEL, backend="onnxruntime")
    assert str(DEFAULT_MODEL) in str(info.value) and "ONNX" in str(info.value)


def test_missing_backend_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a device without it
    with pytest.raises(MissingDependencyError, match=r"pip install 'fiqa-edge\[onnxruntime\]'"):
        QualityScorer.load(DEFAULT_BUNDLE, backend="onnxruntime")


def test_score_cli_json_csv_workers_and_exit_status(tmp_path, faces, bad_files):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["score", str(faces[0]), str(bad_files["text"]), str(faces[1]), "--workers", "3", "--threads", "1",
            "--batch-size", "2", "--json", str(out_json), "--csv", str(out_csv), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    report = json.loads(out_json.read_text())
    assert (report["images"], report["scored"], report["failed"], report["backend"]) == (3, 2, 1, "onnxruntime")
    assert report["results"][1]["score"] is None and "not an image" in report["results"][1]["error"]
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    scored = [report["results"][0]["score"], report["results"][2]["score"]]
    assert [float(r["score"]) for r in rows if r["score"]] == pytest.approx(scored, abs=1e-6)
    assert result.stdout == ""  # both reports went to files
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {report['results'][1]['error']}"]


_GOOD = None


def _good_bytes() -> bytes:
    global _GOOD
    if _GOOD is None:
        from fiqa_edge.assets import sample_faces

        _GOOD = sample_faces()[0].read_bytes()
    return _GOOD


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


@st.composite
def mangled_images(draw: st.DrawFn) -> bytes:
    """Real JPEG or PNG bytes, cut short and with some bytes overwritten, or plain random bytes."""
    kind = draw(st.sampled_from(["jpeg", "png", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    data = bytearray(_good_bytes() if kind == "jpeg" else _png())
    data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mangled_images())
def test_fuzzed_bytes_score_or_raise_the_documented_error(onnx_scorer, data):
    try:
        value = onnx_scorer.score(data)
    except ImageError as exc:
        assert str(exc).startswith("<bytes>: ") and "\n" not in str(exc)
    else:
        assert np.isfinite(value)


def test_the_scorer_is_exported_from_the_package():
    import fiqa_edge

    assert fiqa_edge.QualityScorer is QualityScorer


def test_a_lone_onnx_file_scores_on_openvino_from_its_embedded_manifest(tmp_path, faces):
    lone = tmp_path / "model.onnx"
    lone.write_bytes((DEFAULT_BUNDLE / "model.onnx").read_bytes())  # no fiqa.json beside it
    on_openvino = QualityScorer.load(lone, backend="openvino")
    reference = QualityScorer.load(DEFAULT_BUNDLE, backend="onnxruntime")
    assert on_openvino.spec == reference.spec
    assert np.abs(on_openvino.score_batch(faces[:6]) - reference.score_batch(faces[:6])).max() <= 1e-4


def test_openvino_static_shapes_score_as_the_dynamic_model(faces):
    scorer = QualityScorer.load(DEFAULT_BUNDLE, backend="openvino")
    backend = scorer.backend
    x = np.stack([scorer.prepare(p) for p in faces[:8]])
    dynamic = np.asarray(backend.compiled(x)[0]).reshape(-1)
    for size in (8, 1, 3, 2, 5, 7):  # the last two go past STATIC_SHAPES to the dynamic model
        assert np.abs(backend.predict(x[:size]) - dynamic[:size]).max() <= 1e-5
    assert sorted(backend.by_batch) == [1, 2, 3, 8] and backend.STATIC_SHAPES == 4
