"""The ``fiqa-edge`` command line: a thin layer over the library.

Heavy packages are imported inside each command, so ``fiqa-edge --help`` and
``fiqa-edge score`` with a light backend never load torch.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import FiqaError



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
@click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
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
    from .assets import default_model_path
    from .backends import open_backend
    from .scoring import collect_images, score_paths

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
        from ._atomic import atomic_write_text

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
    from .benchmarks.cost import model_cost
    from .zoo import create_model, get_model_cfg, is_model, load_model

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
    from .zoo import get_model_cfg, list_models

    for name in list_models(pattern):
        cfg = get_model_cfg(name)
        click.echo(f"{name:<20} {cfg.input_size:>4}px  {cfg.description}")


@main.group()
def train() -> None:
    """Train FIQA models: the whole recipe, or one model.

    Configs are YAML files (see train/configs/ in the repository). Under
    torchrun, training and pseudo-labelling use every process:
    torchrun --standalone --nproc_per_node=N -m fiqa_edge train recipe --config C --out RUN
    """


@train.command("recipe")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder (created; reused to resume).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def train_recipe(config_path: Path, out: Path, quiet: bool) -> None:
    """Teacher → pseudo-label U1 → teacher+ → pseudo-label U2 → student, then a test table.

    Finished stages are skipped and an interrupted one resumes from its last
    epoch, so the same command finishes a run that was stopped. Writes
    OUT/summary.json (srcc, plcc, krcc, rmse, score, params, gflops,
    checkpoint for teacher, teacher_plus and student).
    """
    from .train.config import load_config
    from .train.distributed import setup
    from .train.recipe import format_summary, run_recipe

    cfg = load_config(config_path)
    dist = setup()
    summary = run_recipe(cfg, out, dist, progress=not quiet)
    if dist.main:
        click.echo(format_summary(summary))
        click.echo(f"summary: {out / 'summary.json'}")


@train.command("fit")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for best.safetensors, last.pt, history.json.")
@click.option("--model", "section", type=click.Choice(["teacher", "student"]), default="student", show_default=True,
              help="Which model section of the config to train.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def train_fit(config_path: Path, out: Path, section: str, quiet: bool) -> None:
    """Train one model on the config's labelled set (resumes from OUT/last.pt)."""
    from .train.config import load_config
    from .train.distributed import setup
    from .train.engine import fit
    from .train.recipe import labelled_splits

    cfg = load_config(config_path)
    dist = setup()
    train_items, val_items, _ = labelled_splits(cfg)
    result = fit(getattr(cfg, section), train_items, val_items, cfg.data.root, out, seed=cfg.seed, dist=dist, progress=not quiet)
    if dist.main:
        v = result.best_val
        click.echo(f"best epoch {result.best_epoch}: SRCC {v['srcc']:.4f} PLCC {v['plcc']:.4f} -> {result.best}")


@train.command("report")
@click.option("--run", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="A finished recipe run folder.")
@click.option("--labels", "labels_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The `fiqa-edge label utility` output folder (test.csv, embeddings.npz).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="The image folder.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="LFW pairs.txt.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for report.md, report.json, edc.png.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
def train_report(run: Path, labels_dir: Path, root: Path, pairs: Path, out: Path, workers: int) -> None:
    """Test table with the Laplacian baseline, and Error-versus-Discard curves on verification pairs."""
    from .train.report import make_report

    make_report(run, labels_dir, root, pairs, out, workers=workers)
    click.echo((out / "report.md").read_text())


@main.command("pseudo-label")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="Trained checkpoint.")
@click.option("--arch", help="Architecture of --model. Default: recognised from the file.")
@click.option("--images", type=click.Path(exists=True, path_type=Path), required=True, help="Folder or CSV (first column) of images.")
@click.option("--fit-on", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Label CSV (image,score) the raw scores are mapped onto.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder image paths are relative to. Default: the --images folder, or the CSV's folder.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV path,raw_score,score (+ .json record).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def pseudo_label_command(model: Path, arch: str | None, images: Path, fit_on: Path, root: Path | None, out: Path,
                         batch_size: int, workers: int, quiet: bool) -> None:
    """Score unlabelled faces and map the scores onto the label scale (4-parameter logistic)."""
    from .train.data import read_image_list, read_labels
    from .train.distributed import setup
    from .train.pseudo_label import pseudo_label
    from .zoo import load_model

    root = root or (images if images.is_dir() else images.parent)
    dist = setup()
    record = pseudo_label(load_model(model, arch=arch), read_image_list(images, root), read_labels(fit_on, root),
                          root, out, dist, batch_size=batch_size, workers=workers, progress=not quiet)
    if dist.main:
        fit = record["fit_on"]
        click.echo(f"{record['images'] - record['failed']} images -> {out} (fit on {fit['images']} labels: SRCC {fit['srcc']:.4f})")


@main.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arch", help="Architecture of CHECKPOINT. Default: recognised from the file.")
@click.option("--to", "targets", default="all", show_default=True,
              help="Comma-separated targets (see below), or 'all' for every target this machine can build.")
