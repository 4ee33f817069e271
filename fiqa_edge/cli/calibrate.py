"""``fiqa-edge calibrate``: measure a model's score distribution (and operating points) and record them."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from ..operating_points import FMRS
from ._options import legacy_argument, list_option, model_option, take_model

if TYPE_CHECKING:
    from ..score_scale import ScoreScale
    from ..scorer import QualityScorer


def _fmr(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        msg = f"a false match rate is between 0 and 1, got {text}"
        raise ValueError(msg)
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@legacy_argument("legacy_model")
@model_option("The checkpoint or bundle to calibrate (the record is written into it). Required.")
@click.option("--images", required=True, type=click.Path(exists=True, path_type=Path),
              help="Reference faces: a folder (walked recursively) or a CSV whose first column is the image.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the CSV's and the pairs' image paths start from. Default: the CSV's (or pairs') folder.")
@click.option("--reference", help="How the record describes the faces. Default: 'N images of IMAGES'.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Identity pairs for operating points: LFW pairs.txt, or a CSV image_a,image_b,same[,distance].")
@click.option("--embeddings", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Face embeddings of the pairs' images (.npz with arrays images, vectors; "
                   "`fiqa-edge label embed` writes one with dlib). Not needed when the pairs CSV has distances.")
@click.option("--distance", type=click.Choice(["euclidean", "cosine"]), default="euclidean", show_default=True,
              help="How two embeddings are compared.")
@list_option("--fmr", "fmrs", kind=_fmr,
             help=f"False match rates to fix the comparison threshold at (repeat or separate by commas). "
                  f"Default: {', '.join(map(str, FMRS))}.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a PNG: the reference scores' histogram with the thresholds marked, and with --pairs "
                   "the error-versus-discard curves with the operating points (needs matplotlib).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Decode threads.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def calibrate(legacy_model: str | None, model: str | None, images: Path, root: Path | None, reference: str | None, pairs: Path | None,
              embeddings: Path | None, distance: str, fmrs: tuple[float, ...], plot: Path | None, workers: int,
              quiet: bool) -> None:
    """Score reference faces with --model and store what its scores mean in it.

    The model is a checkpoint (the record goes into its metadata; `fiqa-edge
    convert` copies it into every bundle it makes, so every precision reports
    the same percentile and 0-100 quality for a face) or a bundle (its
    fiqa.json and the manifest inside its model file). Recorded: the
    percentiles 1-99 of the faces' scores (at least 100 faces; unreadable ones
    are named and left out) and, with --pairs, operating points: for rejecting
    the lowest 5/10/20 % of pairs, the score threshold and the false non-match
    rate at each FMR before and after. Use faces like those the model will score.
    """
    from .._deps import require
    from ..image_lists import read_image_list
    from ..operating_points import OperatingPoints, load_embeddings, pair_distances, read_pairs
    from ..score_scale import ScoreScale
    from ..scorer import QualityScorer

    given = take_model(model, legacy_model)
    if given is None:
        msg = "calibrate needs the model to record the scale in: --model PATH"
        raise click.UsageError(msg)
    path = Path(given)
    if not path.exists():
        msg = f"{path}: no such checkpoint or bundle"
        raise click.BadParameter(msg, param_hint="--model")
    if plot is not None:
        require("matplotlib", "calibrate --plot")
    scorer = QualityScorer.load(path)  # a checkpoint runs on torch, a bundle on its own backend
    base = root or (images if images.is_dir() else images.parent)
    refs = [item.image for item in read_image_list(images, base)]
    reference_scores = np.array(list(_scores(scorer, refs, base, workers, quiet, "scoring reference faces").values()))
    scale = ScoreScale.from_scores(reference_scores, reference or f"{len(reference_scores)} images of {images}")
    comparisons = None
    if pairs is None:
        click.echo("no --pairs: the distribution is recorded, no operating points", err=True)
    else:
        pair_root = root or pairs.parent
        listed, dist = pair_distances(read_pairs(pairs), load_embeddings(embeddings) if embeddings else None,
                                      distance, origin=str(pairs))
        scores = _scores(scorer, sorted({r for p in listed for r in (p.a, p.b)}), pair_root, workers, quiet,
                         "scoring pair images")
        kept = [i for i, p in enumerate(listed) if p.a in scores and p.b in scores]
        used = [listed[i] for i in kept]
        same = np.array([p.same for p in used])
        qa, qb = np.array([scores[p.a] for p in used]), np.array([scores[p.b] for p in used])
        points = OperatingPoints.measure(
            dist[kept], same, qa, qb, np.array([scores[r] for r in {r for p in used for r in (p.a, p.b)}]),
            reference=f"{len(used)} pairs of {pairs}", metric=distance, fmrs=fmrs or FMRS)
        scale = scale.with_operating_points(points)
        comparisons = (dist[kept], same, np.minimum(qa, qb))
    if plot is not None:
        _plot(plot, reference_scores, scale, comparisons)
    where = _record(path, scorer, scale)
    p = scale.percentiles
    click.echo(f"{where}: scale recorded from {scale.faces} faces ({scale.reference}): "
               f"p1 {p[0]:.4f}, p10 {p[9]:.4f}, p50 {p[49]:.4f}, p90 {p[89]:.4f}, p99 {p[98]:.4f}", err=True)
    if scale.operating_points:
        click.echo(_points_table(scale), err=True)


def _scores(scorer: QualityScorer, refs: list[str], root: Path, workers: int, quiet: bool,
            desc: str) -> dict[str, float]:
    """Score of each readable image (``path`` or a degraded copy ``path#kind=strength``, relative to ``root``);
    the others are named on stderr and left out."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ..degrade import open_image_ref
    from ..errors import ImageError

    def prepared(ref: str) -> np.ndarray | str:
        try:
            return scorer.prepare(open_image_ref(ref, root))
        except ImageError as exc:
            return str(exc)

    out: dict[str, float] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=len(refs), unit="img", desc=desc,
                                                          disable=quiet) as bar:
        for start in range(0, len(refs), 32):
            chunk = list(zip(refs[start : start + 32], pool.map(prepared, refs[start : start + 32])))
            for _, x in chunk:
                if isinstance(x, str):
                    tqdm.write(f"error: {x}; left out", file=sys.stderr)
            ready = [(ref, x) for ref, x in chunk if not isinstance(x, str)]
            if ready:
                out.update(zip([r for r, _ in ready], scorer.backend.predict(np.stack([x for _, x in ready])).tolist()))
            bar.update(len(chunk))
    return out


