"""The ExecuTorch backend: a ``.pte`` bundle run by ExecuTorch's Python runtime.

The Python runtime (``executorch.runtime``) takes torch tensors, so this
backend needs torch; on a phone the same ``.pte`` runs in ExecuTorch's C++,
Android (Java/Kotlin) or iOS runtime. A ``.pte`` carries no metadata of ours:
its ``fiqa.json`` must sit beside it. Each batch size the program was exported
for is a method (``forward``: one image; ``forward_<N>``); a batch is split
into the largest sizes the program has. The runtime's threadpool is one per
process (every program loaded in it shares it); by default this backend
replaces it with one of a thread per usable CPU, each pinned to its own
(:mod:`.pinning`).
"""

from __future__ import annotations

import os
import re

import numpy as np

from .._output import captured_output
from ..errors import CheckpointError, first_line
from ..manifest import MANIFEST_NAME, Manifest
from . import model_path, predict_in_sizes
from .pinning import Pinning, pin_new_threads, usable_cpus

__all__ = ["ExecuTorchBackend"]

_METHOD = re.compile(r"^forward(?:_(\d+))?$")


class ExecuTorchBackend:
    """Scores batches with the methods of an ExecuTorch program."""

    name = "executorch"

    def __init__(self, program: object, methods: dict[int, object], manifest: Manifest, pinning: Pinning) -> None:
        self.program = program  # the methods run on its memory
        self.pinning = pinning
        self.methods = methods
        self.manifest = manifest
        self.spec = manifest.preprocessing
        self.arch = manifest.arch

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None, pin_threads: bool = True,
             etdump: bool = False, **_: object) -> ExecuTorchBackend:
        """Open ``model.pte`` (with ``fiqa.json`` beside it) or its bundle folder.

        ``threads``: the threadpool's size (default: one per usable CPU). ``pin_threads``: with one thread per usable
        CPU, a new threadpool whose threads each keep a CPU of their own (:mod:`.pinning`). ``etdump``: record every
        operator's time on each call (``program.write_etdump_result_to_file``).
        """
        path = model_path(path)
        if not (path.parent / MANIFEST_NAME).is_file():
            msg = f"{path}: an ExecuTorch program needs its {MANIFEST_NAME} beside it (.pte files carry no metadata)"
            raise CheckpointError(msg)
        manifest = Manifest.load(path.parent)
        try:
            with captured_output(f"ExecuTorch loading {path.name}"):  # it reports on the CPU it finds, torch warns
                from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
                from executorch.runtime import Runtime

                cpus, pinning = len(usable_cpus()), Pinning()

                # resets are the Python runtime's only handle on its threadpool, which every program in the process
                # shares; a reset to the pool's own size keeps its threads, so a new pool goes through one thread
                def new_pool() -> None:
                    _unsafe_reset_threadpool(1)
                    _unsafe_reset_threadpool(cpus)

                if pin_threads and threads in (None, cpus):
                    pinning = pin_new_threads(new_pool, cpus)[1]
                elif threads:
                    _unsafe_reset_threadpool(threads)
                # the runtime reads (maps) the file itself
                program = Runtime.get().load_program(str(path), enable_etdump=etdump)
                methods = {int(m[1] or 1): program.load_method(name)
                           for name in program.method_names if (m := _METHOD.match(name))}
        except OSError as exc:
            msg = f"{path}: cannot read the program ({exc.strerror or exc})"
            raise CheckpointError(msg) from exc
        except Exception as exc:  # the runtime raises RuntimeError/ValueError for damaged programs
            msg = f"{path}: not an ExecuTorch program this runtime can load ({first_line(exc)})"
            raise CheckpointError(msg) from exc
        if 1 not in methods:
            msg = f"{path}: the program has no 'forward' method taking one image (methods: {sorted(program.method_names)})"
            raise CheckpointError(msg)
        backend = cls(program, methods, manifest, pinning)
        n = manifest.preprocessing.input_size
        with captured_output(f"ExecuTorch running {path.name}"):
            backend.predict(np.zeros((1, 3, n, n), np.float32))
        return backend

    def predict(self, batch: np.ndarray) -> np.ndarray:
        import torch

        def run(method):
            return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()

        with self.pinning.calling():
            return predict_in_sizes(batch, {size: run(method) for size, method in self.methods.items()})
