"""Images per second of ``fiqa-edge score`` in one process and of ``score --ray`` with 1 and 2 scorer actors.

    python -m fiqa_edge.benchmarks.cluster_bench --copies 30 --out docs/bench/cluster

The photos are the 40 bundled sample faces copied ``--copies`` times under other names (JPEG files on the
local disk). Each command runs end to end as a user runs it (a fresh process: imports, model loading, for
``--ray`` starting a local Ray instance and its actors); the fixed cost of Ray is the time of a ``--ray`` run of
one block of 8 photos, and the per-actor rate is (images) / (run time - fixed cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fiqa_edge.assets import SAMPLES_DIR


def _photos(root: Path, copies: int) -> int:
    faces = sorted(SAMPLES_DIR.glob("*/*.jpg"))
    for k in range(copies):
        folder = root / f"set{k:03d}"
        folder.mkdir(parents=True)
        for face in faces:
            shutil.copy(face, folder / face.name)
    return copies * len(faces)


def _timed(args: list[str]) -> float:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "fiqa_edge", "score", *args, "-q"], capture_output=True, text=True,
                         check=False)
    if run.returncode != 0:
        msg = f"score {' '.join(args)} failed: {run.stderr[-500:]}"
        raise RuntimeError(msg)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=30, help="copies of the 40 sample faces")
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = _photos(root / "photos", args.copies)
        few = root / "few"
        few.mkdir()
        for face in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:8]:
            shutil.copy(face, few / face.name)
        one = _timed([str(root / "photos"), "--csv", str(root / "one.csv")])
        fixed = _timed([str(few), "--ray", "--out", str(root / "fixed"), "--actors", "1", "--block-size", "8"])
        ray = {n: _timed([str(root / "photos"), "--ray", "--out", str(root / f"ray{n}"), "--actors", str(n),
                          "--block-size", str(args.block_size)]) for n in (1, 2)}
    result = {"images": images, "cpus": os.cpu_count(), "block_size": args.block_size,
              "one_process_s": one, "one_process_img_s": images / one, "ray_fixed_s": fixed,
              "ray": {str(n): {"s": t, "img_s": images / t, "img_s_after_fixed_cost": images / max(t - fixed, 1e-9)}
                      for n, t in ray.items()}}
    lines = [f"{images} photos (the bundled model, 224 px ONNX fp32; {os.cpu_count()} CPUs; each run a fresh process)", "",
             "| command | seconds | images/s | images/s after Ray's fixed cost |", "|---|---|---|---|",
             f"| `score` (one process) | {one:.1f} | {images / one:.1f} | |",
             f"| `score --ray`, 8 photos (Ray's fixed cost) | {fixed:.1f} | | |"]
    for n, t in ray.items():
        lines.append(f"| `score --ray --actors {n}` | {t:.1f} | {images / t:.1f} | {images / max(t - fixed, 1e-9):.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
