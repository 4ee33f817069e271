"""CoreML ML programs (``.mlpackage``), converted from the torch model.

The route is ``torch.export`` then ``coremltools.convert`` (the TorchScript
route fails on EdgeNeXt with numpy 2.4, see BACKENDS.md). The ImageNet
normalisation is folded into the model and the input is an RGB image type, so
an iOS or macOS app hands over a pixel buffer (resized and centre-cropped to
N×N as docs/preprocessing.md says). fp32 and fp16 are the compute precision;
int8 is fp16 compute with int8 weights (``coremltools.optimize``: linear
symmetric quantization, or 8-bit k-means palettization with ``palettize``).

CoreML models run only on macOS. Elsewhere :func:`inspect` checks what can be
checked without running: the spec loads, the input and output names, types
and shapes, the weight precision and the op list.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiqa_edge._deps import require
from fiqa_edge.backends.coreml_backend import INPUT, OUTPUT
from fiqa_edge.errors import FiqaError
from fiqa_edge.manifest import EMBEDDED_KEY, Manifest

from .base import BuildContext, Converter, cli_option

__all__ = ["CoreMlConverter", "CoreMlOptions", "inspect"]


@dataclass(frozen=True)
class CoreMlOptions:
    """CoreML int8 weight compression."""

    int8_mode: str = cli_option("linear", "int8",
                                "CoreML int8 weights: linear symmetric quantization or 8-bit k-means palettization.",
                                choices=("linear", "palettize"))


def _coremltools():
    return require("coremltools", "converting to CoreML")


def _normalised(model, spec):
    """``model`` preceded by the manifest's scaling and normalisation, taking 0–255 RGB pixels."""
    import torch
    from torch import nn

    class Normalised(nn.Module):
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0)
            self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model((x - self.mean) / self.std)

    return Normalised().eval()


def build(loaded, precision: str, dst: Path, mode: str = "linear") -> None:
    """Write the ``precision`` ML program of ``loaded`` to ``dst`` (an ``.mlpackage`` folder)."""
    ct = _coremltools()
    import torch

    n = loaded.spec.input_size
    exported = torch.export.export(_normalised(loaded.model, loaded.spec), (torch.zeros(1, 3, n, n),)).run_decompositions({})
    mlmodel = ct.convert(
        exported,
        inputs=[ct.ImageType(name=INPUT, shape=(1, 3, n, n), color_layout=ct.colorlayout.RGB)],
        outputs=[ct.TensorType(name=OUTPUT)],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        minimum_deployment_target=ct.target.iOS16,
    )
    if precision == "int8":
        from coremltools.optimize import coreml as cto

        if mode == "linear":
            config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
            mlmodel = cto.linear_quantize_weights(mlmodel, config=config)
        elif mode == "palettize":
            require("sklearn", "CoreML palettization")
            config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=8))
            mlmodel = cto.palettize_weights(mlmodel, config=config)
        else:
            msg = f"CoreML int8 mode must be linear or palettize, not {mode!r}"
            raise ValueError(msg)
    mlmodel.save(str(dst))


def embed_manifest(model_file: Path, manifest: Manifest) -> None:
    """Store the manifest JSON in the model's user-defined metadata (rewrites the package)."""
    ct = _coremltools()
    mlmodel = ct.models.MLModel(str(model_file), skip_model_load=True)
    mlmodel.user_defined_metadata[EMBEDDED_KEY] = manifest.to_json()
    mlmodel.short_description = f"Face image quality ({manifest.arch}, {manifest.precision}); higher is better"
    staged = model_file.with_name("staged.mlpackage")
    mlmodel.save(str(staged))
    shutil.rmtree(model_file)
    staged.rename(model_file)


def inspect(model_file: Path, manifest: Manifest) -> dict[str, Any]:
    """Check the package without running it; return what was checked.

    Raises:
        FiqaError: the spec does not load or does not match the manifest.
    """
    ct = _coremltools()
    try:
        spec = ct.utils.load_spec(str(model_file))
    except Exception as exc:  # a damaged package
        msg = f"{model_file}: the CoreML spec does not load ({exc})"
        raise FiqaError(msg) from exc
    n = manifest.preprocessing.input_size
    (inp,), (out,) = spec.description.input, spec.description.output
    problems = []
    if inp.name != INPUT or inp.type.WhichOneof("Type") != "imageType":
        problems.append(f"input is {inp.name!r} of type {inp.type.WhichOneof('Type')}, expected image {INPUT!r}")
    elif (inp.type.imageType.width, inp.type.imageType.height) != (n, n):
        problems.append(f"input is {inp.type.imageType.width}×{inp.type.imageType.height}, expected {n}×{n}")
    if out.name != OUTPUT:
        problems.append(f"output is {out.name!r}, expected {OUTPUT!r}")
    ops: Counter[str] = Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)
    quantized = ops["constexpr_affine_dequantize"] + ops["constexpr_blockwise_shift_scale"] + ops["constexpr_lut_to_dense"]
    if manifest.precision == "int8" and quantized == 0:
        problems.append("int8 model has no quantized weights (no constexpr dequantize/LUT ops)")
    if manifest.precision != "int8" and quantized:
        problems.append(f"{manifest.precision} model has {quantized} quantized weight ops")
    if problems:
        raise FiqaError(f"{model_file}: " + "; ".join(problems))
    return {"spec_version": spec.specificationVersion, "input": f"image {INPUT} RGB {n}x{n}", "output": OUTPUT,
            "quantized_weight_ops": quantized, "ops": dict(sorted(ops.items()))}


class CoreMlConverter(Converter[CoreMlOptions]):
    """``--to coreml``: an ML program for iOS and macOS (converts anywhere, runs on macOS)."""

    key, model_file, backend, package = "coreml", "model.mlpackage", "coreml", "coremltools"
    options_type = CoreMlOptions

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: CoreMlOptions) -> None:
        """fp32 or fp16 compute; int8 weights compressed as ``options.int8_mode`` says."""
        build(ctx.loaded, precision, dst, options.int8_mode)

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        embed_manifest(model_file, manifest)

    def inspect(self, model_file: Path, manifest: Manifest) -> dict[str, Any]:
        return inspect(model_file, manifest)
