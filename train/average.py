"""Average the weights of checkpoints of one architecture (a "model soup", Wortsman et al., 2022).

Models fine-tuned from the same initial weights tend to lie in one basin of the loss, so a weighted
mean of their weights is itself a working model, which often keeps what each of them learnt. The
checkpoints must share architecture, preprocessing and framing; a recorded score scale is dropped,
since it describes another model's scores (run ``fiqa-edge calibrate`` on the result).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from fiqa_edge.errors import CheckpointError
from fiqa_edge.zoo import create_model, get_model_cfg
from fiqa_edge.zoo.checkpoint import check_fits, detect_arch, read_checkpoint, save_checkpoint

__all__ = ["average_checkpoints"]


def _weights(weights: Sequence[float] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        msg = f"{len(weights)} weights for {count} checkpoints: give one weight per checkpoint"
        raise ValueError(msg)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        msg = f"weights {list(weights)}: must be non-negative with a positive sum"
        raise ValueError(msg)
    return [w / sum(weights) for w in weights]


def average_checkpoints(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                        weights: Sequence[float] | None = None) -> Path:
    """Write to ``out`` (atomically) the weighted mean of the checkpoints' weights; return ``out``.

    ``weights`` default to equal and are normalised to sum to 1. Floating-point tensors are averaged
    in float64 and stored in their own dtype; any other tensor must be equal in every checkpoint.

    Raises:
        CheckpointError: fewer than two checkpoints, or one whose architecture, preprocessing,
            framing or tensors differ from the first's (the error names the file and what differs).
        ValueError: the weights do not fit the checkpoints.
    """
    if len(paths) < 2:
        msg = f"{len(paths)} checkpoint(s): averaging needs at least two"
        raise CheckpointError(msg)
    shares = _weights(weights, len(paths))
    first = Path(paths[0])
    state, meta = read_checkpoint(first)
    arch = meta.get("arch") or detect_arch(state, origin=str(first))
    total = {k: v.double() * shares[0] if v.is_floating_point() else v for k, v in state.items()}
    for path, share in zip(paths[1:], shares[1:], strict=True):
        other, other_meta = read_checkpoint(path)
        other_arch = other_meta.get("arch") or detect_arch(other, origin=str(path))
        for key, mine, theirs in (("architecture", arch, other_arch),
                                  ("preprocessing", meta.get("preprocessing"), other_meta.get("preprocessing")),
                                  ("framing", meta.get("framing"), other_meta.get("framing"))):
            if mine != theirs:
                msg = f"{path}: {key} {theirs} differs from {first}'s ({mine}); only like checkpoints average"
                raise CheckpointError(msg)
        if other.keys() != total.keys():
            msg = f"{path}: its tensors are not {first}'s ({len(other)} against {len(total)} keys)"
            raise CheckpointError(msg)
        for k, v in other.items():
            if v.shape != total[k].shape:
                msg = f"{path}: {k} has shape {tuple(v.shape)}, {first} {tuple(total[k].shape)}"
                raise CheckpointError(msg)
            if v.is_floating_point():
                total[k] = total[k] + v.double() * share
            elif not torch.equal(v, total[k]):
                msg = f"{path}: {k} (not floating point) differs from {first}'s, so it cannot be averaged"
                raise CheckpointError(msg)
    averaged = {k: v.to(state[k].dtype) for k, v in total.items()}
    model = create_model(arch)
    check_fits(model, averaged, arch, origin=str(first))
    model.load_state_dict(averaged)
    spec = meta.get("preprocessing") or get_model_cfg(arch).preprocessing()
    return save_checkpoint(model, out, arch=arch, spec=spec, framing=meta.get("framing"))
