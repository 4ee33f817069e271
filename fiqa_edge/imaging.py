"""Decode image files into RGB PIL images, the one way every stage does it.

Differences from a plain ``Image.open(path).convert("RGB")`` (the official
scripts), each applied only where the plain route would give a wrong picture:

* EXIF orientation is applied, so a phone photo is scored upright;
* 16-bit and 32-bit integer greyscale is scaled to 8 bits (Pillow's own
  conversion clips it to 255);
* every failure raises :class:`~fiqa_edge.errors.ImageError` with the file
  name and the problem in one line.

Alpha is dropped as ``convert("RGB")`` drops it, as the official scripts do.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

__all__ = ["IMAGE_SUFFIXES", "load_image", "to_rgb"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".gif"})


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        wide = np.asarray(image, dtype=np.float64)
        if image.mode == "I" and wide.max(initial=0) > 65535:
            wide = wide / 65537.0  # a true 32-bit range: scale its top 16 bits
        image = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.round(np.asarray(image) * 255.0), 0, 255).astype(np.uint8), "L")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open ``path`` and return an upright 8-bit RGB image.

    Raises:
        ImageError: the file is missing, a directory, unreadable, not an
            image, truncated, or larger than Pillow's decompression-bomb limit.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                image = ImageOps.exif_transpose(im) or im
                return to_rgb(image)
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not an image"
    except PermissionError:
        problem = "permission denied"
    except UnidentifiedImageError:
        problem = "not an image Pillow can read"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        problem = f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        problem = f"damaged or truncated image ({exc})"
    raise ImageError(f"{path}: {problem}")
