"""LiteRT and ExecuTorch: the bundled LiteRT bundle, int8 placement, batch signatures, delegation,
bad model files, and the integration page's app snippets against the bundles' own names."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from fiqa_edge.assets import DEFAULT_BUNDLE, DEFAULT_LITERT_BUNDLE, DEFAULT_MODEL, SAMPLES_DIR
from fiqa_edge.backends import cannot_run, open_backend
from fiqa_edge.backends.pinning import Pinning, _thread_ids, usable_cpus
from fiqa_edge.converters.litert import HEAD_MODULE, PREFILTER_MODULE
from fiqa_edge.converters.targets import TARGETS
from fiqa_edge.errors import CheckpointError
from fiqa_edge.imaging import load_image
from fiqa_edge.manifest import Manifest
from fiqa_edge.preprocess import preprocess
from fiqa_edge.scorer import QualityScorer

INTEGRATION = Path(__file__).parents[1] / "docs" / "integration.md"
needs_litert = pytest.mark.skipif(cannot_run("litert") is not None, reason=f"LiteRT: {cannot_run('litert')}")


@pytest.fixture(scope="module")
def litert_static(tmp_path_factory) -> Path:
    """The default model as a LiteRT static int8 bundle (bundled calibration faces)."""
    from fiqa_edge.converters.convert import convert
    from fiqa_edge.converters.litert import LiteRtOptions
    from fiqa_edge.zoo import load_model

    if TARGETS["litert"].unavailable():
        pytest.skip(f"litert: {TARGETS['litert'].unavailable()}")
    (result,) = convert(load_model(DEFAULT_MODEL), ["litert"], out=tmp_path_factory.mktemp("mobile"), precisions=["int8"],
                        options={"litert": LiteRtOptions(int8_mode="static")})
    assert result.error is None, result.error
    return result.bundle


@pytest.fixture(scope="module")
def executorch_fp32(default_bundles) -> Path:
    """The main job's ExecuTorch fp32 bundle of the default model (methods forward and forward_8)."""
    if "executorch-fp32" not in default_bundles:
        pytest.skip(f"executorch: {TARGETS['executorch'].unavailable() or cannot_run('executorch')}")
    result = default_bundles["executorch-fp32"]
    assert result.error is None, result.error
    return result.bundle


@needs_litert
def test_the_bundled_litert_bundle_scores_as_its_stored_reference(faces):
    manifest = Manifest.load(DEFAULT_LITERT_BUNDLE)
    assert (manifest.backend, manifest.model_file, manifest.precision) == ("litert", "model.tflite", "fp32")
    scorer = QualityScorer.load(DEFAULT_LITERT_BUNDLE)
    stored = manifest.figures["reference_scores"]["scores"]
    scores = scorer.score_batch([SAMPLES_DIR / name for name in stored])
    assert np.abs(scores - np.array(list(stored.values()))).max() <= 1e-4
    onnx = QualityScorer.load(DEFAULT_BUNDLE).score_batch(faces)
    assert np.abs(scorer.score_batch(faces) - onnx).max() <= 1e-4
    # the model file alone carries the same manifest
    backend = open_backend(DEFAULT_LITERT_BUNDLE / "model.tflite", backend="litert")
    assert backend.manifest.to_dict() == manifest.to_dict()


@needs_litert
def test_litert_runs_a_thread_per_cpu_each_pinned_to_its_own(faces):
    cpus, before = usable_cpus(), _thread_ids()
    pinned = QualityScorer.load(DEFAULT_LITERT_BUNDLE)
    started = _thread_ids() - before
    unpinned = QualityScorer.load(DEFAULT_LITERT_BUNDLE, pin_threads=False)
    assert unpinned.backend.pinning == Pinning()
    np.testing.assert_allclose(pinned.score_batch(faces), unpinned.score_batch(faces), rtol=1e-5, atol=1e-6)
    if sys.platform != "linux" or len(cpus) < 2:
        return
    # XNNPACK's workers: one per CPU but the first, which the calling thread takes during a call
    assert pinned.backend.pinning.caller_cpu == cpus[0]
    assert sorted(next(iter(os.sched_getaffinity(tid))) for tid in started) == cpus[1:]
    assert QualityScorer.load(DEFAULT_LITERT_BUNDLE, threads=1).backend.pinning == Pinning()


