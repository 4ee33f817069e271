"""Precision and recall of ``score --detect``'s face finder on photos from outside LFW, by face size.

    python -m fiqa_edge.benchmarks.detect_precision                 # the default finder, test split
    python -m fiqa_edge.benchmarks.detect_precision --detector full --min-confidence 0.5 --per-image

The photos (``benchmarks/data/wild``, installed with the package; sources and
licences in its README) are portraits, group photos and hard negatives (hands,
face masks, animals, charts, text, textures). ``faces.json`` holds every face
counted by looking, as a box, and the faces one cannot count either way (a
reflection) to ignore; each photo is in the ``calibrate`` split (what the
finder's thresholds were chosen on) or the ``test`` split (what its figures are
reported on). Each photo is also searched shrunk by each ``--scales`` factor,
its boxes with it, so every face is tried at several sizes.

A found box is a face found when its IoU with a counted face is at least 0.4
(each counted face matched once, most confident box first); a box on an
ignored face counts for nothing; any other box is a false face.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from fiqa_edge.detect.blazeface import box_iou

#: the photos and their faces (faces.json), installed with the package
WILD = Path(__file__).resolve().parent / "data" / "wild"
MATCH_IOU = 0.4
#: face-size bins (box width in pixels at the size searched): lower bounds
SIZES = (0, 16, 32, 64, 128)
Box = tuple[float, float, float, float]
Detect = Callable[[Image.Image], list[Box]]


@dataclass(frozen=True)
class Photo:
    name: str
    faces: list[Box]
    ignore: list[Box]
    split: str


@dataclass
class Tally:
    """What one finder did on a set of photos."""

    found: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SIZES, 0))    # faces found, by size bin
    counted: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SIZES, 0))  # faces counted, by size bin
    false: int = 0               # boxes on no face
    images: int = 0
    negatives: int = 0           # images with no face counted
    negatives_with_faces: list[str] = field(default_factory=list)
    per_image: list[dict] = field(default_factory=list)

    def recall(self, smallest: int = 32) -> float:
        """Recall over the faces at least ``smallest`` pixels wide."""
        counted = sum(n for s, n in self.counted.items() if s >= smallest)
        return sum(n for s, n in self.found.items() if s >= smallest) / max(counted, 1)

    @property
    def precision(self) -> float:
        found = sum(self.found.values())
        return found / max(found + self.false, 1)

    def to_dict(self) -> dict:
        bins = {_bin_name(s): {"found": self.found[s], "counted": self.counted[s]} for s in SIZES}
        return {"precision": self.precision, "recall_32px_up": self.recall(32), "recall_all": self.recall(0),
                "false_faces": self.false, "false_per_image": self.false / max(self.images, 1), "images": self.images,
                "negatives": self.negatives, "negatives_with_faces": self.negatives_with_faces, "by_size": bins,
                **({"per_image": self.per_image} if self.per_image else {})}


def load_photos(folder: Path = WILD, split: str = "test") -> list[Photo]:
    """The photos of ``split`` (``calibrate``, ``test`` or ``all``) with their counted faces."""
    table = json.loads((folder / "faces.json").read_text())
    return [Photo(name, [tuple(b) for b in rec["faces"]], [tuple(b) for b in rec["ignore"]], rec["split"])
            for name, rec in table.items() if split in ("all", rec["split"])]


def _bin_name(lower: int) -> str:
    upper = [s for s in SIZES if s > lower]
    return f"{lower}-{upper[0] - 1} px" if upper else f">={lower} px"


def _size_bin(width: float) -> int:
    return max(s for s in SIZES if width >= s)


def match(found: Sequence[Box], faces: Sequence[Box], ignore: Sequence[Box] = ()) -> tuple[list[bool], int]:
    """Which counted faces were found, and how many boxes were false (``found`` most confident first)."""
    hit, false = [False] * len(faces), 0
    for box in found:
        ious = [0.0 if hit[i] else box_iou(box, face) for i, face in enumerate(faces)]
        if ious and max(ious) >= MATCH_IOU:
            hit[int(np.argmax(ious))] = True
        elif not any(box_iou(box, other) >= MATCH_IOU for other in ignore):
            false += 1
    return hit, false


def evaluate(detect: Detect, photos: Sequence[Photo], folder: Path = WILD, scales: Sequence[float] = (1.0,),
             per_image: bool = False) -> Tally:
    """Run ``detect`` (an image → boxes, most confident first) on each photo at each scale and tally."""
    tally = Tally()
    for photo in tqdm(photos, desc="photos", unit="photo", leave=False):
        with Image.open(folder / photo.name) as opened:
            image = opened.convert("RGB")
        for scale in scales:
            shrunk = image if scale == 1 else image.resize((max(1, round(image.width * scale)),
                                                            max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
            faces = [tuple(v * scale for v in b) for b in photo.faces]
            hit, false = match(detect(shrunk), faces, [tuple(v * scale for v in b) for b in photo.ignore])
            for face, found in zip(faces, hit):
                size = _size_bin(face[2] - face[0])
                tally.counted[size] += 1
                tally.found[size] += found
            tally.false += false
            tally.images += 1
            if not photo.faces:
                tally.negatives += 1
                if false:
                    tally.negatives_with_faces.append(f"{photo.name}@{scale:g}")
            if per_image:
                tally.per_image.append({"image": photo.name, "scale": scale, "counted": len(faces),
                                        "found": sum(hit), "false": false})
    return tally


def finder_boxes(detector: str = "both", min_confidence: float | None = None) -> Detect:
    """``detect`` for :func:`evaluate`: the boxes of ``score --detect``'s finder with these settings."""
    from fiqa_edge.detect import FaceFinder

    finder = FaceFinder(detector, min_confidence=min_confidence)
    return lambda image: [face.box for face in finder.detect(image)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", default="both,full,short", help="finders to compare, comma-separated (default: all)")
    parser.add_argument("--min-confidence", type=float, default=None, help="override the finder's thresholds")
    parser.add_argument("--split", default="test", choices=("test", "calibrate", "all"))
    parser.add_argument("--scales", default="1,0.5,0.25", help="shrink factors each photo is also searched at")
    parser.add_argument("--per-image", action="store_true", help="also list faces found and false faces per image")
    parser.add_argument("--json", type=Path, help="write the tallies here as JSON")
    args = parser.parse_args()
    photos = load_photos(split=args.split)
    scales = [float(s) for s in args.scales.split(",")]
    faces = sum(len(p.faces) for p in photos)
    print(f"{len(photos)} photos ({sum(not p.faces for p in photos)} with no face), {faces} faces counted, "
          f"split {args.split}, scales {args.scales}")
    print("| finder | precision | recall ≥32 px | recall (all) | false faces | negatives with a face "
          "| found/counted by face width: " + " / ".join(_bin_name(s) for s in SIZES) + " |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for name in args.detector.split(","):
        tally = evaluate(finder_boxes(name, args.min_confidence), photos, scales=scales, per_image=args.per_image)
        results[name] = tally.to_dict()
        bins = " / ".join(f"{tally.found[s]}/{tally.counted[s]}" for s in SIZES)
        print(f"| {name} | {tally.precision:.3f} | {tally.recall(32):.3f} | {tally.recall(0):.3f} | {tally.false} "
              f"| {len(tally.negatives_with_faces)}/{tally.negatives} | {bins} |")
        for row in tally.per_image:
            if row["false"] or row["found"] < row["counted"]:
                print(f"    {row['image']} @{row['scale']:g}: found {row['found']}/{row['counted']}, false {row['false']}")
    if args.json:
        args.json.write_text(json.dumps({"split": args.split, "scales": scales, "min_confidence": args.min_confidence,
                                         "finders": results}, indent=1))


if __name__ == "__main__":
    main()
