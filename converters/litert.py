"""LiteRT (formerly TensorFlow Lite): ``model.tflite`` for Android and on-device CPUs (XNNPACK).

fp32 comes from the torch model through ``litert_torch.convert``, with an
NHWC float32 input (``litert_torch.to_channel_last_io``): an Android app
hands over a bitmap in that order, and on this CPU the NHWC and NCHW graphs
ran alike (0.99 against 1.00 ms, batch 1, demo model, 128 px). A ``.tflite``
graph cannot be resized to another batch size after conversion (XNNPACK
reshape error), so each batch size of :attr:`LiteRtOptions.batch_sizes` is
its own signature: ``serving_default`` (batch 1) and ``batch_<N>``. Before
conversion the 7×7 and 9×9 depthwise convolutions are split into bands of
rows (:mod:`.depthwise`), which XNNPACK runs with its depthwise kernels
instead of a grouped IGEMM (``--litert-dense-depthwise`` keeps them whole).

fp16 stores the weights as float16 (``ai_edge_quantizer`` float casting,
weight-only; compute stays float32). int8 (``ai_edge_quantizer``):

- ``dynamic``: int8 weights for the dense convolutions and the fully
  connected layers, activations quantized at run time (XNNPACK's qd8
  kernels); needs no calibration. The banded depthwise convolutions stay
  float: at 352 px they took 1.22 ms in float against 3.79 with int8
  weights (operators timed alone, ``fiqa-edge bench --profile``).
- ``static`` (default): int8 weights (per channel) and activations, calibrated on
  the calibration faces, for the convolutions but the first one, which stays
  float, and for the fully connected layers but the quality head's, which
  gets int8 weights only: full-integer kernels for XNNPACK and for hardware
  that wants integer activations. litert-torch writes the bias of a fully
  connected layer as (1, 1, 1, C), which the quantizer could not quantize;
  :func:`_with_flat_fc_biases` makes it 1-D first.
- ``weight-only``: int8 weights dequantized at load, float compute.

Chosen by measurement: two ``fiqa-edge bench`` runs at 352 px (the official
layout, v1's weights) and one at 224 px (the bundled default), 100
calibration faces, 200 other faces, batch 1, p50 ms and SRCC against fp32
torch (docs/bench/litert352-static-run1.*, -run2.*, litert224-static.*):

=============================  ======================  ======================
mode                           352 px                  224 px
=============================  ======================  ======================
fp32                           16.90, 16.42            8.39
dynamic                        12.92, 12.55; 0.99756   6.74; 0.99968
static (full integer)          10.49, 10.12; 0.99906   5.78; 0.99908
=============================  ======================  ======================

Before the fully connected layers were static too, static (convolutions
only) ran slower than dynamic (10.78 against 8.49 ms at 352 px, demo
weights), which was then the default.

Every convolution static (the first included) missed the bound on the
bundled validation faces (SRCC 0.9940). Static ranges are the plain min and
max over all calibration batches (:func:`_ranges`): with the quantizer's
moving average, the 224 px v2 recipe's batch-8 signature scored the 20
validation sample faces at SRCC 0.99248 against 0.99850 for its batch-1
signature; with min-max both give 0.99549 (200 other LFW faces: 0.99946).

The manifest is stored in the flatbuffer's own ``metadata`` table under
``fiqa`` (and beside the model as ``fiqa.json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .base import BuildContext, Converter, cli_option
from .calibration import CalibrationFaces

__all__ = ["INT8_MODES", "LiteRtConverter", "LiteRtOptions", "signature_name"]

INT8_MODES = ("dynamic", "static", "weight-only")
#: the quality head's module as it appears in the converted graph's tensor names
HEAD_MODULE = "Sequential_quality"
#: a fixed input filter's module (the zoo's ``prefilter``) in those names: its Gaussian taps stay float in int8
PREFILTER_MODULE = "GaussianPrefilter_prefilter"
_NOT_PREFILTER = f"(?!.*{re.escape(PREFILTER_MODULE)})"


@dataclass(frozen=True)
class LiteRtOptions:
    """LiteRT conversion settings."""

    int8_mode: str = cli_option("static", "int8",
                                "LiteRT int8: static (full integer, activations calibrated on the calibration faces; "
                                "fastest here), dynamic (activations quantized at run time, no calibration) or "
                                "weight-only.", choices=INT8_MODES)
    dense_depthwise: bool = cli_option(False, "dense-depthwise",
                                       "LiteRT: export the large (7x7, 9x9) depthwise convolutions as they are "
                                       "(default: as bands of rows that XNNPACK's depthwise kernels run, the same "
                                       "function, faster).")
    batch_sizes: tuple[int, ...] = (1, 8)  # one signature each; 1 is always there

    @property
    def export_key(self) -> str:
        """Names the fp32 export these settings give."""
        return f"{'-'.join(map(str, self.batch_sizes))}{'-dense-depthwise' if self.dense_depthwise else ''}"


def signature_name(batch: int) -> str:
    """The signature that takes ``batch`` images."""
    return "serving_default" if batch == 1 else f"batch_{batch}"


def _nhwc(faces: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(faces.transpose(0, 2, 3, 1))


def export_fp32(model, input_size: int, dst: Path, options: LiteRtOptions) -> None:
    """One NHWC signature per batch size, written to ``dst`` atomically."""
    import torch

    litert_torch = require("litert_torch", "converting to LiteRT")
    if not options.dense_depthwise:
        from .depthwise import band_depthwise

        model = band_depthwise(model)
    wrapped = litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()
    converter = litert_torch.Converter()
    for batch in sorted(set(options.batch_sizes) | {1}):
        converter.signature(signature_name(batch), wrapped, (torch.zeros(batch, input_size, input_size, 3),))
    with atomic_path(dst) as tmp:
        converter.convert().export(str(tmp))


def _input_name(fp32: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    (name,) = Interpreter(model_path=str(fp32)).get_signature_list()["serving_default"]["inputs"]
    return name


def _first_conv(fp32: Path) -> str:
    """Output tensor name (up to its ``;`` suffix, so every signature matches) of the first convolution."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(fp32))
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    first = next(o for o in interpreter._get_ops_details() if o["op_name"] == "CONV_2D")
    return names[first["outputs"][0]].split(";")[0]


