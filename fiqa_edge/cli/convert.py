"""``fiqa-edge convert``: deployable bundles, validated against torch."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arch", help="Architecture of CHECKPOINT. Default: recognised from the file.")
@click.option("--to", "targets", default="all", show_default=True,
              help="Comma-separated targets (see below), or 'all' for every target this machine can build.")
@click.option("--precision", "precisions", default="fp32,fp16,int8", show_default=True, help="Comma-separated precisions.")
@click.option("--calib", "calib", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Calibration faces: files, folders or CSV lists (first column; repeatable). "
                   "Default: the bundled sample faces.")
@click.option("--validate", "validate", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Faces for the parity check against torch fp32 (as --calib). Default: the bundled sample faces.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the CSV lists' image paths are relative to. Default: each CSV's folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bundles"), show_default=True,
              help="One bundle folder per artifact is written here: OUT/<target>-<precision>/.")
@click.option("--max-abs", type=float, help="Widen the fp32 bound on max |Δscore| (default 1e-4).")
@click.option("--min-srcc", type=float, help="Widen every precision's SRCC bound to this value.")
@click.option("--min-plcc", type=float, help="Widen the int8 PLCC bound to this value.")
@click.option("--dynamic-hw", is_flag=True,
              help="ONNX: the model also takes any height and width (the scorer still resizes and crops as the manifest says).")
@click.option("--coreml-int8", type=click.Choice(["linear", "palettize"]), default="linear", show_default=True,
              help="CoreML int8 weights: linear symmetric quantization or 8-bit k-means palettization.")
@click.option("--ov-max-drop", type=click.FloatRange(0, 1),
              help="OpenVINO int8: nncf.quantize_with_accuracy_control, keeping the SRCC drop against fp32 on the "
                   "--validate faces within this budget (then pass other faces to a later `fiqa-edge bench`).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def convert(checkpoint: Path | None, arch: str | None, targets: str, precisions: str, calib: tuple[Path, ...],
            validate: tuple[Path, ...], root: Path | None, out: Path, max_abs: float | None, min_srcc: float | None, min_plcc: float | None,
            dynamic_hw: bool, coreml_int8: str, ov_max_drop: float | None, quiet: bool) -> None:
    """Export a checkpoint (default: the bundled model) to deployable bundles, validated against torch.

    Each bundle holds the model file and fiqa.json (preprocessing, precision,
    source SHA-256, cost, parity figures, reference scores of the bundled
    sample faces). An artifact outside its parity bound (fp32: max |Δ| <= 1e-4
    and SRCC >= 0.9999; fp16: SRCC >= 0.999; int8: SRCC and PLCC >= 0.995) is
    not written, and the exit status is 1.

    Targets: onnx, openvino, tensorrt (NVIDIA GPU machines), coreml (converts
    anywhere; runs and is parity-checked on macOS, elsewhere its spec is
    checked). 'all' builds those this machine can build and names the others.
    """
    from dataclasses import replace

    from ..assets import default_model_path, sample_faces
    from ..converters.convert import convert as run_convert
    from ..converters.onnx import OnnxOptions
    from ..converters.targets import TARGETS
    from ..converters.validate import BOUNDS
    from ..zoo import load_model

    wanted = list(TARGETS) if targets == "all" else [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        raise click.UsageError(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)} or all")
    for key in list(wanted):
        reason = TARGETS[key].unavailable()
        if reason and targets != "all":
            raise click.ClickException(f"--to {key}: {reason}")
        if reason:
            click.echo(f"warning: skipping {key}: {reason}", err=True)
            wanted.remove(key)
    precs = [p.strip() for p in precisions.split(",") if p.strip()]
    bad = [p for p in precs if p not in BOUNDS]
    if bad:
        raise click.UsageError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(BOUNDS)}")
    bounds = {k: replace(b, srcc=min_srcc if (min_srcc is not None and b.srcc is not None) else b.srcc,
                         plcc=min_plcc if (min_plcc is not None and b.plcc is not None) else b.plcc,
                         max_abs=max_abs if (max_abs is not None and b.max_abs is not None) else b.max_abs)
              for k, b in BOUNDS.items()}
    loaded = load_model(checkpoint or default_model_path(), arch=arch)
    options = {"onnx": {"options": OnnxOptions(dynamic_hw=dynamic_hw)}, "coreml": {"mode": coreml_int8},
               "openvino": {"max_drop": ov_max_drop}}
    results = run_convert(loaded, wanted, precs, _faces(calib, root) if calib else sample_faces(),
                          _faces(validate, root) if validate else sample_faces(), out, bounds=bounds,
                          options=options, progress=not quiet)
    click.echo(f"{'target':<10}{'precision':<11}{'status':<8}{'MB':>7}{'s':>7}{'max |Δ|':>10}{'SRCC':>9}  bundle / error")
    for r in results:
        if r.error:
            click.echo(f"{r.target:<10}{r.precision:<11}{'FAILED':<8}{'':>7}{r.seconds:>7.1f}{'':>10}{'':>9}  {r.error}")
        else:
            p = r.parity
            figures = f"{p['max_abs']:>10.1e}{p['srcc']:>9.5f}" if p else f"{'-':>10}{'-':>9}"
            click.echo(f"{r.target:<10}{r.precision:<11}{'ok':<8}{r.size_mb:>7.2f}{r.seconds:>7.1f}{figures}  {r.bundle}"
                       + (f" ({r.note})" if r.note else ""))
    if any(r.error for r in results):
        sys.exit(1)


def _faces(sources: tuple[Path, ...], root: Path | None) -> list[Path]:
    """Files and folders as given; CSV lists expanded relative to ``root`` or their own folder."""
    from ..scorer import collect_images
    from ..train.labels import read_image_list

    paths: list[Path] = []
    for source in sources:
        if source.suffix.lower() == ".csv":
            base = root or source.parent
            paths += [base / item.image for item in read_image_list(source, base)]
        else:
            paths += collect_images([source])
    return paths
