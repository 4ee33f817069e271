"""The best frames of a video: decode with PyAV (streaming), score every face, follow each person.

Frames are decoded one at a time and sampled every ``1 / fps`` seconds of the
video's own clock; each sampled frame's faces are detected, aligned and scored
(:meth:`fiqa_edge.faces.FaceScorer.score`). A face continues the track (a person)
whose last box it overlaps most (IoU >= 0.3, each track once per frame), else
it starts a new one. A track is a person only when it holds a face in at least
:data:`MIN_TRACK_FRAMES` sampled frames (or in every frame of a shorter video):
a detection that shows up once is dropped. Only each track's ``best`` faces so
far are kept, so memory stays bounded whatever the length. A damaged or truncated video keeps
what was decoded before the damage, with the error naming the file.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ._deps import require
from .detect.blazeface import box_iou

if TYPE_CHECKING:
    from .faces import FaceScorer

__all__ = ["MIN_TRACK_FRAMES", "TRACK_IOU", "VIDEO_SUFFIXES", "VideoFace", "VideoReport", "best_faces", "is_video",
           "mp4_index_missing", "sampled_frames"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts"})
#: a face continues a track when its box overlaps the track's last box at least this much
TRACK_IOU = 0.3
#: sampled frames a track needs a face in to be reported (fewer when the video has fewer frames)
MIN_TRACK_FRAMES = 2


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoFace:
    """One of a track's best faces: where and when in the video, and its score (``rank`` 0 is the best)."""

    path: str
    track: int
    rank: int
    frame: int
    time: float
    box: tuple[float, float, float, float]
    confidence: float
    score: float
    crop: Image.Image | None = field(default=None, repr=False, compare=False)


@dataclass
class VideoReport:
    """A video's best faces per track, how many frames were scored, and the error that ended decoding early."""

    path: str
    faces: list[VideoFace]
    frames: int
    error: str | None = None


class VideoError(Exception):
    """Decoding stopped: the message names the file and what went wrong."""


def sampled_frames(path: str | os.PathLike[str], fps: float | None = None) -> Iterator[tuple[int, float, Image.Image]]:
    """(frame index, seconds, RGB image) of the first video stream, one frame per ``1 / fps`` seconds (all without).

    Raises:
        VideoError: the file cannot be opened, or decoding fails (after the frames decoded before).
    """
    av = require("av", "video", extra="detect")
    step = 1.0 / fps if fps else 0.0
    due = 0.0
    decoded = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                msg = f"{path}: no video stream"
                raise VideoError(msg)
            for index, frame in enumerate(container.decode(video=0)):
                decoded += 1
                seconds = float(frame.time) if frame.time is not None else index * step
                if seconds + 1e-6 < due:
                    continue
                due = seconds + step
                yield index, seconds, frame.to_image().convert("RGB")
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if not decoded and mp4_index_missing(path):
            msg = (f"{path}: the MP4 container's index (its moov box) is missing, so no frame can be found: the file "
                   "was cut short or never finished writing (a file written with +faststart keeps its index first)")
        else:
            msg = f"{path}: cannot decode the video further ({' '.join(str(exc).split())[:200]})"
        raise VideoError(msg) from exc


def mp4_index_missing(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an MP4/QuickTime file (its first box is ``ftyp``) whose top-level boxes hold no ``moov``."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            position, kinds = 0, []
            while position + 8 <= size:
                f.seek(position)
                head = f.read(16)
                length, kind = int.from_bytes(head[:4], "big"), head[4:8]
                if length == 1 and len(head) == 16:  # a 64-bit size follows the type
                    length = int.from_bytes(head[8:16], "big")
                kinds.append(kind)
                if length < 8:  # 0: the box runs to the end of the file; below 8: not a box
                    break
                position += length
    except OSError:
        return False
    return bool(kinds) and kinds[0] == b"ftyp" and b"moov" not in kinds


def best_faces(scorer: FaceScorer, path: str | os.PathLike[str], *, best: int = 3, fps: float | None = 5.0) -> VideoReport:
    """Each track's ``best`` faces in the video at ``path`` (tracks numbered in order of appearance)."""
    if best < 1:
        msg = f"best must be at least 1, got {best}"
        raise ValueError(msg)
    last_box: list[np.ndarray] = []
    kept: list[list[tuple[float, int, VideoFace]]] = []  # per track, a min-heap of its best faces
    hits: list[int] = []  # per track, the sampled frames it has a face in
    order = itertools.count()
    frames, error = 0, None
    try:
        for index, seconds, image in sampled_frames(path, fps):
            frames += 1
            taken: set[int] = set()
            for face in scorer.score(image):
                assert face.box is not None and face.confidence is not None and face.score is not None  # scored
                box = np.array(face.box)
                overlaps = [box_iou(box, b) if t not in taken else 0.0 for t, b in enumerate(last_box)]
                track = int(np.argmax(overlaps)) if overlaps and max(overlaps) >= TRACK_IOU else len(last_box)
                if track == len(last_box):
                    last_box.append(box)
                    kept.append([])
                    hits.append(0)
                last_box[track] = box
                taken.add(track)
                hits[track] += 1
                item = VideoFace(str(path), track, 0, index, seconds, face.box, face.confidence, face.score, face.crop)
                entry: tuple[float, int, VideoFace] = (face.score, -next(order), item)  # ties: the earlier frame stays
                if len(kept[track]) < best:
                    heapq.heappush(kept[track], entry)
                else:
                    heapq.heappushpop(kept[track], entry)
    except VideoError as exc:
        error = str(exc)
    people = [heap for heap, n in zip(kept, hits) if n >= min(MIN_TRACK_FRAMES, frames)]
    faces = [replace(item, track=person, rank=rank)  # people numbered in order of appearance
             for person, heap in enumerate(people) for rank, (_, _, item) in enumerate(sorted(heap, reverse=True))]
    return VideoReport(str(path), faces, frames, error)