def _head(fp32: Path) -> str:
    """A regex for the scopes (output names, each ended by ``;``) of the quality head's layers: its module's
    tensors, and the model's outputs (the last layer's output carries the signature's name, not the module's)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(fp32))
    outputs = [s.tensors[i].name for s in model.subgraphs for i in s.outputs]
    names = [re.escape(n.decode() if isinstance(n, bytes) else n) + ";" for n in outputs]
    return f"(?:.*{re.escape(HEAD_MODULE)}|{'|'.join(names)})"


def _calibration_data(fp32: Path, faces: CalibrationFaces, batch_sizes: tuple[int, ...]) -> dict[str, list[dict]]:
    """Every signature's calibration inputs: the faces in batches of its size (cycled to fill the last)."""
    name, data = _input_name(fp32), _nhwc(faces.batch())
    out = {}
    for batch in sorted(set(batch_sizes) | {1}):
        chunks = [np.resize(data[i : i + batch], (batch, *data.shape[1:])) for i in range(0, len(data), batch)]
        out[signature_name(batch)] = [{name: np.ascontiguousarray(c, dtype=np.float32)} for c in chunks]
    return out


def _ranges(q, data: dict[str, list[dict]]) -> dict[str, Any]:
    """Each tensor's min and max over every calibration batch of every signature.

    ``Quantizer.calibrate`` keeps a moving average of the ranges over the batches it sees (weight 0.95 on the
    ranges so far), so they lean on the first batches and differ between the batch-1 and batch-8 signatures;
    calibrating one batch at a time and merging with ``qsv_utils.min_max_update`` gives plain min-max ranges.
    """
    from ai_edge_quantizer.utils import qsv_utils

    ranges: dict[str, Any] = {}
    for signature, batches in data.items():
        for batch in batches:
            for name, qsv in q.calibrate({signature: [batch]}).items():
                if qsv:
                    ranges[name] = qsv_utils.min_max_update(ranges.get(name, {}), qsv)
    return ranges


