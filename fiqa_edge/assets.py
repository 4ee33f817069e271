"""Files shipped inside the package: sample faces and the default model.

The default model ships three times: the checkpoint (torch, the source of
every conversion) and its fp32 ONNX and LiteRT bundles (converted from that
checkpoint and validated against it), so installs without torch score out of
the box with onnxruntime, OpenVINO or LiteRT. The models it replaced ship as
checkpoints too, reachable by name (``--model demo-v2``, ``demo-v1``) for comparison.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ._deps import is_available
from .errors import FiqaError

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_BUNDLE",
    "DEFAULT_LITERT_BUNDLE",
    "DEFAULT_MODEL",
    "SAMPLES_DIR",
    "SAMPLE_SPLITS",
    "BundledModel",
    "default_model_path",
    "named_model",
    "resolve_model",
    "sample_faces",
]

_HERE = Path(__file__).parent
SAMPLES_DIR = _HERE / "samples" / "lfw40"
DEFAULT_MODEL = _HERE / "weights" / "fiqa_edgenext_xxs_demo.safetensors"
DEFAULT_BUNDLE = _HERE / "weights" / "fiqa_edgenext_xxs_demo_onnx"
DEFAULT_LITERT_BUNDLE = _HERE / "weights" / "fiqa_edgenext_xxs_demo_litert"


class BundledModel(NamedTuple):
    """A checkpoint shipped in the package, and what it is."""

    path: Path
    summary: str


#: bundled checkpoints by name: what ``--model NAME`` and ``QualityScorer.load(NAME)`` open
BUNDLED_MODELS = {
    "demo": BundledModel(DEFAULT_MODEL, "the default, v3 (224 px): v2 fine-tuned on labels from two recognisers "
                                        "(dlib, SFace), behind a fixed low-pass; docs/demo/report.md"),
    "demo-v2": BundledModel(_HERE / "weights" / "fiqa_edgenext_xxs_demo_v2.safetensors",
                            "the second demo model (224 px, v1 fine-tuned on dlib's utility labels), kept for "
                            "comparison"),
    "demo-v1": BundledModel(_HERE / "weights" / "fiqa_edgenext_xxs_demo_v1.safetensors",
                            "the first demo model (128 px, trained from scratch), kept for comparison"),
}


#: disjoint by identity: ``convert`` calibrates on one and validates on the other by default
SAMPLE_SPLITS = ("calibration", "validation")


def sample_faces(split: str | None = None) -> list[Path]:
    """The 40 bundled LFW faces (10 people × 4 images), sorted.

    ``split="calibration"`` gives the 20 faces of the first 5 people (by name),
    ``"validation"`` the 20 of the other 5.
    """
    faces = sorted(SAMPLES_DIR.glob("*/*.jpg"))
    if split is None:
        return faces
    if split not in SAMPLE_SPLITS:
        msg = f"split must be one of {SAMPLE_SPLITS}, not {split!r}"
        raise ValueError(msg)
    people = sorted({p.parent.name for p in faces})
    half = set(people[: len(people) // 2]) if split == "calibration" else set(people[len(people) // 2 :])
    return [p for p in faces if p.parent.name in half]


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A bundled model's name (see :data:`BUNDLED_MODELS`) as its file; anything else as a path."""
    text = os.fspath(model)
    if text in BUNDLED_MODELS and not Path(text).exists():
        return BUNDLED_MODELS[text].path
    return Path(text)


def named_model(item: str) -> tuple[str, Path]:
    """``NAME=MODEL`` (or a bare ``MODEL``, named as written) as (name, existing model file or folder).

    Raises:
        FiqaError: the model is neither an existing path nor a bundled model's name.
    """
    name, sep, text = item.partition("=")
    model = resolve_model(text if sep else item)
    if not name or not model.exists():
        msg = f"{item!r}: expected [NAME=]MODEL, an existing model or a bundled model's name"
        raise FiqaError(msg)
    return name, model


def default_model_path(backend: str = "torch") -> Path:
    """The bundled default model for ``backend``.

    ``torch`` gets the checkpoint; ``onnxruntime`` and ``openvino`` get the
    ONNX bundle, ``litert`` the LiteRT bundle; ``auto`` gets the ONNX bundle
    when either of those packages is installed, else the LiteRT bundle when
    ai-edge-litert is, else the checkpoint.

    Raises:
        FiqaError: this install carries no default model for that backend.
    """
    if backend == "auto":
        backend = ("onnxruntime" if is_available("onnxruntime") or is_available("openvino")
                   else "litert" if is_available("ai_edge_litert") else "torch")
    path = {"onnxruntime": DEFAULT_BUNDLE, "openvino": DEFAULT_BUNDLE, "litert": DEFAULT_LITERT_BUNDLE}.get(backend, DEFAULT_MODEL)
    if not path.exists():
        msg = f"no bundled default model for the {backend} backend ({path.name} is not in this install): name a model"
        raise FiqaError(msg)
    return path
