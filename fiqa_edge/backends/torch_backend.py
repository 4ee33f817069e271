"""The torch backend: a checkpoint in its zoo architecture, on CUDA when present."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..framing import Framing
from ..preprocess import PreprocessSpec
from ..score_scale import ScoreScale
from ..zoo import load_model

__all__ = ["TorchBackend", "TorchCompileBackend"]


class TorchBackend:
    """Scores batches with a torch model in eval mode."""

    name = "torch"

    def __init__(self, model: nn.Module, spec: PreprocessSpec, arch: str, device: str = "cpu",
                 framing: Framing | None = None, scale: ScoreScale | None = None) -> None:
        self.model = model.to(device).eval()
        self.spec = spec
        self.arch = arch
        self.device = device
        self.framing, self.scale = framing, scale  # from the checkpoint's metadata, when it records them

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        device: str | None = None,
        arch: str | None = None,
        input_size: int | None = None,
        **_: object,
    ) -> TorchBackend:
        """Load a checkpoint (architecture named or recognised from its keys).

        ``threads`` sets torch's process-wide intra-op thread count.
        """
        loaded = load_model(path, arch=arch, input_size=input_size)
        if threads:
            torch.set_num_threads(threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(loaded.model, loaded.spec, loaded.arch, device, loaded.framing, loaded.scale)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out.reshape(-1).double().cpu().numpy()


class TorchCompileBackend(TorchBackend):
    """The torch backend with the model compiled by ``torch.compile`` (inductor).

    The first call of each batch shape compiles (seconds to minutes); later
    calls run the compiled graph.
    """

    name = "torch-compile"

    def __init__(self, model: nn.Module, spec: PreprocessSpec, arch: str, device: str = "cpu",
                 framing: Framing | None = None, scale: ScoreScale | None = None) -> None:
        super().__init__(model, spec, arch, device, framing, scale)
        self.model = torch.compile(self.model)  # type: ignore[assignment]  # a module that compiles on call
