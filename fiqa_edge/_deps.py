"""Optional dependencies: check without importing, import with a helpful error."""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from types import ModuleType

from .errors import MissingDependencyError

# import name -> the extra of fiqa-edge that installs it
EXTRA_FOR = {
    "torch": "train",
    "torchvision": "train",
    "timm": "train",
    "safetensors": "train",
    "fvcore": "train",
    "yaml": "train",
    "dlib": "labels",
    "face_recognition_models": "labels",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "onnxslim": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",
    "coremltools": "coreml",
    "tensorrt": "tensorrt",
    "cuda": "tensorrt",
    "sklearn": "coreml",
    "matplotlib": "plot",
    "ai_edge_litert": "litert",
    "litert_torch": "litert-convert",
    "ai_edge_quantizer": "litert-convert",
    "executorch": "executorch",
    "av": "detect",
}


@cache
def is_available(module: str) -> bool:
    """True when ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def has_nvidia_gpu() -> bool:
    """True when the NVIDIA driver lists a GPU (Linux), without loading CUDA."""
    from pathlib import Path

    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def require(module: str, purpose: str = "", extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra (``extra``, else its own)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or EXTRA_FOR.get(module.split(".")[0], "all")
        why = f" for {purpose}" if purpose else ""
        msg = f"{module} is needed{why}: pip install 'fiqa-edge[{extra}]' ({exc})"
        raise MissingDependencyError(msg) from exc
