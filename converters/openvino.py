"""OpenVINO IR, converted from the fp32 ONNX export.

fp32 keeps float32 weights; fp16 compresses the weights to float16 (OpenVINO
decompresses them at load); int8 is ``nncf.quantize`` with the calibration
faces. NNCF's default placement (quantizers before Add, Multiply, Divide,
Concat, the first layer and the head too) missed the int8 bound on the demo
model (300 calibration, 500 other LFW faces: SRCC 0.9927, PLCC 0.9812); the
ignored scope below (those op types, the first layer and the quality head stay
in float) gave SRCC 0.9997, PLCC 0.9998 at the same latency (2.9 ms vs 2.8 ms,
batch 1, 128 px). With ``max_drop`` the quantization is
``nncf.quantize_with_accuracy_control`` instead: layers return to float until
SRCC against the fp32 model drops by at most ``max_drop`` on the validation faces. The bundle's backend compiles with ``INFERENCE_PRECISION_HINT=f32``:
on CPUs with bf16 OpenVINO would otherwise run in bf16 (slower on this CPU and
not exact, see BACKENDS.md). The manifest is stored in the model's rt_info.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from fiqa_edge._deps import require
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .calibration import CalibrationFaces
from .onnx import HEAD_PREFIX, OnnxOptions, end_nodes, export_fp32

__all__ = ["FLOAT_OP_TYPES", "build", "embed_manifest", "ignored_scope", "quantize_int8"]


def _save(model, xml: Path, compress_to_fp16: bool) -> None:
    """Write ``xml`` and its ``.bin`` (inside the bundle's temporary folder)."""
    import openvino as ov

    ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)


#: op types whose inputs stay in float in int8 IRs (see the module doc)
FLOAT_OP_TYPES = ("Add", "Multiply", "MVN", "Divide", "Concat", "ReduceMean")


def ignored_scope(hub: Path):
    """The NNCF ignored scope: :data:`FLOAT_OP_TYPES`, the first layer and the quality head."""
    import nncf
    import onnx

    first = end_nodes(onnx.load(str(hub)).graph, ("Conv", "MatMul", "Gemm"))[:1]
    return nncf.IgnoredScope(patterns=[f"{HEAD_PREFIX}.*", *(re.escape(n) + ".*" for n in first)],
                             types=list(FLOAT_OP_TYPES), validate=False)


def quantize_int8(model, hub: Path, calibration: CalibrationFaces, validation: CalibrationFaces | None = None,
                  max_drop: float | None = None):
    """``nncf.quantize`` with the ignored scope, or with accuracy control when ``max_drop`` is given."""
    import logging

    import nncf
    from scipy import stats

    nncf.set_log_level(logging.ERROR)  # its per-node reports would bury the conversion table
    data = nncf.Dataset(list(calibration))
    if max_drop is None:
        return nncf.quantize(model, data, subset_size=len(calibration), ignored_scope=ignored_scope(hub))
    if validation is None or len(validation) < 3:
        raise ValueError("accuracy control needs validation faces")
    reference = np.concatenate([np.asarray(_compiled(model)(x)[0]).reshape(-1) for x in validation])

    def srcc_vs_fp32(compiled, items) -> float:
        scores = np.concatenate([np.asarray(compiled(x)[0]).reshape(-1) for x in items])
        return float(stats.spearmanr(scores, reference)[0])

    return nncf.quantize_with_accuracy_control(
        model, data, nncf.Dataset(list(validation)), validation_fn=srcc_vs_fp32, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration), ignored_scope=ignored_scope(hub))


def _compiled(model):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def build(loaded, precision: str, dst: Path, calibration: CalibrationFaces, workdir: Path,
          options: OnnxOptions = OnnxOptions(), max_drop: float | None = None,
          validation: CalibrationFaces | None = None) -> None:
    """Write the ``precision`` IR of ``loaded`` to ``dst`` (``model.xml`` + ``model.bin``).

    ``max_drop`` (int8 only): quantize with accuracy control on ``validation`` faces.
    """
    ov = require("openvino", "--to openvino")
    hub = workdir / "fp32.onnx"
    if not hub.is_file():
        export_fp32(loaded.model, loaded.spec.input_size, hub, options)
    model = ov.convert_model(str(hub))
    if precision == "fp32":
        _save(model, dst, compress_to_fp16=False)
    elif precision == "fp16":
        _save(model, dst, compress_to_fp16=True)
    elif precision == "int8":
        require("nncf", "OpenVINO int8")
        _save(quantize_int8(model, hub, calibration, validation, max_drop), dst, compress_to_fp16=False)
    else:
        raise ValueError(f"OpenVINO builds fp32, fp16 and int8, not {precision!r}")


def embed_manifest(xml: Path, manifest: Manifest) -> None:
    """Store the manifest JSON in the IR's rt_info (rewrites ``xml`` and its ``.bin``)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    model.set_rt_info(manifest.to_json(), [EMBEDDED_KEY, "manifest"])
    staged = xml.with_name("staged.xml")
    ov.save_model(model, str(staged), compress_to_fp16=False)
    shutil.move(str(staged.with_suffix(".bin")), str(xml.with_suffix(".bin")))
    shutil.move(str(staged), str(xml))
