"""Frames per second of a web bundle on a camera: detection, alignment and scoring in headless Chromium.

The browser's camera is a fake one (``--use-fake-device-for-media-stream``)
that loops a .y4m clip of a photo fitted to 640 × 480; the page scores the
camera's frames one after another, as the demo page's live view does, with
the camera settings (``short`` detector on the whole frame) and with the
photo settings (both detectors, tiles), and reports frames per second and the
median milliseconds of each step.

    python -m fiqa_edge.benchmarks.web_camera --bundle out/bundles/web-int8 --json docs/bench/web-camera.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fiqa_edge.converters.browser import BrowserSession

__all__ = ["camera_frame", "measure", "write_y4m"]

WILD = Path(__file__).parent / "data" / "wild"
#: a talking-head video frame from outside LFW (the test split of data/wild); its face is 300 px at 640 × 480
PHOTO = WILD / "franck_02888.jpg"
#: the settings measured: what the demo page's camera view uses, and what photos use
SETTINGS = {"camera": {"detector": "short", "tiles": False}, "photos": {"detector": "both", "tiles": True}}


def camera_frame(photo: Image.Image, size: tuple[int, int] = (640, 480), zoom: float = 1.0) -> Image.Image:
    """``photo`` as a camera frame of ``size``: the largest centred crop of its aspect ratio, shrunk by ``zoom``
    (above 1: closer), resized."""
    w, h = size
    scale = min(photo.width / w, photo.height / h) / zoom
    cw, ch = w * scale, h * scale
    x0, y0 = (photo.width - cw) / 2, (photo.height - ch) / 2
    return photo.convert("RGB").resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))


def write_y4m(frames: list[Image.Image], path: Path, fps: int = 10) -> Path:
    """A raw YUV 4:2:0 clip (.y4m, what Chromium's fake camera plays) of equally sized RGB ``frames``."""
    import av

    w, h = frames[0].size
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            planes = av.VideoFrame.from_ndarray(np.asarray(frame.convert("RGB")), format="rgb24").reformat(format="yuv420p")
            out.write(b"FRAME\n" + planes.to_ndarray().tobytes())
    return path


def measure(bundle: Path, clip: Path, seconds: float = 10.0, threads: int = 0) -> dict:
    """Frames per second of ``bundle`` on the camera playing ``clip``, per :data:`SETTINGS`."""
    with tempfile.TemporaryDirectory(prefix="fiqa-camera-") as tmp:
        (Path(tmp) / "bundle").symlink_to(bundle.resolve(), target_is_directory=True)
        with BrowserSession(Path(tmp), camera=clip) as browser:
            info = browser.call("load", bundle="/bundle/", threads=threads, camera=True)
            runs = {name: browser.call("cameraFps", seconds=seconds, options=options) for name, options in SETTINGS.items()}
    for run in runs.values():
        run["faces"] = {str(n): run["faces"].count(n) for n in sorted(set(run["faces"]))}
    return {"bundle": str(bundle), "precision": info["precision"], "threads": info["threads"],
            "isolated": info["crossOriginIsolated"], "runtime": f"{info['runtime']} {info['runtimeVersion']}",
            "detection_threaded": info["detection"]["threaded"], "settings": SETTINGS, "runs": runs}


def markdown(result: dict) -> str:
    lines = [f"{result['precision']} bundle, {result['threads']} WebAssembly threads, headless Chromium, "
             f"camera {'×'.join(map(str, next(iter(result['runs'].values()))['size']))}:", "",
             "| settings | frames/s | decode | detect | align | score | total (ms, medians) |", "|---|---|---|---|---|---|---|"]
    for name, run in result["runs"].items():
        ms = run["ms"]
        lines.append(f"| {name} ({SETTINGS[name]['detector']}, tiles {'on' if SETTINGS[name]['tiles'] else 'off'}) | "
                     f"{run['fps']:.1f} | " + " | ".join(f"{ms[k]:.1f}" for k in ("decode", "detect", "align", "score", "total"))
                     + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a web bundle (fiqa-edge convert --to web)")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the photo the camera shows (default: %(default)s)")
    parser.add_argument("--zoom", type=float, default=1.2, help="how much closer than the whole photo the camera is")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds measured per setting")
    parser.add_argument("--threads", type=int, default=0, help="WebAssembly threads (0: the page's default)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--markdown", type=Path, help="also write a table here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Image.open(args.photo) as photo:
        clip = write_y4m([camera_frame(photo, zoom=args.zoom)] * 10, Path(tmp) / "camera.y4m")
        result = measure(args.bundle, clip, args.seconds, args.threads)
    result["photo"] = args.photo.name
    table = markdown(result)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