def _with_flat_fc_biases(fp32: Path) -> bytes:
    """``fp32`` with each fully connected layer's bias 1-D.

    litert-torch writes the bias of a fully connected layer over an NHWC map as (1, 1, 1, C), which the kernel
    reads flat; for static int8 the quantizer cannot quantize such a bias (per channel, the interpreter then
    rejects C scales on an axis of length 1; per tensor, the scale's rank mismatches the bias's).
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(fp32))
    for subgraph in model.subgraphs:
        for layer in subgraph.operators:
            if (flatbuffer_utils.opcode_to_name(model, layer.opcodeIndex) == "FULLY_CONNECTED" and len(layer.inputs) > 2
                    and layer.inputs[2] >= 0):
                bias = subgraph.tensors[layer.inputs[2]]
                flat = np.array([int(np.prod(bias.shape))], np.int32)
                bias.shape = flat
                if bias.shapeSignature is not None:
                    bias.shapeSignature = flat
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def quantize(fp32: Path, dst: Path, precision: str, options: LiteRtOptions, calibration: CalibrationFaces) -> dict[str, Any]:
    """fp16 or int8 copy of the fp32 model; what was quantized, for the manifest."""
    require("ai_edge_quantizer", "LiteRT fp16/int8")
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    op = qtyping.TFLOperationName
    weights = (op.FULLY_CONNECTED, op.CONV_2D, op.DEPTHWISE_CONV_2D)
    static = precision == "int8" and options.int8_mode == "static"
    q = quantizer.Quantizer(_with_flat_fc_biases(fp32) if static else str(fp32))
    if precision == "fp16":
        for name in weights:
            q.add_weight_only_config(regex=".*", operation_name=name, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
        figures = {"weights": "float16", "ops": [o.name for o in weights]}
    elif static:
        first, head = _first_conv(fp32), _head(fp32)
        for name in (op.CONV_2D, op.DEPTHWISE_CONV_2D):
            q.add_static_config(regex=f"^(?!{re.escape(first)}){_NOT_PREFILTER}.*", operation_name=name, activation_num_bits=8,
                                weight_num_bits=8)
        q.add_static_config(regex=f"^(?!{head}).*", operation_name=op.FULLY_CONNECTED, activation_num_bits=8,
                            weight_num_bits=8)
        q.add_weight_only_config(regex=f"^{head}", operation_name=op.FULLY_CONNECTED, num_bits=8)
        figures = {"mode": "static", "int8_weights_and_activations": [o.name for o in weights],
                   "int8_weights_only": ["quality head"], "float": [first]}
    elif options.int8_mode == "dynamic":
        # banded depthwise convolutions ran faster in float than with int8 weights (docs/benchmarking.md)
        dynamic = weights if options.dense_depthwise else (op.FULLY_CONNECTED, op.CONV_2D)
        for name in dynamic:
            q.add_dynamic_config(regex=f"^{_NOT_PREFILTER}.*", operation_name=name, num_bits=8)
        figures = {"mode": "dynamic", "ops": [o.name for o in dynamic]}
    elif options.int8_mode == "weight-only":
        for name in weights:
            q.add_weight_only_config(regex=f"^{_NOT_PREFILTER}.*", operation_name=name, num_bits=8)
        figures = {"mode": "weight-only", "ops": [o.name for o in weights]}
    else:
        msg = f"LiteRT int8 mode must be one of {INT8_MODES}, not {options.int8_mode!r}"
        raise ValueError(msg)
    qsvs = _ranges(q, _calibration_data(fp32, calibration, options.batch_sizes)) if q.need_calibration else None
    result = q.quantize(qsvs, enable_progress_report=False)
    with atomic_path(dst) as tmp:
        tmp.write_bytes(bytes(result.quantized_model))
    return figures


def embed_manifest(model_file: Path, manifest: Manifest) -> None:
    """Store the manifest JSON in the flatbuffer's ``metadata`` table under ``fiqa`` (replacing an older one)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(model_file))
    entries = [m for m in (model.metadata or []) if m.name not in (EMBEDDED_KEY, EMBEDDED_KEY.encode())]
    buffer = schema.BufferT()
    buffer.data = bytearray(manifest.to_json().encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = EMBEDDED_KEY, len(model.buffers) - 1
    model.metadata = [*entries, entry]
    with atomic_path(model_file) as tmp:
        flatbuffer_utils.write_model(model, str(tmp))


class LiteRtConverter(Converter[LiteRtOptions]):
    """``--to litert``: ``model.tflite`` (NHWC input, one signature per batch size)."""

    key, model_file, backend, package = "litert", "model.tflite", "litert", "litert_torch"
    options_type = LiteRtOptions

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: LiteRtOptions) -> dict[str, Any]:
        """The fp32 conversion (once per run), or its fp16 / int8 quantization."""
        n = ctx.loaded.spec.input_size
        fp32 = ctx.cached(f"litert-fp32-{options.export_key}.tflite",
                          lambda path: export_fp32(ctx.loaded.model, n, path, options))
        figures: dict[str, Any] = {"io": {
            "input": _input_name(fp32), "layout": "NHWC", "dtype": "float32", "output_dtype": "float32",
            "signatures": {signature_name(b): [b, n, n, 3] for b in sorted(set(options.batch_sizes) | {1})}}}
        if precision == "fp32":
            dst.write_bytes(fp32.read_bytes())
        else:
            figures["quantization"] = quantize(fp32, dst, precision, options, ctx.calibration)
            if precision == "int8" and options.int8_mode != "static":
                figures["calibration"] = "none: weights only; activations stay float or are quantized at run time"
        return figures

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        embed_manifest(model_file, manifest)

