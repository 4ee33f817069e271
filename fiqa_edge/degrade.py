"""Degradations of known strength, to widen the quality range of clean face sets.

A degraded copy is named by its source and a suffix, ``Name/Name_0001.jpg#blur=2.50``,
so label files stay small and the copy is rebuilt bit-for-bit whenever it is read
(random parts are seeded from the name). :func:`open_image_ref` reads either form.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from fiqa_edge.imaging import load_image

__all__ = ["CRISP_KINDS", "DEGRADATIONS", "LABEL_KINDS", "Degradation", "apply", "open_image_ref", "parse_ref",
           "sample_degradation", "seeded_rng"]

_REF = re.compile(r"^(?P<path>.+)#(?P<kind>[a-z]+)=(?P<strength>-?\d+(?:\.\d+)?)$")


def seeded_rng(seed_text: str) -> np.random.Generator:
    """A generator seeded by a text: the same text gives the same draws on every machine."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little"))


def _blur(im: Image.Image, sigma: float, _: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(sigma))


def _noise(im: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(im, dtype=np.float32) + rng.normal(0.0, sigma, (im.height, im.width, 3))
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


def _jpeg(im: Image.Image, quality: float, _: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(round(quality)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _down(im: Image.Image, factor: float, _: np.random.Generator) -> Image.Image:
    small = (max(1, round(im.width / factor)), max(1, round(im.height / factor)))
    return im.resize(small, Image.Resampling.BILINEAR).resize(im.size, Image.Resampling.BILINEAR)


def _exposure(im: Image.Image, gain: float, _: np.random.Generator) -> Image.Image:
    pixels = np.asarray(im, dtype=np.float32) * gain
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


def _occlude(im: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    """Grey box over ``fraction`` of the central face region, at a seeded place inside it."""
    pixels = np.array(im)
    h, w = pixels.shape[:2]
    box_h = box_w = int(round(np.sqrt(fraction) * 0.5 * min(h, w)))
    top = int(rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4 - box_h)))
    left = int(rng.integers(w // 4, max(w // 4 + 1, 3 * w // 4 - box_w)))
    pixels[top : top + box_h, left : left + box_w] = 128
    return Image.fromarray(pixels, "RGB")


def _motion(im: Image.Image, length: float, rng: np.random.Generator) -> Image.Image:
    """Linear motion blur: the mean along a ``length``-pixel line at a seeded angle."""
    from scipy.ndimage import convolve

    n = max(1, int(round(length)))
    size = n if n % 2 else n + 1
    kernel = np.zeros((size, size), dtype=np.float32)
    angle, c = rng.uniform(0, np.pi), (size - 1) / 2
    for t in np.linspace(-(n - 1) / 2, (n - 1) / 2, n):
        kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    kernel /= kernel.sum()
    pixels = np.asarray(im, dtype=np.float32)
    blurred = np.stack([convolve(pixels[..., k], kernel, mode="nearest") for k in range(3)], axis=-1)
    return Image.fromarray(np.clip(np.round(blurred), 0, 255).astype(np.uint8), "RGB")


def _lowlight(im: Image.Image, gain: float, rng: np.random.Generator) -> Image.Image:
    """A dim scene brightened by the camera: the light scaled by ``gain``, sensor noise (3 levels) and 8-bit
    rounding added, then amplified back to 70 % of the original brightness."""
    dim = np.round(np.asarray(im, dtype=np.float32) * gain + rng.normal(0.0, 3.0, (im.height, im.width, 3)))
    pixels = np.clip(dim, 0, 255) * (0.7 / gain)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


def _soften(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small face blown up to the frame: down-scaled by a seeded factor of 2-4 and back up."""
    return _down(im, float(rng.uniform(2.0, 4.0)), rng)


def _softnoise(im: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    return _noise(_soften(im, rng), sigma, rng)


def _softjpeg(im: Image.Image, quality: float, rng: np.random.Generator) -> Image.Image:
    return _jpeg(_soften(im, rng), quality, rng)


def _sharpen(im: Image.Image, percent: float, _: np.random.Generator) -> Image.Image:
    """A camera's or an app's sharpening: an unsharp mask of ``percent`` strength, radius 1.5 px."""
    return im.filter(ImageFilter.UnsharpMask(radius=1.5, percent=int(round(percent)), threshold=2))


def _upscale(im: Image.Image, factor: float, _: np.random.Generator) -> Image.Image:
    """Up-scaled by ``factor`` (Lanczos) and back down with antialiasing: the resampling a frame goes through on
    its way to a crop, which keeps the detail."""
    big = (round(im.width * factor), round(im.height * factor))
    return im.resize(big, Image.Resampling.LANCZOS).resize(im.size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _denoise(im: Image.Image, amount: float, _: np.random.Generator) -> Image.Image:
    """A phone's noise reduction: the 3 x 3 median blended in by ``amount`` (0-1)."""
    return Image.blend(im, im.filter(ImageFilter.MedianFilter(3)), amount)


@dataclass(frozen=True)
class Degradation:
    """One kind: how to apply it and the strength range sampled (weakest → strongest)."""

    kind: str
    weakest: float
    strongest: float
    fn: Callable[[Image.Image, float, np.random.Generator], Image.Image]


DEGRADATIONS: dict[str, Degradation] = {
    d.kind: d
    for d in (
        Degradation("blur", 0.8, 6.0, _blur),  # Gaussian sigma, pixels of the 250² image
        Degradation("noise", 6.0, 50.0, _noise),  # Gaussian sigma, 8-bit levels
        Degradation("jpeg", 40.0, 3.0, _jpeg),  # JPEG quality
        Degradation("down", 2.0, 10.0, _down),  # down-scaling factor, then back up
        Degradation("dark", 0.55, 0.12, _exposure),  # gain < 1: under-exposure
        Degradation("bright", 1.6, 4.0, _exposure),  # gain > 1: over-exposure (clipping)
        Degradation("occlude", 0.08, 0.5, _occlude),  # share of the central region covered
        Degradation("motion", 3.0, 25.0, _motion),  # motion blur length, pixels of the 250² image
        Degradation("lowlight", 0.5, 0.08, _lowlight),  # light gain before the camera brightens the image
        Degradation("softnoise", 6.0, 50.0, _softnoise),  # noise (sigma) on a softened face (seeded down-scale 2-4)
        Degradation("softjpeg", 40.0, 3.0, _softjpeg),  # JPEG quality of a softened face
        # crisp copies: processing that leaves a face as recognisable, so that detail is not read as noise
        Degradation("sharpen", 40.0, 200.0, _sharpen),  # unsharp-mask percent
        Degradation("upscale", 1.5, 3.0, _upscale),  # up-scaling factor, then back down (antialiased)
        Degradation("denoise", 0.3, 1.0, _denoise),  # share of a 3 x 3 median filter blended in
        Degradation("hqjpeg", 95.0, 70.0, _jpeg),  # JPEG quality of a camera or an app
    )
}
#: The kinds ``label utility`` draws its copies from unless told otherwise (the v1 and v2 label sets' kinds).
LABEL_KINDS = ("blur", "noise", "jpeg", "down", "dark", "bright", "occlude", "motion", "lowlight")
#: Copies that keep a face's detail (``label utility --extra-kinds``): the recognisers label them like any copy.
CRISP_KINDS = ("sharpen", "upscale", "denoise", "hqjpeg")


def parse_ref(ref: str) -> tuple[str, str | None, float | None]:
    """Split ``path#kind=strength`` into its parts; a plain path gives ``(path, None, None)``."""
    m = _REF.match(ref)
    if not m or m["kind"] not in DEGRADATIONS:
        return ref, None, None
    return m["path"], m["kind"], float(m["strength"])


def apply(image: Image.Image, kind: str, strength: float, seed_text: str = "") -> Image.Image:
    """Degrade an RGB image; the same ``seed_text`` gives the same pixels."""
    return DEGRADATIONS[kind].fn(image, strength, seeded_rng(f"{seed_text}#{kind}={strength}"))


def sample_degradation(rng: np.random.Generator, kinds: Sequence[str] = LABEL_KINDS) -> tuple[str, float]:
    """One of ``kinds`` at random, and a strength drawn uniformly between its weakest and strongest."""
    d = DEGRADATIONS[kinds[int(rng.integers(len(kinds)))]]
    return d.kind, round(float(rng.uniform(min(d.weakest, d.strongest), max(d.weakest, d.strongest))), 2)


def open_image_ref(ref: str, root: str | os.PathLike[str] | None = None) -> Image.Image:
    """Load an image or a degraded copy (``path#kind=strength``), relative to ``root``.

    Raises:
        ImageError: the source image cannot be read.
    """
    path, kind, strength = parse_ref(ref)
    full = Path(root) / path if root is not None else Path(path)
    image = load_image(full)
    return image if kind is None else apply(image, kind, strength, seed_text=path)  # type: ignore[arg-type]
