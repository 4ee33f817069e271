"""Efficient-FIQA models in torch, with the official state_dict layouts.

Paper: "Efficient Face Image Quality Assessment via Self-training and Knowledge
Distillation", Sun et al., ICCV 2025 VQualA FIQA challenge winner.

The module names (``feature_extraction``, ``avg_pool``, ``quality``) match the
official ``FIQA_EdgeNeXt_XXS`` and ``FIQA_Swin_B`` classes, so their
checkpoints load unchanged. Backbones are built with random weights: nothing
is downloaded; checkpoints are loaded by :mod:`fiqa_edge.zoo.checkpoint`.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FiqaModel", "GaussianPrefilter", "quality_head", "fiqa_edgenext_xxs", "fiqa_swin_b", "fiqa_timm"]


def quality_head(in_features: int, hidden: int = 128) -> nn.Sequential:
    """The two linear layers (no activation between them, as the official head)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Linear(hidden, 1))


class GaussianPrefilter(nn.Module):
    """A fixed Gaussian blur of ``sigma`` input pixels (separable, edges replicated); no learnt or saved weights.

    A model that looks through it cannot read detail finer than ``sigma``: a crisp camera frame and a
    softer training photo look alike, and any blur a frame adds on top of it lowers what the model sees.
    """

    rows: torch.Tensor
    columns: torch.Tensor

    def __init__(self, sigma: float) -> None:
        super().__init__()
        radius = max(1, math.ceil(3 * sigma))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
        taps = (taps / taps.sum()).repeat(3, 1, 1, 1)  # (3, 1, 1, k): one kernel per RGB channel
        self.sigma, self.radius = sigma, radius
        self.register_buffer("rows", taps, persistent=False)
        self.register_buffer("columns", taps.transpose(2, 3).contiguous(), persistent=False)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.radius
        x = F.pad(x, (r, r, r, r), mode="replicate")
        return F.conv2d(F.conv2d(x, self.rows, groups=3), self.columns, groups=3)


class FiqaModel(nn.Module):
    """(Optional fixed prefilter →) backbone → optional global average pool → quality head; (B, 1) scores.

    Args:
        feature_extraction: backbone returning (B, C) features, or (B, C, H, W)
            when ``pool`` is set.
        num_features: C.
        pool: average-pool a feature map (the EdgeNeXt student) before the head.
        prefilter: a fixed module applied to the input first (:class:`GaussianPrefilter`); it holds no
            state_dict entries, so the checkpoints of the model without it load unchanged.
    """

    def __init__(self, feature_extraction: nn.Module, num_features: int, *, pool: bool = False,
                 prefilter: nn.Module | None = None) -> None:
        super().__init__()
        self.prefilter = prefilter
        self.feature_extraction = feature_extraction
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1)) if pool else None
        self.quality = quality_head(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prefilter is not None:
            x = self.prefilter(x)
        x = self.feature_extraction(x)
        if self.avg_pool is not None:
            x = torch.flatten(self.avg_pool(x), 1)
        return self.quality(x)


class _SwinBIqa(nn.Module):
    """The official teacher's inner module: torchvision Swin-B without its head.

    Its own ``quality`` head is an identity in the official code (kept so the
    nested key names match); the outer :class:`FiqaModel` scores the features.
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import swin_b

        self.feature_extraction = swin_b(weights=None)
        self.feature_extraction.head = nn.Identity()
        self.quality = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(self.feature_extraction(x))


def fiqa_edgenext_xxs(prefilter: float = 0.0) -> FiqaModel:
    """The student: timm ``edgenext_xx_small`` feature map, average pool, quality head.

    ``prefilter``: above 0, the sigma (input pixels) of a fixed Gaussian the input is blurred by first.
    """
    import timm

    backbone = timm.create_model("edgenext_xx_small", pretrained=False)
    backbone.head = nn.Identity()  # as the official code: no final norm, no pooling in the backbone
    return FiqaModel(backbone, 168, pool=True, prefilter=GaussianPrefilter(prefilter) if prefilter > 0 else None)


def fiqa_swin_b() -> FiqaModel:
    """The teacher: torchvision Swin-B (1024-d pooled features), quality head."""
    return FiqaModel(_SwinBIqa(), 1024)


def fiqa_timm(arch: str) -> FiqaModel:
    """Any timm architecture: its pooled pre-logit features into the quality head."""
    import timm

    if not timm.is_model(arch):
        from ..errors import UnknownModelError

        msg = f"timm has no architecture {arch!r}"
        raise UnknownModelError(msg)
    backbone = timm.create_model(arch, pretrained=False, num_classes=0)
    return FiqaModel(backbone, cast(int, backbone.num_features))  # every timm model sets it
