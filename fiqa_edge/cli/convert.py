"""``fiqa-edge convert``: deployable bundles, validated against torch."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

from ._options import RenamingCommand, legacy_argument, list_option, model_option, take_model

#: old flag → new flag (kept for one release)
RENAMED = {"--ov-max-drop": "--openvino-max-drop", "--dynamic-hw": "--onnx-dynamic-hw"}


def _target_help() -> str:
    from ..converters.targets import TARGETS

    lines = []
    for key, c in TARGETS.items():
        why_not = c.cannot_validate()
        runs = "runs and is parity-checked here" if why_not is None else f"spec-checked here ({why_not})"
        why = c.unavailable()
        lines.append(f"{key}: {', '.join(c.precisions)}; " + (f"cannot build here: {why}" if why else runs)
                     + (f"; {c.note}" if c.note else ""))
    return "\b\nTargets:\n" + "\n".join(f"  {line}" for line in lines)


def _target_options() -> list[click.Option]:
    """One flag per option field that a target declares (see ``converters.base.cli_option``)."""
    from ..converters.targets import TARGETS

    params = []
    for key, converter in TARGETS.items():
        for f in converter.cli_fields():
            meta, name = f.metadata, f"{key}__{f.name}"
            flag = f"--{key}-{meta['setting']}"
            if isinstance(f.default, bool):
                params.append(click.Option([flag, name], is_flag=True, help=meta["help"]))
            elif meta["choices"]:
                params.append(click.Option([flag, name], type=click.Choice(meta["choices"]), default=f.default,
                                           show_default=True, help=meta["help"]))
            else:  # a number (None: off)
                kind = click.FloatRange(*meta["range"]) if meta["range"] else float
                params.append(click.Option([flag, name], type=kind, default=f.default, help=meta["help"]))
    return params


def _options_from(values: dict[str, object]) -> dict[str, object]:
    """Each target's options dataclass from the flags' values."""
    from ..converters.targets import TARGETS

    per_target: dict[str, dict[str, object]] = {}
    for name, value in values.items():
        key, _, field_name = name.partition("__")
        per_target.setdefault(key, {})[field_name] = value
    return {key: TARGETS[key].options_type(**fields) for key, fields in per_target.items()}


@click.command(cls=RenamingCommand, renamed=RENAMED, context_settings={"help_option_names": ["-h", "--help"]})
@legacy_argument("legacy_model")
@model_option("The checkpoint to convert, or a bundled model's name (demo-v1). Default: the bundled model.")
@click.option("--arch", help="Architecture of --model. Default: recognised from the file.")
@list_option("--to", "targets", default=("all",),
             help="Targets (see below; repeat or separate by commas), or 'all' for every target this machine can build.")
@list_option("--precision", "precisions", default=("fp32", "fp16", "int8"), help="Precisions (repeat or separate by commas).")
@click.option("--calib", "calib", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Calibration faces: files, folders or CSV lists (first column; repeatable). "
                   "Default: the bundled sample faces of 5 people.")
@click.option("--validate", "validate", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Faces for the parity check against torch fp32 (as --calib). Default: the bundled sample faces of "
                   "the 5 other people. Overlap with --calib is warned about and recorded.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the CSV lists' image paths are relative to. Default: each CSV's folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bundles"), show_default=True,
              help="One bundle folder per artifact is written here: OUT/<target>-<precision>/.")
@click.option("--max-abs", type=float, help="Widen the fp32 bound on max |Δscore| (default 1e-4).")
@click.option("--min-srcc", type=float, help="Widen every precision's SRCC bound to this value.")
@click.option("--min-plcc", type=float, help="Widen the int8 PLCC bound to this value.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def convert(legacy_model: str | None, model: str | None, arch: str | None, targets: tuple[str, ...],
            precisions: tuple[str, ...], calib: tuple[Path, ...],
            validate: tuple[Path, ...], root: Path | None, out: Path, max_abs: float | None, min_srcc: float | None,
            min_plcc: float | None, quiet: bool, **target_options: object) -> None:
    """Export a model (default: the bundled model; a bundled model's name such as demo-v1 works too) to
    deployable bundles, validated against torch.

    Each bundle holds the model file and fiqa.json (preprocessing, precision,
    source SHA-256, cost, parity figures and the faces they were measured on,
    reference scores of the bundled sample faces). An artifact outside its
    parity bound (fp32: max |Δ| <= 1e-4 and SRCC >= 0.9999; fp16: SRCC >= 0.999;
    int8: SRCC and PLCC >= 0.995) is not written, and the exit status is 1.
    'all' builds the targets this machine can build and names the others.
    """
    from dataclasses import replace

    from ..assets import default_model_path
    from ..converters.convert import convert as run_convert
    from ..converters.targets import TARGETS
    from ..converters.validate import BOUNDS
    from ..errors import ParityError
    from ..zoo import load_model

    model = take_model(model, legacy_model)
    every = "all" in targets
    wanted = list(TARGETS) if every else list(dict.fromkeys(targets))
    unknown = [t for t in wanted if t not in TARGETS]
    if unknown:
        msg = f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)} or all"
        raise click.UsageError(msg)
    for key in list(wanted):
        reason = TARGETS[key].unavailable()
        if reason and not every:
            msg = f"--to {key}: {reason}"
            raise click.ClickException(msg)
        if reason:
            click.echo(f"warning: skipping {key}: {reason}", err=True)
            wanted.remove(key)
    precs = list(dict.fromkeys(precisions))
    bad = [p for p in precs if p not in BOUNDS]
    if bad:
        msg = f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(BOUNDS)}"
        raise click.UsageError(msg)
    bounds = {k: replace(b, srcc=min_srcc if (min_srcc is not None and b.srcc is not None) else b.srcc,
                         plcc=min_plcc if (min_plcc is not None and b.plcc is not None) else b.plcc,
                         max_abs=max_abs if (max_abs is not None and b.max_abs is not None) else b.max_abs)
              for k, b in BOUNDS.items()}
    loaded = load_model(model or default_model_path(), arch=arch)
    results = run_convert(loaded, wanted, out=out, precisions=precs, calibration=_faces(calib, root) if calib else None,
                          validation=_faces(validate, root) if validate else None, bounds=bounds,
                          options=_options_from(target_options), progress=not quiet)
    click.echo(f"{'target':<12}{'precision':<11}{'status':<8}{'MB':>7}{'s':>7}{'max |Δ|':>10}{'SRCC':>9}  bundle / error")
    for r in results:
        if r.error:
            click.echo(f"{r.target:<12}{r.precision:<11}{'FAILED':<8}{'':>7}{r.seconds:>7.1f}{'':>10}{'':>9}  {r.error}")
        else:
            p = r.parity
            figures = f"{p['max_abs']:>10.1e}{p['srcc']:>9.5f}" if p else f"{'-':>10}{'-':>9}"
            click.echo(f"{r.target:<12}{r.precision:<11}{'ok':<8}{r.size_mb:>7.2f}{r.seconds:>7.1f}{figures}  {r.bundle}"
                       + (f" ({r.note})" if r.note else ""))
    if any(isinstance(r.failure, ParityError) for r in results):
        click.echo("an artifact missed its parity bound: --max-abs, --min-srcc and --min-plcc widen the bounds", err=True)
    if any(r.error for r in results):
        sys.exit(1)


convert.params.extend(_target_options())
convert.help = inspect.cleandoc(convert.help or "") + "\n\n" + _target_help()


def _faces(sources: tuple[Path, ...], root: Path | None) -> list[Path]:
    """Files and folders as given; CSV lists expanded relative to ``root`` or their own folder."""
    from ..image_lists import read_image_list
    from ..imaging import collect_images

    paths: list[Path] = []
    for source in sources:
        if source.suffix.lower() == ".csv":
            base = root or source.parent
            paths += [base / item.image for item in read_image_list(source, base)]
        else:
            paths += collect_images([source])
    return paths

