"""Label files, image lists and the torch datasets built from them.

Labels are CSV rows ``image,score`` relative to an image root, with or
without a header (the official ``train.csv`` has none, and names without an
extension mean ``.png``, as in the official scripts). Extra columns are
ignored. Unlabelled sets are a folder or a CSV whose first column is the
image. Images may be degraded copies (``path#blur=2.5``, see
:mod:`fiqa_edge.train.degrade`). A missing image is reported by name and left
out; one that fails to decode during training is reported and skipped, never
replaced by another image.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.imaging import IMAGE_SUFFIXES

from .degrade import open_image_ref, parse_ref

__all__ = ["Item", "FaceDataset", "collate_skip_bad", "read_image_list", "read_labels", "split_items"]

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
        raise FiqaError(f"{origin}: none of its images exist under {root}")
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
        raise FiqaError(f"{path}: cannot read labels ({exc})") from exc
    items = []
    for n, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise FiqaError(f"{path}:{n}: expected image,score, got {row!r}")
        try:
            score = float(row[1])
        except ValueError:
            if n == 1:
                continue  # a header
            raise FiqaError(f"{path}:{n}: score {row[1]!r} is not a number") from None
        items.append(Item(_with_extension(row[0].strip()), score))
    if not items:
        raise FiqaError(f"{path}: no labelled rows")
    return _keep_existing(items, root, path)


def read_image_list(source: str | os.PathLike[str], root: str | os.PathLike[str]) -> list[Item]:
    """Unlabelled images: a folder (walked recursively) or a CSV whose first column is the image."""
    source, root = Path(source), Path(root)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        items = [Item(os.path.relpath(p, root)) for p in files]
        if not items:
            raise FiqaError(f"{source}: no images in this folder")
        return items
    try:
        rows = [r for r in csv.reader(source.read_text(encoding="utf-8").splitlines()) if r]
    except (OSError, UnicodeDecodeError) as exc:
        raise FiqaError(f"{source}: cannot read image list ({exc})") from exc
    if rows and rows[0][0].strip().lower() in ("image", "path", "image_name"):
        rows = rows[1:]
    return _keep_existing([Item(_with_extension(r[0].strip())) for r in rows], root, source)


def split_items(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, validation) by a seeded shuffle; ``fraction`` goes to validation."""
    if not 0 < fraction < 1:
        raise FiqaError(f"val_fraction must be between 0 and 1, got {fraction}")
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(fraction * len(items)))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


class FaceDataset(Dataset):
    """(image tensor, score, index) per item; ``None`` for an image that fails to decode."""

    def __init__(self, items: Sequence[Item], root: str | os.PathLike[str], transform: Callable) -> None:
        self.items = list(items)
        self.root = Path(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            image = open_image_ref(item.image, self.root)
        except ImageError as exc:
            log.warning("%s; skipped", exc)
            return None
        return self.transform(image), torch.tensor(item.score, dtype=torch.float32), index


def collate_skip_bad(batch: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Stack a batch, leaving out images that failed to decode (``None`` if all failed)."""
    good = [b for b in batch if b is not None]
    if not good:
        return None
    images, scores, index = zip(*good)
    return torch.stack(images), torch.stack(scores), torch.tensor(index)