@pytest.mark.heavy
@needs_litert
def test_litert_int8_keeps_a_low_pass_models_gaussian_taps_in_float(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from fiqa_edge.converters.convert import convert
    from fiqa_edge.converters.litert import PREFILTER_MODULE, LiteRtOptions
    from fiqa_edge.zoo import load_model

    (result,) = convert(load_model(DEFAULT_MODEL, arch="fiqa_edgenext_xxs_lp"), ["litert"], out=tmp_path,
                        precisions=["int8"], options={"litert": LiteRtOptions(int8_mode="dynamic")})
    assert result.error is None, result.error
    interpreter = Interpreter(model_path=str(result.bundle / "model.tflite"))
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = [o for o in interpreter._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    int8_weights = [details[o["inputs"][1]]["dtype"] == np.int8 for o in convs]
    taps = [PREFILTER_MODULE in details[o["outputs"][0]]["name"] for o in convs]
    assert taps[:2] == [True, True] and not any(taps[2:])  # the two Gaussian passes come first
    assert int8_weights[:2] == [False, False]
    # the dense convolutions int8; the depthwise ones (the large ones in bands) float, which ran faster
    kinds = [o["op_name"] for o in convs[2:]]
    assert "CONV_2D" in kinds and "DEPTHWISE_CONV_2D" in kinds
    assert int8_weights[2:] == [kind == "CONV_2D" for kind in kinds]


@pytest.mark.heavy
@needs_litert
def test_litert_int8_keeps_the_first_convolution_float_and_quantizes_the_rest(litert_static):
    from ai_edge_litert.interpreter import Interpreter

    bundle = litert_static
    interpreter = Interpreter(model_path=str(bundle / "model.tflite"))
    dtype = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    convs = [o for o in interpreter._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    in_prefilter = [PREFILTER_MODULE in names[o["outputs"][0]] for o in convs]
    int8_input = [dtype[o["inputs"][0]] == np.int8 for o in convs]
    assert not any(i for i, f in zip(int8_input, in_prefilter) if f)  # a fixed low-pass's taps stay float
    body = [i for i, f in zip(int8_input, in_prefilter) if not f]
    assert not body[0] and all(body[1:])
    ops = interpreter._get_ops_details()
    producer = {int(t): o for o in ops for t in o["outputs"]}
    fcs = [o for o in ops if o["op_name"] == "FULLY_CONNECTED"]

    def int8_weights(fc) -> bool:  # int8 (dynamic), or stored int8 and dequantized in front of the layer (the head)
        weight, source = fc["inputs"][1], producer.get(int(fc["inputs"][1]))
        return dtype[weight] == np.int8 or (
            source is not None and source["op_name"] == "DEQUANTIZE" and dtype[source["inputs"][0]] == np.int8)

    assert fcs and all(int8_weights(fc) for fc in fcs)
    # full integer: every fully connected layer but the head's two (the last) takes int8 activations
    assert [dtype[fc["inputs"][0]] == np.int8 for fc in fcs] == [True] * (len(fcs) - 2) + [False, False]
    assert HEAD_MODULE in names[fcs[-2]["outputs"][0]] and dtype[fcs[-1]["outputs"][0]] == np.float32
    manifest = Manifest.load(bundle)
    figures, n = manifest.figures, manifest.preprocessing.input_size
    assert figures["quantization"]["mode"] == "static" and figures["calibration"]["images"] == 20
    assert figures["io"]["layout"] == "NHWC" and figures["io"]["signatures"] == {
        "serving_default": [1, n, n, 3], "batch_8": [8, n, n, 3]}
    assert figures["parity_vs_torch_fp32"]["srcc"] >= 0.995


def test_band_depthwise_splits_only_large_depthwise_convolutions():
    torch = pytest.importorskip("torch")
    from torch import nn

    from fiqa_edge.converters.depthwise import MAX_TAPS, BandedDepthwise, band_depthwise

    c = 16
    model = nn.Sequential(nn.Conv2d(c, c, 7, padding=3, groups=c), nn.Conv2d(c, c, 9, padding=4, groups=c, bias=False),
                          nn.Conv2d(c, c, 5, padding=2, groups=c), nn.Conv2d(c, c, 7, padding=3),
                          nn.Conv2d(c, c, 7, stride=2, padding=3, groups=c)).eval()
    banded = band_depthwise(model)
    assert [type(m).__name__ for m in banded] == ["BandedDepthwise", "BandedDepthwise", "Conv2d", "Conv2d", "Conv2d"]
    first, second = banded[0], banded[1]
    assert isinstance(first, BandedDepthwise) and isinstance(second, BandedDepthwise)
    assert [b.kernel_size for b in first.bands] == [(3, 7), (3, 7), (1, 7)] and len(second.bands) == 5
    assert all(b.kernel_size[0] * b.kernel_size[1] <= MAX_TAPS for b in [*first.bands, *second.bands])
    assert all(b.bias is None for b in second.bands) and type(model[0]).__name__ == "Conv2d"  # the original is kept
    x = torch.randn(2, c, 13, 10)
    with torch.no_grad():
        assert torch.allclose(banded(x), model(x), atol=1e-5)


def test_xnnpack_friendly_model_scores_as_the_model():
    """Constant positions and a sliced channel split, attention without F.normalize or unbind, the low-pass padded by
    slicing, large depthwise convolutions in bands: the same scores."""
    torch = pytest.importorskip("torch")
    from fiqa_edge.converters.depthwise import band_depthwise
    from fiqa_edge.converters.executorch import xnnpack_friendly
    from fiqa_edge.zoo import load_model

    loaded = load_model(DEFAULT_MODEL)
    n = loaded.spec.input_size
    friendly = xnnpack_friendly(band_depthwise(loaded.model), n)
    kinds = {type(m).__name__ for m in friendly.modules()}
    assert {"SlicedSplitTranspose", "LinearNormXca", "L2Normalize", "EdgePaddedBlur", "BandedDepthwise"} <= kinds
    assert not kinds & {"LayerNorm", "CrossCovarianceAttn"}
    encodings = sum(type(m).__name__ == "PositionalEncodingFourier" for m in loaded.model.modules())
    assert encodings >= 1 and encodings == sum(getattr(m, "positions", None) is not None for m in friendly.modules())
    x = torch.rand(3, 3, n, n)
    with torch.no_grad():
        assert torch.allclose(friendly(x), loaded.model(x), atol=1e-5)


@pytest.mark.heavy
def test_executorch_profile_names_xnnpack_kernels(executorch_fp32):
    """ETDump: each XNNPACK operator by its kernel, nothing on the portable kernels, the delegate's own time."""
    from fiqa_edge.benchmarks.harness import Artifact
    from fiqa_edge.benchmarks.profile import profile_artifacts

    (profile,) = profile_artifacts([Artifact("et", executorch_fp32, "executorch")], runs=3)
    assert profile.reason is None and profile.total_ms == pytest.approx(sum(profile.by_op.values()))
    assert all(op.startswith("XNNPACK ") for op in profile.by_op), profile.by_op
    assert {"XNNPACK Fully Connected (NC, F32) GEMM", "XNNPACK between its operators"} <= set(profile.by_op)
    # dense convolutions (IGEMM): the stem and the three downsamplings; the 7x7 and 9x9 depthwise ones run as DWConv
    assert sum("IGEMM" in op for _, op, _ in profile.nodes) == 4


@pytest.mark.heavy
def test_executorch_records_what_xnnpack_took(executorch_fp32):
    manifest = Manifest.load(executorch_fp32)
    figures, n = manifest.figures, manifest.preprocessing.input_size
    delegation = figures["delegation"]
    assert delegation["delegated_nodes"] > 100
    # nothing left off XNNPACK (the positional encoding is a constant, the channel split slices)
    assert delegation["not_delegated_ops"] == {}
    assert figures["io"]["methods"] == {"forward": [1, 3, n, n], "forward_8": [8, 3, n, n]}


@pytest.mark.heavy
def test_executorch_splits_a_batch_over_its_methods(executorch_fp32, faces):
    backend = open_backend(executorch_fp32, backend="executorch")
    x = np.stack([preprocess(load_image(f), backend.spec) for f in faces[:11]])  # forward_8 once, forward 3 times
    np.testing.assert_allclose(backend.predict(x), np.concatenate([backend.predict(x[i : i + 1]) for i in range(11)]),
                               atol=1e-5)


def _snippet(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", INTEGRATION.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, f"docs/integration.md has no {language} snippet"
    return blocks[0]


def test_the_swift_snippet_uses_the_coreml_packages_names():
    from fiqa_edge.backends.coreml_backend import INPUT, OUTPUT

    swift = _snippet("swift")
    assert f'["{INPUT}": MLFeatureValue(pixelBuffer:' in swift and f'featureValue(for: "{OUTPUT}")' in swift
    n = Manifest.load(DEFAULT_BUNDLE).preprocessing.input_size
    assert f"centre-cropped to {n}x{n}" in swift


@needs_litert
def test_the_kotlin_snippet_uses_the_litert_bundles_names():
    from ai_edge_litert.interpreter import Interpreter

    kotlin = _snippet("kotlin")
    signatures = Interpreter(model_path=str(DEFAULT_LITERT_BUNDLE / "model.tflite")).get_signature_list()
    found = re.search(r'runSignature\(mapOf\("(\w+)" to input\), mapOf\("(\w+)" to output\), "(\w+)"\)', kotlin)
    assert found, "the Kotlin snippet calls runSignature(mapOf(INPUT to input), mapOf(OUTPUT to output), SIGNATURE)"
    inp, out, signature = found.groups()
    assert signatures[signature] == {"inputs": [inp], "outputs": [out]}
    n = Manifest.load(DEFAULT_LITERT_BUNDLE).preprocessing.input_size
    assert f"1 * {n} * {n} * 3" in kotlin  # NHWC float32 input of one face


@pytest.mark.heavy
def test_the_executorch_snippet_calls_the_exported_method(executorch_fp32):
    snippet = _snippet("java")
    methods = Manifest.load(executorch_fp32).figures["io"]["methods"]
    n = Manifest.load(executorch_fp32).preprocessing.input_size
    assert re.search(r"module\.forward\(", snippet) and "forward" in methods
    assert f"new long[] {{1, 3, {n}, {n}}}" in snippet


@pytest.mark.parametrize("suffix", [".tflite", pytest.param(".pte", marks=pytest.mark.heavy)])
def test_bad_model_files_are_one_line_naming_the_file(suffix, request, faces, tmp_path):
    backend = "litert" if suffix == ".tflite" else "executorch"
    if cannot_run(backend):
        pytest.skip(cannot_run(backend))
    source = (DEFAULT_LITERT_BUNDLE / "model.tflite" if suffix == ".tflite"
              else request.getfixturevalue("executorch_fp32") / "model.pte")
    cases = {"truncated": source.read_bytes()[: source.stat().st_size // 3], "a JPEG": faces[0].read_bytes(),
             "another format": (DEFAULT_BUNDLE / "model.onnx").read_bytes()}
    for what, data in cases.items():
        folder = tmp_path / what.replace(" ", "_")
        folder.mkdir()
        shutil.copy(DEFAULT_LITERT_BUNDLE / "fiqa.json", folder / "fiqa.json")
        bad = folder / f"model{suffix}"
        bad.write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            QualityScorer.load(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value), (what, str(err.value))


@pytest.mark.heavy
@pytest.mark.skipif(TARGETS["litert"].unavailable() is not None, reason="litert-torch is not installed")
def test_litert_int8_modes_need_no_calibration(default_bundles, faces, tmp_path):
    """dynamic and weight-only (a small student): no calibration, int8 weights; static, the main job's default (from
    the shared conversion), calibrated."""
    import torch
    from official_reference import spread_outputs

    from fiqa_edge.converters.convert import convert
    from fiqa_edge.converters.litert import LiteRtOptions
    from fiqa_edge.converters.validate import BOUNDS, Bound
    from fiqa_edge.preprocess import PreprocessSpec
    from fiqa_edge.zoo import LoadedModel, create_model

    torch.manual_seed(0)
    student = LoadedModel(model=spread_outputs(create_model("fiqa_edgenext_xxs"), seed=1), arch="fiqa_edgenext_xxs",
                          spec=PreprocessSpec(input_size=64, resize=72), sha256="ab" * 32, path=Path("student"))
    results = {mode: convert(student, ["litert"], out=tmp_path / mode, precisions=["int8"], calibration=faces[:8],
                             validation=faces[20:], bounds={**BOUNDS, "int8": Bound(srcc=0.95, plcc=0.95)},
                             options={"litert": LiteRtOptions(int8_mode=mode)})[0] for mode in ("dynamic", "weight-only")}
    fp32_mb = default_bundles["litert-fp32"].size_mb  # the same weights in float: the size does not depend on the input
    for mode, result in results.items():
        assert result.error is None, result.error
        figures = Manifest.load(result.bundle).figures
        assert figures["quantization"]["mode"] == mode and figures["calibration"].startswith("none")
        assert result.size_mb < 0.5 * fp32_mb
    static = Manifest.load(default_bundles["litert-int8"].bundle).figures
    assert static["quantization"]["mode"] == "static" and static["calibration"]["images"] > 0


@pytest.mark.heavy
def test_executorch_threads_size_the_runtime_threadpool(executorch_fp32, faces):
    from executorch.extension.pybindings import portable_lib

    before = portable_lib._threadpool_get_thread_count()
    try:
        one = QualityScorer.load(executorch_fp32, threads=1)
        assert portable_lib._threadpool_get_thread_count() == 1
        assert one.backend.pinning == Pinning()
        scores = one.score_batch(faces[:4])
        two = QualityScorer.load(executorch_fp32, threads=2, pin_threads=False)
        assert portable_lib._threadpool_get_thread_count() == 2
        np.testing.assert_allclose(two.score_batch(faces[:4]), scores, rtol=1e-5, atol=1e-6)
        # by default: a thread per usable CPU, pinned where there are two or more
        default = QualityScorer.load(executorch_fp32)
        assert portable_lib._threadpool_get_thread_count() == len(usable_cpus())
        if sys.platform == "linux" and len(usable_cpus()) > 1:
            assert default.backend.pinning.caller_cpu == usable_cpus()[0]
        np.testing.assert_allclose(default.score_batch(faces[:4]), scores, rtol=1e-5, atol=1e-6)
    finally:
        portable_lib._unsafe_reset_threadpool(before)
