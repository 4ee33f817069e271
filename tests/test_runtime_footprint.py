"""A device install: `pip install 'fiqa-edge[onnxruntime]'` in a clean venv brings no torch and scores."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa_edge.converters.convert import convert
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.zoo import LoadedModel, create_model

from official_reference import spread_outputs

REPO = Path(__file__).parents[1]


@pytest.mark.slow
def test_onnxruntime_install_scores_without_torch(tmp_path, faces):
    torch.manual_seed(0)
    model = spread_outputs(create_model("fiqa_edgenext_xxs"), seed=4)
    loaded = LoadedModel(model=model, arch="fiqa_edgenext_xxs", spec=PreprocessSpec(input_size=64), sha256="0" * 64, path=Path("m"))
    (result,) = convert(loaded, ["onnx"], ["fp32"], faces[:4], faces, tmp_path / "bundles")
    assert result.error is None, result.error

    venv = tmp_path / "device"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{REPO}[onnxruntime]"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    py = str(venv / "bin" / "python")
    probe = "import importlib.util as u; print([m for m in ('torch', 'timm', 'torchvision') if u.find_spec(m)])"
    assert subprocess.run([py, "-c", probe], capture_output=True, text=True, env=env).stdout.strip() == "[]"

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
