"""Inference backends behind one small interface.

A backend turns a preprocessed (B, 3, N, N) float32 batch into B scores. The
table maps each backend's name to ``"module:class"``, imported on use, so a
device only needs the one package its backend uses.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol

import numpy as np

from .._deps import require
from ..preprocess import PreprocessSpec

__all__ = ["BACKENDS", "Backend", "open_backend"]

# name -> (package it needs, "module:class")
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "fiqa_edge.backends.torch_backend:TorchBackend"),
}


class Backend(Protocol):
    """What the scorer needs from a backend."""

    name: str
    spec: PreprocessSpec
    arch: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Scores, shape (B,), float64, for a (B, 3, N, N) float32 batch."""
        ...


def open_backend(
    name: str, model: str | os.PathLike[str], *, arch: str | None = None, input_size: int | None = None
) -> Backend:
    """Load ``model`` with the backend ``name``.

    Raises:
        ValueError: unknown backend name.
        MissingDependencyError: the backend's package is not installed.
        CheckpointError: the model file cannot be loaded.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    package, target = BACKENDS[name]
    require(package, f"the {name} backend")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls).load(model, arch=arch, input_size=input_size)
