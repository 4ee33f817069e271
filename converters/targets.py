"""The conversion targets: one row each, read by the CLI, ``convert``, the bench and the tests.

Adding a target is one module with a :class:`~fiqa_edge.converters.base.Converter`
subclass and one row here. Whether a target builds here is
:meth:`Converter.unavailable`; whether its artifacts run here is
:func:`fiqa_edge.backends.cannot_run` of its backend.
"""

from __future__ import annotations

from .base import Converter
from .coreml import CoreMlConverter
from .executorch import ExecuTorchConverter
from .litert import LiteRtConverter
from .onnx import OnnxConverter
from .openvino import OpenVinoConverter
from .tensorrt import TensorRtConverter
from .web import WebConverter

__all__ = ["TARGETS", "Converter"]

TARGETS: dict[str, Converter] = {c.key: c() for c in (
    OnnxConverter,
    OpenVinoConverter,
    TensorRtConverter,
    CoreMlConverter,
    LiteRtConverter,
    ExecuTorchConverter,
    WebConverter,
)}
