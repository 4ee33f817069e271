"""The conversion targets: one row each, read by the CLI, option checks, the loop and the docs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

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
            and ``embed_manifest(model_file, manifest)``.
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


TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("onnx", "model.onnx", ("fp32", "fp16", "int8"), "onnx", "onnxruntime", "fiqa_edge.converters.onnx"),
        Target("openvino", "model.xml", ("fp32", "fp16", "int8"), "openvino", "openvino", "fiqa_edge.converters.openvino"),
    )
}
