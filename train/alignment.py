"""Training crops made as ``score --detect`` makes them: each photo aligned to the model's framing at its eyes.

``fiqa-edge label eyes`` finds, once per clean source photo, the eyes of the face nearest the photo's centre
with the product's face finder (:class:`fiqa_edge.detect.FaceFinder`) and writes them to a CSV. A training
config that names it (``data.eyes``) gets its images through :class:`Photos`: a copy is degraded on the whole
photo, at the face's own resolution, then cut by :func:`fiqa_edge.framing.align_face` at the clean photo's
eyes, as the product cuts a face out of a frame.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from fiqa_edge._atomic import atomic_write_text
from fiqa_edge.degrade import open_image_ref, parse_ref
from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.framing import Framing, align_face
from fiqa_edge.imaging import load_image

__all__ = ["EYES_COLUMNS", "Eyes", "Photos", "locate_eyes", "read_eyes"]

EYES_COLUMNS = ["image", "left_x", "left_y", "right_x", "right_y", "confidence"]
#: the eye in the image's left, then the other, in the source photo's pixels
Eyes = tuple[tuple[float, float], tuple[float, float]]


def read_eyes(path: Path) -> dict[str, Eyes]:
    """The eyes of each source photo in a ``label eyes`` CSV (photos with no face are not in it)."""
    try:
        with open(path, newline="") as f:
            return {r["image"]: ((float(r["left_x"]), float(r["left_y"])), (float(r["right_x"]), float(r["right_y"])))
                    for r in csv.DictReader(f)}
    except (OSError, KeyError, ValueError) as exc:
        msg = f"{path}: not a `label eyes` CSV ({', '.join(EYES_COLUMNS)}): {exc}"
        raise FiqaError(msg) from exc


def locate_eyes(root: Path, images: Iterable[str], out: Path, *, quiet: bool = False) -> tuple[int, list[str]]:
    """Find the eyes of the central face of each source photo (refs' degradations ignored) and write ``out``.

    Returns how many photos have eyes, and the lines naming the photos without (no face, or unreadable).
    """
    from fiqa_edge.detect import FaceFinder

    finder = FaceFinder()
    sources = sorted({parse_ref(ref)[0] for ref in images})
    rows, missing = [EYES_COLUMNS], []
    for source in tqdm(sources, desc="locating eyes", unit="photo", disable=quiet):
        try:
            image = load_image(root / source)
        except ImageError as exc:
            missing.append(str(exc))
            continue
        faces = finder.detect(image)
        if not faces:
            missing.append(f"{root / source}: no face found")
            continue
        centre = (image.width / 2, image.height / 2)
        face = min(faces, key=lambda f: math.dist(((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2), centre))
        left, right = face.eyes
        rows.append([source, *(f"{v:.2f}" for v in (*left, *right)), f"{face.confidence:.4f}"])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    atomic_write_text(out, buffer.getvalue())
    return len(rows) - 1, missing


@dataclass(frozen=True)
class Photos:
    """Where the items' images come from, and how each is cut: as stored, or (with ``eyes`` and ``framing``)
    aligned as the product aligns a face. A photo without eyes is used as stored."""

    root: Path
    eyes: Mapping[str, Eyes] | None = None
    framing: Framing | None = None

    def open(self, ref: str) -> Image.Image:
        """The image or degraded copy ``ref``, cut to the framing when its photo's eyes are known.

        Raises:
            ImageError: the source image cannot be read.
        """
        image = open_image_ref(ref, self.root)
        if self.eyes is None or self.framing is None:
            return image
        eyes = self.eyes.get(parse_ref(ref)[0])
        if eyes is None:
            return image
        return align_face(image, (np.array(eyes[0]), np.array(eyes[1])), self.framing)
