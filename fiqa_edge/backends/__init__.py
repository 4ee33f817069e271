"""Inference backends behind one small interface.

A backend turns a preprocessed (B, 3, N, N) float32 batch into B scores. The
table maps each backend's name to ``"module:class"``, imported on use, so a
device only needs the one package its backend uses.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from .._deps import require
from ..errors import FiqaError
from ..manifest import Manifest
from ..preprocess import PreprocessSpec

__all__ = ["BACKENDS", "Backend", "backend_for", "open_backend"]

# name -> (package it needs, "module:class")
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "fiqa_edge.backends.torch_backend:TorchBackend"),
    "onnxruntime": ("onnxruntime", "fiqa_edge.backends.onnxruntime_backend:OnnxRuntimeBackend"),
    "openvino": ("openvino", "fiqa_edge.backends.openvino_backend:OpenVinoBackend"),
}


class Backend(Protocol):
    """What the scorer needs from a backend."""

    name: str
    spec: PreprocessSpec
    arch: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores, shape (B,), float64, for a (B, 3, N, N) float32 batch."""
        ...


_BY_SUFFIX = {".onnx": "onnxruntime", ".xml": "openvino", ".pt": "torch", ".pth": "torch", ".safetensors": "torch"}


def backend_for(model: str | os.PathLike[str]) -> str:
    """The backend that reads ``model``: a bundle's manifest says; otherwise the file suffix does.

    Raises:
        FiqaError: neither tells.
    """
    path = Path(model)
    if path.is_dir():
        return Manifest.load(path).backend
    if path.suffix in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix]
    raise FiqaError(f"{path}: cannot tell its backend from the suffix; pass --backend ({', '.join(BACKENDS)})")


def open_backend(
    name: str, model: str | os.PathLike[str], *, arch: str | None = None, input_size: int | None = None
) -> Backend:
    """Load ``model`` with the backend ``name`` (``auto``: see :func:`backend_for`).

    Raises:
        FiqaError: unknown backend name.
        MissingDependencyError: the backend's package is not installed.
        CheckpointError: the model file cannot be loaded.
    """
    if name == "auto":
        name = backend_for(model)
    if name not in BACKENDS:
        raise FiqaError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    package, target = BACKENDS[name]
    require(package, f"the {name} backend")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls).load(model, arch=arch, input_size=input_size)
