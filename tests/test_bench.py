"""`fiqa-edge bench TARGETS`: the documented report, parity with and without torch, accuracy, gates."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import fiqa_edge.benchmarks.harness as harness
from fiqa_edge.assets import BUNDLED_MODELS, DEFAULT_BUNDLE, DEFAULT_MODEL, SAMPLES_DIR
from fiqa_edge.benchmarks.bench_report import parse_gate
from fiqa_edge.benchmarks.harness import find_artifacts, run_bench
from fiqa_edge.cli import main
from fiqa_edge.errors import FiqaError
from fiqa_edge.image_lists import Item
from fiqa_edge.manifest import Manifest
from fiqa_edge.metrics import quality_metrics
from fiqa_edge.scorer import QualityScorer

#: The bundled model's input size (its ONNX bundle is converted from it).
INPUT = Manifest.load(DEFAULT_BUNDLE).preprocessing.input_size
QUICK = ["--rounds", "2", "--per-round", "2", "--warmup", "1"]


def test_targets_expand_to_artifacts(tmp_path):
    folder = tmp_path / "bundles"
    shutil.copytree(DEFAULT_BUNDLE, folder / "onnx-fp32")
    shutil.copytree(DEFAULT_BUNDLE, folder / "onnx-copy")
    (folder / "notes").mkdir()
    found = find_artifacts([folder, DEFAULT_MODEL])
    assert [(a.path.name, a.backend) for a in found] == [
        ("onnx-copy", "onnxruntime"), ("onnx-fp32", "onnxruntime"),
        (DEFAULT_MODEL.name, "torch"), (DEFAULT_MODEL.name, "torch-compile")]
    assert [(a.path, a.backend) for a in find_artifacts(["demo-v1"])] == [
        (BUNDLED_MODELS["demo-v1"].path, "torch"), (BUNDLED_MODELS["demo-v1"].path, "torch-compile")]
    with pytest.raises(FiqaError, match="demo-v9: no such bundle, model file or folder"):
        find_artifacts(["demo-v9"])
    with pytest.raises(FiqaError, match="neither a bundle"):
        find_artifacts([folder / "notes"])
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(FiqaError, match=r"x.txt: cannot tell which backend reads a \.txt file"):
        find_artifacts([tmp_path / "x.txt"])


def test_bench_writes_the_documented_report_with_accuracy_and_gates(tmp_path):
    """One run: the JSON, Markdown and plot; accuracy against labels; a gate met and one missed (exit status 1)."""
    faces = sorted(SAMPLES_DIR.glob("*/*.jpg"))
    scores = QualityScorer.load(DEFAULT_BUNDLE).score_batch(faces)
    labels = tmp_path / "labels.csv"
    noise = np.random.default_rng(1).normal(0, 0.005, len(faces))
    labels.write_text("image,score\n" + "".join(f"{p.relative_to(SAMPLES_DIR)},{s + n}\n" for p, s, n in zip(faces, scores, noise)))
    out = tmp_path / "r.json"
    args = ["bench", "--model", str(DEFAULT_BUNDLE), *QUICK, "--labels", str(labels), "--root", str(SAMPLES_DIR),
            "--json", str(out), "--markdown", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.png"),
            "--gate", "parity.srcc>=0.9999", "--gate", "latency.p50_ms<=0.000001"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output  # the second gate fails, named with its row; the first passes
    assert "FAILED gate latency.p50_ms<=0.000001: onnxruntime fp32" in result.stderr and "parity.srcc" not in result.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 40
    (row,) = report["results"]
    assert (row["backend"], row["precision"], row["status"]) == ("onnxruntime", "fp32", "ok")
    assert row["params"] == 1_179_641 and row["gflops"] > 0 and 4 < row["size_mb"] < 6
    assert set(row["latency"]) >= {"p10_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms"}
    # latency in ms and batch-1 throughput in images/s are two measures of one call: units and scale agree
    assert 0.2 < row["latency"]["p50_ms"] * row["throughput_ips"]["1"] / 1000 < 5
    assert set(row["throughput_ips"]) == {"1", "8"} and row["throughput_ips"]["8"] > 0
    assert row["parity"]["reference"] == "torch fp32" and row["parity"]["images"] == 40
    assert row["parity"]["max_abs"] <= 1e-4 and set(row["parity"]) >= {"mean_abs", "srcc", "plcc", "flip_rate"}
    expected = quality_metrics(scores, np.array([s + n for s, n in zip(scores, noise)]))
    assert row["accuracy"]["n"] == 40 and row["accuracy"]["srcc"] == pytest.approx(expected.srcc, abs=1e-9)
    assert row["end_to_end"]["images"] == 40 and row["end_to_end"]["ips"] > 0
    assert "| onnxruntime | fp32 | ok" in (tmp_path / "r.md").read_text().replace("ok (noisy)", "ok")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert "only 40 images" in result.output


def test_parity_falls_back_to_the_scores_stored_in_the_bundle(monkeypatch):
    monkeypatch.setattr(harness, "is_available", lambda m: m != "torch")  # a device without torch
    items = [Item(str(p)) for p in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:5]]
    report = run_bench([DEFAULT_BUNDLE], items, batch_sizes=(1,), rounds=1, per_round=1, warmup=0)
    (row,) = report.results
    assert report.images == 5
    assert row.parity["reference"].startswith("stored scores") and row.parity["images"] == 40
    assert row.parity["max_abs"] <= 1e-4 and row.parity["srcc"] >= 0.9999


def test_rows_say_whether_their_threads_were_pinned():
    from fiqa_edge.assets import DEFAULT_LITERT_BUNDLE
    from fiqa_edge.backends import cannot_run
    from fiqa_edge.backends.pinning import usable_cpus
    from fiqa_edge.benchmarks.bench_report import table

    if cannot_run("litert"):
        pytest.skip(f"litert: {cannot_run('litert')}")
    items = [Item(str(p)) for p in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:3]]
    report = run_bench([DEFAULT_BUNDLE, DEFAULT_LITERT_BUNDLE], items, batch_sizes=(1,), rounds=1, per_round=1,
                       warmup=0)
    onnx, litert = report.results
    pins = sys.platform == "linux" and len(usable_cpus()) > 1
    assert (onnx.pinned, litert.pinned) == (False, pins)
    assert ("threads pinned, each to a CPU of its own: litert fp32" in table(report)) == pins


def test_parity_without_torch_has_teeth(tmp_path, monkeypatch):
    """A bundle whose stored reference scores disagree with what it scores is reported as such."""
    from fiqa_edge.converters.onnx import embed_manifest
    from fiqa_edge.manifest import Manifest

    monkeypatch.setattr(harness, "is_available", lambda m: m != "torch")
    bundle = tmp_path / "onnx-fp32"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    manifest = Manifest.load(bundle)
    rng = np.random.default_rng(0)
    stored = manifest.figures["reference_scores"]["scores"]
    manifest.figures["reference_scores"]["scores"] = {k: v + float(rng.normal(0, 0.01)) for k, v in stored.items()}
    manifest.save(bundle)
    embed_manifest(bundle / "model.onnx", manifest)
    items = [Item(str(p)) for p in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:3]]
    (row,) = run_bench([bundle], items, batch_sizes=(1,), rounds=1, per_round=1, warmup=0).results
    assert row.parity["max_abs"] > 5e-3 and row.parity["srcc"] < 0.999 and row.parity["flip_rate"] > 0


def test_accuracy_change_is_measured_against_the_fp32_row():
    """Each row's change is its SRCC/PLCC minus the torch row's, else minus its own backend's fp32 row."""
    from fiqa_edge.benchmarks.harness import BenchResult, _accuracy

    rng = np.random.default_rng(0)
    labels = rng.normal(size=200)
    fp32 = labels + rng.normal(0, 0.3, 200)
    int8 = fp32 + rng.normal(0, 0.3, 200)
    rows = [BenchResult("b", "onnxruntime", "fp32"), BenchResult("b", "onnxruntime", "int8")]
    _accuracy(rows, {0: fp32, 1: int8}, labels)
    drop = quality_metrics(int8, labels).srcc - quality_metrics(fp32, labels).srcc
    assert drop < -0.01 and rows[1].accuracy["delta_srcc_vs_fp32"] == pytest.approx(drop)
    assert rows[0].accuracy["delta_srcc_vs_fp32"] == 0
    with_torch = [BenchResult("c", "torch", "fp32"), *rows]
    _accuracy(with_torch, {0: labels, 1: fp32, 2: int8}, labels)  # the torch row is the reference when present
    assert with_torch[2].accuracy["delta_srcc_vs_fp32"] == pytest.approx(quality_metrics(int8, labels).srcc - 1)


