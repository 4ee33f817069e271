"""The onnxruntime backend: an ``.onnx`` file or bundle, preprocessing from its manifest."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from ..errors import CheckpointError, FiqaError, first_line
from ..manifest import EMBEDDED_KEY, Manifest
from . import bundle_manifest, model_path

__all__ = ["OnnxRuntimeBackend"]


class OnnxRuntimeBackend:
    """Scores batches with an onnxruntime session (CUDA when available, else CPU)."""

    name = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, manifest: Manifest) -> None:
        self.session = session
        self.manifest = manifest
        self.spec = manifest.preprocessing
        self.arch = manifest.arch
        self._input = session.get_inputs()[0].name
        # Dynamic int8 quantizes each layer's input with one scale for the whole batch, so a face's score would
        # depend on the faces batched with it (by up to 3.3e-3 on the 224 px default, as much as the int8 error
        # itself); such a model scores one face at a time, as an app scoring single faces does.
        self.per_face = manifest.figures.get("quantization", {}).get("mode") == "dynamic"

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, threads: int | None = None, device: str | None = None,
        profile_prefix: str | None = None, **_: object
    ) -> OnnxRuntimeBackend:
        """Open ``model.onnx`` or a bundle folder holding one (manifest embedded or in fiqa.json).

        ``device``: ``cpu`` or ``cuda`` (default: CUDA when onnxruntime has it). ``profile_prefix``: record
        onnxruntime's per-node profile, written by ``session.end_profiling()`` to a file named from it.
        """
        path = model_path(path)
        options = ort.SessionOptions()
        # Idle intra-op threads sleep instead of spinning: the scorer decodes images on other threads
        # of the same cores (measured, 500 LFW faces, demo model, 2 cores: end-to-end 377 -> 402 img/s
        # with 2 decode workers; model-only batch 8 570 -> 525 img/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        wanted = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
        if device is not None and device.lower() not in wanted:
            msg = f"onnxruntime device must be cpu or cuda, got {device!r}"
            raise FiqaError(msg)
        preferred = wanted[device.lower()] if device else wanted["cuda"]
        available = ort.get_available_providers()
        if device and device.lower() == "cuda" and "CUDAExecutionProvider" not in available:
            msg = "onnxruntime here has no CUDA provider (install onnxruntime-gpu on an NVIDIA machine)"
            raise FiqaError(msg)
        providers = [p for p in preferred if p in available]
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            msg = f"{path}: not an ONNX model onnxruntime can load ({first_line(exc)})"
            raise CheckpointError(msg) from exc
        return cls(session, bundle_manifest(path, session.get_modelmeta().custom_metadata_map.get(EMBEDDED_KEY)))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self.per_face and len(batch) > 1:
            return np.concatenate([self.predict(face[None]) for face in batch])
        (out,) = self.session.run(None, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})
        return out.reshape(-1).astype(np.float64)
