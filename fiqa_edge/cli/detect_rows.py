"""``fiqa-edge score --detect``: one row per face of each photo, each person's best faces of each video."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from .._atomic import atomic_path
from ..faces import NO_FACE, FaceScorer
from ..video import best_faces, is_video

__all__ = ["COLUMNS", "score_faces"]

#: the CSV columns (JSON keys: the same, ``box`` for x0..y1); frame, time_s and rank are for video rows
COLUMNS = ["path", "face", "x0", "y0", "x1", "y1", "confidence", "score", "error", "frame", "time_s", "rank"]


def _rows(scorer: FaceScorer, paths: list[Path], workers: int, best: int, fps: float) -> Iterator[dict]:
    """Rows in the order of ``paths`` (consecutive photos stream through the scorer's worker threads)."""
    photos: list[Path] = []

    def photo_rows() -> Iterator[dict]:
        for r in scorer.score_paths(photos, workers=workers):
            yield {"path": r.path, "face": r.face, "box": r.box, "confidence": r.confidence, "score": r.score,
                   "error": r.error, "crop": r.crop, "crop_name": f"face{r.face}"}
        photos.clear()

    for path in paths:
        if not is_video(path):
            photos.append(path)
            continue
        yield from photo_rows()
        report = best_faces(scorer, path, best=best, fps=fps)
        for f in report.faces:
            yield {"path": f.path, "face": f.track, "box": f.box, "confidence": f.confidence, "score": f.score,
                   "error": None, "frame": f.frame, "time_s": round(f.time, 3), "rank": f.rank, "crop": f.crop,
                   "crop_name": f"face{f.track}.rank{f.rank}"}
        if report.error or not report.faces:
            error = report.error or (f"{path}: {NO_FACE}" if report.frames else f"{path}: no frame decoded")
            yield {"path": str(path), "face": -1, "box": None, "confidence": None, "score": None, "error": error}
    yield from photo_rows()


def score_faces(scorer: FaceScorer, paths: list[Path], model: Path, *, workers: int, best: int,
                fps: float, csv_out: Path | None, json_out: Path | None, save_crops: Path | None,
                quiet: bool) -> int:
    """Write the rows (CSV to stdout unless --json alone), the crops asked for; the number of files that failed."""
    from . import _write_output

    rows: list[dict[str, Any]] = []
    failed: set[str] = set()
    place = {str(p): i for i, p in enumerate(paths, 1)}
    with tqdm(total=len(paths), unit="file", desc="scoring faces", disable=quiet or len(paths) < 2) as progress:
        for row in _rows(scorer, paths, workers, best, fps):
            if progress.n < place[row["path"]]:
                progress.update(place[row["path"]] - progress.n)
            crop = row.pop("crop", None)
            name = row.pop("crop_name", None)
            if row["error"]:
                tqdm.write(f"error: {row['error']}", file=sys.stderr)
                failed.add(row["path"])
            elif save_crops is not None and crop is not None:
                with atomic_path(save_crops / f"{place[row['path']]:04d}-{Path(row['path']).stem}.{name}.png") as tmp:
                    crop.save(tmp, format="PNG")
            rows.append(row)
    if csv_out or not json_out:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            box = [f"{v:.1f}" for v in r["box"]] if r["box"] else [""] * 4
            writer.writerow([r["path"], r["face"], *box, "" if r["confidence"] is None else f"{r['confidence']:.4f}",
                             "" if r["score"] is None else f"{r['score']:.6f}", r["error"] or "",
                             r.get("frame", ""), r.get("time_s", ""), r.get("rank", "")])
        _write_output(csv_out, buffer.getvalue())
    faces = sum(r["error"] is None for r in rows)
    backend, finder = scorer.scorer.backend, scorer.finder
    if json_out:
        report = {"model": str(model), "backend": backend.name, "arch": backend.arch,
                  "detector": finder.detector, "detection": finder.settings(), "framing": finder.framing.to_dict(), "files": len(paths),
                  "faces": faces, "failed": len(failed), "results": rows}
        _write_output(json_out, json.dumps(report, indent=2) + "\n")
    click.echo(f"scored {faces} faces in {len(paths) - len(failed)} of {len(paths)} files with {backend.name}",
               err=True)
    return len(failed)
