"""Recipe configuration: a YAML file read into typed dataclasses.

Defaults are the official Efficient-FIQA settings (MSE + PLCC loss, AdamW lr
1e-4, weight decay 1e-6, StepLR ×0.1 every 10 epochs, 30 epochs, batch 32,
Swin-B teacher at 448, EdgeNeXt-XXS student at 352, best checkpoint by
(SRCC + PLCC) / 2). Paths in the file are relative to the file itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiqa_edge._deps import require
from fiqa_edge.degrade import DEGRADATIONS
from fiqa_edge.errors import FiqaError

if TYPE_CHECKING:
    from fiqa_edge.framing import Framing

    from .alignment import Photos

__all__ = ["DataConfig", "ModelTrainConfig", "RecipeConfig", "load_config"]


@dataclass
class ModelTrainConfig:
    """How one model is trained."""

    arch: str
    input_size: int
    resize: int | None = None  # shorter side before the crop; defaults to input_size
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-6
    step_size: int = 10  # StepLR period, epochs
    gamma: float = 0.1
    mse_weight: float = 1.0
    plcc_weight: float = 1.0
    # weight of the within-photo ranking term (train.losses.within_photo_loss); above 0, batches keep a photo's copies together
    within_weight: float = 0.0
    within_scale: float = 0.05  # label difference (0-1 scale) at which the term asks for an order at Φ(1) = 84 %
    within_copies: int | None = None  # copies of one photo a batch holds together (None: all of them)
    # weight of the clean-pairs ranking term (train.losses.clean_pairs_loss; same scale as the within-photo term)
    clean_weight: float = 0.0
    # weight of the degradation-order term (train.losses.order_loss): beside each batch, ``order_pairs`` of its photos
    # are degraded twice by one of ``order_kinds`` (the second time more strongly; fiqa_edge.degrade; a kind named
    # twice is drawn twice as often), and the stronger copy is asked to score at least ``order_margin`` lower. No
    # labels are needed for these copies.
    order_weight: float = 0.0
    order_kinds: list[str] = field(default_factory=lambda: ["occlude", "noise", "jpeg"])
    order_pairs: int = 8
    order_margin: float = 0.02
    # the least strength difference within an order pair, as a share of the kind's range (fiqa_edge.degrade); small
    # gaps teach mild blur (a camera frame a little out of focus) below the sharp frame
    order_gap: float = 0.2
    workers: int = 2
    # above 0: also keep the weights of every save_period-th epoch as epoch<N>.safetensors, so that an epoch can be
    # chosen afterwards by another measure than the validation labels (e.g. `fiqa-edge train evaluate` on pairs)
    save_period: int = 0
    init: str | None = None  # checkpoint to start from (e.g. ImageNet weights the user has)
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    channels_last: bool = True  # on CUDA; ignored on CPU

    def __post_init__(self) -> None:
        if self.within_weight < 0 or self.clean_weight < 0 or self.within_scale <= 0:
            msg = (f"within_weight and clean_weight must be >= 0 and within_scale > 0, got {self.within_weight}, "
                   f"{self.clean_weight}, {self.within_scale}")
            raise ValueError(msg)
        if self.order_weight < 0 or self.order_pairs < 1 or self.order_margin < 0 or not 0 <= self.order_gap < 1:
            msg = (f"order_weight and order_margin must be >= 0, order_pairs >= 1 and 0 <= order_gap < 1, got "
                   f"{self.order_weight}, {self.order_margin}, {self.order_pairs}, {self.order_gap}")
            raise ValueError(msg)
        unknown = sorted(set(self.order_kinds) - set(DEGRADATIONS))
        if unknown or not self.order_kinds:
            msg = f"order_kinds must name degradations of {', '.join(DEGRADATIONS)}; got {self.order_kinds}"
            raise ValueError(msg)
        if self.save_period < 0:
            msg = f"save_period must be >= 0 (0: keep only the best and last epochs), got {self.save_period}"
            raise ValueError(msg)
        if self.within_copies is not None and self.within_copies < 2:
            msg = f"within_copies must be at least 2 (a pair to rank) or left out, got {self.within_copies}"
            raise ValueError(msg)


@dataclass
class DataConfig:
    """Where the faces and labels are."""

    root: Path  # image folder every relative image path starts from
    labels: Path  # CSV image,score (header optional): the labelled set L
    val: Path | None = None  # validation CSV; None: split L by val_fraction
    val_fraction: float = 0.2
    test: Path | None = None  # held-out CSV for the final table; None: the validation split
    unlabelled_1: Path | None = None  # U1: folder or CSV of images (pseudo-labelled by the teacher)
    unlabelled_2: Path | None = None  # U2: pseudo-labelled by teacher+
    framing: str | None = None  # how the faces are framed (a name in fiqa_edge.framing.FRAMINGS), saved with the models
    # a `label eyes` CSV: each photo cut to ``framing`` at its eyes, as `score --detect` cuts faces (needs ``framing``)
    eyes: Path | None = None
    # times each labelled training image of a degradation kind is seen per epoch (e.g. {noise: 3}); others once
    repeat: dict[str, int] = field(default_factory=dict)
    # pseudo-label CSVs (``fiqa-edge pseudo-label``: path,raw_score,score) whose images join the training set
    pseudo: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        from fiqa_edge.degrade import DEGRADATIONS
        from fiqa_edge.framing import FRAMINGS

        if self.framing is not None and self.framing not in FRAMINGS:
            msg = f"unknown framing {self.framing!r}; known: {', '.join(FRAMINGS)}"
            raise ValueError(msg)
        for kind, times in self.repeat.items():
            if kind not in DEGRADATIONS or not isinstance(times, int) or times < 1:
                msg = f"repeat: expected a degradation kind ({', '.join(DEGRADATIONS)}) and a whole number >= 1, got {kind}: {times}"
                raise ValueError(msg)

    def photos(self) -> Photos:
        """Where the images come from and how they are cut (:class:`train.alignment.Photos`)."""
        from .alignment import Photos, read_eyes

        if self.eyes is None:
            return Photos(self.root)
        if self.framing_spec() is None:
            msg = "data.eyes needs data.framing: the framing the faces are cut to"
            raise ValueError(msg)
        return Photos(self.root, read_eyes(self.eyes), self.framing_spec())

    def framing_spec(self) -> Framing | None:
        """The framing ``framing`` names, recorded with every model trained on these faces (None: unnamed)."""
        from fiqa_edge.framing import FRAMINGS

        return FRAMINGS[self.framing] if self.framing else None


@dataclass
class RecipeConfig:
    """The whole recipe: data, teacher (also teacher+) and student."""

    data: DataConfig
    teacher: ModelTrainConfig = field(default_factory=lambda: ModelTrainConfig("fiqa_swin_b", 448))
    student: ModelTrainConfig = field(default_factory=lambda: ModelTrainConfig("fiqa_edgenext_xxs", 352))
    seed: int = 42
    pseudo_batch_size: int = 64
    pseudo_workers: int = 2


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        msg = f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        raise FiqaError(msg)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        msg = f"{where}: {exc}"
        raise FiqaError(msg) from exc


def load_config(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> RecipeConfig:
    """Read a recipe YAML; relative data paths are resolved against the file's folder.

    Raises:
        FiqaError: unreadable file, unknown or missing settings.
    """
    yaml = require("yaml", "training configs")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        msg = f"{path}: cannot read config ({exc})"
        raise FiqaError(msg) from exc
    raw.update(overrides or {})
    if "data" not in raw:
        msg = f"{path}: missing section 'data'"
        raise FiqaError(msg)
    data = dict(raw.pop("data"))
    for key in ("root", "labels", "val", "test", "unlabelled_1", "unlabelled_2", "eyes"):
        if data.get(key) is not None:
            data[key] = (path.parent / str(data[key])).resolve()
    if "pseudo" in data:
        data["pseudo"] = [(path.parent / str(p)).resolve() for p in data["pseudo"] or []]
    sections = {"data": _build(DataConfig, data, f"{path} [data]")}
    for name in ("teacher", "student"):
        if name in raw:
            sections[name] = _build(ModelTrainConfig, dict(raw.pop(name)), f"{path} [{name}]")
    cfg = _build(RecipeConfig, {**raw, **sections}, str(path))
    for m in (cfg.teacher, cfg.student):
        if m.init is not None:
            m.init = str((path.parent / m.init).resolve())
    return cfg
