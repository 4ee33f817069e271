"""Model zoo: the registry (torch-free) and the factory (imports torch on use)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..assets import resolve_model
from ..framing import Framing
from ..preprocess import PreprocessSpec
from ..score_scale import ScoreScale
from ._registry import TIMM_PREFIX, ModelCfg, get_model_cfg, is_model, list_models, register_model

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "TIMM_PREFIX",
    "LoadedModel",
    "ModelCfg",
    "create_model",
    "get_model_cfg",
    "is_model",
    "list_models",
    "load_model",
    "register_model",
]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the architecture ``name`` with random weights (nothing is downloaded).

    Args:
        name: a registered name (``fiqa_edgenext_xxs``, ``fiqa_swin_b``) or ``timm:<arch>``.
        **kwargs: passed to the builder; ``None`` values are dropped.

    Raises:
        UnknownModelError: ``name`` is not known.

    Example:
        >>> model = create_model("fiqa_edgenext_xxs")
    """
    from .._deps import require

    require("torch", f"model {name}")
    cfg = get_model_cfg(name)
    extra = {k: v for k, v in kwargs.items() if v is not None}
    return cfg.resolve_builder()(**{**cfg.builder_kwargs, **extra})


@dataclass
class LoadedModel:
    """A model in eval mode with what was learnt about it while loading."""

    model: nn.Module
    arch: str
    spec: PreprocessSpec
    sha256: str
    path: Path
    framing: Framing | None = None  # how its training faces were framed, when the checkpoint records it
    scale: ScoreScale | None = None  # its scores' percentiles on reference faces, when recorded (fiqa-edge calibrate)

    @property
    def input_size(self) -> int:
        return self.spec.input_size


def _resolve_spec(stored: PreprocessSpec | None, arch: str, input_size: int | None) -> PreprocessSpec:
    """The file's spec, else the architecture's; ``input_size`` rescales it (resize keeps its ratio)."""
    spec = stored or get_model_cfg(arch).preprocessing()
    if input_size is None or input_size == spec.input_size:
        return spec
    resize = round(input_size * spec.resize_to / spec.input_size)
    return replace(spec, input_size=input_size, resize=resize)


def load_model(path: str | os.PathLike[str], arch: str | None = None, input_size: int | None = None) -> LoadedModel:
    """Load a checkpoint into its architecture (recognised from its keys when ``arch`` is None).

    Args:
        path: ``.pt``/``.pth``/``.safetensors`` checkpoint (official layouts load unchanged), or a bundled
            model's name (``demo``, ``demo-v2``, ``demo-v1``).
        arch: registry name; defaults to the name stored in the file, else detection.
        input_size: preprocessing size N; defaults to the file's spec, else the architecture's.

    Raises:
        CheckpointError: the file is unreadable or does not fit the architecture.
    """
    from ..manifest import sha256_file
    from .checkpoint import check_fits, detect_arch, read_checkpoint

    path = resolve_model(path)
    state, meta = read_checkpoint(path)
    arch = arch or meta.get("arch") or detect_arch(state, origin=str(path))
    model = create_model(arch)
    check_fits(model, state, arch, origin=str(path))
    model.load_state_dict(state)
    model.eval()
    spec = _resolve_spec(meta.get("preprocessing"), arch, input_size)
    return LoadedModel(model=model, arch=arch, spec=spec, sha256=sha256_file(path), path=path,
                       framing=meta.get("framing"), scale=meta.get("scale"))
