"""EDC and the Laplacian baseline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fiqa_edge.baselines import laplacian_variance
from fiqa_edge.edc import edc
from fiqa_edge.imaging import load_image


def _pairs(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    genuine = np.arange(n) < n // 2
    quality = rng.uniform(0, 1, n)
    distance = np.where(genuine, 0.35 + 0.3 * (1 - quality) + rng.normal(0, 0.05, n), rng.normal(0.8, 0.08, n))
    return distance, genuine, quality


def test_threshold_gives_the_target_fmr():
    distance, genuine, quality = _pairs()
    curve = edc(distance, genuine, quality, fmr=0.01)
    achieved = np.mean(distance[~genuine] < curve.threshold)
    assert achieved <= 0.01 and achieved > 0.008


def test_informative_quality_lowers_fnmr_and_random_quality_does_not():
    distance, genuine, quality = _pairs()
    good = edc(distance, genuine, quality)
    assert good.fnmr[0] > 0.05
    assert good.fnmr_at(0.2) < good.fnmr_at(0.1) < good.fnmr[0]
    assert good.reduction_at(0.2) > 0.3
    noise = edc(distance, genuine, np.random.default_rng(9).uniform(size=len(quality)))
    assert abs(noise.reduction_at(0.2)) < 0.15


def test_edc_needs_both_kinds_of_pairs():
    with pytest.raises(ValueError):
        edc(np.ones(5), np.ones(5, dtype=bool), np.ones(5))


def test_laplacian_variance_falls_with_blur(faces):
    image = load_image(faces[0])
    values = [laplacian_variance(image.filter(ImageFilter.GaussianBlur(s))) for s in (0.01, 1, 2, 4)]
    assert values == sorted(values, reverse=True) and values[0] > 5 * values[-1]
    assert laplacian_variance(Image.new("RGB", (32, 32), (90, 90, 90))) == 0.0