def _record(model: Path, scorer: QualityScorer, scale: ScoreScale) -> Path:
    """Store ``scale`` in the checkpoint's metadata, or in the bundle's fiqa.json and model file."""
    from ..converters.targets import TARGETS
    from ..zoo.checkpoint import record_scale

    manifest = getattr(scorer.backend, "manifest", None)
    if manifest is None:
        return record_scale(model, scale)
    folder = model if model.is_dir() else model.parent
    updated = replace(manifest, scale=scale)
    embedders = [c for c in TARGETS.values() if c.backend == manifest.backend]
    if embedders:
        embedders[0].embed_manifest(folder / manifest.model_file, updated)
    updated.save(folder)
    return folder


def _plot(path: Path, reference_scores: np.ndarray, scale: ScoreScale,
          comparisons: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> None:
    """Histogram of the reference scores with the operating points' thresholds; EDC curves with the points."""
    import matplotlib

    from .._atomic import atomic_path
    from ..edc import edc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = scale.operating_points
    fig, axes = plt.subplots(1, 2 if ops else 1, figsize=(11 if ops else 5.5, 4), squeeze=False)
    hist = axes[0, 0]
    hist.hist(reference_scores, bins=60, color="0.6")
    hist.set(title=f"{scale.faces} reference faces", xlabel="score", ylabel="faces")
    if ops is not None and comparisons is not None:
        first = [p for p in ops.points if p.fmr == ops.points[0].fmr]
        for p, color in zip(first, ("C1", "C2", "C3")):
            hist.axvline(p.threshold, color=color, label=f"reject below {p.threshold:.4f} "
                                                         f"({100 * p.discard:.0f} % of pairs discarded)")
        hist.legend(fontsize=8)
        curve_ax = axes[0, 1]
        for k, fmr in enumerate(sorted({p.fmr for p in ops.points})):
            curve = edc(*comparisons, fmr=fmr)
            curve_ax.plot(100 * curve.discard, curve.fnmr, color=f"C{k}", label=f"FMR {fmr:g}")
            marked = [p for p in ops.points if p.fmr == fmr]
            curve_ax.plot([100 * p.discard for p in marked], [p.fnmr_after for p in marked], "o", color=f"C{k}")
        curve_ax.set(title=f"error versus discard, {ops.pairs} pairs", xlabel="pairs discarded (%)", ylabel="FNMR")
        curve_ax.grid(alpha=0.3)
        curve_ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _points_table(scale: ScoreScale) -> str:
    ops = scale.operating_points
    assert ops is not None
    lines = [f"operating points on {ops.pairs} pairs ({ops.genuine} same-person), {ops.distance} distance:",
             "  FMR     reject below  percentile  faces rejected  pairs discarded  FNMR before -> after"]
    for p in ops.points:
        lines.append(f"  {p.fmr:<7g} {p.threshold:<13.4f} {scale.percentile(p.threshold):<11.1f} "
                     f"{100 * p.rejected:<15.1f} {100 * p.discard:<16.0f} {p.fnmr_before:.4f} -> {p.fnmr_after:.4f}"
                     f" ({-100 * p.fnmr_fall:+.1f} %)")
    return "\n".join(lines)

