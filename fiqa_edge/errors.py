"""Exceptions raised by fiqa-edge.

Every message is built before raising and names the file (or option) at fault,
so the CLI can print it as one line.
"""

from __future__ import annotations

__all__ = [
    "first_line",
    "FiqaError",
    "ImageError",
    "CheckpointError",
    "ManifestError",
    "MissingDependencyError",
    "UnknownModelError",
    "TargetUnavailableError",
    "ConversionError",
    "ParityError",
]


def first_line(exc: BaseException, limit: int = 200) -> str:
    """A third-party exception as one short line: its message's first line, else its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class FiqaError(Exception):
    """Base class of every error fiqa-edge raises on purpose."""


class ImageError(FiqaError):
    """An image file is missing, unreadable or not an image."""


class CheckpointError(FiqaError):
    """A checkpoint is missing, damaged, or does not fit the architecture."""


class ManifestError(FiqaError):
    """A bundle manifest (fiqa.json) is missing or invalid."""


class UnknownModelError(FiqaError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingDependencyError(FiqaError, ImportError):
    """An optional package is not installed; the message names the extra."""


class TargetUnavailableError(FiqaError):
    """A conversion target cannot be built on this machine (missing package or hardware)."""


class ConversionError(FiqaError):
    """Building an artifact failed (export, quantization or compilation)."""


class ParityError(FiqaError):
    """An artifact scores faces outside its parity bound against the fp32 torch model."""
