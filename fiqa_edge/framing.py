"""How a model's training faces were framed, and cropping a detected face to that framing.

A :class:`Framing` places the midpoint of the eyes and the distance between
them in a square frame. :func:`align_face` maps a detected face's eyes onto
those places with one similarity transform (rotation, scale, shift), so the
crop shows the face as the model saw faces in training; the model's own
resize and crop then follow as for any image (docs/preprocessing.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["FRAMINGS", "LFW_FRAMING", "Framing", "align_face"]


@dataclass(frozen=True)
class Framing:
    """Eye midpoint (``eye_x``, ``eye_y``) and eye distance, as fractions of a ``size``-pixel square."""

    size: int
    eye_x: float
    eye_y: float
    eye_distance: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Framing:
        return cls(**d)


#: LFW deep-funneled (the bundled model's training faces), measured with the ``full`` BlazeFace
#: detector on 400 random LFW images (the face nearest the centre): medians in the 250×250 frame,
#: eye midpoint (125.1, 113.2), eye distance 43.7 px (interquartile range 41.4–45.9).
LFW_FRAMING = Framing(250, 125.1 / 250, 113.2 / 250, 43.7 / 250, "LFW deep-funneled, measured with BlazeFace")

#: framings by the name a training config gives (``data.framing``)
FRAMINGS = {"lfw": LFW_FRAMING}


def align_face(image: Image.Image, eyes: tuple[np.ndarray, np.ndarray], framing: Framing) -> Image.Image:
    """The ``framing.size`` square crop of ``image`` whose eyes (image-left eye first) sit where ``framing`` puts them.

    Shrinking is done first with Pillow's antialiased resize (a face larger than the frame is not
    aliased), then the rotation and the remaining scale by one bilinear affine warp; parts of the
    frame outside the image are black.
    """
    left, right = (np.asarray(e, dtype=np.float64) for e in eyes)
    size = framing.size
    distance = max(float(np.hypot(*(right - left))), 1e-6)
    scale = framing.eye_distance * size / distance  # output pixels per input pixel
    if scale < 1.0:
        reach = size / scale  # the output frame's extent in input pixels, whatever the rotation
        mid = (left + right) / 2
        x0, y0 = (max(0, int(v - reach)) for v in mid)
        x1, y1 = min(image.width, int(mid[0] + reach) + 1), min(image.height, int(mid[1] + reach) + 1)
        if x1 > x0 and y1 > y0:
            region = image.crop((x0, y0, x1, y1))
            shrunk = region.resize((max(1, round(region.width * scale)), max(1, round(region.height * scale))),
                                   Image.Resampling.BILINEAR)
            sx, sy = shrunk.width / region.width, shrunk.height / region.height
            to_shrunk = np.array([sx, sy])
            image, left, right = shrunk, (left - (x0, y0)) * to_shrunk, (right - (x0, y0)) * to_shrunk
            distance = float(np.hypot(*(right - left)))
            scale = framing.eye_distance * size / max(distance, 1e-6)
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    mid = (left + right) / 2
    cx, cy = framing.eye_x * size, framing.eye_y * size
    # output (u, v) -> input: mid + R(angle) @ ((u, v) - (cx, cy)) / scale
    coefficients = (cos, -sin, mid[0] - cos * cx + sin * cy, sin, cos, mid[1] - sin * cx - cos * cy)
    return image.transform((size, size), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR,
                           fillcolor=(0, 0, 0))
