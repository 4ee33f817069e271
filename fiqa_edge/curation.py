"""Accept or reject faces by a quality threshold, and sort the files into folders.

A threshold is a raw score (``0.62``), a percentile among the model's
reference faces (``30p``) or a 0–100 quality (``55q``); the last two need a
model with a score scale (``fiqa-edge calibrate``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import FiqaError
from .score_scale import ScoreScale

__all__ = ["Threshold", "sort_file"]

_KINDS = {"p": "percentile", "q": "quality", "": "score"}


@dataclass(frozen=True)
class Threshold:
    """Accept a face when its ``kind`` (score, percentile or quality) is at least ``value``."""

    value: float
    kind: str

    @classmethod
    def parse(cls, text: str, scale: ScoreScale | None, score_range: tuple[float, float]) -> Threshold:
        """``0.62``, ``30p`` or ``55q``, checked against the model.

        Raises:
            FiqaError: not a number, outside the scale's range, or a percentile/quality without a scale.
        """
        suffix = text[-1:].lower() if text[-1:].lower() in ("p", "q") else ""
        try:
            value = float(text[: len(text) - len(suffix)])
        except ValueError:
            msg = f"minimum quality {text!r}: expected a score (0.62), a percentile (30p) or a 0-100 quality (55q)"
            raise FiqaError(msg) from None
        kind = _KINDS[suffix]
        if kind != "score" and scale is None:
            msg = f"minimum quality {text}: the model records no score scale (run fiqa-edge calibrate on its checkpoint)"
            raise FiqaError(msg)
        low, high = (0.0, 100.0) if kind != "score" else score_range
        if not low <= value <= high:
            msg = f"minimum quality {text}: outside the {kind} range [{low:g}, {high:g}]"
            raise FiqaError(msg)
        return cls(value, kind)

    def accepts(self, score: float, percentile: float | None, quality: float | None) -> bool:
        """Whether the face passes (:meth:`parse` made sure the model gives the kind measured)."""
        measured = {"score": score, "percentile": percentile, "quality": quality}[self.kind]
        return measured is not None and measured >= self.value


def sort_file(path: str | os.PathLike[str], folder: Path, *, move: bool = False) -> Path:
    """Copy (``move``: move) ``path`` into ``folder``, never over an existing file and never half-written:
    the copy is made under a temporary name and linked to its final name only if that name is free.

    Raises:
        FiqaError: a file of that name is already there, or the copy failed.
    """
    source = Path(path)
    target = folder / source.name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{source.name}.", suffix=".tmp", delete=False) as tmp:
        staged = Path(tmp.name)
    try:
        shutil.copy2(source, staged)
        os.link(staged, target)  # fails when the name exists: nothing is overwritten
    except FileExistsError:
        msg = f"{source}: {target} already exists; not overwritten"
        raise FiqaError(msg) from None
    except OSError as exc:
        msg = f"{source}: cannot copy to {folder} ({exc.strerror or exc})"
        raise FiqaError(msg) from exc
    finally:
        staged.unlink(missing_ok=True)
    if move:
        source.unlink()
    return target
