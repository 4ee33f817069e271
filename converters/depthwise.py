"""Export-time rewrite of large depthwise convolutions into bands of rows, for XNNPACK (LiteRT, ExecuTorch).

XNNPACK runs a depthwise convolution of up to 25 taps with its depthwise
kernels, a larger one (EdgeNeXt's 7×7 and 9×9) as a grouped IGEMM: one small
GEMM per channel. :func:`band_depthwise` writes each such k×k convolution as
the sum of depthwise convolutions of ``25 // k`` kernel rows by k columns
(7×7: three of 3, 3 and 1 rows; 9×9: five), each over its rows of the
input, padded once above and below; the function is the same up to float
rounding. Measured here, one convolution, fp32, 2 threads, p50 ms, at the
sizes the official 352 px input gives (88 channels at 21×21, 168 at 11×11):

========  =============  ============  =================
kernel    LiteRT before  LiteRT after  ExecuTorch before → after
========  =============  ============  =================
7×7       0.41           0.14          0.85 → 0.40
9×9       0.34           0.12          0.34 → 0.18
========  =============  ============  =================

(Square 5×5 tiles of the kernel, four of them with zeros past its edge, gave
0.20 and 0.13 ms in LiteRT: more slicing.)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MAX_TAPS", "BandedDepthwise", "band_depthwise"]

#: the most taps a depthwise kernel may have for XNNPACK's depthwise kernels to run it
MAX_TAPS = 25


class BandedDepthwise(nn.Module):
    """A stride-1, same-padded, odd k×k depthwise convolution as a sum of depthwise convolutions over bands of rows."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        k, channels = conv.kernel_size[0], conv.in_channels
        self.pad = k // 2
        self.starts = list(range(0, k, MAX_TAPS // k))
        self.rows = [min(MAX_TAPS // k, k - start) for start in self.starts]
        self.bands = nn.ModuleList()
        for i, (start, rows) in enumerate(zip(self.starts, self.rows)):
            band = nn.Conv2d(channels, channels, (rows, k), padding=(0, self.pad), groups=channels,
                             bias=i == 0 and conv.bias is not None)
            band.weight = nn.Parameter(conv.weight.detach()[:, :, start : start + rows].clone())
            if band.bias is not None and conv.bias is not None:
                band.bias = nn.Parameter(conv.bias.detach().clone())
            self.bands.append(band)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        padded = F.pad(x, (0, 0, self.pad, self.pad))
        out, *rest = [band(padded[:, :, start : start + height + rows - 1])
                      for start, rows, band in zip(self.starts, self.rows, self.bands)]
        for y in rest:
            out = out + y
        return out


def _is_large_depthwise(module: nn.Conv2d) -> bool:
    k = module.kernel_size
    return (k[0] == k[1] and k[0] * k[1] > MAX_TAPS and k[0] % 2 == 1 and module.padding == (k[0] // 2, k[1] // 2)
            and module.groups == module.in_channels == module.out_channels and module.stride == (1, 1)
            and module.dilation == (1, 1) and module.padding_mode == "zeros")


def band_depthwise(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each large depthwise convolution (square, odd, same-padded, stride 1) in bands."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and _is_large_depthwise(child):
                setattr(parent, name, BandedDepthwise(child))
    return model