@click.option("--precision", "precisions", default="fp32,fp16,int8", show_default=True, help="Comma-separated precisions.")
@click.option("--calib", "calib", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Calibration faces (files or folders; repeatable). Default: the bundled sample faces.")
@click.option("--validate", "validate", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Faces for the parity check against torch fp32. Default: the bundled sample faces.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bundles"), show_default=True,
              help="One bundle folder per artifact is written here: OUT/<target>-<precision>/.")
@click.option("--max-abs", type=float, help="Widen the fp32 bound on max |Δscore| (default 1e-4).")
@click.option("--min-srcc", type=float, help="Widen every precision's SRCC bound to this value.")
@click.option("--min-plcc", type=float, help="Widen the int8 PLCC bound to this value.")
def convert(checkpoint: Path | None, arch: str | None, targets: str, precisions: str, calib: tuple[Path, ...],
            validate: tuple[Path, ...], out: Path, max_abs: float | None, min_srcc: float | None, min_plcc: float | None) -> None:
    """Export a checkpoint (default: the bundled model) to deployable bundles, validated against torch.

    Each bundle holds the model file and fiqa.json (preprocessing, precision,
    source SHA-256, parity figures, reference scores). An artifact outside its
    parity bound (fp32: max |Δ| <= 1e-4 and SRCC >= 0.9999; fp16: SRCC >= 0.999;
    int8: SRCC and PLCC >= 0.995) is not written, and the exit status is 1.
    """
    from dataclasses import replace

    from .assets import default_model_path, sample_faces
    from .converters.convert import convert as run_convert
    from .converters.targets import TARGETS
    from .converters.validate import BOUNDS
    from .scoring import collect_images
    from .zoo import load_model

    wanted = list(TARGETS) if targets == "all" else [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        raise click.UsageError(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)} or all")
    precs = [p.strip() for p in precisions.split(",") if p.strip()]
    bad = [p for p in precs if p not in BOUNDS]
    if bad:
        raise click.UsageError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(BOUNDS)}")
    bounds = {k: replace(b, srcc=min_srcc if (min_srcc is not None and b.srcc is not None) else b.srcc,
                         plcc=min_plcc if (min_plcc is not None and b.plcc is not None) else b.plcc,
                         max_abs=max_abs if (max_abs is not None and b.max_abs is not None) else b.max_abs)
              for k, b in BOUNDS.items()}
    loaded = load_model(checkpoint or default_model_path(), arch=arch)
    results = run_convert(loaded, wanted, precs, collect_images(calib) if calib else sample_faces(),
                          collect_images(validate) if validate else sample_faces(), out, bounds=bounds)
    click.echo(f"{'target':<8}{'precision':<11}{'status':<8}{'MB':>7}{'s':>7}{'max |Δ|':>10}{'SRCC':>9}  bundle / error")
    for r in results:
        if r.error:
            click.echo(f"{r.target:<8}{r.precision:<11}{'FAILED':<8}{'':>7}{r.seconds:>7.1f}{'':>10}{'':>9}  {r.error}")
        else:
            p = r.parity
            click.echo(f"{r.target:<8}{r.precision:<11}{'ok':<8}{r.size_mb:>7.2f}{r.seconds:>7.1f}{p['max_abs']:>10.1e}{p['srcc']:>9.5f}  {r.bundle}")
    if any(r.error for r in results):
        sys.exit(1)


@main.group()
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
    from .assets import sample_faces
    from .benchmarks.pseudo_label_speed import run
    from .scoring import collect_images
    from .zoo import create_model, get_model_cfg, load_model

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


@main.group()
def label() -> None:
    """Make quality labels for face sets that have no opinion scores."""


@label.command("utility")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Face folders, one per identity: NAME/NAME_0001.jpg (the LFW layout).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for train/val/test.csv, U1/U2.csv, labels.json and the embedding cache.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="LFW pairs.txt: also embed its images, for Error-versus-Discard evaluation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--copies", type=click.IntRange(min=0), default=2, show_default=True, help="Degraded copies per image.")
@click.option("--max-per-identity", type=click.IntRange(min=2), default=6, show_default=True)
@click.option("--impostors", type=click.IntRange(min=10), default=500, show_default=True,
              help="Clean images of other people each face is compared with.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def label_utility(images: Path, out: Path, pairs: Path | None, seed: int, copies: int, max_per_identity: int,
                  impostors: int, workers: int) -> None:
    """Label faces by how well dlib's recogniser matches them to their own identity.

    Needs the `labels` extra (dlib-bin, face-recognition-models). Interrupted
    runs resume from the embedding cache in OUT/cache.
    """
    from .train.utility_labels import UtilityConfig, make_utility_labels

    cfg = UtilityConfig(images=images, out=out, seed=seed, copies=copies, max_per_identity=max_per_identity,
                        impostors=impostors, pairs=pairs, workers=workers)
    summary = make_utility_labels(cfg)
    click.echo(json.dumps(summary["counts"]))
