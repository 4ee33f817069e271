"""The ``fiqa-edge`` command line: a thin layer over the library.

This module holds the group and the scoring commands; the other command
families live in sibling modules and are attached at the end. Heavy packages
are imported inside each command, so ``fiqa-edge --help`` and ``fiqa-edge
score`` with a light backend never load torch.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import FiqaError


class _Group(click.Group):
    """Turns library errors into one ``Error: ...`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FiqaError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fiqa-edge")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """Face image quality assessment, from training to edge devices.

    Scores are on the model's label scale; higher means a better face image.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path),
              help="Checkpoint (.pt/.pth/.safetensors), .onnx file or bundle folder. Default: the bundled model.")
@click.option("--arch", help="Architecture of --model (see `fiqa-edge models`). Default: recognised from the file.")
@click.option("--input-size", type=click.IntRange(min=16), help="Preprocessing size N. Default: the model's.")
@click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime", "openvino"]), default="auto", show_default=True,
              help="Inference backend; auto: from the bundle's manifest or the file suffix.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the CSV here (default: stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def score(
    images: tuple[Path, ...],
    model: Path | None,
    arch: str | None,
    input_size: int | None,
    backend: str,
    batch_size: int,
    csv_out: Path | None,
    quiet: bool,
) -> None:
    """Score face images: files and folders (walked recursively).

    Writes a CSV with columns path,score,error. A file that cannot be read gets
    an empty score, its reason in the error column and one line on stderr; the
    others are still scored. Exit status: 0 when every file was scored, 1 when
    any failed (or on a usage/model error).
    """
    from ..assets import default_model_path
    from ..backends import open_backend
    from ..scoring import collect_images, score_paths

    paths = collect_images(images)
    if not paths:
        raise click.ClickException("no images found in " + ", ".join(map(str, images)))
    engine = open_backend(backend, model or default_model_path(), arch=arch, input_size=input_size)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "score", "error"])
    failed = 0
    for result in score_paths(paths, engine, batch_size=batch_size, progress=not quiet):
        if result.error:
            failed += 1
            click.echo(f"error: {result.error}", err=True)
        writer.writerow([result.path, "" if result.score is None else f"{result.score:.6f}", result.error or ""])
    if csv_out:
        from .._atomic import atomic_write_text

        atomic_write_text(csv_out, buffer.getvalue())
        click.echo(f"scored {len(paths) - failed} of {len(paths)} images -> {csv_out}", err=True)
    else:
        click.echo(buffer.getvalue(), nl=False)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("model")
@click.option("--arch", help="Architecture of MODEL when it is a checkpoint. Default: recognised from the file.")
@click.option("--input-size", type=click.IntRange(min=16), help="Input size for the FLOPs count. Default: the model's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(model: str, arch: str | None, input_size: int | None, as_json: bool) -> None:
    """Architecture, parameters and GFLOPs of MODEL (a checkpoint or a model name).

    GFLOPs follow the challenge's convention (fvcore: a multiply-add counts
    once); the full count of torch's flop counter (multiply-add = 2) is shown too.
    """
    from ..benchmarks.cost import model_cost
    from ..zoo import create_model, get_model_cfg, is_model, load_model

    if Path(model).exists() or not is_model(model):
        loaded = load_model(model, arch=arch, input_size=input_size)
        net, name, size, sha = loaded.model, loaded.arch, loaded.input_size, loaded.sha256
    else:
        net, name, size, sha = create_model(model), model, input_size or get_model_cfg(model).input_size, None
    cost = model_cost(net, size)
    report = {"model": str(model), "arch": name, "sha256": sha, **cost.to_dict()}
    if as_json:
        click.echo(json.dumps(report, indent=2))
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
    """List the registered architectures (any timm model is also usable as timm:<name>)."""
    from ..zoo import get_model_cfg, list_models

    for name in list_models(pattern):
        cfg = get_model_cfg(name)
        click.echo(f"{name:<20} {cfg.input_size:>4}px  {cfg.description}")


from . import bench as _bench, convert as _convert, train as _train  # noqa: E402  (attach the other commands)

main.add_command(_train.train)
main.add_command(_train.pseudo_label_command)
main.add_command(_train.label)
main.add_command(_convert.convert)
main.add_command(_bench.bench)
