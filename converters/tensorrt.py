"""TensorRT engines, built from the ONNX export on an NVIDIA GPU (TensorRT 10 Python API).

fp32 and fp16 engines parse the fp32 ONNX graph (fp16 with the FP16 builder
flag); int8 parses the QDQ ONNX graph of the ONNX target, so the quantization
is explicit (the Q/DQ scales come from the same calibration faces) rather than
TensorRT's own implicit calibration. One optimisation profile covers batch
sizes 1 to 32 (tuned for 8). A timing cache in the user's cache folder
(``$XDG_CACHE_HOME/fiqa-edge``) makes rebuilds fast.
The GPU and TensorRT version go into the manifest: an engine runs only where
it was built.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from fiqa_edge._deps import has_nvidia_gpu, is_available, require
from fiqa_edge.errors import FiqaError
from fiqa_edge.manifest import Manifest

from .calibration import CalibrationFaces
from .onnx import INPUT, OnnxOptions, export_fp32, quantize_int8

__all__ = ["build", "embed_manifest", "unavailable"]

log = logging.getLogger(__name__)

#: batch sizes of the optimisation profile: min, opt, max
BATCH_PROFILE: tuple[int, int, int] = (1, 8, 32)


def unavailable() -> str | None:
    """Why no engine can be built here, or None."""
    if not is_available("tensorrt"):
        return "the tensorrt package is not installed (pip install 'fiqa-edge[tensorrt]' on an NVIDIA GPU machine)"
    if not has_nvidia_gpu():
        return "TensorRT needs an NVIDIA GPU and this machine has none"
    return None


def gpu_facts() -> dict[str, str]:
    """Name and compute capability of GPU 0, and the TensorRT version."""
    trt = require("tensorrt", "--to tensorrt")
    from fiqa_edge.backends.tensorrt_backend import _cudart, cuda_check

    props = cuda_check(_cudart().cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00"), "compute_capability": f"{props.major}.{props.minor}", "tensorrt": trt.__version__}


def build_engine(onnx_path: Path, dst: Path, input_size: int, precision: str, *,
                 batches: Sequence[int] = BATCH_PROFILE, timing_cache: Path | None = None) -> None:
    """Parse ``onnx_path`` and serialize an engine to ``dst``."""
    trt = require("tensorrt", "--to tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FiqaError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers left in float run in fp16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # honours the graph's Q/DQ nodes
    low, opt, high = batches
    shape = (3, input_size, input_size)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, (low, *shape), (opt, *shape), (high, *shape))
    config.add_optimization_profile(profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise FiqaError(f"TensorRT could not build a {precision} engine from {onnx_path} (see its log above)")
    dst.write_bytes(bytes(serialized))
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))


def build(loaded, precision: str, dst: Path, calibration: CalibrationFaces, workdir: Path,
          options: OnnxOptions = OnnxOptions()) -> None:
    """Write the ``precision`` engine of ``loaded`` to ``dst``."""
    reason = unavailable()
    if reason:
        raise FiqaError(f"--to tensorrt: {reason}")
    hub = workdir / "fp32.onnx"
    if not hub.is_file():
        export_fp32(loaded.model, loaded.spec.input_size, hub, options)
    source = hub
    if precision == "int8":
        source = workdir / "int8.onnx"
        if not source.is_file():
            quantize_int8(hub, source, calibration)
    elif precision not in ("fp32", "fp16"):
        raise ValueError(f"TensorRT builds fp32, fp16 and int8, not {precision!r}")
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fiqa-edge"
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_engine(source, dst, loaded.spec.input_size, precision, timing_cache=cache_dir / "tensorrt-timing.cache")


def embed_manifest(model_file: Path, manifest: Manifest) -> None:
    """Engines hold no metadata of ours: record the GPU and TensorRT version in ``fiqa.json`` beside it."""
    manifest.figures["built_on"] = gpu_facts()
    manifest.save(model_file.parent)
