"""Inference backends behind one small interface.

A backend turns a preprocessed (B, 3, N, N) float32 batch into B scores. The
table maps each backend's name to the package it needs and ``"module:class"``,
imported on use, so a device only needs the one package its backend uses.
:func:`cannot_run` is the one place that says whether a backend runs on this
machine; the converters, the bench and the tests all ask it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from .._deps import EXTRA_FOR, has_nvidia_gpu, is_available, require
from ..assets import BUNDLED_MODELS, resolve_model
from ..errors import CheckpointError, FiqaError
from ..manifest import MANIFEST_NAME, Manifest
from ..preprocess import PreprocessSpec

__all__ = ["BACKENDS", "WEB_BACKENDS", "Backend", "backend_for", "bundle_manifest", "cannot_run", "model_path", "open_backend",
           "predict_in_sizes"]

# name -> (package it needs, "module:class")
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "fiqa_edge.backends.torch_backend:TorchBackend"),
    "torch-compile": ("torch", "fiqa_edge.backends.torch_backend:TorchCompileBackend"),
    "onnxruntime": ("onnxruntime", "fiqa_edge.backends.onnxruntime_backend:OnnxRuntimeBackend"),
    "openvino": ("openvino", "fiqa_edge.backends.openvino_backend:OpenVinoBackend"),
    "tensorrt": ("tensorrt", "fiqa_edge.backends.tensorrt_backend:TensorRtBackend"),
    "coreml": ("coremltools", "fiqa_edge.backends.coreml_backend:CoreMlBackend"),
    "litert": ("ai_edge_litert", "fiqa_edge.backends.litert_backend:LiteRtBackend"),
    "executorch": ("executorch", "fiqa_edge.backends.executorch_backend:ExecuTorchBackend"),
}

#: what web bundles name as their backend (they run in a browser, not in Python) -> the backend that runs their
#: model file here
WEB_BACKENDS: dict[str, str] = {"litert-web": "litert", "onnxruntime-web": "onnxruntime"}


def cannot_run(name: str) -> str | None:
    """Why the backend ``name`` cannot run models on this machine, or None when it can."""
    if name in WEB_BACKENDS:
        return "a web bundle runs in a browser, not in Python"
    if name not in BACKENDS:
        return f"unknown backend {name!r}"
    package = BACKENDS[name][0]
    if not is_available(package):
        return f"{package} is not installed (pip install 'fiqa-edge[{EXTRA_FOR.get(package, 'all')}]')"
    if name == "coreml" and sys.platform != "darwin":
        return "CoreML models run only on macOS"
    if name == "tensorrt" and not has_nvidia_gpu():
        return "TensorRT needs an NVIDIA GPU and this machine has none"
    return None


def model_path(path: str | os.PathLike[str]) -> Path:
    """The model file a path names: a bundle folder's own model file (from its fiqa.json), else the path."""
    path = Path(path)
    if (path / MANIFEST_NAME).is_file():
        return path / Manifest.load(path).model_file
    return path


def bundle_manifest(model: Path, embedded: str | None, where: str = "metadata") -> Manifest:
    """The manifest of ``model``: the JSON embedded in the model file, else ``fiqa.json`` beside it.

    Raises:
        CheckpointError: neither is there.
    """
    if embedded is not None:
        return Manifest.from_json(embedded, origin=f"{model} {where}")
    if (model.parent / MANIFEST_NAME).is_file():
        return Manifest.load(model.parent)
    msg = f"{model}: no fiqa manifest in the model's {where} nor {MANIFEST_NAME} beside it"
    raise CheckpointError(msg)


def predict_in_sizes(batch: np.ndarray, run: dict[int, Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
    """Scores of ``batch`` from models compiled for fixed batch sizes (``run``: size -> scorer; 1 must be there),
    taking the largest size that fits what is left each time. float64, shape (B,)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    sizes = sorted(run, reverse=True)
    scores, start = [], 0
    while start < len(batch):
        size = next(s for s in sizes if s <= len(batch) - start)
        scores.append(np.asarray(run[size](batch[start : start + size])).reshape(-1))
        start += size
    return np.concatenate(scores).astype(np.float64)


class Backend(Protocol):
    """What the scorer needs from a backend."""

    name: str
    spec: PreprocessSpec
    arch: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores, shape (B,), float64, for a (B, 3, N, N) float32 batch."""
        ...


# file suffix -> the backends that read it, in order of preference
_BY_SUFFIX: dict[str, tuple[str, ...]] = {
    ".onnx": ("onnxruntime", "openvino"),
    ".xml": ("openvino",),
    ".engine": ("tensorrt",),
    ".plan": ("tensorrt",),
    ".mlpackage": ("coreml",),
    ".tflite": ("litert",),
    ".pte": ("executorch",),
    ".pt": ("torch",),
    ".pth": ("torch",),
    ".safetensors": ("torch",),
}


def backend_for(model: str | os.PathLike[str]) -> str:
    """The backend that reads ``model``.

    A bundle runs on the backend it was built and validated for (its manifest
    says which; a web bundle's model file on :data:`WEB_BACKENDS`' backend).
    A bare file goes by its suffix: the first installed backend that reads it
    (``.onnx``: onnxruntime, else OpenVINO, which reads ONNX too).

    Raises:
        FiqaError: the suffix is not one any backend reads.
    """
    path = Path(model)
    if path.is_dir() and path.suffix.lower() not in _BY_SUFFIX:  # a bundle (an .mlpackage is a folder too)
        named = Manifest.load(path).backend
        return WEB_BACKENDS.get(named, named)  # a web bundle's model file, natively
    readers = _BY_SUFFIX.get(path.suffix.lower())
    if readers is None:
        msg = (
            f"{path}: cannot tell which backend reads a {path.suffix or 'suffix-less'} file "
            f"(known: {', '.join(sorted(_BY_SUFFIX))}, or a bundle folder); name the backend that reads it"
        )
        raise FiqaError(
            msg
        )
    return next((r for r in readers if is_available(BACKENDS[r][0])), readers[0])


def open_backend(
    model: str | os.PathLike[str],
    *,
    backend: str = "auto",
    threads: int | None = None,
    device: str | None = None,
    arch: str | None = None,
    input_size: int | None = None,
    pin_threads: bool = True,
) -> Backend:
    """Load ``model`` with ``backend`` (a key of :data:`BACKENDS`, or ``auto``: see :func:`backend_for`).

    ``threads`` and ``device`` are passed to the backend; ``arch`` and
    ``input_size`` matter to torch checkpoints only; ``pin_threads`` to the
    XNNPACK backends (LiteRT, ExecuTorch: :mod:`.pinning`).

    Raises:
        FiqaError: unknown backend name.
        MissingDependencyError: the backend's package is not installed.
        CheckpointError: the model file cannot be loaded.
    """
    model = resolve_model(model)
    if not model.exists():
        msg = f"{model}: no such model file or bundle folder (bundled models by name: {', '.join(BUNDLED_MODELS)})"
        raise CheckpointError(msg)
    name = backend_for(model) if backend == "auto" else backend
    if name in WEB_BACKENDS:
        msg = (f"{name} runs in a browser, not in Python (serve the bundle's folder and open index.html); "
               f"the {WEB_BACKENDS[name]} backend scores its model file here")
        raise FiqaError(msg)
    if name not in BACKENDS:
        msg = f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}"
        raise FiqaError(msg)
    package, target = BACKENDS[name]
    require(package, f"the {name} backend")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls).load(
        model, threads=threads, device=device, arch=arch, input_size=input_size, pin_threads=pin_threads
    )
