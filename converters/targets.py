"""The conversion targets: one row each, read by the CLI, option checks, the loop and the docs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from fiqa_edge._deps import EXTRA_FOR, is_available

__all__ = ["TARGETS", "Target"]


@dataclass(frozen=True)
class Target:
    """One export target.

    Args:
        key: CLI name (``--to onnx``).
        model_file: the artifact's file name inside its bundle.
        precisions: precisions this target builds.
        package: import name the build needs (its extra is named in errors).
        backend: the runtime backend that scores the artifact, for validation.
        module: the converter module; it provides ``build(loaded, precision, dst, calibration, workdir)``
            and ``embed_manifest(model_file, manifest)``, and may provide ``unavailable()`` (why it
            cannot build on this machine, or None) and ``runs_here()`` with ``inspect(model_file,
            manifest)`` (checks without running, for formats this machine cannot run).
    """

    key: str
    model_file: str
    precisions: tuple[str, ...]
    package: str
    backend: str
    module: str

    def load(self) -> ModuleType:
        """The converter module (imported on use)."""
        return importlib.import_module(self.module)

    def unavailable(self) -> str | None:
        """Why this target cannot be built on this machine, or None."""
        if not is_available(self.package):
            return f"{self.package} is not installed (pip install 'fiqa-edge[{EXTRA_FOR.get(self.package, 'all')}]')"
        check = getattr(self.load(), "unavailable", None)
        return check() if check else None


TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("onnx", "model.onnx", ("fp32", "fp16", "int8"), "onnx", "onnxruntime", "fiqa_edge.converters.onnx"),
        Target("openvino", "model.xml", ("fp32", "fp16", "int8"), "openvino", "openvino", "fiqa_edge.converters.openvino"),
        Target("tensorrt", "model.engine", ("fp32", "fp16", "int8"), "tensorrt", "tensorrt", "fiqa_edge.converters.tensorrt"),
        Target("coreml", "model.mlpackage", ("fp32", "fp16", "int8"), "coremltools", "coreml", "fiqa_edge.converters.coreml"),
    )
}
