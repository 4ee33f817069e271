"""Test-only stand-in for the official Efficient-FIQA code (models and test script).

Reproduces the published module layout (FIQA_EdgeNeXt_XXS, FIQA_Swin_B with its
nested Swin_b_IQA) and the official test-script route (PIL convert('RGB'),
torchvision Resize + CenterCrop + ToTensor + Normalize, model(image).item()),
so that checkpoints saved from it have the official state_dict keys and its
scores are the official script's scores for those weights.
"""

from __future__ import annotations

import timm
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms


def _head(c_in: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, 128), nn.Linear(128, 1))


class OfficialEdgeNeXtXXS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        net = timm.create_model("edgenext_xx_small", pretrained=False)
        net.head = nn.Identity()
        self.feature_extraction = net
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.quality = _head(168)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(torch.flatten(self.avg_pool(self.feature_extraction(x)), 1))


class _OfficialSwinBIQA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        net = torchvision.models.swin_b()
        net.head = nn.Identity()
        self.feature_extraction = net
        self.quality = nn.Identity()  # replaced by Identity in FIQA_Swin_B

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(self.feature_extraction(x))


class OfficialSwinB(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feature_extraction = _OfficialSwinBIQA()
        self.quality = _head(1024)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(self.feature_extraction(x))


def official_score(model: nn.Module, image_file: str, image_size: int) -> float:
    """The official test script's score for one image."""
    t = transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    image = t(Image.open(image_file).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        return model.eval()(image).item()


def spread_outputs(model: nn.Module, seed: int) -> nn.Module:
    """Give a randomly initialised model varied outputs (random init scores all faces alike)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.quality:
            scale = 2.0 / layer.in_features**0.5
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * scale)
            layer.bias.normal_(0, 0.1, generator=g)
    return model.eval()
