"""BlazeFace face detection with ``ai-edge-litert``: boxes, confidences and six landmarks per face.

The models are MediaPipe's (``models/README.md``); this module does what
MediaPipe's graph does around them: letterbox the image into the square input
(values in [-1, 1]), decode the SSD anchors' box and landmark offsets, apply
the sigmoid to the scores and merge overlapping boxes by weighted
non-maximum suppression (the overlapping boxes' score-weighted mean).

MediaPipe's own thresholds (0.5 short range, 0.6 full range) report hands,
clothes, charts and second, looser boxes around faces as faces. Here a box is a
face when its model is sure of it on its own (a higher threshold, higher still
on tiles, which see more of everything), or when both models find it at their
own thresholds; a box mostly inside or mostly holding a more confident face is
that face again. The thresholds were calibrated on the ``calibrate`` split of
``benchmarks/data/wild`` (photos from outside LFW, hard negatives) and on the
LFW group photos of ``benchmarks/data/photos`` (small, soft, cut faces):
the middle of the range with no false face and no face of 32 px or more lost
(the tiles' agreement threshold: just above its highest false face, 0.69).
``python -m fiqa_edge.benchmarks.detect_precision`` measures them on the
``test`` split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from .._deps import require

__all__ = ["DETECTORS", "MODELS_DIR", "BlazeFace", "Candidates", "Face", "box_iou", "letterbox", "merge"]

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class _Model:
    file: str
    size: int
    grids: tuple[tuple[int, int], ...]  # (cells per side, anchors per cell) per feature map
    alone: tuple[float, float]   # thresholds (whole image, tile) for a face this model is sure of on its own
    agreed: tuple[float, float]  # thresholds (whole image, tile) for a face the other model also finds


#: the detectors by name: ``full`` finds small and distant faces too, ``short`` is for faces near the camera
DETECTORS = {
    "full": _Model("face_detection_full_range_sparse.tflite", 192, ((48, 1),), alone=(0.70, 0.75), agreed=(0.6, 0.72)),
    "short": _Model("face_detection_short_range.tflite", 128, ((16, 2), (8, 6)), alone=(0.72, 0.82), agreed=(0.5, 0.72)),
}
NMS_IOU = 0.3
#: a face whose box has this share of its area (or of the other's, if smaller) inside a more confident
#: face's box is that face again: the larger, looser box around a face, or a box on part of it
CONTAINED = 0.6
#: boxes (N, 4), confidences (N,), landmarks (N, 6, 2), and whether each is above its model's threshold for a
#: face on its own (N,) (the others count only where another model's candidates agree)
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


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
        min_confidence: one threshold for every box, on the whole image and on tiles, with or without
            another model's agreement (default: the model's calibrated ones, :data:`DETECTORS`); lower it
            for recall.
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
        #: (whole image, tile) thresholds for a face on its own and for one another model agrees on
        self.alone = self.model.alone if min_confidence is None else (min_confidence, min_confidence)
        self.agreed = self.model.agreed if min_confidence is None else (min_confidence, min_confidence)
        self.interpreter = Interpreter(model_path=str(MODELS_DIR / self.model.file), num_threads=threads)
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
        """Every box above a threshold, before merging (see :meth:`__call__`); :func:`merge` makes faces of them."""
        found = [self._raw(image, 0, 0, 0)]
        n, longest = self.model.size, max(image.size)
        if tiles and longest > 2 * n:
            side = max(2 * n, longest // 3)
            step = side // 2
            for y in _starts(image.height, side, step):
                for x in _starts(image.width, side, step):
                    found.append(self._raw(image.crop((x, y, x + side, y + side)), x, y, 1))
        boxes, confidence, landmarks, sure = (np.concatenate(parts) for parts in zip(*found))
        return boxes, confidence, landmarks, sure

    def _raw(self, image: Image.Image, x0: int, y0: int, tile: int) -> Candidates:
        """The candidates of one pass (``tile``: 0 the whole image, 1 a tile of it), in the pixels of the
        image ``image`` was cropped from at (``x0``, ``y0``)."""
        n = self.model.size
        canvas, scale, ox, oy = letterbox(image, n)
        self.interpreter.set_tensor(self._input, canvas[None])
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self._scores)[0, :, 0].astype(np.float64)
        confidence = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = confidence >= min(self.alone[tile], self.agreed[tile])
        raw, confidence, anchors = self.interpreter.get_tensor(self._boxes)[0][keep], confidence[keep], self._anchors[keep]
        # offsets are in input pixels around the anchor centre; back to the image's pixels through the letterbox
        origin = np.array([x0, y0], np.float64)
        centre = (raw[:, 0:2] + anchors * n - (ox, oy)) / scale + origin
        half = raw[:, 2:4] / scale / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        landmarks = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * n - (ox, oy)) / scale + origin
        return boxes, confidence, landmarks, confidence >= self.alone[tile]


def letterbox(image: Image.Image, n: int) -> tuple[np.ndarray, float, int, int]:
    """The model input for ``image``: shrunk (bilinear) to fit the ``n`` × ``n`` square, centred, black around, values
    in [-1, 1] (n, n, 3 float32); with the scale and the offsets (x, y) of the image in it."""
    width, height = image.size
    scale = n / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    ox, oy = (n - w) // 2, (n - h) // 2
    canvas = np.zeros((n, n, 3), np.float32)
    canvas[oy : oy + h, ox : ox + w] = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    return canvas / 127.5 - 1.0, scale, ox, oy


def _starts(length: int, side: int, step: int) -> list[int]:
    """Tile origins along one axis: every ``step``, the last tile flush with the end."""
    if length <= side:
        return [0]
    return sorted({*range(0, length - side, step), length - side})


def merge(candidates: list[Candidates]) -> list[Face]:
    """Faces from the candidates of one or more models (one :class:`Candidates` each) over one image.

    Weighted NMS over all of them; a group is a face when one of its boxes is sure on its own, or when
    boxes of two models are in it; then a face mostly inside a more confident one, or mostly holding
    it, is dropped (:data:`CONTAINED`).
    """
    boxes, confidence, landmarks, sure = (np.concatenate(parts) for parts in zip(*candidates))
    model = np.concatenate([np.full(len(c[1]), k) for k, c in enumerate(candidates)])
    faces: list[Face] = []
    for face, group in _weighted_nms(boxes, confidence, landmarks):
        if not sure[group].any() and len(set(model[group])) < 2:
            continue
        if not faces or _contained(np.asarray(face.box), np.array([f.box for f in faces])).max() < CONTAINED:
            faces.append(face)
    return faces


def box_iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    return float(_iou(np.asarray(a, np.float64), np.asarray(b, np.float64)[None])[0])


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def _contained(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection of ``box`` with each of ``boxes`` over the smaller box's area."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    smaller = np.minimum(np.prod(box[2:] - box[:2]), np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    return inter / np.maximum(smaller, 1e-9)


def _weighted_nms(boxes: np.ndarray, confidence: np.ndarray, landmarks: np.ndarray) -> list[tuple[Face, np.ndarray]]:
    """MediaPipe's weighted NMS: each group of boxes overlapping the most confident left by IoU >= 0.3
    becomes one face, its box and landmarks the confidence-weighted mean of the group's; with each
    face, the indices of its group."""
    faces = []
    order = np.argsort(-confidence)
    while order.size:
        overlap = _iou(boxes[order[0]], boxes[order])
        group = order[overlap >= NMS_IOU]
        weight = confidence[group] / confidence[group].sum()
        box = (boxes[group] * weight[:, None]).sum(0)
        faces.append((Face(tuple(float(v) for v in box), float(confidence[order[0]]),  # type: ignore[arg-type]
                           (landmarks[group] * weight[:, None, None]).sum(0)), group))
        order = order[overlap < NMS_IOU]
    return faces
