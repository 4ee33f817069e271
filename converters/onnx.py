"""ONNX: the hub format the other targets start from.

fp32 comes from torch's TorchScript-based exporter at opset 17 with a dynamic
batch (on this machine its graph ran 16.1 ms against 19.1 ms for the dynamo
exporter's, see BACKENDS.md), simplified with onnxslim, from the model written
in one layout by :func:`.layout.channels_first` (one bench run at 352 px,
batch 1, p50: onnxruntime fp32 11.09 → 8.58 ms, OpenVINO int8 3.92 → 2.81 ms).
fp16 converts that graph with onnxruntime's float16 tool (inputs and outputs
stay float32).

int8 (``onnxruntime.quantization``, :class:`OnnxOptions`):

- ``dynamic`` (default): int8 weights for MatMul and Gemm (the pointwise
  layers and the head), activations quantized at run time; no calibration.
  One bench run each on 200 LFW faces (demo weights, batch 1, p50): 1.73 ms
  against 2.19 ms for fp32 and 2.22 ms for static at 128 px, 11.93 against
  12.82 and 12.85 ms at 352 px; SRCC against fp32 0.9993 at both sizes
  (static: 0.9978, 0.9985). One activation scale covers a whole batch, so the
  onnxruntime backend runs these models one face at a time (a face's score
  must not depend on its batch mates). Its export keeps timm's channels-last MLPs, whose
  linear layers are MatMuls and so int8 (from the channels-first export, where
  they are 1×1 Convs: 3.32 MB against 1.73 MB and 8.16 against 8.01 ms at
  352 px). Static QDQ spends what its int8 MatMuls save on
  the QuantizeLinear/DequantizeLinear pairs around the float LayerNorm,
  GELU and transposes between them (``fiqa-edge bench --profile``).
- ``static``: QDQ with calibration faces (the graph TensorRT's int8 engine
  parses too); only Conv, MatMul and Gemm are quantized (per-channel
  weights, MinMax ranges), which measured both faster and closer to fp32
  than quantizing every op, and the first layer and the quality head stay
  in float: on the demo model (300 calibration, 500 other LFW faces) that
  raised SRCC/PLCC against fp32 from 0.9961/0.9963 to 0.9972/0.9977.

The manifest is embedded in ``metadata_props`` under ``fiqa``, so the
``.onnx`` file alone is a complete bundle.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .base import BuildContext, Converter, cli_option
from .calibration import CalibrationFaces

__all__ = ["HEAD_PREFIX", "INPUT", "INT8_MODES", "NO_CALIBRATION", "OUTPUT", "OnnxConverter", "OnnxOptions",
           "embed_manifest", "end_nodes", "export_fp32", "hub_fp32", "hub_int8", "hub_int8_dynamic", "quantize_dynamic_int8",
           "quantize_int8", "to_fp16"]

log = logging.getLogger(__name__)
INPUT, OUTPUT = "image", "score"
CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile", "Distribution")
INT8_MODES = ("dynamic", "static")


@dataclass(frozen=True)
class OnnxOptions:
    """Export and int8 settings (``onnxruntime.quantization``; the calibration ones apply to static int8)."""

    opset: int = 17
    int8_mode: str = cli_option("dynamic", "int8",
                                "ONNX int8: dynamic (MatMul/Gemm int8 weights, activations quantized at run time; "
                                "faster than fp32 here) or static (QDQ calibrated on the calibration faces).",
                                choices=INT8_MODES)
    dynamic_hw: bool = cli_option(False, "dynamic-hw",
                                  "ONNX: the model also takes any height and width (the scorer still resizes and "
                                  "crops as the manifest says).")
    simplify: bool = True  # onnxslim
    op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")  # what int8 quantizes
    per_channel: bool = True
    calibration_method: str = cli_option("MinMax", "calibration", "ONNX int8 calibration method.",
                                         choices=CALIBRATION_METHODS)
    keep_ends_float: bool = True  # leave the first quantizable layer and the quality head unquantized
    exclude_nodes: tuple[str, ...] = ()
    channels_last: bool = cli_option(False, "channels-last",
                                     "ONNX fp32/fp16/static int8: export timm's EdgeNeXt as it is, its MLPs channels "
                                     "last between transposes (default: rewritten in one layout, the same function, "
                                     "faster in onnxruntime).")

    @property
    def export_key(self) -> str:
        """Names the fp32 export these settings give (settings that change the graph)."""
        return (f"opset{self.opset}{'-dynamic-hw' if self.dynamic_hw else ''}{'' if self.simplify else '-raw'}"
                f"{'-channels-last' if self.channels_last else ''}")


#: name prefix of the quality head's nodes in exported graphs (the zoo's ``quality`` module)
HEAD_PREFIX = "/quality/"
#: name prefix of a fixed input filter's nodes (the zoo's ``prefilter``): its Gaussian taps stay float in int8
PREFILTER_PREFIX = "/prefilter/"


def end_nodes(graph, op_types: tuple[str, ...]) -> list[str]:
    """Names of the ``op_types`` nodes int8 leaves in float: a fixed prefilter's, the first layer after it (graph
    order is topological) and the head's."""
    names = [n.name for n in graph.node if n.op_type in op_types]
    body = [n for n in names if not n.startswith(PREFILTER_PREFIX)]
    return [n for n in names if n.startswith(PREFILTER_PREFIX)] + body[:1] + [n for n in body if n.startswith(HEAD_PREFIX)]


