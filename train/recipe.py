"""The Efficient-FIQA recipe: teacher → U1 → teacher+ → U2 → student → evaluation.

Each stage writes into its own folder of the run directory and finishes by
writing ``done.json``; a finished stage is skipped when the recipe runs again,
and an interrupted one resumes from its last epoch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge._atomic import atomic_write_text
from fiqa_edge.degrade import parse_ref
from fiqa_edge.errors import FiqaError
from fiqa_edge.metrics import quality_metrics
from fiqa_edge.zoo import load_model

from .config import ModelTrainConfig, RecipeConfig
from .data import Item, Photos, read_image_list, read_labels, split_items
from .distributed import Dist
from .engine import BEST, fit, predict
from .pseudo_label import pseudo_label, read_pseudo_labels

__all__ = ["MODELS", "evaluate", "format_summary", "labelled_splits", "run_recipe"]

log = logging.getLogger(__name__)
MODELS = ("teacher", "teacher_plus", "student")
DONE = "done.json"


def labelled_splits(cfg: RecipeConfig) -> tuple[list[Item], list[Item], list[Item]]:
    """(train, validation, test) of the labelled set L as the config says (training images of the kinds in
    ``data.repeat`` repeated, then the images of ``data.pseudo`` with their pseudo-labels)."""
    d = cfg.data
    labelled = read_labels(d.labels, d.root)
    if d.val is not None:
        train, val = labelled, read_labels(d.val, d.root)
    else:
        train, val = split_items(labelled, d.val_fraction, cfg.seed)
    test = read_labels(d.test, d.root) if d.test is not None else val
    train = [item for item in train for _ in range(d.repeat.get(parse_ref(item.image)[1] or "", 1))]
    for path in d.pseudo:
        train += read_pseudo_labels(path)
    return train, val, test


def _stage(out: Path, name: str, dist: Dist, run: Callable[[Path], dict]) -> dict:
    folder = out / name
    if (folder / DONE).is_file():
        if dist.main:
            log.info("stage %s already done: skipped", name)
        return json.loads((folder / DONE).read_text())
    folder.mkdir(parents=True, exist_ok=True)
    record = run(folder)
    if dist.main:
        atomic_write_text(folder / DONE, json.dumps(record, indent=2) + "\n")
    dist.barrier()
    return record


def evaluate(checkpoint: Path, model_cfg: ModelTrainConfig, items: list[Item], root: Path | Photos, dist: Dist,
             progress: bool = True) -> dict:
    """Metrics on ``items``, parameters and GFLOPs (fvcore convention) of one checkpoint."""
    from fiqa_edge.zoo.cost import count_params, gflops_fvcore

    loaded = load_model(checkpoint)
    raw = predict(loaded.model.to(dist.device), items, root, loaded.spec, dist, batch_size=model_cfg.batch_size,
                  workers=model_cfg.workers, desc=f"testing {checkpoint.parent.name}", progress=progress)
    ok = ~np.isnan(raw)
    metrics = quality_metrics(raw[ok], np.array([it.score for it in items])[ok]).to_dict()
    cpu_model = loaded.model.cpu()
    return {**metrics, "params": count_params(cpu_model), "gflops": gflops_fvcore(cpu_model, loaded.input_size),
            "input_size": loaded.input_size, "arch": loaded.arch, "checkpoint": str(checkpoint)}


def run_recipe(cfg: RecipeConfig, out: Path, dist: Dist, progress: bool = True) -> dict:
    """Run (or finish) every stage; return the summary also written to ``out/summary.json``."""
    d = cfg.data
    if d.unlabelled_1 is None or d.unlabelled_2 is None:
        msg = "the recipe needs data.unlabelled_1 and data.unlabelled_2 (folders or CSVs of images)"
        raise FiqaError(msg)
    train, val, test = labelled_splits(cfg)
    u1, u2 = read_image_list(d.unlabelled_1, d.root), read_image_list(d.unlabelled_2, d.root)
    fit_on = train + val  # the labelled images a pseudo-labeller may see
    photos = d.photos()
    kw: dict[str, Any] = dict(seed=cfg.seed, dist=dist, progress=progress, framing=d.framing_spec())
    pk: dict[str, Any] = dict(batch_size=cfg.pseudo_batch_size, workers=cfg.pseudo_workers, progress=progress)

    def fit_stage(model_cfg: ModelTrainConfig, items: list[Item]) -> Callable[[Path], dict]:
        def run(folder: Path) -> dict:
            result = fit(model_cfg, items, val, photos, folder, **kw)
            return {"checkpoint": str(result.best), "best_epoch": result.best_epoch, "val": result.best_val,
                    "train_images": len(items)}
        return run

    def pseudo_stage(checkpoint: str, images: list[Item], name: str) -> Callable[[Path], dict]:
        def run(folder: Path) -> dict:
            record = pseudo_label(load_model(checkpoint), images, fit_on, photos, folder / f"{name}.csv", dist, **pk)
            return {**record, "csv": str(folder / f"{name}.csv")}
        return run

    teacher = _stage(out, "teacher", dist, fit_stage(cfg.teacher, train))
    p1 = _stage(out, "pseudo_U1", dist, pseudo_stage(teacher["checkpoint"], u1, "U1"))
    u1_items = read_pseudo_labels(Path(p1["csv"]))
    teacher_plus = _stage(out, "teacher_plus", dist, fit_stage(cfg.teacher, train + u1_items))
    p2 = _stage(out, "pseudo_U2", dist, pseudo_stage(teacher_plus["checkpoint"], u2, "U2"))
    u2_items = read_pseudo_labels(Path(p2["csv"]))
    _stage(out, "student", dist, fit_stage(cfg.student, train + u1_items + u2_items))

    summary: dict[str, Any] = {"test_images": len(test), "models": {}}
    for name, model_cfg in zip(MODELS, (cfg.teacher, cfg.teacher, cfg.student)):
        summary["models"][name] = evaluate(out / name / BEST, model_cfg, test, photos, dist, progress)
    if dist.main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a text table."""
    head = f"{'model':<13}{'SRCC':>8}{'PLCC':>8}{'KRCC':>8}{'RMSE':>8}{'score':>8}{'params':>12}{'GFLOPs':>9}"
    lines = [f"test images: {summary['test_images']}", head, "-" * len(head)]
    for name, m in summary["models"].items():
        lines.append(f"{name:<13}{m['srcc']:>8.4f}{m['plcc']:>8.4f}{m['krcc']:>8.4f}{m['rmse']:>8.4f}{m['score']:>8.4f}"
                     f"{m['params']:>12,}{m['gflops']:>9.4f}")
    return "\n".join(lines)
