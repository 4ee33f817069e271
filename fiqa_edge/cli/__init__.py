"""The ``fiqa-edge`` command line: a thin layer over the library.

This module holds the group and the scoring commands; the other command
families live in sibling modules and are attached at the end. Heavy packages
are imported inside each command, so ``fiqa-edge --help`` and ``fiqa-edge
score`` with a light backend never load torch.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import sys
from pathlib import Path

import click

from .. import __version__
from .._output import configure_logging
from ..backends import BACKENDS
from ..errors import FiqaError
from ..imaging import DEFAULT_MAX_PIXELS
from ..video import MIN_TRACK_FRAMES
from ._options import json_option, legacy_argument, model_option, take_model

BACKEND_NAMES = list(BACKENDS)


class _Group(click.Group):
    """Turns library errors into one ``Error: ...`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FiqaError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fiqa-edge")
@click.option("-v", "--verbose", is_flag=True,
              help="Log progress details to stderr, and what exporters and quantizers print (hidden otherwise).")
def main(verbose: bool) -> None:
    """Face image quality assessment, from training to edge devices.

    Scores are on the model's label scale; higher means a better face image.
    """
    configure_logging(verbose)


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-m", "--model", type=click.Path(path_type=Path),
              help="Bundle folder, .onnx, OpenVINO .xml, TensorRT .engine, CoreML .mlpackage, torch checkpoint, or a "
                   "bundled model's name (`fiqa-edge models`: demo, demo-v2, demo-v1). Default: the bundled demo model.")
@click.option("--backend", type=click.Choice(["auto", *BACKEND_NAMES]), default="auto", show_default=True,
              help="Inference backend. auto: a bundle's own backend; for a file, the installed backend that reads it.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Images per model call.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Threads decoding and preprocessing while the model runs (0: decode in the main thread).")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads of the backend. Default: the backend's choice.")
@click.option("--device", help="Backend device: cpu/cuda (torch, onnxruntime), CPU/GPU (openvino). Default: the backend's.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the CSV (path,score,error; percentile,quality when the model records a scale, accepted with "
                   "--min-quality; --detect: see below) here; '-' for stdout. Default: stdout unless --json is given.")
@json_option("Write a JSON report to PATH ('-' or no PATH: stdout): model, backend, counts and one result per image.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse larger images (decompression-bomb guard).")
@click.option("--arch", help="Architecture of a torch checkpoint (see `fiqa-edge models`). Default: recognised from the file.")
@click.option("--input-size", type=click.IntRange(min=16), help="Preprocessing size N of a torch checkpoint. Default: the model's.")
@click.option("--detect", is_flag=True,
              help="Find the faces in each photo (BlazeFace; pip install 'fiqa-edge[detect]'), crop each to the "
                   "model's training framing and score each: one row per face.")
@click.option("--detector", type=click.Choice(["both", "full", "short"]), default="both", show_default=True,
              help="With --detect: BlazeFace 'full' range (small and distant faces), 'short' range (faces near the "
                   "camera), or both merged (the best recall, about 1.6x full's time).")
@click.option("--min-confidence", type=click.FloatRange(0, 1),
              help="With --detect: one detector threshold for every model and pass. Default: the calibrated ones "
                   "(precision 0.99, recall 0.99 for faces of 32 px or more on photos from outside LFW; docs/faces.md). "
                   "Lower finds more small, turned and covered faces, and more things that are not faces.")
@click.option("--max-faces", type=click.IntRange(min=1), help="With --detect: at most N faces per photo, the most confident.")
@click.option("--min-face", type=click.FloatRange(min=0), default=0, show_default=True,
              help="With --detect: ignore faces whose box is narrower than PX pixels.")
@click.option("--save-crops", type=click.Path(file_okay=False, path_type=Path),
              help="With --detect: write each aligned crop the model scored to this folder (NNNN-<photo>.face<K>.png; "
                   "for a video its best faces, NNNN-<video>.face<track>.rank<R>.png; NNNN the file's place in the run).")
@click.option("--best", type=click.IntRange(min=1), default=3, show_default=True,
              help="Videos (with --detect): the best N faces of each person in each video. A person is a track of "
                   f"boxes overlapping from one sampled frame to the next, seen in at least {MIN_TRACK_FRAMES} sampled "
                   "frames (a face found in fewer is dropped).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Videos: frames scored per second of video.")
@click.option("--min-quality", help="Accept faces at or above this: a score (0.62), a percentile among the model's "
                                   "reference faces (30p) or a 0-100 quality (55q); adds the column 'accepted'.")
@click.option("--accept-to", type=click.Path(file_okay=False, path_type=Path),
              help="With --min-quality: copy accepted files here (never overwriting).")
@click.option("--reject-to", type=click.Path(file_okay=False, path_type=Path),
              help="With --min-quality: copy rejected files here (never overwriting).")
@click.option("--move", is_flag=True, help="Move instead of copying with --accept-to / --reject-to.")
@click.option("--ray", "on_ray", is_flag=True,
              help="Score on a Ray cluster (pip install 'fiqa-edge[cluster]') into the Parquet dataset --out: inputs "
                   "may also be Parquet tables (a 'path' or an 'image' bytes column), .txt/.csv file lists and fsspec "
                   "URIs; resumable, every input exactly once (docs/cluster.md).")
@click.option("--ray-address", help="With --ray: the cluster's address (host:port, ray://...). Default: a local Ray instance.")
@click.option("--out", "ray_out", type=click.Path(path_type=Path),
              help="With --ray: the Parquet dataset folder (part files, _run.json, _summary.json), or a .parquet file "
                   "(made from the parts in OUT.parts/ when every block is done); rerun to resume.")
@click.option("--actors", type=click.IntRange(min=1), default=2, show_default=True,
              help="With --ray: scorer actors (each loads the model once and takes one CPU).")
@click.option("--block-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="With --ray: images per block, the unit of work, output file and resume.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def score(
    images: tuple[Path, ...],
    model: Path | None,
    backend: str,
    batch_size: int,
    workers: int,
    threads: int | None,
    device: str | None,
    csv_out: Path | None,
    json_out: Path | None,
    max_pixels: int,
    arch: str | None,
    input_size: int | None,
    detect: bool,
    detector: str,
    min_confidence: float | None,
    max_faces: int | None,
    min_face: float,
    save_crops: Path | None,
    best: int,
    fps: float,
    min_quality: str | None,
    accept_to: Path | None,
    reject_to: Path | None,
    move: bool,
    on_ray: bool,
    ray_address: str | None,
    ray_out: Path | None,
    actors: int,
    block_size: int,
    quiet: bool,
) -> None:
    """Score face images: files and folders (walked recursively).

    Each file gets a score, or an empty score and the reason in the error
    column plus one `error:` line on stderr; the other files are still scored.
    Images are decoded upright (EXIF orientation applied) and preprocessed as
    the model's manifest says.

    With --detect, each photo gets one row per face found (columns path, face,
    x0, y0, x1, y1, confidence, score, error, frame, time_s, rank; faces counted
    from 0, most confident first), each face cropped to the framing of the
    model's training faces before the model's own preprocessing; a photo with no
    face gets one row with the error "no face found". Videos (.mp4, .mov, .mkv,
    .webm, .avi, ...) are decoded with PyAV, --fps frames a second are scored,
    and the --best faces of each person are reported (face: the person's track,
    boxes overlapping from frame to frame; frame, time_s, rank); a damaged video
    keeps the rows of the frames decoded before the damage, plus an error row.

    Exit status: 0 when every file was scored; 1 when any file failed, or on a
    usage or model error.
    """
    from PIL import Image
    from tqdm import tqdm

    from ..assets import default_model_path
    from ..imaging import IMAGE_SUFFIXES, collect_images
    from ..scorer import QualityScorer
    from ..video import VIDEO_SUFFIXES

    if on_ray or ray_out or ray_address:
        from .ray_score import score_on_ray

        if not (on_ray and ray_out):
            msg = "--ray needs --out (the Parquet dataset), and --out and --ray-address need --ray"
            raise click.UsageError(msg)
        if csv_out or json_out or accept_to or reject_to or move or save_crops or max_faces or min_face or arch or input_size:
            msg = ("with --ray the output is the Parquet dataset --out (its 'accepted' column is the curation list): "
                   "--csv, --json, --accept-to, --reject-to, --move, --save-crops, --max-faces, --min-face, --arch and "
                   "--input-size do not apply")
            raise click.UsageError(msg)
        if detect and min_quality:
            msg = "--min-quality judges whole images; it does not combine with --detect"
            raise click.UsageError(msg)
        failed = score_on_ray([str(i) for i in images], ray_out, model or default_model_path(backend), backend=backend,
                              detect=detect, detector=detector, min_confidence=min_confidence, min_quality=min_quality,
                              address=ray_address, actors=actors, block_size=block_size, batch_size=batch_size,
                              threads=threads or 1, quiet=quiet)
        if failed:
            sys.exit(1)
        return
    paths = collect_images(images, suffixes=IMAGE_SUFFIXES | VIDEO_SUFFIXES if detect else IMAGE_SUFFIXES)
    if not paths:
        raise click.ClickException("no images found in " + ", ".join(map(str, images)))
    Image.MAX_IMAGE_PIXELS = None  # the scorer's own --max-pixels check replaces Pillow's process-wide one
    model = model or default_model_path(backend)
    scorer = QualityScorer.load(model, backend=backend, threads=threads, device=device, max_pixels=max_pixels,
                                arch=arch, input_size=input_size)
    if detect and (min_quality or accept_to or reject_to or move):
        msg = "--min-quality and the curation flags judge whole images; they do not combine with --detect"
        raise click.UsageError(msg)
    if detect:
        from ..detect import FaceFinder
        from ..faces import FaceScorer
        from ..framing import LFW_FRAMING
        from .detect_rows import score_faces

        finder = FaceFinder(detector, framing=scorer.framing or LFW_FRAMING, max_faces=max_faces, min_face=min_face,
                            min_confidence=min_confidence)
        failed = score_faces(FaceScorer(scorer, finder), paths, model, workers=workers, best=best, fps=fps, csv_out=csv_out,
                             json_out=json_out, save_crops=save_crops, quiet=quiet)
        if failed:
            sys.exit(1)
        return
    if save_crops or max_faces or min_face or min_confidence is not None:
        msg = "--save-crops, --max-faces, --min-face and --min-confidence need --detect"
        raise click.UsageError(msg)
    if (accept_to or reject_to or move) and not min_quality:
        msg = "--accept-to, --reject-to and --move need --min-quality"
        raise click.UsageError(msg)
    from ..curation import sort_file

    try:
        scorer.min_quality = min_quality
    except FiqaError as exc:
        raise click.BadParameter(str(exc), param_hint="--min-quality") from exc
    threshold = scorer.min_quality
    results, unsorted = [], set()
    for result in tqdm(scorer.score_paths(paths, batch_size=batch_size, workers=workers), total=len(paths),
                       unit="img", desc="scoring", disable=quiet or len(paths) < 2):
        if result.error:
            tqdm.write(f"error: {result.error}", file=sys.stderr)
        elif result.accepted is not None:
            folder = accept_to if result.accepted else reject_to
            if folder is not None:
                try:
                    sort_file(result.path, folder, move=move)
                except FiqaError as exc:
                    tqdm.write(f"error: {exc}", file=sys.stderr)
                    unsorted.add(result.path)
        results.append(result)
    failed = sum(r.error is not None for r in results) + len(unsorted)
    if csv_out or not json_out:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        placed = scorer.scale is not None  # the model records a scale: percentile and 0-100 quality too
        writer.writerow(["path", "score", "error", *(["percentile", "quality"] if placed else []),
                         *(["accepted"] if threshold else [])])
        for r in results:
            extra = [("" if v is None else f"{v:.2f}") for v in (r.percentile, r.quality)] if placed else []
            if threshold:
                extra.append("" if r.accepted is None else "yes" if r.accepted else "no")
            writer.writerow([r.path, "" if r.score is None else f"{r.score:.6f}", r.error or "", *extra])
        _write_output(csv_out, buffer.getvalue())
    if json_out:
        report = {
            "model": str(model), "backend": scorer.backend.name, "arch": scorer.backend.arch,
            "images": len(results), "scored": len(results) - failed, "failed": failed,
            "scale": scorer.scale.to_dict() if scorer.scale else None,
            "min_quality": threshold.__dict__ if threshold else None,
            "results": [{"path": r.path, "score": r.score, "error": r.error, "percentile": r.percentile,
                         "quality": r.quality, "accepted": r.accepted} for r in results],
        }
        _write_output(json_out, json.dumps(report, indent=2) + "\n")
    click.echo(f"scored {len(results) - failed} of {len(results)} images with {scorer.backend.name}", err=True)
    if failed:
        sys.exit(1)


def _write_output(path: Path | None, text: str) -> None:
    """Write ``text`` to ``path`` atomically, or to stdout for None or '-'."""
    if path is None or str(path) == "-":
        click.echo(text, nl=False)
    else:
        from .._atomic import atomic_write_text

        atomic_write_text(path, text)


@main.command()
@legacy_argument("legacy_model")
@model_option("A checkpoint, a bundled model's name or an architecture's name (see `fiqa-edge models`). Default: demo.")
@click.option("--arch", help="Architecture of --model when it is a checkpoint. Default: recognised from the file.")
@click.option("--input-size", type=click.IntRange(min=16), help="Input size for the FLOPs count. Default: the model's.")
@json_option("Write JSON instead of a table to PATH ('-' or no PATH: stdout).")
def info(legacy_model: str | None, model: str | None, arch: str | None, input_size: int | None,
         json_out: str | None) -> None:
    """Architecture, parameters and GFLOPs of a model (a checkpoint or a model name).

    GFLOPs follow the challenge's convention (fvcore: a multiply-add counts
    once); the full count of torch's flop counter (multiply-add = 2) is shown too.
    """
    from ..zoo import create_model, get_model_cfg, is_model, load_model
    from ..zoo.cost import model_cost

    model = take_model(model, legacy_model) or "demo"
    if Path(model).exists() or not is_model(model):
        loaded = load_model(model, arch=arch, input_size=input_size)
        net, name, size, sha = loaded.model, loaded.arch, loaded.input_size, loaded.sha256
    else:
        net, name, size, sha = create_model(model), model, input_size or get_model_cfg(model).input_size, None
    cost = model_cost(net, size)
    report = {"model": str(model), "arch": name, "sha256": sha, **cost.to_dict()}
    if json_out:
        _write_output(Path(json_out), json.dumps(report, indent=2) + "\n")
        return
    rows = [
        ("architecture", name),
        ("parameters", f"{cost.params:,} ({cost.params / 1e6:.4f} M)"),
        ("input", f"3×{size}×{size}"),
        ("GFLOPs (fvcore, MAC = 1)", f"{cost.gflops:.4f}"),
        ("GFLOPs (torch flop counter, full count)", f"{cost.gflops_torch:.4f}"),
    ]
    if sha:
        rows.append(("sha256", sha))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@main.command()
@click.argument("pattern", default="*")
def models(pattern: str) -> None:
    """List the registered architectures (any timm model is also usable as timm:<name>) and the bundled models
    (usable by name as --model)."""
    from ..assets import BUNDLED_MODELS
    from ..zoo import get_model_cfg, list_models

    for name in list_models(pattern):
        cfg = get_model_cfg(name)
        official = f" (official checkpoint: {cfg.official_name})" if cfg.official_name else ""
        click.echo(f"{name:<20} {cfg.input_size:>4}px  {cfg.description}{official}")
    for name, bundled in BUNDLED_MODELS.items():
        if fnmatch.fnmatch(name, pattern):
            click.echo(f"{name:<20} bundled  {bundled.summary} ({bundled.path.name})")


# the other command families, attached last (they import this module's group)
from . import bench as _bench  # noqa: E402
from . import calibrate as _calibrate  # noqa: E402
from . import convert as _convert  # noqa: E402
from . import serve as _serve  # noqa: E402
from . import train as _train  # noqa: E402

main.add_command(_train.train)
main.add_command(_train.pseudo_label_command)
main.add_command(_train.label)
main.add_command(_convert.convert)
main.add_command(_serve.serve)
main.add_command(_bench.bench)
main.add_command(_calibrate.calibrate)
