"""BlazeFace face detection with ``ai-edge-litert``: boxes, confidences and six landmarks per face.

The models are MediaPipe's (``models/README.md``); this module does what
MediaPipe's graph does around them: letterbox the image into the square input
(values in [-1, 1]), decode the SSD anchors' box and landmark offsets, apply
the sigmoid to the scores and merge overlapping boxes by weighted
non-maximum suppression (the overlapping boxes' score-weighted mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .._deps import require

__all__ = ["DETECTORS", "BlazeFace", "Candidates", "Face", "box_iou", "merge"]

_MODELS = Path(__file__).parent / "models"


@dataclass(frozen=True)
class _Model:
    file: str
    size: int
    grids: tuple[tuple[int, int], ...]  # (cells per side, anchors per cell) per feature map
    min_score: float


#: the detectors by name: ``full`` finds small and distant faces too, ``short`` is for faces near the camera
DETECTORS = {
    "full": _Model("face_detection_full_range_sparse.tflite", 192, ((48, 1),), 0.6),
    "short": _Model("face_detection_short_range.tflite", 128, ((16, 2), (8, 6)), 0.5),
}
NMS_IOU = 0.3
#: boxes (N, 4), confidences (N,), landmarks (N, 6, 2)
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixels of the image it was found in.

    ``landmarks``: (6, 2) x, y of the subject's right eye (image left), left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion.
    """

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    confidence: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """The eye in the image's left, then the one in its right."""
        return self.landmarks[0], self.landmarks[1]


def _anchors(grids: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Anchor centres, (N, 2) in [0, 1]: each cell's centre, repeated per anchor, row by row."""
    centres = []
    for cells, per_cell in grids:
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


class BlazeFace:
    """A BlazeFace model on the CPU; call it on an RGB PIL image.

    Args:
        model: a key of :data:`DETECTORS`.
        min_confidence: faces below are dropped (default: MediaPipe's threshold for the model).
        threads: interpreter threads.
    """

    def __init__(self, model: str = "full", *, min_confidence: float | None = None, threads: int | None = None) -> None:
        if model not in DETECTORS:
            msg = f"unknown detector {model!r}; choose from {', '.join(DETECTORS)}"
            raise ValueError(msg)
        require("ai_edge_litert", "face detection", extra="detect")
        from ai_edge_litert.interpreter import Interpreter

        self.model = DETECTORS[model]
        self.name = model
        self.min_confidence = self.model.min_score if min_confidence is None else min_confidence
        self.interpreter = Interpreter(model_path=str(_MODELS / self.model.file), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        scores, boxes = sorted(self.interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores, self._boxes = scores["index"], boxes["index"]
        self._anchors = _anchors(self.model.grids)

    def __call__(self, image: Image.Image, *, tiles: bool = True) -> list[Face]:
        """Faces in ``image``, most confident first.

        The model sees the whole image shrunk to its input, where a face narrower than about a tenth of
        the image is lost; with ``tiles``, an image more than twice the input's size is also searched
        in overlapping square tiles (side a third of the image's longer side, at least twice the
        input; half a tile apart), and what all passes found is merged.
        """
        return merge([self.candidates(image, tiles=tiles)])

    def candidates(self, image: Image.Image, *, tiles: bool = True) -> Candidates:
        """Every box above the threshold, before merging (see :meth:`__call__`); :func:`merge` makes faces of them."""
        found = [self._raw(image, 0, 0)]
        n, longest = self.model.size, max(image.size)
        if tiles and longest > 2 * n:
            side = max(2 * n, longest // 3)
            step = side // 2
            for y in _starts(image.height, side, step):
                for x in _starts(image.width, side, step):
                    found.append(self._raw(image.crop((x, y, x + side, y + side)), x, y))
        boxes, confidence, landmarks = (np.concatenate(parts) for parts in zip(*found))
        return boxes, confidence, landmarks

    def _raw(self, image: Image.Image, x0: int, y0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4), confidences (N,) and landmarks (N, 6, 2) above the threshold, before merging,
        in the pixels of the image ``image`` was cropped from at (``x0``, ``y0``)."""
        n = self.model.size
        width, height = image.size
        scale = n / max(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        ox, oy = (n - w) // 2, (n - h) // 2
        canvas = np.zeros((n, n, 3), np.float32)
        canvas[oy : oy + h, ox : ox + w] = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), np.float32)
        self.interpreter.set_tensor(self._input, (canvas / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64)
        confidence = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = confidence >= self.min_confidence
        raw, confidence, anchors = self.interpreter.get_tensor(self._boxes)[0][keep], confidence[keep], self._anchors[keep]
        # offsets are in input pixels around the anchor centre; back to the image's pixels through the letterbox
        origin = np.array([x0, y0], np.float64)
        centre = (raw[:, 0:2] + anchors * n - (ox, oy)) / scale + origin
        half = raw[:, 2:4] / scale / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        landmarks = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * n - (ox, oy)) / scale + origin
        return boxes, confidence, landmarks


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile origins along one axis: every ``step``, the last tile flush with the end."""
    if length <= side:
        return [0]
    return sorted({*range(0, length - side, step), length - side})


def merge(candidates: list[Candidates]) -> list[Face]:
    """Faces from the candidates of one or more passes over one image (weighted NMS over all of them)."""
    boxes, confidence, landmarks = (np.concatenate(parts) for parts in zip(*candidates))
    return _weighted_nms(boxes, confidence, landmarks)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    return float(_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)[None])[0])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(boxes: np.ndarray, confidence: np.ndarray, landmarks: np.ndarray) -> list[Face]:
    """MediaPipe's weighted NMS: each group of boxes overlapping the most confident left by IoU >= 0.3
    becomes one face, its box and landmarks the confidence-weighted mean of the group's."""
    faces = []
    order = np.argsort(-confidence)
    while order.size:
        overlap = _iou(boxes[order[0]], boxes[order])
        group = order[overlap >= NMS_IOU]
        weight = confidence[group] / confidence[group].sum()
        box = (boxes[group] * weight[:, None]).sum(0)
        faces.append(Face(tuple(float(v) for v in box), float(confidence[order[0]]),  # type: ignore[arg-type]
                          (landmarks[group] * weight[:, None, None]).sum(0)))
        order = order[overlap < NMS_IOU]
    return faces
