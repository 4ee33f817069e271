"""``fiqa-edge bench``: measured speed and accuracy figures."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def bench() -> None:
    """Benchmarks: measured speed and accuracy figures."""


@bench.command("pseudo-label")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint. Default: the student architecture with random weights (speed does not depend on them).")
@click.option("--images", type=click.Path(exists=True, path_type=Path), help="Folder of faces. Default: the bundled sample faces.")
@click.option("--input-size", type=click.IntRange(min=16), help="Default: the model's (352 for the student).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_pseudo_label(model: Path | None, images: Path | None, input_size: int | None, batch_size: int, workers: int, as_json: bool) -> None:
    """Batched pseudo-labelling against the official per-image loop: images/s, ratio, score agreement."""
    from ..assets import sample_faces
    from ..benchmarks.pseudo_label_speed import run
    from ..scorer import collect_images
    from ..zoo import create_model, get_model_cfg, load_model

    if model:
        loaded = load_model(model, input_size=input_size)
        net, arch, spec = loaded.model, loaded.arch, loaded.spec
    else:
        arch = "fiqa_edgenext_xxs"
        net, spec = create_model(arch), get_model_cfg(arch).preprocessing(input_size)
    size = spec.input_size
    paths = collect_images([images]) if images else sample_faces()
    result = run(net, paths, spec, batch_size=batch_size, workers=workers)
    if as_json:
        click.echo(json.dumps({"arch": arch, "input_size": size, **result.to_dict()}, indent=2))
    else:
        click.echo(f"{arch} at {size} px, {result.images} images, {result.threads} threads\n"
                   f"per-image loop : {result.per_image_ips:7.2f} img/s\n"
                   f"batched loader : {result.batched_ips:7.2f} img/s (batch {batch_size}, {workers} workers)\n"
                   f"ratio          : {result.ratio:7.2f}x   max |score difference| {result.max_abs_diff:.2e}")
