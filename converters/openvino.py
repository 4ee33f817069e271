"""OpenVINO IR, converted from the fp32 ONNX export.

fp32 keeps float32 weights; fp16 compresses the weights to float16 (OpenVINO
decompresses them at load); int8 is ``nncf.quantize`` with the calibration
faces. NNCF's default placement (quantizers before Add, Multiply, Divide,
Concat, the first layer and the head too) missed the int8 bound on the demo
model (300 calibration, 500 other LFW faces: SRCC 0.9927, PLCC 0.9812); the
ignored scope below (those op types, the first layer and the quality head stay
in float) gave SRCC 0.9997, PLCC 0.9998 at the same latency (2.9 ms vs 2.8 ms,
batch 1, 128 px). Power, Sqrt and Subtract join them for the LayerNorms that
:func:`.layout.channels_first` writes as arithmetic over the channel axis
(quantizing their inputs took SRCC to 0.927 at 352 px). With ``max_drop`` the quantization is
``nncf.quantize_with_accuracy_control`` instead: layers return to float until
SRCC against the fp32 model drops by at most ``max_drop`` on the validation faces.
Activations are quantized asymmetrically (NNCF's ``MIXED`` preset; weights
stay symmetric): the GELU outputs the second pointwise layer of each block
reads are mostly positive, and a symmetric range spends half its levels on
values that never come. On the 224 px v2 recipe (AVX2 CPU, 200 other LFW
faces, batch 1) that took SRCC from 0.99935 to 0.99972 and max |Δ| from
1.0e-2 to 4.5e-3 at the same latency (p50 4.07 against 4.11 ms), and on the
20 bundled validation faces SRCC from 0.99398 (outside the bound) to 0.99850.
Weights are quantized to 7 bits (NNCF's overflow fix on every layer): on CPUs
without VNNI (AVX2, older AVX-512) 8-bit dot products can saturate, and with
the fix on the first layer only, NNCF's default, the bundled model's int8 IR
reached SRCC 0.988 on the 26 held-out faces on an AVX2-only CPU (bound 0.995).
The bundle's backend compiles with ``INFERENCE_PRECISION_HINT=f32``:
on CPUs with bf16 OpenVINO would otherwise run in bf16 (slower on this CPU and
not exact, see BACKENDS.md). The manifest is stored in the model's rt_info.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fiqa_edge._deps import require
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .base import BuildContext, Converter, cli_option
from .calibration import CalibrationFaces
from .onnx import HEAD_PREFIX, end_nodes, hub_fp32

__all__ = ["FLOAT_OP_TYPES", "OpenVinoConverter", "OpenVinoOptions", "ignored_scope", "quantize_int8"]


@dataclass(frozen=True)
class OpenVinoOptions:
    """OpenVINO int8 settings."""

    max_drop: float | None = cli_option(None, "max-drop",
        "OpenVINO int8: nncf.quantize_with_accuracy_control, keeping the SRCC drop against fp32 on the --validate "
        "faces within this budget (then pass other faces to a later `fiqa-edge bench`).", range=(0.0, 1.0))


#: op types whose inputs stay in float in int8 IRs (see the module doc)
FLOAT_OP_TYPES = ("Add", "Multiply", "MVN", "Divide", "Concat", "ReduceMean", "Power", "Sqrt", "Subtract")


def ignored_scope(hub: Path):
    """The NNCF ignored scope: :data:`FLOAT_OP_TYPES`, a fixed prefilter, the first layer and the quality head."""
    import nncf
    import onnx

    ends = end_nodes(onnx.load(str(hub)).graph, ("Conv", "MatMul", "Gemm"))
    return nncf.IgnoredScope(patterns=[f"{HEAD_PREFIX}.*", *(re.escape(n) + ".*" for n in ends)],
                             types=list(FLOAT_OP_TYPES), validate=False)


def quantize_int8(model, hub: Path, calibration: CalibrationFaces, validation: CalibrationFaces | None = None,
                  max_drop: float | None = None):
    """``nncf.quantize`` with the ignored scope, or with accuracy control when ``max_drop`` is given."""
    import nncf
    from scipy import stats

    nncf.set_log_level(logging.ERROR)  # its per-node reports would bury the conversion table
    data = nncf.Dataset(list(calibration))
    scope = ignored_scope(hub)
    # 7-bit weights on every layer: int8 dot products then cannot saturate on CPUs without VNNI (AVX2 and
    # older AVX-512; see the module doc)
    advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
    # asymmetric activations (see the module doc)
    common = {"preset": nncf.QuantizationPreset.MIXED, "subset_size": len(calibration), "ignored_scope": scope}
    if max_drop is None:
        return nncf.quantize(model, data, advanced_parameters=advanced, **common)
    if validation is None or len(validation) < 3:
        msg = "accuracy control needs 3 or more validation faces"
        raise ValueError(msg)
    reference = np.concatenate([np.asarray(_compiled(model)(x)[0]).reshape(-1) for x in validation])

    def srcc_vs_fp32(compiled, items) -> float:
        scores = np.concatenate([np.asarray(compiled(x)[0]).reshape(-1) for x in items])
        return float(stats.spearmanr(scores, reference)[0])

    return nncf.quantize_with_accuracy_control(
        model, data, nncf.Dataset(list(validation)), validation_fn=srcc_vs_fp32, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=advanced, **common)


def _compiled(model):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


class OpenVinoConverter(Converter[OpenVinoOptions]):
    """``--to openvino``: an IR (``model.xml`` + ``model.bin``)."""

    key, model_file, backend, package = "openvino", "model.xml", "openvino", "openvino"
    options_type = OpenVinoOptions

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: OpenVinoOptions) -> None:
        """fp32 IR, fp16-compressed weights, or NNCF int8 (with accuracy control on the validation faces)."""
        ov = require("openvino", "converting to OpenVINO")
        hub = hub_fp32(ctx)
        model = ov.convert_model(str(hub))
        if precision == "int8":
            require("nncf", "OpenVINO int8")
            model = quantize_int8(model, hub, ctx.calibration, ctx.validation, options.max_drop)
        ov.save_model(model, str(dst), compress_to_fp16=precision == "fp16")

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        """Store the manifest JSON in the IR's rt_info (rewrites the ``.xml`` and its ``.bin``)."""
        import openvino as ov

        model = ov.Core().read_model(str(model_file))
        model.set_rt_info(manifest.to_json(), [EMBEDDED_KEY, "manifest"])
        staged = model_file.with_name("staged.xml")
        ov.save_model(model, str(staged), compress_to_fp16=False)
        shutil.move(str(staged.with_suffix(".bin")), str(model_file.with_suffix(".bin")))
        shutil.move(str(staged), str(model_file))
