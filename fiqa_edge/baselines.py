"""Handcrafted quality baselines to compare learnt models against."""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["laplacian_variance"]


def laplacian_variance(image: Image.Image) -> float:
    """Variance of the Laplacian of the greyscale image: a classic sharpness score (higher = sharper)."""
    from scipy.ndimage import laplace

    grey = np.asarray(image.convert("L"), dtype=np.float64)
    return float(laplace(grey).var())
