"""The converter contract: what every target provides, and what one conversion run shares.

A target is one :class:`Converter` subclass in its own module plus one row in
:data:`fiqa_edge.converters.targets.TARGETS`. Its settings are one frozen
dataclass (:attr:`Converter.options_type`); a field declared with
:func:`cli_option` also becomes a ``fiqa-edge convert`` flag, so neither
``convert.py`` nor the CLI changes when a target is added.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from fiqa_edge._deps import EXTRA_FOR, is_available
from fiqa_edge.backends import Backend, cannot_run, open_backend
from fiqa_edge.manifest import Manifest
from fiqa_edge.zoo import LoadedModel

from .calibration import CalibrationFaces

__all__ = ["BuildContext", "Converter", "NoOptions", "cli_option", "predict_batched"]

PRECISIONS = ("fp32", "fp16", "int8")


def cli_option(default: Any, setting: str, help: str, *, choices: tuple[str, ...] | None = None,
               range: tuple[float, float] | None = None) -> Any:
    """A dataclass field that ``fiqa-edge convert`` also offers as ``--<target>-<setting>`` (a bool is an on/off flag)."""
    return field(default=default, metadata={"setting": setting, "help": help, "choices": choices, "range": range})


def predict_batched(backend: Backend, faces: np.ndarray, batch: int = 16) -> np.ndarray:
    """Scores of preprocessed ``faces`` (B, 3, N, N), ``batch`` at a time."""
    return np.concatenate([backend.predict(faces[i : i + batch]) for i in range(0, len(faces), batch)])


@dataclass(frozen=True)
class NoOptions:
    """A target without settings."""


OptionsT = TypeVar("OptionsT")


@dataclass
class BuildContext:
    """What the artifacts of one ``convert`` run share: the model, the faces, and intermediate files.

    :meth:`cached` makes an intermediate (the fp32 ONNX export that ONNX,
    OpenVINO and TensorRT start from, the int8 QDQ graph that ONNX and
    TensorRT share) once per run and settings.
    """

    loaded: LoadedModel
    calibration: CalibrationFaces
    validation: CalibrationFaces
    workdir: Path
    _made: dict[str, Path] = field(default_factory=dict)

    def cached(self, name: str, make: Callable[[Path], None]) -> Path:
        """``workdir/name``, made by ``make(path)`` the first time it is asked for."""
        if name not in self._made:
            path = self.workdir / name
            make(path)
            self._made[name] = path
        return self._made[name]


class Converter(ABC, Generic[OptionsT]):
    """One export target.

    Class attributes:
        key: the ``--to`` name.
        model_file: the artifact's file name inside its bundle.
        backend: the runtime backend that scores the artifact (validation and ``score``).
        package: import name the build needs (its extra is named in errors).
        precisions: what it builds.
        options_type: its settings dataclass.
        note: a caveat shown in ``fiqa-edge convert --help`` and docs/converting.md's target table.
        embeds_manifest: whether the model file carries its manifest (else only ``fiqa.json`` beside it does).
    """

    key: ClassVar[str]
    model_file: ClassVar[str]
    backend: ClassVar[str]
    package: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS
    options_type: ClassVar[type] = NoOptions
    note: ClassVar[str | None] = None
    embeds_manifest: ClassVar[bool] = True

    def unavailable(self) -> str | None:
        """Why this target cannot be built on this machine, or None."""
        if not is_available(self.package):
            return f"{self.package} is not installed (pip install 'fiqa-edge[{EXTRA_FOR.get(self.package, 'all')}]')"
        return None

    def artifact(self, options: OptionsT) -> tuple[str, str]:
        """The model file's name and the backend its manifest names, for ``options`` (default: the class's)."""
        return self.model_file, self.backend

    def cannot_validate(self) -> str | None:
        """Why its artifacts cannot run on this machine (then :meth:`inspect` checks them instead), or None."""
        return cannot_run(self.backend)

    @abstractmethod
    def build(self, ctx: BuildContext, precision: str, dst: Path, options: OptionsT) -> dict[str, Any] | None:
        """Write the ``precision`` artifact of ``ctx.loaded`` to ``dst`` (inside a temporary bundle folder).

        Returns figures to record in the manifest (what the build measured or depends on), or None.
        """

    def scores(self, ctx: BuildContext, bundle: Path, options: OptionsT) -> tuple[np.ndarray, dict[str, Any]]:
        """The built bundle's scores of the validation faces, as its runtime computes them here, and what ran them
        (recorded beside the parity figures). Default: the preprocessed faces through :attr:`backend`."""
        return predict_batched(open_backend(bundle, backend=self.backend), ctx.validation.batch()), {}

    @abstractmethod
    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        """Store the manifest inside the model file where the format allows (``fiqa.json`` is written anyway)."""

    def inspect(self, model_file: Path, manifest: Manifest) -> dict[str, Any]:
        """Checks without running, for artifacts this machine cannot run; what was checked.

        Raises:
            FiqaError: the artifact does not match its manifest.
        """
        msg = f"{self.key} artifacts cannot be checked without running them"
        raise NotImplementedError(msg)

    def default_options(self) -> OptionsT:
        return self.options_type()

    @classmethod
    def cli_fields(cls) -> list[dataclasses.Field]:
        """The option fields offered as ``fiqa-edge convert`` flags."""
        return [f for f in dataclasses.fields(cls.options_type) if "setting" in f.metadata]
