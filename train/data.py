"""The torch datasets built from label files (read in :mod:`fiqa_edge.image_lists`).

An image that fails to decode during training is reported and skipped, never
replaced by another image.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fiqa_edge.degrade import open_image_ref
from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.image_lists import Item, read_image_list, read_labels

__all__ = ["Item", "FaceDataset", "collate_skip_bad", "read_image_list", "read_labels", "split_items"]

log = logging.getLogger(__name__)


def split_items(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, validation) by a seeded shuffle; ``fraction`` goes to validation."""
    if not 0 < fraction < 1:
        msg = f"val_fraction must be between 0 and 1, got {fraction}"
        raise FiqaError(msg)
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
