"""``fiqa-edge calibrate``: measure a checkpoint's score distribution on reference faces and record it."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--images", required=True, type=click.Path(exists=True, path_type=Path),
              help="Reference faces: a folder (walked recursively) or a CSV whose first column is the image.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the CSV's image paths start from. Default: the CSV's folder.")
@click.option("--reference", help="How the record describes the faces. Default: 'N images of IMAGES'.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Decode threads.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def calibrate(checkpoint: Path, images: Path, root: Path | None, reference: str | None, workers: int,
              quiet: bool) -> None:
    """Score reference faces with CHECKPOINT and store their percentiles 1-99 in its metadata.

    `fiqa-edge convert` copies the record into every bundle it makes from the
    checkpoint, so every precision reports the same percentile and 0-100
    quality for a face (`score`'s percentile and quality columns). Use faces
    like those the model will score (at least 100; unreadable ones are named
    and left out).
    """
    from tqdm import tqdm

    from ..image_lists import read_image_list
    from ..score_scale import ScoreScale
    from ..scorer import QualityScorer
    from ..zoo.checkpoint import record_scale

    base = root or (images if images.is_dir() else images.parent)
    paths = [base / item.image for item in read_image_list(images, base)]
    scorer = QualityScorer.load(checkpoint, "torch")
    scores = []
    for result in tqdm(scorer.score_paths(paths, workers=workers), total=len(paths), unit="img",
                       desc="scoring reference faces", disable=quiet):
        if result.error:
            tqdm.write(f"error: {result.error}; left out", file=sys.stderr)
        else:
            scores.append(result.score)
    scale = ScoreScale.from_scores(scores, reference or f"{len(scores)} images of {images}")
    record_scale(checkpoint, scale)
    p = scale.percentiles
    click.echo(f"{checkpoint}: scale recorded from {scale.faces} faces ({scale.reference}): "
               f"p1 {p[0]:.4f}, p10 {p[9]:.4f}, p50 {p[49]:.4f}, p90 {p[89]:.4f}, p99 {p[98]:.4f}", err=True)
