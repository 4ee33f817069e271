"""Face embeddings from dlib's ResNet (PyPI ``face-recognition-models`` + ``dlib-bin``).

Used only to make labels and to evaluate (Error-versus-Discard curves), never
at scoring time. Faces are located once on the clean image; a degraded copy
reuses that box, so its label measures recognition, not detection.
"""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image

from fiqa_edge._deps import require

__all__ = ["DlibRecognizer", "MATCH_DISTANCE"]

MATCH_DISTANCE = 0.6  # dlib's documented same-person threshold on Euclidean distance
_CENTRAL_BOX = (0.28, 0.28, 0.72, 0.72)  # LFW (deep-funneled) faces sit in the middle of the frame


class DlibRecognizer:
    """HOG face detector, 5-point landmarks and the 128-d dlib face embedding."""

    def __init__(self) -> None:
        dlib = require("dlib", "face-recognition utility labels")
        with warnings.catch_warnings():  # face_recognition_models imports pkg_resources
            warnings.simplefilter("ignore")
            models = require("face_recognition_models", "face-recognition utility labels")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def locate(self, image: Image.Image) -> tuple[tuple[int, int, int, int], bool]:
        """(left, top, right, bottom) of the largest face, and whether it was detected.

        When no face is found (even after one up-sampling) the central region is used.
        """
        pixels = np.asarray(image)
        for upsample in (0, 1):
            found = self._detector(pixels, upsample)
            if len(found):
                r = max(found, key=lambda d: d.width() * d.height())
                return (r.left(), r.top(), r.right(), r.bottom()), True
        w, h = image.size
        x0, y0, x1, y1 = _CENTRAL_BOX
        return (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)), False

    def embed(self, image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
        """128-d embedding of the face in ``box`` (float32)."""
        pixels = np.asarray(image)
        shape = self._landmarks(pixels, self._dlib.rectangle(*box))
        return np.asarray(self._net.compute_face_descriptor(pixels, shape), dtype=np.float32)
