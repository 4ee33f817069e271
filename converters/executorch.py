"""ExecuTorch: ``model.pte`` for PyTorch's on-device runtime (Android, iOS, embedded), XNNPACK-delegated.

``torch.export`` then ``to_edge_transform_and_lower`` with the XNNPACK
partitioner; one method per batch size (``forward`` takes one image,
``forward_<N>`` N). int8 is PT2E with ExecuTorch's ``XNNPACKQuantizer``
(per-channel symmetric weights, int8 activations), calibrated on the
calibration faces, on the convolutions and linear layers of the EdgeNeXt
stages: the stem and the quality head stay float. On the demo model (bundled
calibration faces, the 20 validation faces) quantizing every supported op
measured SRCC 0.985 against fp32, every op of the stages 0.991, the stages'
convolutions and linear layers alone 0.9985 (PLCC 0.9998).

How much of the graph XNNPACK takes is recorded in the manifest
(``figures.delegation``): the rest runs on ExecuTorch's portable CPU kernels.
XNNPACK has no LayerNorm, and its mean takes only the spatial axes, so before
export :func:`xnnpack_friendly` writes each LayerNorm as a linear layer that
averages the channels, subtraction, squaring, rsqrt and the affine scale, all
of which XNNPACK runs (the function is the same: scores within 2e-7). On the
demo model that moved the nodes left off XNNPACK from 175 of 412 to 110 of
518 and batch-1 latency from 2.12 to 1.73 ms here. timm's positional encoding
is computed from the feature map's shape on every call (cumsum, arange, full,
division), which XNNPACK leaves; it is the same for every image of the export's
size, so :func:`xnnpack_friendly` stores it as a constant (the default v3 at
224 px: 98 nodes left off XNNPACK instead of 116; docs/benchmarking.md). It also
writes the cross-covariance attention's ``F.normalize`` (pow, sum) with a linear
layer of ones, its qkv layer as three (no unbind) and its per-head products as
3-D ``bmm`` (no broadcasts), and pads the input low-pass by slicing instead of a
replicate pad (index, clamp): 17 nodes left off instead of 98. Last, it writes
``SplitTransposeBlock``'s channel split as slices and adds its positions by
broadcasting (the table stored contiguous: ETDump showed a 0.4 ms copy of it
into the runtime's dim order on every call): nothing is left off XNNPACK.
Before export the 7×7 and 9×9 depthwise convolutions are split into bands of
rows (:mod:`.depthwise`), which XNNPACK runs with its depthwise kernels instead
of a grouped IGEMM (``--executorch-dense-depthwise`` keeps them whole).
A ``.pte`` has no metadata slot, so ``fiqa.json`` travels beside it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiqa_edge._deps import require
from fiqa_edge.manifest import Manifest

from .base import BuildContext, Converter, cli_option
from .calibration import CalibrationFaces

__all__ = ["ExecuTorchConverter", "ExecuTorchOptions", "method_name", "xnnpack_friendly"]

#: the modules int8 quantizes: those under this prefix (the stem and the head stay float)
QUANTIZED_PREFIX = "feature_extraction.stages."
#: the rewrites of :func:`xnnpack_friendly` whose linear layers compute sums and means: never quantized
EXACT_REWRITES = ("ChannelLayerNorm", "L2Normalize")


@dataclass(frozen=True)
class ExecuTorchOptions:
    """ExecuTorch export settings."""

    dense_depthwise: bool = cli_option(False, "dense-depthwise",
                                       "ExecuTorch: export the large (7x7, 9x9) depthwise convolutions as they are "
                                       "(default: as bands of rows that XNNPACK's depthwise kernels run, the same "
                                       "function, faster).")
    batch_sizes: tuple[int, ...] = (1, 8)  # one method each; 1 is always there


def method_name(batch: int) -> str:
    """The method that takes ``batch`` images."""
    return "forward" if batch == 1 else f"forward_{batch}"


def xnnpack_friendly(model, input_size: int):
    """A copy of ``model`` whose LayerNorms (``nn.LayerNorm`` and timm's channels-first ``LayerNorm2d``), cross-covariance
    attentions and input low-pass are written in ops XNNPACK delegates, and whose positional encodings (timm's
    ``PositionalEncodingFourier``, computed from the feature map's shape on every call) are constants for
    ``input_size``; the function is unchanged at that size."""
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    class ChannelLayerNorm(nn.Module):
        """LayerNorm over the channels: the means are linear layers with weights 1/C."""

        average: torch.Tensor

        def __init__(self, norm: nn.LayerNorm, channels_first: bool) -> None:
            super().__init__()
            self.weight, self.bias, self.eps, self.channels_first = norm.weight, norm.bias, norm.eps, channels_first
            self.register_buffer("average", torch.full((1, norm.weight.numel()), 1.0 / norm.weight.numel()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.channels_first:
                x = x.permute(0, 2, 3, 1)
            centred = x - F.linear(x, self.average)
            y = centred * torch.rsqrt(F.linear(centred * centred, self.average) + self.eps) * self.weight + self.bias
            return y.permute(0, 3, 1, 2) if self.channels_first else y

    class L2Normalize(nn.Module):
        """``F.normalize(x, dim=-1)`` for a last axis of ``length``, its sum of squares a linear layer of ones."""

        ones: torch.Tensor

        def __init__(self, length: int) -> None:
            super().__init__()
            self.register_buffer("ones", torch.ones(1, length))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / torch.sqrt(F.linear(x * x, self.ones)).clamp_min(1e-12)

    class LinearNormXca(nn.Module):
        """timm's ``CrossCovarianceAttn`` in ops XNNPACK takes: its qkv layer as three linear layers (no unbind), the
        L2 normalisations of its ``tokens`` as :class:`L2Normalize`, the per-head products as 3-D ``bmm``."""

        def __init__(self, attn: Any, tokens: int) -> None:
            super().__init__()
            qkv: nn.Linear = attn.qkv
            self.q, self.k, self.v = (nn.Linear(qkv.in_features, qkv.out_features // 3, bias=qkv.bias is not None)
                                      for _ in range(3))
            for i, layer in enumerate((self.q, self.k, self.v)):
                part = slice(i * layer.out_features, (i + 1) * layer.out_features)
                layer.weight = nn.Parameter(qkv.weight[part].detach().clone())
                if qkv.bias is not None:
                    layer.bias = nn.Parameter(qkv.bias[part].detach().clone())
            self.heads: int = attn.num_heads
            self.temperature, self.proj = attn.temperature, attn.proj
            self.normalize = L2Normalize(tokens)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, c = x.shape
            # (b, n, c) -> (b * heads, c / heads, n): each head's channels by its tokens
            q, k, v = (layer(x).reshape(b, n, self.heads, -1).permute(0, 2, 3, 1).reshape(b * self.heads, -1, n)
                       for layer in (self.q, self.k, self.v))
            attn = torch.bmm(self.normalize(q), self.normalize(k).transpose(1, 2))
            attn = (attn.reshape(b, self.heads, c // self.heads, -1) * self.temperature).softmax(dim=-1)
            x = torch.bmm(attn.reshape(b * self.heads, c // self.heads, -1), v).reshape(b, self.heads, -1, n)
            return self.proj(x.permute(0, 3, 1, 2).reshape(b, n, c))

    class SlicedSplitTranspose(nn.Module):
        """timm's ``SplitTransposeBlock`` with its channel split as slices (``chunk`` exports as ``split_with_sizes``,
        which XNNPACK leaves) and its positional encoding a constant (1, H·W, C) added by broadcasting."""

        block: Any
        positions: torch.Tensor | None

        def __init__(self, block: nn.Module, table: torch.Tensor | None) -> None:
            super().__init__()
            self.block = block  # its own children are rewritten in place afterwards
            positions = None if table is None else table.flatten(2).transpose(1, 2).contiguous()
            self.register_buffer("positions", positions)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            block, shortcut, channels = self.block, x, x.shape[1]
            width = -(-channels // (len(block.convs) + 1))  # what ``chunk`` gives
            parts = [x[:, start : start + width] for start in range(0, channels, width)]
            outs, sp = [], parts[0]
            for i, conv in enumerate(block.convs):
                sp = conv(sp if i == 0 else sp + parts[i])
                outs.append(sp)
            x = torch.cat([*outs, parts[-1]], 1)
            b, c, h, w = x.shape
            x = x.reshape(b, c, h * w).permute(0, 2, 1)
            if self.positions is not None:
                x = x + self.positions
            x = x + block.gamma_xca * block.xca(block.norm_xca(x))
            x = block.mlp(block.norm(x.reshape(b, h, w, c)))
            if block.gamma is not None:
                x = block.gamma * x
            return shortcut + x.permute(0, 3, 1, 2)

    class EdgePaddedBlur(nn.Module):
        """The input low-pass (:class:`~fiqa_edge.zoo.models.GaussianPrefilter`) with its edges replicated by slicing and
        concatenation instead of a replicate pad (index and clamp ops XNNPACK leaves)."""

        rows: torch.Tensor
        columns: torch.Tensor

        def __init__(self, blur: Any) -> None:
            super().__init__()
            self.radius: int = blur.radius
            self.register_buffer("rows", blur.rows, persistent=False)
            self.register_buffer("columns", blur.columns, persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = self.radius
            x = torch.cat([x[..., :, :1]] * r + [x] + [x[..., :, -1:]] * r, dim=3)
            x = torch.cat([x[..., :1, :]] * r + [x] + [x[..., -1:, :]] * r, dim=2)
            return F.conv2d(F.conv2d(x, self.rows, groups=3), self.columns, groups=3)

    model = copy.deepcopy(model).eval()
    tables: dict[str, torch.Tensor] = {}
    tokens: dict[str, int] = {}
    # each positional encoding's output, under its block's name
    hooks = [module.register_forward_hook(lambda m, args, out, name=name: tables.__setitem__(name.rpartition(".")[0],
                                                                                               out.detach()))
             for name, module in model.named_modules() if type(module).__name__ == "PositionalEncodingFourier"]
    hooks += [module.register_forward_hook(lambda m, args, out, name=name: tokens.__setitem__(name, args[0].shape[1]))
              for name, module in model.named_modules() if type(module).__name__ == "CrossCovarianceAttn"]
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for hook in hooks:
        hook.remove()
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            path = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, nn.LayerNorm) and child.elementwise_affine and len(child.normalized_shape) == 1:
                setattr(parent, name, ChannelLayerNorm(child, channels_first=type(child).__name__ == "LayerNorm2d"))
            elif type(child).__name__ == "SplitTransposeBlock":
                setattr(parent, name, SlicedSplitTranspose(child, tables.get(path)))
            elif path in tokens:
                setattr(parent, name, LinearNormXca(child, tokens[path]))
            elif type(child).__name__ == "GaussianPrefilter":
                setattr(parent, name, EdgePaddedBlur(child))
    return model


def _in_stages(node) -> bool:
    """Whether an exported graph node comes from a conv or linear layer of a module under :data:`QUANTIZED_PREFIX`
    (not from a rewritten LayerNorm, whose averages must stay exact)."""
    stack = (node.meta.get("nn_module_stack") or {}).values()
    return (any(str(path).startswith(QUANTIZED_PREFIX) for path, _ in stack)
            and not any(exact in str(kind) for _, kind in stack for exact in EXACT_REWRITES))


def _quantized(model, example, calibration: CalibrationFaces):
    """PT2E int8 of ``model`` for the shape of ``example``, calibrated on the faces in batches of that size."""
    import numpy as np
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    config = get_symmetric_quantization_config(is_per_channel=True)
    quantizer = XNNPACKQuantizer()
    for op in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default):
        quantizer.set_operator_type(op, config)
    quantizer.set_filter_function(_in_stages)  # one filter: a filter per module name made prepare take a minute
    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    faces, batch = calibration.batch(), example[0].shape[0]
    with torch.no_grad():
        for i in range(0, len(faces), batch):
            prepared(torch.from_numpy(np.resize(faces[i : i + batch], example[0].shape).astype(np.float32)))
    return convert_pt2e(prepared)


def _delegation(edge) -> dict[str, Any]:
    """How many nodes of the batch-1 method XNNPACK took, and which ops it left."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program("forward").graph_module)
    left: Counter[str] = Counter()
    for op, row in info.delegation_by_operator.items():
        if row.non_delegated > 0 and op != "getitem":
            left[op] = row.non_delegated
    return {"delegated_nodes": info.num_delegated_nodes, "not_delegated_nodes": info.num_non_delegated_nodes,
            "not_delegated_ops": dict(left.most_common())}


class ExecuTorchConverter(Converter[ExecuTorchOptions]):
    """``--to executorch``: ``model.pte`` with the XNNPACK delegate."""

    key, model_file, backend, package = "executorch", "model.pte", "executorch", "executorch"
    precisions = ("fp32", "int8")
    options_type = ExecuTorchOptions
    embeds_manifest = False

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: ExecuTorchOptions) -> dict[str, Any]:
        """Export each batch size (int8: quantized first), lower to XNNPACK, write the program."""
        import torch

        require("executorch", "converting to ExecuTorch")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        n = ctx.loaded.spec.input_size
        from .depthwise import band_depthwise

        model = xnnpack_friendly(ctx.loaded.model if options.dense_depthwise else band_depthwise(ctx.loaded.model), n)
        programs = {}
        for batch in sorted(set(options.batch_sizes) | {1}):
            example = (torch.zeros(batch, 3, n, n),)
            module = _quantized(model, example, ctx.calibration) if precision == "int8" else model
            programs[method_name(batch)] = torch.export.export(module, example)
        edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
        figures = {"delegation": _delegation(edge),
                   "io": {"layout": "NCHW", "dtype": "float32",
                          "methods": {method_name(b): [b, 3, n, n] for b in sorted(set(options.batch_sizes) | {1})}}}
        dst.write_bytes(edge.to_executorch().buffer)
        return figures

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        """A ``.pte`` holds no metadata of ours: ``fiqa.json`` beside it is its manifest."""
