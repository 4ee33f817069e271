"""``fiqa-edge bench``: measured speed and accuracy figures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._options import json_option, legacy_argument, list_option, model_option, take_models


class _BenchGroup(click.Group):
    """``bench [--model M]...`` runs the comparison; ``bench pseudo-label`` the labelling benchmark."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Measure artifacts on this device: `fiqa-edge bench [--model M]...` (see `bench run --help`).

    Each --model is a bundle folder, a folder of bundles, a model file, a torch
    checkpoint or a bundled model's name (demo-v1). With none, the bundled default model is measured (torch rows
    when torch is installed, and its ONNX and LiteRT bundles where they run).
    """


def _bench_detect(model: Path, detector: str, frame_sizes: tuple[str, ...], threads: int | None, json_out: str | None) -> None:
    from .._atomic import atomic_write_text
    from ..benchmarks.detect_bench import detect_table, time_detection
    from ..detect import FaceFinder
    from ..framing import LFW_FRAMING
    from ..scorer import QualityScorer

    try:
        sizes = [(int(w), int(h)) for w, h in (s.lower().split("x") for s in frame_sizes)]
    except ValueError:
        msg = f"{','.join(frame_sizes)!r} is not a list of WxH sizes"
        raise click.BadParameter(msg, param_hint="--frame-sizes") from None
    if not sizes or min(min(s) for s in sizes) < 16:
        msg = "frame sizes must be at least 16x16"
        raise click.BadParameter(msg, param_hint="--frame-sizes")
    scorer = QualityScorer.load(model, threads=threads)
    finder = FaceFinder(detector, framing=scorer.framing or LFW_FRAMING)
    timings = time_detection(scorer, finder, sizes)
    click.echo(detect_table(timings, detector, scorer.backend.name), nl=False, err=str(json_out) == "-")
    if json_out:
        text = json.dumps({"model": str(model), "backend": scorer.backend.name, "detector": detector,
                           "results": [t.to_dict() for t in timings]}, indent=2) + "\n"
        click.echo(text, nl=False) if str(json_out) == "-" else atomic_write_text(json_out, text)


def _read_images(images: Path | None, labels: Path | None, root: Path | None, limit: int | None):
    from ..assets import sample_faces
    from ..errors import FiqaError
    from ..image_lists import Item, read_image_list, read_labels
    from ..imaging import collect_images

    if labels:
        root = root or labels.parent
        items = read_labels(labels, root)
    elif images and images.is_file():
        root = root or images.parent
        items = read_image_list(images, root)
    else:
        root = None
        items = [Item(str(p)) for p in (collect_images([images]) if images else sample_faces())]
    if not items:
        msg = f"{images}: no images"
        raise FiqaError(msg)
    if limit and limit < len(items):  # evenly spaced, so a sorted list still spans every identity
        items = [items[round(i * (len(items) - 1) / (limit - 1))] for i in range(limit)] if limit > 1 else items[:1]
    return items, root


@bench.command("run")
@legacy_argument("legacy_models", nargs=-1)
@model_option("An artifact to measure: a bundle folder, a folder of bundles, a model file, a torch checkpoint or a "
              "bundled model's name (repeat for several). Default: the bundled model.", multiple=True)
@click.option("--images", type=click.Path(exists=True, path_type=Path),
              help="Folder (walked) or CSV (first column) of faces. Default: the 40 bundled sample faces; "
                   "200 or more are recommended.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV image,score: adds accuracy (SRCC, PLCC, KRCC, RMSE) per artifact; its images are used.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder the CSV's image paths are relative to. Default: the CSV's folder.")
@click.option("--limit", type=click.IntRange(min=3), help="Use this many images, evenly spaced through the list.")
@list_option("--batch-sizes", kind=int, default=("1", "8"), help="Batch sizes for throughput (repeat or separate by commas).")
@click.option("--threads", type=click.IntRange(min=1), help="Inference threads per backend. Default: each backend's choice.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="Decode threads of the end-to-end measurement.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Torch checkpoint for parity (needs torch). Default: a checkpoint among the models or the bundled "
                   "model, when it is the bundles' source; otherwise the reference scores stored in each bundle.")
@click.option("--rounds", type=click.IntRange(min=1), default=50, show_default=True, help="Interleaved timing rounds.")
@click.option("--per-round", type=click.IntRange(min=1), default=2, show_default=True, help="Timed calls per artifact per round.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True, help="Untimed calls first.")
@click.option("--pause", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Seconds between turns, so the previous runtime's threads stop spinning.")
@json_option()
@click.option("--markdown", "md_out", type=click.Path(dir_okay=False, path_type=Path), help="Write a Markdown table.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG: latency vs parity/accuracy.")
@click.option("--gate", "gates", multiple=True, metavar="EXPR",
              help="Fail (exit 1) unless every measured row meets EXPR, e.g. 'parity.srcc>=0.99', "
                   "'latency.p50_ms<=10', 'throughput_ips.8>=100'. Repeatable.")
@click.option("--profile", is_flag=True,
              help="Instead of the comparison: where each artifact's time goes (ms per run by operator type, and the "
                   "top nodes) under its runtime's profiler (onnxruntime, OpenVINO, torch), batch 1, --rounds runs.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Nodes listed per artifact with --profile.")
@click.option("--detect", is_flag=True,
              help="Instead of the comparison: faces in frames (score --detect) with the first target as the scorer: "
                   "detection, alignment and scoring ms per frame and faces/s, at each --frame-sizes.")
@click.option("--detector", type=click.Choice(["both", "full", "short"]), default="both", show_default=True,
              help="With --detect: the BlazeFace models (see score --help).")
@list_option("--frame-sizes", default=("640x480", "1920x1080"), help="With --detect: frame sizes WxH (repeat or separate by commas).")
def bench_run(legacy_models: tuple[str, ...], models: tuple[str, ...], images: Path | None, labels: Path | None,
              root: Path | None, limit: int | None, batch_sizes: tuple[int, ...], threads: int | None, workers: int,
              reference: Path | None, rounds: int, per_round: int, warmup: int, pause: float, json_out: str | None,
              md_out: Path | None, plot_out: Path | None, gates: tuple[str, ...], profile: bool, top: int, detect: bool,
              detector: str, frame_sizes: tuple[str, ...]) -> None:
    """Cost, latency, throughput, parity and accuracy of each --model, side by side.

    Every artifact runs in its own process and is timed in interleaved turns
    (model only, preprocessed input); end-to-end images/s adds decoding and
    preprocessing with --workers threads; peak RSS is that process's.
    Backends that cannot run on this device are listed as skipped with the
    reason. Exit status 1 when a gate fails. With --profile, the per-operator
    breakdown of each artifact instead (--json writes it). With --detect, the
    time of scoring faces in frames instead (--json writes it).
    """
    import sys

    from .._atomic import atomic_write_text
    from .._deps import is_available
    from ..assets import DEFAULT_BUNDLE, DEFAULT_LITERT_BUNDLE, DEFAULT_MODEL
    from ..backends import cannot_run
    from ..benchmarks.bench_report import markdown, parse_gate, plot, table
    from ..benchmarks.harness import run_bench
    from ..manifest import Manifest

    parsed_gates = [parse_gate(g) for g in gates]
    targets = tuple(Path(m) for m in take_models(models, legacy_models, "TARGETS"))
    sizes = sorted(set(batch_sizes))
    if not sizes or min(sizes) < 1:
        msg = "batch sizes must be 1 or more"
        raise click.BadParameter(msg, param_hint="--batch-sizes")
    if not targets:
        runnable = tuple(b for b in (DEFAULT_BUNDLE, DEFAULT_LITERT_BUNDLE) if cannot_run(Manifest.load(b).backend) is None)
        targets = ((DEFAULT_MODEL,) if is_available("torch") else ()) + (runnable or (DEFAULT_BUNDLE,))
    if detect:
        _bench_detect(targets[0], detector, frame_sizes, threads, json_out)
        return
    if profile:
        from ..benchmarks.harness import find_artifacts
        from ..benchmarks.profile import profile_artifacts, profile_table

        profiles = profile_artifacts(find_artifacts(targets), threads=threads, runs=rounds)
        click.echo(profile_table(profiles, top), nl=False, err=str(json_out) == "-")
        if json_out:
            text = json.dumps([p.to_dict() for p in profiles], indent=2) + "\n"
            click.echo(text, nl=False) if str(json_out) == "-" else atomic_write_text(json_out, text)
        return
    items, root = _read_images(images, labels, root, limit)
    report = run_bench(targets, items, root=root, batch_sizes=sizes, threads=threads, workers=workers,
                       reference=reference, warmup=warmup, rounds=rounds, per_round=per_round, pause=pause)
    click.echo(table(report), nl=False, err=str(json_out) == "-")  # stdout carries the JSON then
    if json_out:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
        if str(json_out) == "-":
            click.echo(text, nl=False)
        else:
            atomic_write_text(json_out, text)
    if md_out:
        atomic_write_text(md_out, markdown(report))
    if plot_out:
        plot(report, plot_out)
    failures = [line for gate in parsed_gates for line in gate.failures(report)]
    for line in failures:
        click.echo(f"FAILED {line}", err=True)
    if failures:
        sys.exit(1)


@bench.command("pseudo-label")
@click.option("-m", "--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint. Default: the student architecture with random weights (speed does not depend on them).")
@click.option("--images", type=click.Path(exists=True, path_type=Path), help="Folder of faces. Default: the bundled sample faces.")
@click.option("--input-size", type=click.IntRange(min=16), help="Default: the model's (352 for the student).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@json_option("Write JSON instead of the summary to PATH ('-' or no PATH: stdout).")
def bench_pseudo_label(model: Path | None, images: Path | None, input_size: int | None, batch_size: int, workers: int,
                       json_out: str | None) -> None:
    """Batched pseudo-labelling against the official per-image loop: images/s, ratio, score agreement."""
    from ..assets import sample_faces
    from ..imaging import collect_images
    from ..train.pseudo_label_speed import run
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
    if json_out:
        from . import _write_output

        _write_output(Path(json_out), json.dumps({"arch": arch, "input_size": size, **result.to_dict()}, indent=2) + "\n")
    else:
        click.echo(f"{arch} at {size} px, {result.images} images, {result.threads} threads\n"
                   f"per-image loop : {result.per_image_ips:7.2f} img/s\n"
                   f"batched loader : {result.batched_ips:7.2f} img/s (batch {batch_size}, {workers} workers)\n"
                   f"ratio          : {result.ratio:7.2f}x   max |score difference| {result.max_abs_diff:.2e}")
