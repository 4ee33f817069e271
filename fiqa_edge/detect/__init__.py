"""Faces in photos: detection (BlazeFace), alignment to a model's framing, and the crops to score.

Needs ``pip install 'fiqa-edge[detect]'`` (``ai-edge-litert``; no torch).

>>> finder = FaceFinder()                                   # doctest: +SKIP
>>> for face, crop in finder(image):                        # doctest: +SKIP
...     print(face.box, face.confidence, crop.size)
"""

from __future__ import annotations

import threading

from PIL import Image

from ..framing import LFW_FRAMING, Framing, align_face
from .blazeface import CONTAINED, DETECTORS, NMS_IOU, BlazeFace, Face, merge

__all__ = ["DETECTORS", "FINDERS", "LFW_FRAMING", "BlazeFace", "Face", "FaceFinder", "Framing", "align_face",
           "detector_settings"]

#: what ``detector`` may be: one BlazeFace model, or ``both`` (each on the whole image and its tiles, merged: the
#: short range model's recall on portraits and mid-sized faces, the full range's on small faces in large frames)
FINDERS = ("both", *DETECTORS)


def detector_settings(detector: str = "both", *, min_confidence: float | None = None) -> dict:
    """How ``detector`` (a key of :data:`FINDERS`) finds faces, as JSON: each model's file, input size, anchor grids
    and thresholds, the tiles, the suppression overlap and the containment share (the web bundle's detection reads
    it, so the page finds what Python finds)."""
    names = list(DETECTORS) if detector == "both" else [detector]
    models = {}
    for name in names:
        model = DETECTORS[name]
        one = (min_confidence, min_confidence)  # whole image and tiles
        alone, agreed = (model.alone, model.agreed) if min_confidence is None else (one, one)
        models[name] = {"file": model.file, "input": model.size, "grids": [list(g) for g in model.grids],
                        "min_confidence": {"alone": list(alone), "agreed": list(agreed), "passes": ["whole", "tile"]}}
    return {"detector": detector, "models": models, "tiles": True, "nms_iou": NMS_IOU, "contained": CONTAINED}


class FaceFinder:
    """Detects faces and crops each to ``framing``; safe to call from several threads (one detector each).

    Args:
        detector: a key of :data:`FINDERS`.
        framing: where the crops put the eyes (default: the bundled model's LFW framing).
        max_faces: keep at most this many faces per image, the most confident.
        min_face: drop faces whose box is narrower than this many pixels.
        min_confidence: one threshold for every model and pass (default: each model's calibrated ones);
            lower it to find more faces at the price of more false ones.
    """

    def __init__(self, detector: str = "both", *, framing: Framing = LFW_FRAMING, max_faces: int | None = None,
                 min_face: float = 0.0, min_confidence: float | None = None) -> None:
        if detector not in FINDERS:
            msg = f"unknown detector {detector!r}; choose from {', '.join(FINDERS)}"
            raise ValueError(msg)
        self.detector, self.framing, self.max_faces, self.min_face = detector, framing, max_faces, min_face
        self.min_confidence = min_confidence
        self._local = threading.local()
        self.detect(Image.new("RGB", (8, 8)))  # fails here, not in a worker, when ai-edge-litert is missing

    def detect(self, image: Image.Image) -> list[Face]:
        """The faces kept by ``min_face`` and ``max_faces``, most confident first."""
        if self.detector == "both":  # both models on the whole image and its tiles
            faces = merge([self._model("short").candidates(image), self._model("full").candidates(image)])
        else:
            faces = self._model(self.detector)(image)
        faces = [f for f in faces if f.width >= self.min_face]
        return faces[: self.max_faces] if self.max_faces is not None else faces

    def _model(self, name: str) -> BlazeFace:
        """This thread's interpreter of ``name`` (an interpreter serves one thread at a time)."""
        models = self._local.__dict__.setdefault("models", {})
        if name not in models:
            models[name] = BlazeFace(name, min_confidence=self.min_confidence, threads=1)
        return models[name]

    def settings(self) -> dict:
        """What decides which faces are kept, as a JSON-able record (a run's output carries it to be reproduced)."""
        return {**detector_settings(self.detector, min_confidence=self.min_confidence),
                "max_faces": self.max_faces, "min_face": self.min_face}

    def __call__(self, image: Image.Image) -> list[tuple[Face, Image.Image]]:
        """Each face kept and its aligned crop."""
        return [(face, align_face(image, face.eyes, self.framing)) for face in self.detect(image)]
