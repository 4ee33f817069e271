"""Fit one model; predict with one model. Resumable, and DDP-ready under torchrun.

Every source of randomness in an epoch (shuffling, random crops, dropout) is
seeded from ``(seed, epoch, rank)`` at the start of that epoch, so an epoch
redone after an interruption is the epoch that would have run: resuming from
``last.pt`` (model, optimiser, scheduler, epoch, seed, history) reaches the
same weights as a run that never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from fiqa_edge._atomic import atomic_path, atomic_write_text
from fiqa_edge.errors import FiqaError
from fiqa_edge.framing import Framing
from fiqa_edge.metrics import quality_metrics
from fiqa_edge.preprocess import PreprocessSpec
from fiqa_edge.zoo import create_model, load_model
from fiqa_edge.zoo.checkpoint import save_checkpoint

from .config import ModelTrainConfig
from .data import FaceDataset, Item, OrderPairs, PhotoBatchSampler, Photos, clean_flags, collate_skip_bad, photo_ids
from .distributed import Dist
from .losses import clean_pairs_loss, order_loss, quality_loss, within_photo_loss
from .transforms import eval_transform, train_transform

__all__ = ["FitResult", "fit", "predict", "BEST", "LAST"]

log = logging.getLogger(__name__)
BEST, LAST = "best.safetensors", "last.pt"


def _spec(cfg: ModelTrainConfig) -> PreprocessSpec:
    return PreprocessSpec(input_size=cfg.input_size, resize=cfg.resize)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _autocast(dev: torch.device, amp: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and dev.type == "cuda")


def predict(
    model: torch.nn.Module,
    items: Sequence[Item],
    root: Path | Photos,
    spec: PreprocessSpec,
    dist: Dist,
    *,
    batch_size: int = 64,
    workers: int = 2,
    amp: bool = False,
    desc: str = "predicting",
    progress: bool = True,
) -> np.ndarray:
    """Raw scores for ``items`` (NaN where an image failed), sharded across ranks and merged.

    Every rank returns the full array.
    """
    shard = list(range(dist.rank, len(items), dist.world))
    loader = DataLoader(
        FaceDataset([items[i] for i in shard], root, eval_transform(spec)),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skip_bad,
        pin_memory=dist.device.type == "cuda",
    )
    model.eval()
    local: dict[int, float] = {}
    with torch.inference_mode(), tqdm(total=len(loader), desc=desc, unit="batch", disable=not (progress and dist.main), leave=False) as bar:
        for batch in loader:
            if batch is not None:
                images, _, index = batch
                with _autocast(dist.device, amp):
                    out = model(images.to(dist.device, non_blocking=True))
                for i, s in zip(index.tolist(), out.float().reshape(-1).cpu().tolist()):
                    local[shard[i]] = s
            bar.update(1)
    scores = np.full(len(items), np.nan)
    for part in dist.gather(local):
        for i, s in part.items():
            scores[i] = s
    return scores


@dataclass
class FitResult:
    """Where the best checkpoint is and how it scored on validation."""

    best: Path
    best_epoch: int
    best_val: dict[str, float]
    history: list[dict[str, float]]


def _evaluate(model, items, root, cfg, dist, progress) -> dict[str, float]:
    raw = predict(model, items, root, _spec(cfg), dist, batch_size=cfg.batch_size, workers=cfg.workers,
                  amp=cfg.amp, desc="validating", progress=progress)
    ok = ~np.isnan(raw)
    labels = np.array([it.score for it in items])
    return quality_metrics(raw[ok], labels[ok]).to_dict()


def fit(
    cfg: ModelTrainConfig,
    train_items: Sequence[Item],
    val_items: Sequence[Item],
    root: Path | Photos,
    out: Path,
    *,
    seed: int,
    dist: Dist,
    progress: bool = True,
    framing: Framing | None = None,
) -> FitResult:
    """Train ``cfg.arch`` on ``train_items``, keep the best epoch by (SRCC + PLCC) / 2 on ``val_items``.

    Writes ``out/best.safetensors`` (the best weights, with the architecture in
    its metadata, and ``framing``, how the faces were framed, when given), ``out/last.pt``
    (resume state), ``out/history.json`` and, with ``cfg.save_period``, ``out/epoch<N>.safetensors``.
    Resumes from ``out/last.pt`` when it exists.
    """
    if len(train_items) < 2 or len(val_items) < 3:
        msg = f"{out}: need at least 2 training and 3 validation images, got {len(train_items)} and {len(val_items)}"
        raise FiqaError(msg)
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(seed)
    model = load_model(cfg.init, arch=cfg.arch).model if cfg.init else create_model(cfg.arch)
    model.to(dist.device)
    if dist.device.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    start, best_score, best_epoch, history = 0, -math.inf, -1, []
    best_val: dict[str, float] = {}
    if (out / LAST).is_file():
        state = torch.load(out / LAST, map_location="cpu", weights_only=True)
        if state["seed"] != seed or state["arch"] != cfg.arch:
            msg = (
                f"{out / LAST}: made with arch {state['arch']} seed {state['seed']}; "
                            f"this run asks {cfg.arch} seed {seed}: use another output folder"
            )
            raise FiqaError(msg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best_score, best_epoch = state["epoch"] + 1, state["best_score"], state["best_epoch"]
        history, best_val = json.loads(state["history"]), json.loads(state["best_val"])
        if dist.main:
            log.info("%s: resuming after epoch %d of %d", out, start, cfg.epochs)
    net = DistributedDataParallel(model) if dist.active else model
    dataset = FaceDataset(train_items, root, train_transform(_spec(cfg)))
    photo = photo_ids(train_items).to(dist.device) if cfg.within_weight > 0 else None
    clean = clean_flags(train_items).to(dist.device) if cfg.clean_weight > 0 else None
    sampler: DistributedSampler | PhotoBatchSampler
    if cfg.within_weight > 0:
        sampler = PhotoBatchSampler(train_items, cfg.batch_size, seed=seed, copies=cfg.within_copies, rank=dist.rank,
                                    world=dist.world)
        batching: dict = {"batch_sampler": sampler}
    else:
        sampler = DistributedSampler(dataset, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed)
        batching = {"batch_size": cfg.batch_size, "sampler": sampler, "drop_last": len(sampler) > cfg.batch_size}
    pairs = OrderPairs(train_items, root, _spec(cfg), cfg.order_kinds, seed, cfg.order_gap) if cfg.order_weight > 0 else None
    pair_sampler: DistributedSampler | None = None
    if pairs is not None:
        pair_sampler = DistributedSampler(pairs, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed + 1)

    for epoch in range(start, cfg.epochs):
        _seed_everything(seed + 1009 * epoch + 7 * dist.rank)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, num_workers=cfg.workers, collate_fn=collate_skip_bad,
                            pin_memory=dist.device.type == "cuda", generator=torch.Generator().manual_seed(seed + epoch),
                            **batching)
        order_batches: Iterator = iter(())
        if pairs is not None and pair_sampler is not None:
            pairs.set_epoch(epoch)
            pair_sampler.set_epoch(epoch)
            order_batches = iter(DataLoader(pairs, batch_size=cfg.order_pairs, sampler=pair_sampler,
                                            num_workers=cfg.workers, collate_fn=collate_skip_bad,
                                            generator=torch.Generator().manual_seed(seed + epoch + 1)))
        net.train()
        t0, total, steps = time.time(), 0.0, 0
        bar = tqdm(loader, desc=f"{out.name} epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (progress and dist.main), leave=False)
        for batch in bar:
            if batch is None:
                continue
            images, scores, index = batch
            images = images.to(dist.device, non_blocking=True)
            if dist.device.type == "cuda" and cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            pair = next(order_batches, None)
            n = len(images)
            if pair is not None:
                images = torch.cat([images, pair[0].to(images), pair[1].to(images)])
            with _autocast(dist.device, cfg.amp):
                pred = net(images).reshape(-1)
            pred, paired = pred[:n], pred[n:]
            scores = scores.to(dist.device)
            loss = quality_loss(pred, scores, cfg.mse_weight, cfg.plcc_weight)
            if photo is not None:
                loss = loss + cfg.within_weight * within_photo_loss(pred, scores, photo[index.to(dist.device)],
                                                                    cfg.within_scale)
            if clean is not None:
                loss = loss + cfg.clean_weight * clean_pairs_loss(pred, scores, clean[index.to(dist.device)],
                                                                  cfg.within_scale)
            if len(paired):
                weaker, stronger = paired.chunk(2)
                loss = loss + cfg.order_weight * order_loss(weaker, stronger, cfg.order_margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
            bar.set_postfix(loss=f"{total / steps:.4f}")
        scheduler.step()
        val = _evaluate(model, val_items, root, cfg, dist, progress)
        record = {"epoch": epoch + 1, "loss": dist.all_mean(total / max(steps, 1)), "seconds": time.time() - t0,
                  **{k: val[k] for k in ("srcc", "plcc", "score")}}
        history.append(record)
        improved = val["score"] > best_score
        if improved:
            best_score, best_epoch, best_val = val["score"], epoch + 1, val
        if dist.main:
            if improved:
                save_checkpoint(model, out / BEST, arch=cfg.arch, spec=_spec(cfg), framing=framing)
            if cfg.save_period and (epoch + 1) % cfg.save_period == 0:
                save_checkpoint(model, out / f"epoch{epoch + 1}.safetensors", arch=cfg.arch, spec=_spec(cfg),
                                framing=framing)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "epoch": epoch, "seed": seed, "arch": cfg.arch, "best_score": best_score, "best_epoch": best_epoch,
                     "history": json.dumps(history), "best_val": json.dumps(best_val)}
            with atomic_path(out / LAST) as tmp:
                torch.save(state, tmp)
            atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
            tqdm.write(f"{out.name} epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f}, val SRCC {val['srcc']:.4f} "
                       f"PLCC {val['plcc']:.4f}{' (best)' if improved else ''}, {record['seconds']:.0f}s")
        dist.barrier()
    return FitResult(best=out / BEST, best_epoch=best_epoch, best_val=best_val, history=history)
