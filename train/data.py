"""The torch datasets built from label files (read in :mod:`fiqa_edge.image_lists`).

An image that fails to decode during training is reported and skipped, never
replaced by another image.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision.transforms import RandomCrop
from torchvision.transforms import functional as TF

from fiqa_edge.degrade import DEGRADATIONS, apply, parse_ref, seeded_rng
from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.image_lists import Item, read_image_list, read_labels
from fiqa_edge.preprocess import PreprocessSpec

from .alignment import Photos

__all__ = ["FaceDataset", "Item", "OrderPairs", "PhotoBatchSampler", "Photos", "clean_flags", "collate_skip_bad",
           "photo_ids", "photos_of", "read_image_list", "read_labels", "split_items"]

log = logging.getLogger(__name__)


def split_items(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, validation) by a seeded shuffle; ``fraction`` goes to validation."""
    if not 0 < fraction < 1:
        msg = f"val_fraction must be between 0 and 1, got {fraction}"
        raise FiqaError(msg)
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(fraction * len(items)))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


def photos_of(root: str | os.PathLike[str] | Photos) -> Photos:
    """``root`` as a :class:`Photos` (a folder: its images as stored)."""
    return root if isinstance(root, Photos) else Photos(Path(root))


def _open(item: Item, photos: Photos) -> Image.Image | None:
    """The item's image, or ``None`` (with a warning naming it) when it fails to decode."""
    try:
        return photos.open(item.image)
    except ImageError as exc:
        log.warning("%s; skipped", exc)
        return None


class FaceDataset(Dataset):
    """(image tensor, score, index) per item; ``None`` for an image that fails to decode."""

    def __init__(self, items: Sequence[Item], root: str | os.PathLike[str] | Photos, transform: Callable) -> None:
        self.items = list(items)
        self.photos = photos_of(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        image = _open(item, self.photos)
        if image is None:
            return None
        return self.transform(image), torch.tensor(item.score, dtype=torch.float32), index


class OrderPairs(Dataset):
    """For the degradation-order term: (weaker, stronger) copies of an item's image, both framed by one random crop.

    One of ``kinds`` is drawn per item and epoch with two strengths at least ``gap`` of the kind's range apart (the
    weaker one is no degradation at all a third of the time), so the pair differs only in how strongly it is
    degraded. Every draw is seeded by (``seed``, epoch, index): an epoch redone after an interruption sees the
    same pairs. ``None`` for an image that fails to decode.
    """

    def __init__(self, items: Sequence[Item], root: str | os.PathLike[str] | Photos, spec: PreprocessSpec,
                 kinds: Sequence[str], seed: int, gap: float = 0.2) -> None:
        self.items, self.photos, self.spec, self.kinds, self.seed = list(items), photos_of(root), spec, list(kinds), seed
        self.gap = gap
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _draw(self, index: int) -> tuple[str, float | None, float]:
        rng = seeded_rng(f"order:{self.seed}:{self.epoch}:{index}")
        d = DEGRADATIONS[self.kinds[int(rng.integers(len(self.kinds)))]]
        strong = float(rng.uniform(self.gap, 1.0))
        weak = None if rng.random() < 1 / 3 else float(rng.uniform(0.0, strong - self.gap))
        at = lambda u: round(d.weakest + u * (d.strongest - d.weakest), 2)  # noqa: E731
        return d.kind, None if weak is None else at(weak), at(strong)

    def __getitem__(self, index: int):
        item = self.items[index]
        image = _open(item, self.photos)
        if image is None:
            return None
        kind, weak, strong = self._draw(index)
        seed_text = f"{item.image}@{self.epoch}"
        pair = [image if weak is None else apply(image, kind, weak, seed_text), apply(image, kind, strong, seed_text)]
        mode = TF.InterpolationMode(self.spec.interpolation)
        pair = [TF.resize(im, self.spec.resize_to, interpolation=mode) for im in pair]
        top, left, h, w = RandomCrop.get_params(pair[0], (self.spec.input_size, self.spec.input_size))
        tensors = [TF.normalize(TF.to_tensor(TF.crop(im, top, left, h, w)), list(self.spec.mean), list(self.spec.std))
                   for im in pair]
        return tensors[0], tensors[1]


def collate_skip_bad(batch: list) -> list[torch.Tensor] | None:
    """Stack a batch field by field (torch's ``default_collate``), leaving out items that failed to decode (``None``
    if all failed): (images, scores, indices) for :class:`FaceDataset`, (weaker, stronger) for :class:`OrderPairs`."""
    good = [b for b in batch if b is not None]
    return default_collate(good) if good else None


def photo_ids(items: Sequence[Item]) -> torch.Tensor:
    """For each item, a number shared by the copies of one photo (``face.jpg`` and ``face.jpg#noise=20``)."""
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(parse_ref(it.image)[0], len(ids)) for it in items])


def clean_flags(items: Sequence[Item]) -> torch.Tensor:
    """For each item, whether it is an undegraded image (no ``#kind=strength`` suffix)."""
    return torch.tensor([parse_ref(it.image)[1] is None for it in items])


class PhotoBatchSampler(Sampler[list[int]]):
    """Batches that keep the copies of a photo (clean and degraded) together, for the within-photo term.

    Each epoch (seeded by ``seed`` and :meth:`set_epoch`) every photo's copies are shuffled and cut into groups of
    ``copies`` (all of them when None), the groups are shuffled and packed in order until a batch holds at least
    ``batch_size`` images: smaller groups put more photos in a batch. Under DDP each rank takes every
    ``world``-th batch, and all ranks the same number of batches (a last incomplete round is dropped).
    """

    def __init__(self, items: Sequence[Item], batch_size: int, *, seed: int, copies: int | None = None,
                 rank: int = 0, world: int = 1) -> None:
        if copies is not None and copies < 2:
            msg = f"copies of a photo per batch must be at least 2 (a pair to rank), got {copies}"
            raise FiqaError(msg)
        photos: dict[int, list[int]] = {}
        for index, photo in enumerate(photo_ids(items).tolist()):
            photos.setdefault(photo, []).append(index)
        self._photos = list(photos.values())
        self.batch_size, self.seed, self.copies, self.rank, self.world = batch_size, seed, copies, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        groups = []
        for indices in self._photos:
            if self.copies is None:
                groups.append(indices)
                continue
            shuffled = [indices[k] for k in torch.randperm(len(indices), generator=g).tolist()]
            groups += [shuffled[k : k + self.copies] for k in range(0, len(shuffled), self.copies)]
        batches, batch = [], []
        for k in torch.randperm(len(groups), generator=g).tolist():
            batch += groups[k]
            if len(batch) >= self.batch_size:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
        usable = len(batches) - len(batches) % self.world if len(batches) >= self.world else len(batches)
        return batches[:usable][self.rank :: self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
