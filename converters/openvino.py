"""OpenVINO IR, converted from the fp32 ONNX export.

fp32 keeps float32 weights; fp16 compresses the weights to float16 (OpenVINO
decompresses them at load); int8 is ``nncf.quantize`` with the calibration
faces. The bundle's backend compiles with ``INFERENCE_PRECISION_HINT=f32``:
on CPUs with bf16 OpenVINO would otherwise run in bf16 (slower on this CPU and
not exact, see BACKENDS.md). The manifest is stored in the model's rt_info.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fiqa_edge._deps import require
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .calibration import CalibrationFaces
from .onnx import OnnxOptions, export_fp32

__all__ = ["build", "embed_manifest"]


def _save(model, xml: Path, compress_to_fp16: bool) -> None:
    """Write ``xml`` and its ``.bin`` (inside the bundle's temporary folder)."""
    import openvino as ov

    ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)


def build(loaded, precision: str, dst: Path, calibration: CalibrationFaces, workdir: Path, options: OnnxOptions = OnnxOptions()) -> None:
    """Write the ``precision`` IR of ``loaded`` to ``dst`` (``model.xml`` + ``model.bin``)."""
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
        nncf = require("nncf", "OpenVINO int8")
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration)), subset_size=len(calibration))
        _save(quantized, dst, compress_to_fp16=False)
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