@pytest.mark.parametrize("text", ["parity.srcc", "p50 fast", "latency.p50_ms<=ten"])
def test_malformed_gates_are_refused(text):
    with pytest.raises(FiqaError, match="expected FIELD OP NUMBER|is not a number"):
        parse_gate(text)


def test_backends_that_cannot_run_here_are_skipped_with_the_reason(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 16)
    package = tmp_path / "model.mlpackage"
    package.mkdir()
    items = [Item(str(p)) for p in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:3]]
    report = run_bench([engine, package], items, batch_sizes=(1,), rounds=1, per_round=1, warmup=0)
    rows = {r.backend: r for r in report.results}
    assert rows["tensorrt"].status == "skipped" and "tensorrt" in rows["tensorrt"].reason
    assert rows["coreml"].status == "skipped" and ("coremltools" in rows["coreml"].reason or "macOS" in rows["coreml"].reason)


def test_profile_breaks_the_time_down_by_operator(tmp_path):
    from fiqa_edge.assets import DEFAULT_LITERT_BUNDLE

    out = tmp_path / "profile.json"
    result = CliRunner().invoke(main, ["bench", "--profile", "-m", str(DEFAULT_BUNDLE), "-m", str(DEFAULT_LITERT_BUNDLE),
                                       "--rounds", "3", "--top", "4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    onnx, litert = json.loads(out.read_text())
    assert onnx["backend"] == "onnxruntime" and onnx["runs"] == 3 and onnx["input_size"] == INPUT
    assert onnx["total_ms"] == pytest.approx(sum(onnx["by_op"].values()))
    assert {"Conv", "LayerNormalization"} <= set(onnx["by_op"])  # the runtime's own (fused) operator names
    times = [ms for _, _, ms in onnx["nodes"]]
    assert times == sorted(times, reverse=True) and sum(times) == pytest.approx(onnx["total_ms"])
    # LiteRT: each operator timed alone, named by the torch module it came from
    assert litert["reason"] is None and litert["input_size"] == INPUT
    assert {"FULLY_CONNECTED", "DEPTHWISE_CONV_2D", "CONV_2D"} <= set(litert["by_op"])
    assert any(name.startswith("feature_extraction.stages.") for name, _, _ in litert["nodes"])
    assert litert["total_ms"] == pytest.approx(sum(ms for _, _, ms in litert["nodes"]))
    assert f"{onnx['total_ms']:.2f} ms per run in operators" in result.output and "top 4 nodes:" in result.output


def test_profile_of_a_torch_checkpoint_counts_self_time_once():
    from fiqa_edge.benchmarks.harness import Artifact
    from fiqa_edge.benchmarks.profile import profile_artifacts

    (profile,) = profile_artifacts([Artifact(str(DEFAULT_MODEL), DEFAULT_MODEL, "torch")], runs=3)
    assert profile.reason is None and profile.input_size == INPUT
    assert {"aten::addmm", "aten::native_layer_norm"} <= set(profile.by_op)
    assert "aten::linear" not in profile.by_op or profile.by_op["aten::linear"] < profile.by_op["aten::addmm"]
    assert profile.total_ms == pytest.approx(sum(profile.by_op.values()))
