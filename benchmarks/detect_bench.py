"""``fiqa-edge bench --detect``: the time of scoring the faces in frames, step by step, per frame size.

Each frame is a scene of six bundled sample portraits (3 × 2, each scaled to its
cell), rendered at every frame size asked for, so the sizes differ only in
resolution. Per frame: BlazeFace detection, alignment of every face found,
the scorer (preprocessing and one model call for the frame's faces); medians
over the frames, and faces per second over the whole pass, after one untimed
pass (OpenVINO compiles a model per new batch size the first time it sees
one). Frames are made in memory (decoding is not timed). Then a 4 s H.264
clip of the scenes (10 frames/s) goes through the video mode, every frame:
its frames per second end to end, decoding and tracking included.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._deps import is_available
from ..assets import SAMPLES_DIR
from ..detect import FaceFinder, align_face
from ..faces import FaceScorer
from ..preprocess import preprocess
from ..scorer import QualityScorer
from ..video import best_faces

CLIP_FPS = 10

__all__ = ["DetectTiming", "detect_table", "time_detection"]


@dataclass(frozen=True)
class DetectTiming:
    """Medians per frame (ms) and the end-to-end rate of one frame size."""

    width: int
    height: int
    frames: int
    faces_per_frame: float
    detect_ms: float
    align_ms: float
    score_ms: float
    total_ms: float
    faces_per_s: float
    video_fps: float | None  # frames/s of `score clip --detect` on an H.264 clip of the scenes (None: no PyAV)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scenes(size: tuple[int, int], count: int) -> list[Image.Image]:
    portraits = sorted(SAMPLES_DIR.glob("*/*.jpg"))
    cell = (size[0] // 3, size[1] // 2)
    scenes = []
    for k in range(count):
        frame = Image.new("RGB", size, (110, 112, 105))
        for i in range(6):
            face = Image.open(portraits[(6 * k + i) % len(portraits)]).convert("RGB")
            side = min(cell)
            frame.paste(face.resize((side, side), Image.Resampling.BILINEAR),
                        ((i % 3) * cell[0] + (cell[0] - side) // 2, (i // 3) * cell[1] + (cell[1] - side) // 2))
        scenes.append(frame)
    return scenes


def time_detection(scorer: QualityScorer, finder: FaceFinder, sizes: list[tuple[int, int]], frames: int = 6,
                   ) -> list[DetectTiming]:
    """Time detection, alignment and scoring on ``frames`` scenes at each of ``sizes`` (after one untimed pass)."""
    timings = []
    for size in sizes:
        scenes = _scenes(size, frames)
        for scene in scenes:  # one untimed pass: interpreters made, a backend's per-batch-size compiles done
            found = finder.detect(scene)
            if found:
                scorer.backend.predict(np.stack([preprocess(align_face(scene, f.eyes, finder.framing), scorer.spec)
                                                 for f in found]))
        detect, align, score, faces = [], [], [], 0
        for scene in scenes:
            t0 = time.perf_counter()
            found = finder.detect(scene)
            t1 = time.perf_counter()
            crops = [align_face(scene, face.eyes, finder.framing) for face in found]
            t2 = time.perf_counter()
            if crops:
                scorer.backend.predict(np.stack([preprocess(c, scorer.spec) for c in crops]))
            t3 = time.perf_counter()
            detect.append(t1 - t0)
            align.append(t2 - t1)
            score.append(t3 - t2)
            faces += len(found)
        total = [a + b + c for a, b, c in zip(detect, align, score)]
        timings.append(DetectTiming(size[0], size[1], frames, faces / frames, 1e3 * statistics.median(detect),
                                    1e3 * statistics.median(align), 1e3 * statistics.median(score),
                                    1e3 * statistics.median(total), faces / sum(total), _video_fps(scorer, finder, scenes)))
    return timings


def _video_fps(scorer: QualityScorer, finder: FaceFinder, scenes: list[Image.Image], seconds: int = 4) -> float | None:
    """Frames/s end to end (decode, detect, align, score, track) over every frame of a clip of the scenes."""
    if not is_available("av"):
        return None
    import av

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "scenes.mp4"
        with av.open(str(clip), "w") as container:
            stream = container.add_stream("libx264", rate=CLIP_FPS)
            stream.width, stream.height, stream.pix_fmt = scenes[0].width, scenes[0].height, "yuv420p"
            for i in range(seconds * CLIP_FPS):
                for packet in stream.encode(av.VideoFrame.from_image(scenes[(i // CLIP_FPS) % len(scenes)])):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        t0 = time.perf_counter()
        report = best_faces(FaceScorer(scorer, finder), clip, fps=None)
        return report.frames / (time.perf_counter() - t0)


def detect_table(timings: list[DetectTiming], detector: str, backend: str) -> str:
    lines = [f"faces in frames: BlazeFace '{detector}' + the {backend} scorer, medians per frame",
             f"{'frame':>10} {'faces':>6} {'detect ms':>10} {'align ms':>9} {'score ms':>9} {'total ms':>9} {'faces/s':>8}"
             f" {'video frames/s':>15}"]
    for t in timings:
        video = "no PyAV" if t.video_fps is None else f"{t.video_fps:.1f}"
        lines.append(f"{t.width:>5}x{t.height:<4} {t.faces_per_frame:>6.1f} {t.detect_ms:>10.1f} {t.align_ms:>9.1f} "
                     f"{t.score_ms:>9.1f} {t.total_ms:>9.1f} {t.faces_per_s:>8.1f} {video:>15}")
    return "\n".join(lines) + "\n"
