"""Face detectors side by side on real faces: the comparison behind ``score --detect``'s choice (docs/faces.md).

    python -m fiqa_edge.benchmarks.compare_detectors --lfw ../shared/data/lfw

Candidates: BlazeFace full range, short range and both merged (``fiqa_edge.detect``), dlib's HOG
detector (``labels`` extra) and OpenCV's frontal Haar cascade
(``opencv-python-headless`` < 5); those not installed are listed as such.
Measured: the faces found in the test group photos against the counts made by
looking (``benchmarks/data/photos/faces.csv``, installed with the package); recall of the portrait's own face on
random LFW images; recall of portraits pasted small into 640×480 and
1920×1080 frames (known places, the same frames for every detector); median
milliseconds per frame of each size.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Boxes = list[tuple[float, float, float, float]]
#: group photos with their faces counted by looking (faces.csv), installed with the package
PHOTOS = Path(__file__).resolve().parent / "data" / "photos"
FRAMES = 4  # frames per frame size and portrait size, six portraits each


def _detectors() -> dict[str, Callable[[Image.Image], Boxes] | str]:
    found: dict[str, Callable[[Image.Image], Boxes] | str] = {}
    from fiqa_edge.detect import FaceFinder

    for name, title in (("both", "BlazeFace both (the default)"), ("full", "BlazeFace full range"),
                        ("short", "BlazeFace short range")):
        found[title] = _boxes_of(FaceFinder(name))
    try:
        import dlib

        hog = dlib.get_frontal_face_detector()
        found["dlib HOG (1 upsample)"] = lambda im: [(r.left(), r.top(), r.right(), r.bottom())
                                                    for r in hog(np.asarray(im), 1)]
    except ImportError:
        found["dlib HOG (1 upsample)"] = "not installed (pip install 'fiqa-edge[labels]')"
    try:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 (which the labels extra installs) has no Haar cascades
            raise ImportError
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
        found["OpenCV Haar (frontal default)"] = lambda im: [
            (x, y, x + w, y + h) for x, y, w, h in cascade.detectMultiScale(
                cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY), scaleFactor=1.1, minNeighbors=5, minSize=(20, 20))]
    except ImportError:
        found["OpenCV Haar (frontal default)"] = "not installed (pip install 'opencv-python-headless<5')"
    return found


def _boxes_of(finder) -> Callable[[Image.Image], Boxes]:
    return lambda image: [face.box for face in finder.detect(image)]


def _hits(boxes: Boxes, centres: list[tuple[float, float]], radius: float) -> int:
    """How many of ``centres`` have a box centred within ``radius``."""
    mids = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes]
    return sum(any(math.dist(m, c) < radius for m in mids) for c in centres)


def _frames(lfw: Path, size: tuple[int, int], face_px: int, rng: random.Random) -> tuple[Image.Image, list]:
    """Six LFW portraits of ``face_px`` pixels pasted on a grey frame: the frame and the portraits' centres."""
    canvas = Image.new("RGB", size, (118, 120, 112))
    people = rng.sample(sorted(lfw.glob("*/*.jpg")), 6)
    centres = []
    for i, path in enumerate(people):
        x = int((i % 3 + 0.5) * size[0] / 3 - face_px / 2)
        y = int((i // 3 + 0.5) * size[1] / 2 - face_px / 2)
        canvas.paste(Image.open(path).convert("RGB").resize((face_px, face_px)), (x, y))
        centres.append((x + face_px / 2, y + face_px / 2))
    return canvas, centres


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, required=True, help="LFW's folder (one sub-folder per person)")
    parser.add_argument("--portraits", type=int, default=300, help="random LFW portraits for the central-face recall")
    args = parser.parse_args()
    rng = random.Random(0)
    counts = list(csv.DictReader((PHOTOS / "faces.csv").open()))
    portraits = rng.sample(sorted(args.lfw.glob("*/*.jpg")), args.portraits)
    sizes = {(640, 480): (40, 60, 80), (1920, 1080): (60, 80, 120)}
    frames = {(size, px): [_frames(args.lfw, size, px, rng) for _ in range(FRAMES)]
              for size, pxs in sizes.items() for px in pxs}
    print("| detector | group photos: count as counted by looking | faces found / counted | LFW portrait recall "
          "| small faces 640×480 (40/60/80 px portraits) | 1920×1080 (60/80/120 px) | ms per 640×480 | ms per 1920×1080 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, detect in _detectors().items():
        if isinstance(detect, str):
            print(f"| {name} | {detect} |||||||")
            continue
        right = found = counted = 0
        for row in counts:
            n = len(detect(Image.open(PHOTOS / row["image"]).convert("RGB")))
            right += int(row["faces_min"]) <= n <= int(row["faces_max"])
            found, counted = found + min(n, int(row["faces_max"])), counted + int(row["faces_min"])
        central = sum(_hits(detect(Image.open(p).convert("RGB")), [(125, 125)], 40) for p in portraits)
        small, times = {}, {}
        for size, pxs in sizes.items():
            cells, spent = [], []
            for px in pxs:
                hits = 0
                for frame, centres in frames[size, px]:
                    t0 = time.perf_counter()
                    boxes = detect(frame)
                    spent.append(time.perf_counter() - t0)
                    hits += _hits(boxes, centres, px / 3)
                cells.append(f"{hits}/{6 * FRAMES}")
            small[size], times[size] = " ".join(cells), 1e3 * float(np.median(spent))
        print(f"| {name} | {right}/{len(counts)} | {found}/{counted} | {central / len(portraits):.3f} "
              f"| {small[(640, 480)]} | {small[(1920, 1080)]} | {times[(640, 480)]:.0f} | {times[(1920, 1080)]:.0f} |")


if __name__ == "__main__":
    main()
