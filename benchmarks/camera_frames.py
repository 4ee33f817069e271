"""Does a model rank a camera's sharp frame above the same frame out of focus? On photos from outside LFW.

    python -m fiqa_edge.benchmarks.camera_frames --model v2=demo --model v3=runs/v3a/best.safetensors
    python -m fiqa_edge.benchmarks.camera_frames --model demo --split calibrate --json out.json

Each photo with counted faces in ``benchmarks/data/wild`` (the ``--split`` half) is taken as a frame at its
own size and resized to 480, 720 and 1080 lines. Every face the finder of ``score --detect`` finds there
(matching a counted face, at least ``--min-face`` px wide) is cut to the model's framing from the frame as it is
and from the frame blurred by a Gaussian of sigma = k x face width / 150, for k in :data:`BLURS`: as a camera
out of focus, at the face's own resolution. Per model:

- **mild blur lowers the score**: the share of faces scored lower at k = 1 than sharp;
- **Spearman**: the mean within-face Spearman correlation of blur (sharp, k = 1..5) against score (-1: the score
  falls at every step);
- **best frame is sharp**: per frame size, the share of faces whose best-scored copy is the sharp one, which is
  what ``score --best`` needs of a clip whose frames differ only in focus.

With ``--clips``, ``score --best`` itself is tried: each photo becomes a clip at 480, 720 and 1080 lines
(:data:`CLIP`: 3 sharp frames among 9 blurred by sigma = 1-5 x the largest counted face's width / 150, or with
``--clip-px`` :data:`CLIP_PX`: by sigma = 3-6 px of the frame, a camera out of focus whatever the face's size),
encoded as H.264 by PyAV, and :func:`fiqa_edge.video.best_faces` returns each person's 3 best frames; reported
per height: the people (tracks of a counted face) whose 3 best are the 3 sharp frames, and the blurred frames
returned.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy.stats import spearmanr
from tqdm import tqdm

from fiqa_edge.assets import named_model
from fiqa_edge.detect import LFW_FRAMING, Face, FaceFinder, Framing
from fiqa_edge.detect.blazeface import box_iou
from fiqa_edge.faces import FaceScorer
from fiqa_edge.framing import align_face
from fiqa_edge.imaging import load_image
from fiqa_edge.scorer import QualityScorer
from fiqa_edge.video import best_faces

from .detect_precision import MATCH_IOU, WILD, load_photos

#: blur sigmas, in face widths / 150
BLURS = (1, 2, 3, 4, 5)
#: frame heights the photos are also resized to (None: the photo as it is)
HEIGHTS = (None, 480, 720, 1080)
#: a clip's frames: 0 sharp, k the frame blurred by sigma = k x face width / 150
CLIP = (0, 1, 2, 0, 1, 3, 0, 1, 2, 4, 1, 5)
#: a clip's frames with ``px``: 0 sharp, s the frame blurred by sigma = s px
CLIP_PX = (0, 3, 4, 0, 5, 3, 0, 6, 4, 3, 5, 6)
#: the clips' frame heights
CLIP_HEIGHTS = (480, 720, 1080)


def _frame(image: Image.Image, height: int | None) -> tuple[Image.Image, float]:
    if height is None:
        return image, 1.0
    scale = height / image.height
    return image.resize((round(image.width * scale), height), Image.Resampling.LANCZOS), scale


def _counted_boxes(photo, scale: float) -> list[tuple[float, ...]]:
    """The photo's counted face boxes in a frame resized by ``scale``."""
    return [tuple(v * scale for v in box) for box in photo.faces]


def _is_counted(box, counted: list[tuple[float, ...]]) -> bool:
    return any(box_iou(box, c) >= MATCH_IOU for c in counted)


def _blurred_crops(frame: Image.Image, face: Face, framing: Framing) -> list[Image.Image]:
    """The face cut sharp, then from the frame blurred at each of :data:`BLURS` (only the region around the face)."""
    crops = [align_face(frame, face.eyes, framing)]
    x0, y0, x1, y1 = face.box
    for k in BLURS:
        sigma = k * face.width / 150
        pad = 1.5 * face.width + 4 * sigma
        left, top = max(0, int(x0 - pad)), max(0, int(y0 - pad))
        region = frame.crop((left, top, min(frame.width, int(x1 + pad) + 1), min(frame.height, int(y1 + pad) + 1)))
        right_eye, left_eye = (np.asarray(e) - (left, top) for e in face.eyes)
        crops.append(align_face(region.filter(ImageFilter.GaussianBlur(sigma)), (right_eye, left_eye), framing))
    return crops


def camera_response(models: dict[str, Path], split: str = "test", min_face: float = 48.0,
                    folder: Path = WILD) -> dict:
    """The three measures above, per model and frame size (see the module's docstring)."""
    scorers = {name: QualityScorer.load(path) for name, path in models.items()}
    framings = {s.framing or LFW_FRAMING for s in scorers.values()}
    if len(framings) != 1:
        msg = "the models frame faces differently; compare models of one framing"
        raise ValueError(msg)
    framing = framings.pop()
    finder = FaceFinder(framing=framing)
    photos = [p for p in load_photos(folder, split) if p.faces]
    series: dict[str, list[list[Image.Image]]] = {}
    for photo in tqdm(photos, desc="cutting faces", unit="photo"):
        image = load_image(folder / photo.name)
        for height in HEIGHTS:
            frame, scale = _frame(image, height)
            counted = _counted_boxes(photo, scale)
            for face in finder.detect(frame):
                if face.width >= min_face and _is_counted(face.box, counted):
                    series.setdefault(str(height or "native"), []).append(_blurred_crops(frame, face, framing))
    result: dict = {"split": split, "photos": len(photos), "blurs": list(BLURS), "min_face": min_face,
                    "faces": {h: len(s) for h, s in series.items()}, "models": {}}
    for name, scorer in scorers.items():
        rows: dict = {}
        for size, faces in series.items():
            scores = scorer.score_batch([c for crops in faces for c in crops]).reshape(len(faces), len(BLURS) + 1)
            rho = [spearmanr(np.arange(len(BLURS) + 1), s).statistic for s in scores]
            rows[size] = {"mild_blur_lower": float(np.mean(scores[:, 1] < scores[:, 0])),
                            "spearman": float(np.nanmean(rho)),
                            "best_is_sharp": float(np.mean(scores.argmax(axis=1) == 0))}
        every = list(rows.values())
        weights = [result["faces"][h] for h in rows]
        rows["all"] = {k: float(np.average([r[k] for r in every], weights=weights)) for k in every[0]}
        result["models"][name] = rows
    return result


