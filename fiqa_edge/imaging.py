"""Decode image files into RGB PIL images, the one way every stage does it.

Differences from a plain ``Image.open(path).convert("RGB")`` (the official
scripts), each applied only where the plain route would give a wrong picture:

* EXIF orientation is applied, so a phone photo is scored upright;
* 16-bit and 32-bit integer greyscale is scaled to 8 bits (Pillow's own
  conversion clips it to 255);
* images over ``max_pixels`` are refused before their pixels are decoded
  (a decompression-bomb guard like Pillow's, but per call, so a caller can
  raise or lower it without touching Pillow's process-wide setting);
* every failure raises :class:`~fiqa_edge.errors.ImageError` with the file
  name and the problem in one line.

Alpha is dropped as ``convert("RGB")`` drops it, as the official scripts do.
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "ImageSource", "collect_images", "load_image", "to_rgb"]

#: Pillow's own default limit (about 89.5 megapixels, a 9459×9459 image).
DEFAULT_MAX_PIXELS = 89_478_485

#: A file path, or the encoded bytes of an image file.
ImageSource = str | os.PathLike | bytes

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


def load_image(source: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Decode ``source`` (a path or encoded bytes) into an upright 8-bit RGB image.

    Args:
        max_pixels: refuse images with more pixels than this (``None``: no
            limit of ours; Pillow's ``Image.MAX_IMAGE_PIXELS`` still applies).
        name: what error messages call the image (default: the path, or ``<bytes>``).

    Raises:
        ImageError: the file is missing, a directory, unreadable, not an
            image, truncated, or has more than ``max_pixels`` pixels.
    """
    opened: io.BytesIO | Path
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, opened = name or "<bytes>", io.BytesIO(source)
    else:
        name, opened = name or str(source), Path(source)
    try:
        with Image.open(opened) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                problem = (f"{im.width}×{im.height} is {im.width * im.height:,} pixels, over the limit of "
                           f"{max_pixels:,} (a decompression-bomb guard; raise max_pixels to allow it)")
                msg = f"{name}: {problem}"
                raise ImageError(msg)
            im.load()
            image = ImageOps.exif_transpose(im) or im
            return to_rgb(image)
    except ImageError:
        raise
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory, not an image"
    except PermissionError:
        problem = "permission denied"
    except UnidentifiedImageError:
        problem = "not an image Pillow can read"
    except Image.DecompressionBombError as exc:
        problem = f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        problem = f"damaged or truncated image ({exc})"
    except Exception as exc:  # a decoder plug-in failing in its own way: still one line, still this file
        problem = f"cannot be decoded ({type(exc).__name__}: {exc})"
    msg = f"{name}: {' '.join(problem.split())}"
    raise ImageError(msg)


def collect_images(inputs: Iterable[str | os.PathLike[str]], *, suffixes: Collection[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Expand folders (recursively, sorted; files whose suffix is in ``suffixes``); keep files as given.

    A path that does not exist is kept, so that it is reported as an error row.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
        else:
            found.append(item)
    return found
