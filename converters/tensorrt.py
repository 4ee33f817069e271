"""TensorRT engines, built from the ONNX export on an NVIDIA GPU (TensorRT 10 Python API).

fp32 and fp16 engines parse the fp32 ONNX graph (fp16 with the FP16 builder
flag); int8 parses the QDQ ONNX graph of the ONNX target, so the quantization
is explicit (the Q/DQ scales come from the same calibration faces) rather than
TensorRT's own implicit calibration. One optimisation profile covers batch
sizes 1 to 32 (tuned for 8). A timing cache in the user's cache folder
(``$XDG_CACHE_HOME/fiqa-edge``, written atomically) makes rebuilds fast. fp32
engines clear the TF32 builder flag: TensorRT enables TF32 by default, which on
Ampere and later GPUs rounds fp32 convolutions to a 10-bit mantissa and breaks
the fp32 parity bound.
The GPU and TensorRT version go into the manifest: an engine runs only where
it was built.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.backends import cannot_run
from fiqa_edge.errors import ConversionError
from fiqa_edge.manifest import Manifest

from .base import BuildContext, Converter
from .onnx import INPUT, hub_fp32, hub_int8

__all__ = ["TensorRtConverter", "TensorRtOptions", "build_engine", "gpu_facts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorRtOptions:
    """Engine settings."""

    batch_profile: tuple[int, int, int] = (1, 8, 32)  # min, opt, max batch of the optimisation profile
    device: int = 0  # the CUDA device that builds (and will run) the engine


def gpu_facts(device: int = 0) -> dict[str, str]:
    """Name and compute capability of GPU ``device``, and the TensorRT version."""
    trt = require("tensorrt", "building TensorRT engines")
    from fiqa_edge.backends.tensorrt_backend import cuda_check, cudart

    props = cuda_check(cudart().cudaGetDeviceProperties(device))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00"), "compute_capability": f"{props.major}.{props.minor}", "tensorrt": trt.__version__,
            "device": str(device)}


def build_engine(onnx_path: Path, dst: Path, input_size: int, precision: str, *,
                 options: TensorRtOptions = TensorRtOptions(), timing_cache: Path | None = None) -> None:
    """Parse ``onnx_path`` and serialize an engine to ``dst`` on ``options.device``."""
    trt = require("tensorrt", "building TensorRT engines")
    from fiqa_edge.backends.tensorrt_backend import cuda_check, cudart

    cuda_check(cudart().cudaSetDevice(options.device))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        msg = f"{onnx_path}: TensorRT cannot parse it: {errors}"
        raise ConversionError(msg)
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32 (see the module doc)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers left in float run in fp16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # honours the graph's Q/DQ nodes
    low, opt, high = options.batch_profile
    shape = (3, input_size, input_size)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, (low, *shape), (opt, *shape), (high, *shape))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        msg = f"TensorRT could not build a {precision} engine from {onnx_path} (see its log above)"
        raise ConversionError(msg)
    dst.write_bytes(bytes(serialized))
    if timing_cache is not None:
        with atomic_path(timing_cache) as tmp:  # other builds may read it at the same time
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))


def _timing_cache() -> Path:
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fiqa-edge"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "tensorrt-timing.cache"


class TensorRtConverter(Converter[TensorRtOptions]):
    """``--to tensorrt``: a serialized engine for the GPU that built it."""

    key, model_file, backend, package = "tensorrt", "model.engine", "tensorrt", "tensorrt"
    options_type = TensorRtOptions
    note = "not yet run on a GPU: written to the TensorRT 10 API, never validated on real hardware"
    embeds_manifest = False

    def unavailable(self) -> str | None:
        """Engines are built on the GPU they will run on: the package and a GPU must both be here."""
        return cannot_run(self.backend)

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: TensorRtOptions) -> dict[str, Any]:
        """Build the engine; the GPU and TensorRT version go into the manifest (an engine runs only there)."""
        # int8 parses the QDQ graph of the ONNX target (explicit quantization), shared with an ONNX int8 build
        source = hub_int8(ctx) if precision == "int8" else hub_fp32(ctx)
        build_engine(source, dst, ctx.loaded.spec.input_size, precision, options=options, timing_cache=_timing_cache())
        return {"built_on": gpu_facts(options.device)}

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        """Engines hold no metadata of ours: ``fiqa.json`` beside the engine is its manifest."""
