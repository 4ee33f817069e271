"""The TensorRT backend: a serialized engine (``.engine``/``.plan``) in a bundle, on an NVIDIA GPU.

Written against the TensorRT 10 Python API (named I/O tensors,
``execute_async_v3``) with device memory from ``cuda-python``'s runtime
bindings. An engine holds no metadata of ours, so its ``fiqa.json`` must sit
beside it. The engine's optimisation profile bounds the batch sizes it takes;
larger batches are split.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorrt as trt

from .._deps import require
from ..errors import CheckpointError, FiqaError
from ..manifest import MANIFEST_NAME, Manifest
from . import model_path

__all__ = ["TensorRtBackend", "cuda_check", "cudart", "device_index"]


def cudart():
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        cudart = require("cuda.cudart", "the TensorRT backend")
    return cudart


def cuda_check(result: tuple) -> Any:
    """Unwrap a cuda-python ``(error, value...)`` result, raising on an error code."""
    rt = cudart()
    err, *values = result
    if err != rt.cudaError_t.cudaSuccess:
        msg = f"CUDA error {err}: {rt.cudaGetErrorString(err)[1].decode()}"
        raise FiqaError(msg)
    return values[0] if len(values) == 1 else tuple(values) if values else None


def device_index(device: str | int | None) -> int:
    """The CUDA device index of ``0``, ``"1"``, ``"cuda"`` or ``"cuda:1"`` (default 0)."""
    if device in (None, "", "cuda"):
        return 0
    try:
        return int(str(device).split(":")[-1])
    except ValueError:
        msg = f"TensorRT device must be a CUDA device index such as 0 or cuda:1, got {device!r}"
        raise FiqaError(msg) from None


class TensorRtBackend:
    """Scores batches with a deserialized TensorRT engine on one GPU."""

    name = "tensorrt"

    def __init__(self, engine: trt.ICudaEngine, manifest: Manifest, device: int = 0) -> None:
        self.cudart = cudart()
        cuda_check(self.cudart.cudaSetDevice(device))
        self.engine = engine
        self.context = engine.create_execution_context()
        self.manifest = manifest
        self.spec = manifest.preprocessing
        self.arch = manifest.arch
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._input = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.max_batch = int(engine.get_tensor_profile_shape(self._input, 0)[2][0])
        self.stream = cuda_check(self.cudart.cudaStreamCreate())
        n = self.spec.input_size
        self._in_bytes = self.max_batch * 3 * n * n * 4
        self._out_bytes = self.max_batch * 4
        self._d_in = cuda_check(self.cudart.cudaMalloc(self._in_bytes))
        self._d_out = cuda_check(self.cudart.cudaMalloc(self._out_bytes))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | None = None, **_: object) -> TensorRtBackend:
        """Deserialize the engine of a bundle folder (or an engine file with ``fiqa.json`` beside it).

        ``device``: a CUDA device index such as ``0`` or ``cuda:1`` (default 0).
        """
        path = model_path(path)
        if not (path.parent / MANIFEST_NAME).is_file():
            msg = f"{path}: a TensorRT engine needs its {MANIFEST_NAME} beside it (engines carry no metadata)"
            raise CheckpointError(msg)
        manifest = Manifest.load(path.parent)
        index = device_index(device)
        cuda_check(cudart().cudaSetDevice(index))  # the engine is deserialized onto this device
        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            msg = (
                f"{path}: not a TensorRT engine this TensorRT {trt.__version__} and GPU can load "
                                  "(engines are tied to the TensorRT version and GPU model that built them)"
            )
            raise CheckpointError(msg)
        return cls(engine, manifest, index)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return np.concatenate([self._run(batch[i : i + self.max_batch]) for i in range(0, len(batch), self.max_batch)])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        cudart, kind = self.cudart, self.cudart.cudaMemcpyKind
        out = np.empty(len(batch), dtype=np.float32)
        self.context.set_input_shape(self._input, batch.shape)
        self.context.set_tensor_address(self._input, int(self._d_in))
        self.context.set_tensor_address(self._output, int(self._d_out))
        cuda_check(cudart.cudaMemcpyAsync(self._d_in, batch.ctypes.data, batch.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            msg = "TensorRT failed to run the engine (see its log above)"
            raise FiqaError(msg)
        cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, self._d_out, out.nbytes, kind.cudaMemcpyDeviceToHost, self.stream))
        cuda_check(cudart.cudaStreamSynchronize(self.stream))
        return out.astype(np.float64)

    def __del__(self) -> None:
        for ptr in (getattr(self, "_d_in", None), getattr(self, "_d_out", None)):
            if ptr is not None:
                self.cudart.cudaFree(ptr)
        if getattr(self, "stream", None) is not None:
            self.cudart.cudaStreamDestroy(self.stream)