def _write_clip(frames: list[Image.Image], path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())


def clip_best(models: dict[str, Path], split: str = "test", min_face: float = 48.0, folder: Path = WILD, *,
              px: bool = False) -> dict:
    """``score --best`` on H.264 clips of the photos, sharp frames among blurred ones (see the module's docstring)."""
    steps = CLIP_PX if px else CLIP
    best = steps.count(0)
    scorers = {name: FaceScorer(QualityScorer.load(path)) for name, path in models.items()}
    result: dict = {"split": split, "clip": list(steps), "sigma": "px" if px else "face width / 150", "best": best,
                    "models": {name: {} for name in models}}
    photos = [p for p in load_photos(folder, split) if p.faces]
    with tempfile.TemporaryDirectory() as tmp:
        for height in CLIP_HEIGHTS:
            counts = {name: [0, 0, 0] for name in models}  # people, people whose best are all sharp, blurred returned
            for photo in tqdm(photos, desc=f"clips at {height} lines", unit="clip"):
                image = load_image(folder / photo.name)
                frame, scale = _frame(image, height)
                frame = frame.crop((0, 0, frame.width // 2 * 2, frame.height // 2 * 2))  # H.264 wants even sides
                counted = _counted_boxes(photo, scale)
                unit = 1.0 if px else max(box[2] - box[0] for box in counted) / 150
                clip = Path(tmp) / f"{photo.name}-{height}.mp4"
                _write_clip([frame if k == 0 else frame.filter(ImageFilter.GaussianBlur(k * unit)) for k in steps], clip)
                for name, scorer in scorers.items():
                    by_track: dict[int, list] = {}
                    for face in best_faces(scorer, clip, best=best, fps=None).faces:
                        by_track.setdefault(face.track, []).append(face)
                    for faces in by_track.values():
                        box = faces[0].box
                        if box[2] - box[0] < min_face or not _is_counted(box, counted):
                            continue
                        blurred = sum(steps[face.frame] != 0 for face in faces)
                        counts[name][0] += 1
                        counts[name][1] += blurred == 0
                        counts[name][2] += blurred
            for name, (people, sharp, blurred) in counts.items():
                result["models"][name][str(height)] = {"people": people, "all_sharp": sharp / max(people, 1),
                                                       "blurred_returned": blurred}
    return result


def clips_markdown(result: dict) -> str:
    """One row per model: per clip height, people whose best frames are all sharp, and blurred frames returned."""
    heights = [str(h) for h in CLIP_HEIGHTS]
    lines = [f"`score --best {result['best']}` on H.264 clips ({len(result['clip'])} frames, {result['best']} sharp, "
             f"blur sigma in {result['sigma']} {sorted(set(result['clip']) - {0})}; {result['split']} split): people "
             "whose best frames are all sharp / blurred frames returned.", "",
             "| model | " + " | ".join(f"{h} lines" for h in heights) + " |", "|---" * (len(heights) + 1) + "|"]
    for name, rows in result["models"].items():
        cells = [f"{rows[h]['all_sharp'] * rows[h]['people']:.0f} of {rows[h]['people']} / {rows[h]['blurred_returned']}"
                 for h in heights]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """One table per measure: models by frame size."""
    heights = list(result["faces"])
    lines = [f"Photos: {result['photos']} ({result['split']} split); faces per frame size: "
             + ", ".join(f"{h} {n}" for h, n in result["faces"].items()) + "."]
    for key, title in (("mild_blur_lower", "share of faces scored lower at sigma = width / 150"),
                       ("spearman", "mean Spearman of blur (sharp, 1-5 x width / 150) against score"),
                       ("best_is_sharp", "share of faces whose best copy is the sharp one")):
        lines += ["", f"{title}:", "", "| model | " + " | ".join(heights) + " | all |",
                  "|---" * (len(heights) + 2) + "|"]
        for name, rows in result["models"].items():
            lines.append(f"| {name} | " + " | ".join(f"{rows[h][key]:.3f}" for h in [*heights, "all"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="[NAME=]MODEL",
                        help="a checkpoint, bundle or bundled name; repeat to compare")
    parser.add_argument("--split", default="test", choices=["test", "calibrate"],
                        help="which half of the photos (calibrate: for choosing a model; test: for reporting)")
    parser.add_argument("--min-face", type=float, default=48.0, help="smallest face width used, px")
    parser.add_argument("--clips", action="store_true", help="also try `score --best` on H.264 clips of the photos")
    parser.add_argument("--clip-px", action="store_true",
                        help="blur the clips' frames by 3-6 px instead of 1-5 x the face's width / 150")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    models = dict(named_model(m) for m in args.model)
    result = camera_response(models, args.split, args.min_face)
    print(markdown(result))
    if args.clips:
        result["clips"] = clip_best(models, args.split, args.min_face, px=args.clip_px)
        print("\n" + clips_markdown(result["clips"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
