"""Pseudo-labels: score unlabelled faces with a trained model, mapped onto the label scale.

As the official pseudo-labelling does, raw scores are mapped with the
4-parameter logistic fitted from the model's raw scores on the labelled set to
its labels. Writes ``path,raw_score,score`` and a JSON record beside it (the
model's SHA-256, the fitted logistic, how well the model fits the labels).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge._atomic import atomic_write_text
from fiqa_edge.errors import FiqaError
from fiqa_edge.metrics import fit_logistic, quality_metrics
from fiqa_edge.zoo import LoadedModel

from .data import Item, Photos
from .distributed import Dist
from .engine import predict

__all__ = ["pseudo_label", "read_pseudo_labels"]


def pseudo_label(
    loaded: LoadedModel,
    images: Sequence[Item],
    fit_on: Sequence[Item],
    root: Path | Photos,
    out_csv: Path,
    dist: Dist,
    *,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Score ``images``, map with the logistic fitted on ``fit_on``; rank 0 writes ``out_csv`` (+ ``.json``)."""
    model = loaded.model.to(dist.device)
    spec = loaded.spec
    kw: dict[str, Any] = dict(batch_size=batch_size, workers=workers, progress=progress)
    raw_fit = predict(model, fit_on, root, spec, dist, desc="scoring labelled set", **kw)
    labels = np.array([it.score for it in fit_on])
    ok = ~np.isnan(raw_fit)
    mapping = fit_logistic(raw_fit[ok], labels[ok])
    raw = predict(model, images, root, spec, dist, desc=f"pseudo-labelling {out_csv.stem}", **kw)
    mapped = mapping(raw)
    record = {
        "model": str(loaded.path),
        "model_sha256": loaded.sha256,
        "arch": loaded.arch,
        "logistic": mapping.to_dict(),
        "fit_on": {"images": int(ok.sum()), **quality_metrics(raw_fit[ok], labels[ok]).to_dict()},
        "images": len(images),
        "failed": int(np.isnan(raw).sum()),
    }
    if dist.main:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "raw_score", "score"])
        for item, r, m in zip(images, raw, mapped):
            if not np.isnan(r):
                writer.writerow([item.image, f"{r:.6f}", f"{m:.6f}"])
        atomic_write_text(out_csv, buf.getvalue())
        atomic_write_text(out_csv.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    dist.barrier()
    return record


def read_pseudo_labels(path: Path) -> list[Item]:
    """The ``path,score`` pairs of a pseudo-label CSV as training items.

    Raises:
        FiqaError: unreadable file, no ``path`` or ``score`` column, or a score that is not a number.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [Item(row["path"], float(row["score"])) for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, KeyError, ValueError) as exc:
        msg = f"{path}: not a pseudo-label CSV with path and score columns ({type(exc).__name__}: {exc})"
        raise FiqaError(msg) from exc
