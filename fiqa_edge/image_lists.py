"""Label files and image lists, read without torch (the bench reads them on devices).

Labels are CSV rows ``image,score`` relative to an image root, with or
without a header (the official ``train.csv`` has none, and names without an
extension mean ``.png``, as in the official scripts). Extra columns are
ignored. Unlabelled sets are a folder or a CSV whose first column is the
image. Images may be degraded copies (``path#blur=2.5``, see
:mod:`fiqa_edge.degrade`). A missing image is reported by name and left out.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fiqa_edge.errors import FiqaError
from fiqa_edge.imaging import IMAGE_SUFFIXES

from .degrade import parse_ref

__all__ = ["Item", "read_image_list", "read_labels"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One image reference (relative to the data root) and its label, if any."""

    image: str
    score: float = float("nan")


def _with_extension(name: str) -> str:
    path, kind, _ = parse_ref(name)
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return name
    return f"{path}.png" + (name[len(path) :] if kind else "")


def _keep_existing(items: list[Item], root: Path, origin: Path) -> list[Item]:
    kept = []
    for item in items:
        if (root / parse_ref(item.image)[0]).is_file():
            kept.append(item)
        else:
            log.warning("%s: %s: no such image under %s; left out", origin, item.image, root)
    if not kept:
        msg = f"{origin}: none of its images exist under {root}"
        raise FiqaError(msg)
    return kept


def read_labels(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> list[Item]:
    """Rows ``image,score`` of a label CSV (header optional); images that do not exist are left out.

    Raises:
        FiqaError: unreadable file, a score that is not a number, no usable rows.
    """
    path, root = Path(path), Path(root)
    try:
        rows = [r for r in csv.reader(path.read_text(encoding="utf-8").splitlines()) if r]
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read labels ({exc})"
        raise FiqaError(msg) from exc
    items = []
    for n, row in enumerate(rows, start=1):
        if len(row) < 2:
            msg = f"{path}:{n}: expected image,score, got {row!r}"
            raise FiqaError(msg)
        try:
            score = float(row[1])
        except ValueError:
            if n == 1:
                continue  # a header
            msg = f"{path}:{n}: score {row[1]!r} is not a number"
            raise FiqaError(msg) from None
        items.append(Item(_with_extension(row[0].strip()), score))
    if not items:
        msg = f"{path}: no labelled rows"
        raise FiqaError(msg)
    return _keep_existing(items, root, path)


def read_image_list(source: str | os.PathLike[str], root: str | os.PathLike[str]) -> list[Item]:
    """Unlabelled images: a folder (walked recursively) or a CSV whose first column is the image."""
    source, root = Path(source), Path(root)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        items = [Item(os.path.relpath(p, root)) for p in files]
        if not items:
            msg = f"{source}: no images in this folder"
            raise FiqaError(msg)
        return items
    try:
        rows = [r for r in csv.reader(source.read_text(encoding="utf-8").splitlines()) if r]
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{source}: cannot read image list ({exc})"
        raise FiqaError(msg) from exc
    if rows and rows[0][0].strip().lower() in ("image", "path", "image_name"):
        rows = rows[1:]
    return _keep_existing([Item(_with_extension(r[0].strip())) for r in rows], root, source)
