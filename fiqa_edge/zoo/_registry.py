"""The model registry: one entry per architecture, readable without torch.

Each entry names its builder as ``"module:function"``, imported only when a
model is created, so listing models and reading their preprocessing needs
neither torch nor timm. Any timm architecture is also available as
``timm:<name>`` (the timm backbone's pooled features into the same two-layer
quality head as the official models).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownModelError
from ..preprocess import PreprocessSpec

__all__ = ["ModelCfg", "get_model_cfg", "is_model", "list_models", "register_model", "TIMM_PREFIX"]

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ModelCfg:
    """What is known about an architecture before building it.

    Args:
        name: registry name (snake_case).
        builder: ``"module:function"`` returning the ``nn.Module``.
        input_size: N of the preprocessing (resize shorter side, centre crop N×N).
        description: one line for ``fiqa-edge models``.
        official_name: the class name in the official Efficient-FIQA code, if any.
        signature: state_dict keys and shapes that identify a checkpoint of this
            architecture (for recognising checkpoints whose architecture is not named).
        score_range: nominal range of the scores (the official models: MOS in [0, 1]).
        builder_kwargs: keyword arguments passed to ``builder``.
    """

    name: str
    builder: str
    input_size: int
    description: str
    official_name: str | None = None
    signature: dict[str, tuple[int, ...]] = field(default_factory=dict)
    score_range: tuple[float, float] = (0.0, 1.0)
    builder_kwargs: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self, input_size: int | None = None) -> PreprocessSpec:
        """The preprocessing spec, at ``input_size`` if given."""
        return PreprocessSpec(input_size=input_size or self.input_size)

    def resolve_builder(self) -> Callable[..., Any]:
        module, _, func = self.builder.partition(":")
        return getattr(importlib.import_module(module), func)


_MODELS: dict[str, ModelCfg] = {}


def register_model(cfg: ModelCfg) -> ModelCfg:
    """Add ``cfg`` to the registry (names are unique)."""
    if cfg.name in _MODELS:
        msg = f"model {cfg.name!r} is already registered"
        raise ValueError(msg)
    _MODELS[cfg.name] = cfg
    return cfg


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style ``pattern`` (``timm:*`` names are not listed)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    """True for a registered name or a ``timm:<arch>`` name."""
    return name in _MODELS or (name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX))


def get_model_cfg(name: str) -> ModelCfg:
    """The entry for ``name``; ``timm:<arch>`` names get a generic entry.

    Raises:
        UnknownModelError: the name is not registered (close names are suggested).
    """
    if name in _MODELS:
        return _MODELS[name]
    if is_model(name):
        arch = name[len(TIMM_PREFIX) :]
        return ModelCfg(
            name=name,
            builder="fiqa_edge.zoo.models:fiqa_timm",
            input_size=224,
            description=f"timm {arch} backbone with the two-layer quality head",
            builder_kwargs={"arch": arch},
        )
    close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    msg = f"unknown model {name!r}{hint} (known: {', '.join(list_models())}, or timm:<timm architecture>)"
    raise UnknownModelError(
        msg
    )


register_model(
    ModelCfg(
        name="fiqa_edgenext_xxs",
        builder="fiqa_edge.zoo.models:fiqa_edgenext_xxs",
        input_size=352,
        description="Efficient-FIQA student: EdgeNeXt-XXS, 1.18 M params",
        official_name="FIQA_EdgeNeXt_XXS",
        signature={"feature_extraction.stem.0.weight": (24, 3, 4, 4), "quality.0.weight": (128, 168)},
    )
)
register_model(
    ModelCfg(
        name="fiqa_edgenext_xxs_lp",
        builder="fiqa_edge.zoo.models:fiqa_edgenext_xxs",
        input_size=224,
        description="the student behind a fixed Gaussian low-pass (sigma 1.25 px of its input); "
                    "official student weights load into it",
        builder_kwargs={"prefilter": 1.25},  # no signature: chosen by a checkpoint's recorded arch or --arch
    )
)
register_model(
    ModelCfg(
        name="fiqa_swin_b",
        builder="fiqa_edge.zoo.models:fiqa_swin_b",
        input_size=448,
        description="Efficient-FIQA teacher: Swin-B (torchvision), 87 M params",
        official_name="FIQA_Swin_B",
        signature={
            "feature_extraction.feature_extraction.features.0.0.weight": (128, 3, 4, 4),
            "quality.0.weight": (128, 1024),
        },
    )
)
