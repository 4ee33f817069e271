"""The CoreML backend: an ``.mlpackage`` (ML program) in a bundle; runs on macOS only.

The package's input is an RGB image of N×N pixels (0–255); the ImageNet
normalisation is inside the model. This backend takes the preprocessed
float batch the other backends take and turns it back into pixels, so the
scorer's preprocessing stays one code path.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from ..errors import CheckpointError, FiqaError, first_line
from ..manifest import EMBEDDED_KEY, Manifest
from . import bundle_manifest, cannot_run, model_path

__all__ = ["CoreMlBackend", "INPUT", "OUTPUT"]

INPUT, OUTPUT = "image", "score"


class CoreMlBackend:
    """Scores batches with ``coremltools.models.MLModel`` (one image per call)."""

    name = "coreml"

    def __init__(self, model: Any, manifest: Manifest) -> None:
        self.model = model
        self.manifest = manifest
        self.spec = manifest.preprocessing
        self.arch = manifest.arch

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | None = None, **_: object) -> CoreMlBackend:
        """Open a bundle folder or an ``.mlpackage``.

        ``device``: ``all`` (default; Neural Engine, GPU or CPU as CoreML picks), ``cpu`` or ``cpu_gpu``.
        """
        import coremltools as ct

        reason = cannot_run("coreml")
        if reason:
            msg = f"{path}: {reason} (this is {sys.platform})"
            raise FiqaError(msg)
        path = model_path(path)
        units = {"all": ct.ComputeUnit.ALL, "cpu": ct.ComputeUnit.CPU_ONLY, "cpu_gpu": ct.ComputeUnit.CPU_AND_GPU}
        try:
            model = ct.models.MLModel(str(path), compute_units=units[(device or "all").lower()])
        except KeyError:
            msg = f"CoreML device must be one of {', '.join(units)}, got {device!r}"
            raise FiqaError(msg) from None
        except Exception as exc:  # coremltools raises assorted types for bad packages
            msg = f"{path}: not a CoreML model ({first_line(exc)})"
            raise CheckpointError(msg) from exc
        return cls(model, bundle_manifest(path, model.user_defined_metadata.get(EMBEDDED_KEY)))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        from PIL import Image

        mean = np.asarray(self.spec.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.spec.std, np.float32).reshape(3, 1, 1)
        scores = []
        for x in batch:
            pixels = np.clip(np.round((x * std + mean) * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
            out = self.model.predict({INPUT: Image.fromarray(pixels, "RGB")})[OUTPUT]
            scores.append(float(np.asarray(out).reshape(-1)[0]))
        return np.asarray(scores, dtype=np.float64)
