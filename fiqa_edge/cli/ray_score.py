"""``fiqa-edge score --ray``: the run on Ray and its summary on stderr."""

from __future__ import annotations

from pathlib import Path

import click

from ..cluster import parts_folder, score_dataset


def score_on_ray(inputs: list[str], out: Path, model: str | Path, *, quiet: bool, **settings) -> int:
    """Score ``inputs`` into ``out`` on Ray, print the summary; return how many inputs failed (error rows)."""
    if not quiet:
        click.echo(f"scoring on Ray into {out} (rerun the same command to resume)", err=True)
    summary = score_dataset(inputs, out, model, progress=not quiet, **settings)
    spread = ", ".join(f"{k} {v:.4f}" for k, v in summary.score_percentiles.items())
    click.echo(f"{summary.images} images in {summary.blocks} blocks ({summary.blocks_scored_now} scored now): "
               f"{summary.rows} rows, {summary.scored} scored, {summary.failed} failed; scores {spread}", err=True)
    if summary.accepted is not None:
        click.echo(f"accepted {summary.accepted}, rejected share {summary.rejected_share:.1%} "
                   f"(--min-quality {settings['min_quality']})", err=True)
    click.echo(f"{out}: Parquet; summary in {parts_folder(out) / '_summary.json'} ({summary.seconds:.1f} s)", err=True)
    return summary.failed
