"""The preprocessing contract shared by training, conversion and the runtime.

One :class:`PreprocessSpec` describes what a model expects; this module
implements it in numpy + Pillow (``fiqa_edge.train.transforms`` implements the
same spec in torch, and a test holds the two equal). The spec follows the
official Efficient-FIQA test script: resize the shorter side to N with
bilinear filtering as torchvision's ``Resize`` does on PIL images, centre-crop
N×N, scale to [0, 1], normalise with the ImageNet mean/std, NCHW float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PreprocessSpec", "preprocess", "preprocess_batch", "resized_size"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class PreprocessSpec:
    """What a model expects as input.

    Args:
        input_size: N, the side of the square crop fed to the model.
        resize: side the shorter image side is resized to (defaults to ``input_size``).
        interpolation: ``bilinear`` (as the official scripts) or ``bicubic``.
        crop: ``center`` for scoring; training uses a random crop of the same size.
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation divided by after the mean is subtracted.
        layout: tensor layout (``NCHW``).
        dtype: element type (``float32``).
        color: channel order (``RGB``).
    """

    input_size: int
    resize: int | None = None
    interpolation: str = "bilinear"
    crop: str = "center"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"

    def __post_init__(self) -> None:
        if self.input_size < 1:
            msg = f"input_size must be positive, got {self.input_size}"
            raise ValueError(msg)
        if self.interpolation not in _FILTERS:
            msg = f"interpolation must be one of {sorted(_FILTERS)}, got {self.interpolation!r}"
            raise ValueError(msg)
        if self.resize is not None and self.resize < self.input_size:
            msg = f"resize ({self.resize}) must be at least input_size ({self.input_size})"
            raise ValueError(msg)
        if (self.crop, self.layout, self.dtype, self.color) != ("center", "NCHW", "float32", "RGB"):
            msg = "only crop=center, layout=NCHW, dtype=float32, color=RGB are implemented"
            raise ValueError(msg)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @property
    def resize_to(self) -> int:
        """Side the shorter image side is resized to."""
        return self.resize or self.input_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a bundle manifest."""
        d = asdict(self)
        d["resize"] = self.resize_to
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            msg = f"unknown preprocessing keys: {sorted(unknown)}"
            raise ValueError(msg)
        fields: dict[str, Any] = {k: tuple(v) if k in ("mean", "std") else v for k, v in d.items()}
        return cls(**fields)


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``short_side``.

    The longer side is truncated as torchvision's ``Resize(int)`` truncates it.
    """
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(short_side * long / short)
    return (short_side, new_long) if width <= height else (new_long, short_side)


def _resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    size = resized_size(image.width, image.height, spec.resize_to)
    if size != image.size:
        image = image.resize(size, _FILTERS[spec.interpolation])
    pixels = np.asarray(image, dtype=np.uint8)
    n = spec.input_size
    h, w = pixels.shape[:2]
    # the offsets torchvision's CenterCrop computes (Python's round, half to even)
    top, left = int(round((h - n) / 2.0)), int(round((w - n) / 2.0))
    return pixels[top : top + n, left : left + n]


@lru_cache(maxsize=8)
def _normalisation_table(mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """(3, 256) float32: ``(v / 255 - mean[c]) / std[c]`` for every 8-bit value, in float32 arithmetic.

    Looking pixels up in it gives bit for bit what the arithmetic gives, in about half the time.
    """
    values = np.arange(256, dtype=np.float32)[:, None] / np.float32(255.0)
    return np.ascontiguousarray(((values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).T)


def preprocess(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """Turn one RGB PIL image into a (3, N, N) float32 array as ``spec`` says."""
    if image.mode != "RGB":
        msg = f"expected an RGB image, got mode {image.mode}: decode with fiqa_edge.imaging.load_image"
        raise ValueError(msg)
    pixels = _resize_and_crop(image, spec)
    table = _normalisation_table(spec.mean, spec.std)
    return np.stack([table[c][pixels[..., c]] for c in range(3)])


def preprocess_batch(images: Sequence[Image.Image], spec: PreprocessSpec) -> np.ndarray:
    """Stack :func:`preprocess` over ``images`` into an (B, 3, N, N) array."""
    return np.stack([preprocess(im, spec) for im in images]) if images else np.zeros(
        (0, 3, spec.input_size, spec.input_size), dtype=np.float32
    )
