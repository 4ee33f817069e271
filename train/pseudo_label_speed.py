"""Pseudo-labelling throughput: the batched, multi-worker loop against a per-image loop.

The per-image loop is what the official pseudo-labelling script does: open,
convert to RGB, transform, add a batch axis, run the model, ``.item()``, one
image at a time. Both run the same model on the same images; the scores must
agree to 1e-5.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.train.data import Item
from fiqa_edge.train.distributed import Dist
from fiqa_edge.train.engine import predict
from fiqa_edge.train.transforms import eval_transform

__all__ = ["PseudoLabelSpeed", "run"]


@dataclass(frozen=True)
class PseudoLabelSpeed:
    images: int
    per_image_ips: float
    batched_ips: float
    max_abs_diff: float
    batch_size: int
    workers: int
    threads: int

    @property
    def ratio(self) -> float:
        return self.batched_ips / self.per_image_ips

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def _per_image(model: torch.nn.Module, paths: Sequence[Path], spec: PreprocessSpec) -> np.ndarray:
    transform = eval_transform(spec)
    scores = []
    for p in paths:
        x = transform(Image.open(p).convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            scores.append(model(x).item())
    return np.array(scores)


def run(model: torch.nn.Module, paths: Sequence[Path], spec: PreprocessSpec, *, batch_size: int = 32, workers: int = 2) -> PseudoLabelSpeed:
    """Time both loops on ``paths`` (after one warm-up image each) and compare their scores."""
    model.eval()
    root = Path("/")
    items = [Item(str(p.resolve().relative_to(root))) for p in paths]
    _per_image(model, paths[:1], spec)
    t0 = time.perf_counter()
    slow = _per_image(model, paths, spec)
    t1 = time.perf_counter()
    fast = predict(model, items, root, spec, Dist(), batch_size=batch_size, workers=workers, progress=False)
    t2 = time.perf_counter()
    return PseudoLabelSpeed(images=len(paths), per_image_ips=len(paths) / (t1 - t0), batched_ips=len(paths) / (t2 - t1),
                            max_abs_diff=float(np.max(np.abs(slow - fast))), batch_size=batch_size, workers=workers,
                            threads=torch.get_num_threads())
