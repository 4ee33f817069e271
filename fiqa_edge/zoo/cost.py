"""Model cost: parameters and FLOPs under the two common conventions.

``gflops_fvcore`` follows the challenge's convention (fvcore: one multiply-add
counts once; GELU, adds, softmax and norms are not counted): 0.3313 GFLOPs for
the student at 288×288. ``gflops_torch`` is torch's flop counter (a
multiply-add counts twice), reported as the full count.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["ModelCost", "count_params", "gflops_fvcore", "gflops_torch", "model_cost"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _example(input_size: int) -> torch.Tensor:
    return torch.zeros(1, 3, input_size, input_size)


def gflops_fvcore(model: nn.Module, input_size: int) -> float:
    """GFLOPs of one image as fvcore counts them (multiply-add = 1)."""
    with warnings.catch_warnings():  # fvcore imports torch.jit.script, deprecated in torch 2.14
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), _example(input_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        return analysis.total() / 1e9


def gflops_torch(model: nn.Module, input_size: int) -> float:
    """GFLOPs of one image as ``torch.utils.flop_counter`` counts them (multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(_example(input_size))
    return counter.get_total_flops() / 1e9


@dataclass(frozen=True)
class ModelCost:
    """Parameters and GFLOPs of a model at one input size."""

    params: int
    input_size: int
    gflops: float  # fvcore convention (the challenge's)
    gflops_torch: float  # torch flop counter, multiply-add = 2

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def model_cost(model: nn.Module, input_size: int) -> ModelCost:
    """Parameters and both GFLOPs figures of ``model`` at ``input_size``."""
    return ModelCost(
        params=count_params(model),
        input_size=input_size,
        gflops=gflops_fvcore(model, input_size),
        gflops_torch=gflops_torch(model, input_size),
    )
