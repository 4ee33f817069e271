"""The preprocessing contract in torch (torchvision transforms on PIL images).

Mirrors :func:`fiqa_edge.preprocess.preprocess`, which the runtime uses; a test
holds the two equal. Training swaps the centre crop for a random crop of the
same size, as the official training scripts do.
"""

from __future__ import annotations

from torchvision import transforms

from fiqa_edge.preprocess import PreprocessSpec

__all__ = ["eval_transform", "train_transform"]


def _resize(spec: PreprocessSpec) -> transforms.Resize:
    mode = transforms.InterpolationMode(spec.interpolation)
    return transforms.Resize(spec.resize_to, interpolation=mode)


def _to_normalised_tensor(spec: PreprocessSpec) -> list:
    return [transforms.ToTensor(), transforms.Normalize(mean=list(spec.mean), std=list(spec.std))]


def eval_transform(spec: PreprocessSpec) -> transforms.Compose:
    """Resize shorter side, centre crop, to tensor, normalise (scoring and validation)."""
    return transforms.Compose([_resize(spec), transforms.CenterCrop(spec.input_size), *_to_normalised_tensor(spec)])


def train_transform(spec: PreprocessSpec) -> transforms.Compose:
    """Resize shorter side, random crop, to tensor, normalise (training)."""
    return transforms.Compose([_resize(spec), transforms.RandomCrop(spec.input_size), *_to_normalised_tensor(spec)])
