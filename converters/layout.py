"""Export-time rewrite of EdgeNeXt into one layout (channels first), with the same function.

timm's EdgeNeXt keeps its feature maps channels first (NCHW) but runs each
ConvBlock's LayerNorm + MLP channels last: a permute before, a permute back
after, and the LayerNorm, two linear layers, GELU and the layer scale in
between. Exported, that is two Transposes per block that the runtimes run as
copies, a bias Add that OpenVINO's int8 fully connected layers leave unfused
over the 4x-wide hidden tensor, and unfused LayerNorms in onnxruntime
(``fiqa-edge bench --profile``). :func:`channels_first` writes each ConvBlock
as depthwise conv → LayerNorm over the channel axis → 1×1 conv → GELU → 1×1
conv, with the LayerNorm's affine folded into the first 1×1 conv and the layer
scale into the second, and timm's channels-first ``LayerNorm2d`` (stem,
downsampling) as the same channel-axis LayerNorm without permutes. Scores
agree with the original to float rounding (tested).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["ChannelNorm", "channels_first"]


class ChannelNorm(nn.Module):
    """LayerNorm over axis 1 of an NCHW tensor, written in the ops runtimes fuse (mean, centre, scale)."""

    def __init__(self, eps: float, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = None if weight is None else nn.Parameter(weight.detach().reshape(1, -1, 1, 1).clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        y = centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + self.eps)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight + self.bias
        return y


def _pointwise(linear: nn.Linear, in_scale: torch.Tensor | None = None, in_shift: torch.Tensor | None = None,
               out_scale: torch.Tensor | None = None) -> nn.Conv2d:
    """``linear`` as a 1×1 conv; ``W(x·s + t) + b = (W·diag s)x + (Wt + b)`` folds an affine before it,
    ``out_scale`` a per-channel scale after it (computed in float64)."""
    weight = linear.weight.detach().double()
    bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    if in_scale is not None and in_shift is not None:
        bias = bias + weight @ in_shift.detach().double()
        weight = weight * in_scale.detach().double()[None]
    if out_scale is not None:
        weight = weight * out_scale.detach().double()[:, None]
        bias = bias * out_scale.detach().double()
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
    conv.weight = nn.Parameter(weight.float()[:, :, None, None].contiguous())
    conv.bias = nn.Parameter(bias.float())
    return conv


class _ChannelsFirstConvBlock(nn.Module):
    """timm's EdgeNeXt ``ConvBlock`` (eval) without leaving NCHW."""

    def __init__(self, block: Any) -> None:
        super().__init__()
        norm, mlp = block.norm, block.mlp
        self.conv_dw: nn.Module = block.conv_dw
        self.shortcut_after_dw: bool = block.shortcut_after_dw
        self.norm = ChannelNorm(norm.eps)
        self.fc1 = _pointwise(mlp.fc1, norm.weight, norm.bias)
        self.act: nn.Module = mlp.act
        self.fc2 = _pointwise(mlp.fc2, out_scale=block.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)
        if self.shortcut_after_dw:
            shortcut = x
        return shortcut + self.fc2(self.act(self.fc1(self.norm(x))))


def channels_first(model: nn.Module) -> nn.Module:
    """An eval copy of ``model`` with timm EdgeNeXt ConvBlocks and ``LayerNorm2d`` written channels first.

    Models without them come back as an unchanged copy.
    """
    from timm.layers import LayerNorm2d
    from timm.models.edgenext import ConvBlock

    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ConvBlock) and isinstance(child.norm, nn.LayerNorm) and child.norm.elementwise_affine:
                setattr(parent, name, _ChannelsFirstConvBlock(child))
            elif isinstance(child, LayerNorm2d):
                setattr(parent, name, ChannelNorm(child.eps, child.weight, child.bias))
    return model
