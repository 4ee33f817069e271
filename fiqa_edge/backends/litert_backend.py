"""The LiteRT backend: a ``.tflite`` bundle run by ``ai-edge-litert`` alone (no torch).

The model takes NHWC float32 (``fiqa-edge convert --to litert``); the batch
the scorer hands over is NCHW and is transposed here. Each batch size the
model was converted for is a signature; a batch is split into the largest
sizes the model has.
"""

from __future__ import annotations

import os

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from .._output import captured_output
from ..errors import CheckpointError, first_line
from ..manifest import EMBEDDED_KEY, Manifest
from . import bundle_manifest, model_path, predict_in_sizes
from .pinning import Pinning, pin_new_threads, usable_cpus

__all__ = ["LiteRtBackend", "embedded_manifest"]


def embedded_manifest(data: bytes) -> str | None:
    """The manifest JSON in a ``.tflite`` flatbuffer's ``metadata`` table, or None."""
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == EMBEDDED_KEY.encode():
            return bytes(model.Buffers(entry.Buffer()).DataAsNumpy()).decode()
    return None


class LiteRtBackend:
    """Scores batches with a LiteRT interpreter (XNNPACK on the CPU)."""

    name = "litert"

    def __init__(self, interpreter: Interpreter, manifest: Manifest) -> None:
        self.interpreter = interpreter
        self.manifest = manifest
        self.spec = manifest.preprocessing
        self.arch = manifest.arch
        self.pinning = Pinning()  # set by :meth:`load`
        self.runners: dict[int, tuple[object, str, bool]] = {}
        for name, io in interpreter.get_signature_list().items():
            runner = interpreter.get_signature_runner(name)
            (input_name,) = io["inputs"]
            shape = runner.get_input_details()[input_name]["shape"]
            self.runners[int(shape[0])] = (runner, input_name, int(shape[-1]) == 3)
        if 1 not in self.runners:
            msg = f"a LiteRT model needs a batch-1 signature; it has batch sizes {sorted(self.runners)}"
            raise CheckpointError(msg)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None, pin_threads: bool = True,
             **_: object) -> LiteRtBackend:
        """Open ``model.tflite`` or its bundle folder.

        ``threads``: XNNPACK's threads (default: one per usable CPU; the interpreter's own default is one thread).
        ``pin_threads``: each on a CPU of its own (:mod:`.pinning`).
        """
        path = model_path(path)
        threads = threads or len(usable_cpus())
        try:
            data = path.read_bytes()
            embedded = embedded_manifest(data)
        except OSError as exc:
            msg = f"{path}: cannot read the model ({exc.strerror or exc})"
            raise CheckpointError(msg) from exc
        except Exception as exc:  # the flatbuffer reader raises assorted types
            msg = f"{path}: not a LiteRT (.tflite) model ({first_line(exc)})"
            raise CheckpointError(msg) from exc

        def start() -> LiteRtBackend:  # XNNPACK starts its threads on the first call
            try:
                with captured_output(f"LiteRT loading {path.name}"):  # its C++ code reports a bad file on stderr too
                    interpreter = Interpreter(model_content=data, num_threads=threads)
            except Exception as exc:  # the interpreter raises assorted types
                msg = f"{path}: not a LiteRT (.tflite) model ({first_line(exc)})"
                raise CheckpointError(msg) from exc
            backend = cls(interpreter, bundle_manifest(path, embedded))
            n = backend.spec.input_size
            with captured_output(f"LiteRT running {path.name}"):  # it announces the XNNPACK delegate on first use
                backend.predict(np.zeros((1, 3, n, n), np.float32))
            return backend

        backend, pinning = pin_new_threads(start, threads) if pin_threads else (start(), Pinning())
        backend.pinning = pinning
        return backend

    def predict(self, batch: np.ndarray) -> np.ndarray:
        def run(runner, input_name: str, nhwc: bool):
            def score(x: np.ndarray) -> np.ndarray:
                (out,) = runner(**{input_name: np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x}).values()
                return out

            return score

        with self.pinning.calling():
            return predict_in_sizes(batch, {size: run(*entry) for size, entry in self.runners.items()})
