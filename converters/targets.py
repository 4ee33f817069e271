"""The conversion targets: one row each, read by the CLI, option checks, the loop and the docs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

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
        builder: ``"module:function"`` building one artifact (see ``converters.convert``).
    """

    key: str
    model_file: str
    precisions: tuple[str, ...]
    package: str
    backend: str
    builder: str

    def resolve(self) -> Callable:
        module, _, func = self.builder.partition(":")
        return getattr(importlib.import_module(module), func)


TARGETS: dict[str, Target] = {
    t.key: t
    for t in (
        Target("onnx", "model.onnx", ("fp32", "fp16", "int8"), "onnx", "onnxruntime", "fiqa_edge.converters.onnx:build"),
    )
}
