"""Efficient-FIQA models in torch, with the official state_dict layouts.

Paper: "Efficient Face Image Quality Assessment via Self-training and Knowledge
Distillation", Sun et al., ICCV 2025 VQualA FIQA challenge winner.

The module names (``feature_extraction``, ``avg_pool``, ``quality``) match the
official ``FIQA_EdgeNeXt_XXS`` and ``FIQA_Swin_B`` classes, so their
checkpoints load unchanged. Backbones are built with random weights: nothing
is downloaded; checkpoints are loaded by :mod:`fiqa_edge.zoo.checkpoint`.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

__all__ = ["FiqaModel", "quality_head", "fiqa_edgenext_xxs", "fiqa_swin_b", "fiqa_timm"]


def quality_head(in_features: int, hidden: int = 128) -> nn.Sequential:
    """The two linear layers (no activation between them, as the official head)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Linear(hidden, 1))


class FiqaModel(nn.Module):
    """Backbone → optional global average pool → quality head; outputs (B, 1) scores.

    Args:
        feature_extraction: backbone returning (B, C) features, or (B, C, H, W)
            when ``pool`` is set.
        num_features: C.
        pool: average-pool a feature map (the EdgeNeXt student) before the head.
    """

    def __init__(self, feature_extraction: nn.Module, num_features: int, *, pool: bool = False) -> None:
        super().__init__()
        self.feature_extraction = feature_extraction
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1)) if pool else None
        self.quality = quality_head(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


def fiqa_edgenext_xxs() -> FiqaModel:
    """The student: timm ``edgenext_xx_small`` feature map, average pool, quality head."""
    import timm

    backbone = timm.create_model("edgenext_xx_small", pretrained=False)
    backbone.head = nn.Identity()  # as the official code: no final norm, no pooling in the backbone
    return FiqaModel(backbone, 168, pool=True)


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
