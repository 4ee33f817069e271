"""Device installs: `pip install 'fiqa-edge[onnxruntime]'` or `'fiqa-edge[litert,detect]'` in a clean venv brings
no torch, scores (faces in photos too) and benches."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from official_reference import spread_outputs

from fiqa_edge.converters.convert import convert
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.zoo import LoadedModel, create_model

REPO = Path(__file__).parents[1]


def _device_venv(tmp_path: Path, extra: str, absent: tuple[str, ...]) -> tuple[Path, dict[str, str]]:
    """A fresh venv with ``fiqa-edge[extra]`` installed, in which none of ``absent`` can be imported."""
    venv = tmp_path / "device"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{REPO}[{extra}]"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    probe = f"import importlib.util as u; print([m for m in {absent!r} if u.find_spec(m)])"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, env=env).stdout.strip() == "[]"
    return venv, env


@pytest.mark.heavy
def test_onnxruntime_install_scores_without_torch(tmp_path, faces):
    torch.manual_seed(0)
    model = spread_outputs(create_model("fiqa_edgenext_xxs"), seed=4)
    loaded = LoadedModel(model=model, arch="fiqa_edgenext_xxs", spec=PreprocessSpec(input_size=64), sha256="0" * 64, path=Path("m"))
    (result,) = convert(loaded, ["onnx"], out=tmp_path / "bundles", precisions=["fp32"], calibration=faces[:4],
                        validation=faces[4:])
    assert result.error is None, result.error

    venv, env = _device_venv(tmp_path, "onnxruntime", absent=("torch", "timm", "torchvision"))

    done = subprocess.run([str(venv / "bin" / "fiqa-edge"), "score", str(faces[0].parent.parent), "--model",
                           str(result.bundle), "-q"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 40 and all(r["error"] == "" for r in rows)
    from fiqa_edge.backends.torch_backend import TorchBackend
    from fiqa_edge.imaging import load_image
    from fiqa_edge.preprocess import preprocess

    reference = TorchBackend(model, loaded.spec, loaded.arch).predict(np.stack([preprocess(load_image(p), loaded.spec) for p in faces]))
    assert np.abs(np.array([float(r["score"]) for r in rows]) - reference).max() <= 1e-4

    # no --model: the bundled default (its ONNX bundle) scores as the bundled checkpoint does with torch
    default = subprocess.run([str(venv / "bin" / "fiqa-edge"), "score", str(faces[0]), str(faces[5]), "-q"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert default.returncode == 0, default.stderr[-2000:]
    from fiqa_edge.assets import DEFAULT_MODEL
    from fiqa_edge.scorer import QualityScorer

    expected = QualityScorer.load(DEFAULT_MODEL, backend="torch").score_batch([faces[0], faces[5]])
    got = [float(r["score"]) for r in csv.DictReader(io.StringIO(default.stdout))]
    assert np.abs(np.array(got) - expected).max() <= 1e-4

    # bench on the device: no torch rows, parity from the reference scores stored in the bundle
    bench = subprocess.run([str(venv / "bin" / "fiqa-edge"), "bench", "--rounds", "1", "--per-round", "1", "--warmup", "0",
                            "--limit", "8", "--json", "-"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr[-2000:]
    report = json.loads(bench.stdout)
    (row,) = report["results"]
    assert (row["backend"], row["status"], row["params"]) == ("onnxruntime", "ok", 1_179_641)
    assert row["parity"]["reference"].startswith("stored scores") and row["parity"]["max_abs"] <= 1e-4


@pytest.mark.heavy
def test_litert_install_scores_without_torch(tmp_path, faces):
    venv, env = _device_venv(tmp_path, "litert,detect", absent=("torch", "timm", "torchvision", "onnxruntime"))
    cli = str(venv / "bin" / "fiqa-edge")
    # no --model: with only ai-edge-litert installed, the bundled LiteRT bundle scores
    done = subprocess.run([cli, "score", str(faces[0].parent.parent), "-q"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scored 40 of 40 images with litert" in done.stderr and "XNNPACK" not in done.stderr
    from fiqa_edge.assets import DEFAULT_MODEL
    from fiqa_edge.scorer import QualityScorer

    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    expected = QualityScorer.load(DEFAULT_MODEL, backend="torch").score_batch([Path(r["path"]) for r in rows])
    assert np.abs(np.array([float(r["score"]) for r in rows]) - expected).max() <= 1e-4

    # the detect extra adds face detection, with the detector's weights inside the installed package
    photo = REPO / "benchmarks" / "data" / "photos" / "Charles_Taylor_0004.jpg"
    detected = subprocess.run([cli, "score", str(photo), "--detect", "-q"], capture_output=True, text=True, env=env,
                              cwd=tmp_path)
    assert detected.returncode == 0, detected.stderr[-2000:]
    assert [r["face"] for r in csv.DictReader(io.StringIO(detected.stdout))] == ["0", "1", "2"]

    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer")
    broken = subprocess.run([cli, "score", str(faces[0]), "--model", str(bad)], capture_output=True, text=True, env=env)
    assert broken.returncode == 1 and broken.stderr.strip().count("\n") == 0 and str(bad) in broken.stderr

    bench = subprocess.run([cli, "bench", "--rounds", "1", "--per-round", "1", "--warmup", "0", "--limit", "8", "--json", "-"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr[-2000:]
    (row,) = json.loads(bench.stdout)["results"]
    assert (row["backend"], row["status"], row["params"]) == ("litert", "ok", 1_179_641)
    assert row["parity"]["reference"].startswith("stored scores") and row["parity"]["max_abs"] <= 1e-4