def export_fp32(model, input_size: int, path: Path, options: OnnxOptions = OnnxOptions()) -> None:
    """Export a torch model to ``path`` (atomically) with a dynamic batch axis."""
    import torch

    onnx = require("onnx", "ONNX export")

    axes = {0: "batch", 2: "height", 3: "width"} if options.dynamic_hw else {0: "batch"}
    example = torch.zeros(2, 3, input_size, input_size)
    if not options.channels_last:
        from .layout import channels_first

        model = channels_first(model)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model.eval(), (example,), str(tmp), dynamo=False, opset_version=options.opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: {0: "batch"}})
        graph = onnx.load(str(tmp))
        if options.simplify:
            graph = require("onnxslim", "ONNX graph simplification").slim(graph)
        onnx.checker.check_model(graph, full_check=True)
        onnx.save(graph, str(tmp))


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and arithmetic, float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with atomic_path(dst) as tmp:
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(tmp))


def quantize_int8(src: Path, dst: Path, calibration: CalibrationFaces, options: OnnxOptions = OnnxOptions()) -> None:
    """Static QDQ int8 of the fp32 graph ``src`` with ``calibration`` faces."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    try:
        method = CalibrationMethod[options.calibration_method]
    except KeyError:
        known = ", ".join(m.name for m in CalibrationMethod)
        msg = f"unknown calibration method {options.calibration_method!r}; choose from {known}"
        raise ValueError(msg) from None
    with atomic_path(dst) as tmp, tempfile.TemporaryDirectory(dir=dst.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared))  # shape inference and graph optimisation, as onnxruntime advises
        exclude = list(options.exclude_nodes)
        if options.keep_ends_float:
            import onnx

            exclude += end_nodes(onnx.load(str(prepared)).graph, options.op_types)
        quantize_static(str(prepared), str(tmp), calibration.onnxruntime_reader(INPUT), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=options.per_channel,
                        op_types_to_quantize=list(options.op_types), nodes_to_exclude=exclude,
                        calibrate_method=method)


def quantize_dynamic_int8(src: Path, dst: Path) -> None:
    """int8 weights for MatMul and Gemm, activations quantized at run time (atomically)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(dst) as tmp:
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)


def hub_fp32(ctx: BuildContext, options: OnnxOptions = OnnxOptions()) -> Path:
    """The run's fp32 ONNX export for these settings (made once, shared by ONNX, OpenVINO and TensorRT)."""
    return ctx.cached(f"fp32-{options.export_key}.onnx",
                      lambda path: export_fp32(ctx.loaded.model, ctx.loaded.spec.input_size, path, options))


def hub_int8(ctx: BuildContext, options: OnnxOptions = OnnxOptions()) -> Path:
    """The run's static int8 QDQ graph for these settings (made once, shared by ONNX's static int8 and TensorRT).

    ``int8_mode`` is left out of the key: this graph is the static one whatever the ONNX target ships.
    """
    options = replace(options, int8_mode="static")
    settings = hashlib.sha256(repr(options).encode()).hexdigest()[:12]
    return ctx.cached(f"int8-{settings}.onnx",
                      lambda path: quantize_int8(hub_fp32(ctx, options), path, ctx.calibration, options))


def hub_int8_dynamic(ctx: BuildContext, options: OnnxOptions = OnnxOptions()) -> Path:
    """The run's dynamic int8 graph (made once, shared by ONNX and the web bundle).

    It quantizes MatMuls only, so it starts from the export that keeps timm's channels-last MLPs (MatMuls),
    not the channels-first one (1×1 Convs).
    """
    options = replace(options, channels_last=True)
    return ctx.cached(f"int8-dynamic-{options.export_key}.onnx",
                      lambda path: quantize_dynamic_int8(hub_fp32(ctx, options), path))


#: what the manifest says of a dynamic int8 graph's calibration
NO_CALIBRATION = "none: dynamic int8 quantizes activations at run time"


def embed_manifest(path: Path, manifest: Manifest) -> None:
    """Store the manifest JSON in the model's ``metadata_props`` (rewrites the file atomically)."""
    import onnx

    graph = onnx.load(str(path))
    del graph.metadata_props[:]
    graph.metadata_props.add(key=EMBEDDED_KEY, value=manifest.to_json())
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))


class OnnxConverter(Converter[OnnxOptions]):
    """``--to onnx``: ``model.onnx`` for onnxruntime (and any ONNX runtime)."""

    key, model_file, backend, package = "onnx", "model.onnx", "onnxruntime", "onnx"
    options_type = OnnxOptions

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: OnnxOptions) -> dict[str, Any] | None:
        """The run's fp32 export, its float16 conversion, or its int8 graph (static QDQ or dynamic)."""
        if precision == "fp16":
            to_fp16(hub_fp32(ctx, options), dst)
            return None
        if precision == "fp32":
            dst.write_bytes(hub_fp32(ctx, options).read_bytes())
            return None
        dynamic = options.int8_mode == "dynamic"
        dst.write_bytes((hub_int8_dynamic(ctx, options) if dynamic else hub_int8(ctx, options)).read_bytes())
        return {"quantization": {"mode": options.int8_mode}, **({"calibration": NO_CALIBRATION} if dynamic else {})}

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        embed_manifest(model_file, manifest)
