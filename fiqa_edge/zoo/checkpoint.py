"""Read and write model checkpoints safely; recognise their architecture.

Reads plain ``torch.save(state_dict)`` files (the official checkpoints), dicts
wrapping one under ``model_state_dict``/``state_dict``/``model`` (optionally
with ``module.`` prefixes from DataParallel/DDP), and safetensors files. Torch
files are loaded with ``weights_only=True``: no pickled code ever runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_path
from ..errors import CheckpointError
from ..framing import Framing
from ..preprocess import PreprocessSpec
from ..score_scale import ScoreScale
from ._registry import get_model_cfg, list_models

__all__ = ["read_checkpoint", "detect_arch", "check_fits", "save_checkpoint", "SAFETENSORS_SUFFIX"]

SAFETENSORS_SUFFIX = ".safetensors"
_WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
_META_KEYS = ("arch", "preprocessing", "framing", "scale")
#: metadata stored as JSON and the types they are read back as
_PARSED: dict[str, Any] = {"preprocessing": PreprocessSpec, "framing": Framing, "scale": ScoreScale}


def _shorten(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … (+{len(items) - limit})" if len(items) > limit else "")


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(state_dict, metadata)`` from a checkpoint file.

    ``metadata`` holds what :func:`save_checkpoint` stores beside the weights:
    ``arch`` (str), ``preprocessing`` (a PreprocessSpec) and, when recorded,
    ``framing`` (a Framing) and ``scale`` (a ScoreScale, see :func:`record_scale`);
    official checkpoints have none of them.

    Raises:
        CheckpointError: missing file, unreadable or unsafe content, no tensors.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such checkpoint file"
        raise CheckpointError(msg)
    metadata: dict[str, Any] = {}
    try:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                obj: Any = {k: f.get_tensor(k) for k in f.keys()}
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for damaged files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{path}: not a readable checkpoint ({reason[:200]})"
        raise CheckpointError(msg) from exc
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                metadata.update({k: obj[k] for k in _META_KEYS if isinstance(obj.get(k), str)})
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        msg = f"{path}: holds no state_dict (found {type(obj).__name__})"
        raise CheckpointError(msg)
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        msg = f"{path}: holds no tensors"
        raise CheckpointError(msg)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    for key, kind in _PARSED.items():
        if key in metadata:
            try:
                metadata[key] = kind.from_dict(json.loads(metadata[key]))
            except (ValueError, TypeError, KeyError) as exc:
                msg = f"{path}: invalid {key} metadata ({exc})"
                raise CheckpointError(msg) from exc
    return state, metadata


def detect_arch(state_dict: Mapping[str, torch.Tensor], origin: str = "checkpoint") -> str:
    """Name the registered architecture whose signature keys and shapes the state_dict has.

    Raises:
        CheckpointError: no registered architecture fits.
    """
    for name in list_models():
        signature = get_model_cfg(name).signature
        if signature and all(
            k in state_dict and tuple(state_dict[k].shape) == shape for k, shape in signature.items()
        ):
            return name
    msg = (
        f"{origin}: architecture not recognised from its keys (first: {_shorten(sorted(state_dict), 3)}); "
        f"pass --arch (one of {', '.join(list_models())}, or timm:<arch>)"
    )
    raise CheckpointError(
        msg
    )


def check_fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], arch: str, origin: str) -> None:
    """Raise :class:`CheckpointError` naming the keys and shapes that do not fit ``model``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_shorten(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_shorten(unexpected)}")
    if wrong:
        problems.append(f"shapes (checkpoint vs model): {_shorten(wrong, 3)}")
    if problems:
        raise CheckpointError(f"{origin}: does not fit {arch}: " + "; ".join(problems))


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str], *, arch: str, spec: PreprocessSpec,
                    framing: Framing | None = None) -> Path:
    """Write ``model``'s weights atomically with its architecture, preprocessing and training faces' framing.

    ``.safetensors`` files carry them as metadata; any other suffix writes a
    ``torch.save`` dict ``{"model_state_dict", "arch", "preprocessing"[, "framing"]}``
    that loads with ``weights_only=True``.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"arch": arch, "preprocessing": json.dumps(spec.to_dict())}
    if framing is not None:
        meta["framing"] = json.dumps(framing.to_dict())
    with atomic_path(path) as tmp:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata=meta)
        else:
            torch.save({"model_state_dict": state, **meta}, tmp)
    return path


def record_scale(path: str | os.PathLike[str], scale: ScoreScale) -> Path:
    """Store ``scale`` in the checkpoint's metadata (rewritten atomically; the weights are unchanged).

    A plain state_dict ``.pt`` becomes the ``{"model_state_dict", ...}`` dict :func:`save_checkpoint` writes.
    """
    path = Path(path)
    state, metadata = read_checkpoint(path)
    meta = {k: v if isinstance(v, str) else json.dumps(v.to_dict()) for k, v in metadata.items() if k in _META_KEYS}
    meta["scale"] = json.dumps(scale.to_dict())
    with atomic_path(path) as tmp:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
        else:
            torch.save({"model_state_dict": state, **meta}, tmp)
    return path
