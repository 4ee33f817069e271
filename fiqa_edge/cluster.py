"""Scoring and curating face datasets on a Ray cluster: ``fiqa-edge score --ray`` (the ``cluster`` extra).

The driver lists the inputs once and cuts them into blocks of ``block_size`` images, each named by a hash of
its images. Ray Data hands the blocks without output to a pool of scorer actors (each loads the bundle once;
with ``detect``, the face finder too), and each actor writes its block's rows to
``OUT/part-<n>-<hash>.parquet`` under a temporary name, then renames it. A block retried after its actor or
its node died writes the same file again, so the output holds every input exactly once; a job run again
after a crash or Ctrl-C scores only the blocks with no part file. ``OUT/_run.json`` records the model and
the settings, and a run with other ones into the same folder is refused. An ``out`` ending in ``.parquet``
is one file, written from the parts in ``out.parts/`` once every block is done.

Inputs: image folders, file lists (``.csv``: the first column, or ``.txt``: one path a line) and Parquet
tables (``.parquet``) with a ``path`` column of image paths or an ``image`` column of encoded bytes (named by
``path`` when present), each local or an fsspec URI (``s3://``, ``gs://``, ``memory://``...). An image that
cannot be read or decoded is an error row, never a failed job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write_text
from ._deps import require
from .errors import FiqaError, ImageError
from .imaging import IMAGE_SUFFIXES, load_image
from .manifest import sha256_file

__all__ = ["ClusterSummary", "list_inputs", "parts_folder", "score_dataset"]

RUN_FILE = "_run.json"


@dataclass(frozen=True)
class InputImage:
    """One input: ``name`` is what the output calls it; read from ``uri``, or row ``row`` of Parquet ``table``."""

    name: str
    uri: str | None = None
    table: str | None = None
    row: int = -1


@dataclass
class ClusterSummary:
    """A finished run over the whole output (the blocks of earlier, interrupted runs included)."""

    out: str
    images: int
    rows: int
    failed: int
    scored: int
    accepted: int | None
    rejected_share: float | None
    score_percentiles: dict[str, float]
    blocks: int
    blocks_scored_now: int
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fs(uri: str):
    fsspec = require("fsspec", "reading inputs for --ray", extra="cluster")
    return fsspec.core.url_to_fs(uri)


def list_inputs(inputs: Sequence[str]) -> list[InputImage]:
    """Every image the inputs name, in a fixed order (folders walked and sorted).

    Raises:
        FiqaError: an input does not exist, or a table has neither a ``path`` nor an ``image`` column.
    """
    images: list[InputImage] = []
    for source in inputs:
        fs, path = _fs(str(source))
        if not fs.exists(path):
            msg = f"{source}: no such file or folder"
            raise FiqaError(msg)
        remote = "://" in str(source)

        def joined(p: str, fs: Any = fs, remote: bool = remote) -> str:
            return fs.unstrip_protocol(p) if remote else p

        if fs.isdir(path):
            files = sorted(p for p in fs.find(path) if os.path.splitext(p)[1].lower() in IMAGE_SUFFIXES)
            images += [InputImage(joined(p), joined(p)) for p in files]
        elif path.endswith((".parquet", ".pq")):
            images += [i if i.uri is None else InputImage(_beside(i.name, path, joined), _beside(i.name, path, joined))
                       for i in _table_rows(str(source))]
        elif path.endswith((".csv", ".txt")):
            with fs.open(path, "rt", encoding="utf-8") as f:
                lines = [line.split(",")[0].strip() for line in f if line.strip()]
            if lines and path.endswith(".csv") and lines[0].lower() in ("path", "image"):
                lines = lines[1:]
            images += [InputImage(_beside(line, path, joined), _beside(line, path, joined)) for line in lines]
        else:
            images.append(InputImage(joined(path), joined(path)))
    return images


def _beside(entry: str, listing: str, joined: Any) -> str:
    """A path a list or table names: as written when absolute or a URI, else relative to the list's folder."""
    return entry if "://" in entry or os.path.isabs(entry) else joined(f"{os.path.dirname(listing)}/{entry}")


def _table_rows(uri: str) -> list[InputImage]:
    pq = require("pyarrow.parquet", "reading Parquet inputs", extra="cluster")
    fs, path = _fs(uri)
    with fs.open(path, "rb") as f:
        names = pq.ParquetFile(f).schema_arrow.names
        if "image" in names:
            column = pq.read_table(f, columns=["path"]).column("path").to_pylist() if "path" in names else None
            count = pq.ParquetFile(f).metadata.num_rows
            return [InputImage(column[i] if column else f"{uri}#{i}", table=uri, row=i) for i in range(count)]
        if "path" in names:
            paths = pq.read_table(f, columns=["path"]).column("path").to_pylist()
            return [InputImage(p, p) for p in paths]
    msg = f"{uri}: a table of images needs a 'path' column (image paths) or an 'image' column (encoded bytes)"
    raise FiqaError(msg)


def _blocks(images: list[InputImage], block_size: int) -> list[tuple[str, list[InputImage]]]:
    """(part name, images) per block; the name hashes the block's images, so it names the same work in every run."""
    blocks = []
    for n, start in enumerate(range(0, len(images), block_size)):
        chunk = images[start : start + block_size]
        digest = hashlib.sha1("\n".join(f"{i.name}\t{i.uri}\t{i.table}\t{i.row}" for i in chunk).encode()).hexdigest()
        blocks.append((f"part-{n:05d}-{digest[:12]}.parquet", chunk))
    return blocks


def model_hash(model: str | os.PathLike[str]) -> str:
    """SHA-256 over a model file, or over a bundle folder's files (names and contents) in order."""
    path = Path(model)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        msg = f"{model}: no such model file or bundle folder"
        raise FiqaError(msg)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + b"\0" + sha256_file(item).encode())
    return digest.hexdigest()


class BlockScorer:
    """A Ray Data actor: scores whole blocks and writes each block's part file (see the module's docstring)."""

    def __init__(self, settings: dict[str, Any], out: str) -> None:
        from .scorer import QualityScorer

        self.settings, self.out = settings, Path(out)
        self.scorer = QualityScorer.load(settings["model"], backend=settings["backend"], threads=settings["threads"])
        self.scorer.min_quality = settings["min_quality"]
        self.faces = None
        if settings["detect"]:
            from .detect import FaceFinder
            from .faces import FaceScorer
            from .framing import LFW_FRAMING

            finder = FaceFinder(settings["detector"], framing=self.scorer.framing or LFW_FRAMING,
                                min_confidence=settings["min_confidence"])
            self.faces = FaceScorer(self.scorer, finder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        done: dict[str, list] = {"part": [], "images": [], "rows": []}
        for part, listed in zip(batch["part"], batch["images"]):
            images = [InputImage(**item) for item in json.loads(listed)]
            rows = list(self._rows(images))
            _write_part(self.out / part, rows)
            done["part"].append(part)
            done["images"].append(len(images))
            done["rows"].append(len(rows))
        return done

    def _rows(self, images: list[InputImage]) -> Iterator[dict[str, Any]]:
        base = {"model": self.settings["model"], "bundle_sha256": self.settings["bundle_sha256"]}
        decoded, sources = [], []
        for image, data in zip(images, _fetch(images)):
            try:
                if isinstance(data, OSError):
                    msg = f"{image.name}: cannot read: {data}"
                    raise ImageError(msg)
                if isinstance(data, ImageError):
                    raise data
                decoded.append(load_image(data, max_pixels=self.scorer.max_pixels, name=image.name))
                sources.append(image)
            except ImageError as exc:
                yield {**base, "path": image.name, "face": -1, "error": str(exc)}
        if self.faces is not None:
            for image, pixels in zip(sources, decoded):
                found = self.faces.score(pixels)
                if not found:
                    yield {**base, "path": image.name, "face": -1, "error": f"{image.name}: no face found"}
                for f in found:
                    x0, y0, x1, y1 = f.box  # type: ignore[misc]
                    yield {**base, "path": image.name, "face": f.face, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                           "confidence": f.confidence, "score": f.score, "percentile": f.percentile,
                           "quality": f.quality, "accepted": f.accepted}
            return
        batch = self.settings["batch_size"]
        for start in range(0, len(decoded), batch):
            scores = self.scorer.score_batch(decoded[start : start + batch])
            for image, score in zip(sources[start : start + batch], scores):
                percentile, quality, accepted = self.scorer.place(float(score))
                yield {**base, "path": image.name, "face": None, "score": float(score), "percentile": percentile,
                       "quality": quality, "accepted": accepted}


def _fetch(images: list[InputImage]) -> list[bytes | OSError | ImageError]:
    """Each image's encoded bytes (or why it cannot be read): files one by one, table rows by row group, each row
    group read once."""
    fetched: list[bytes | OSError | ImageError] = []
    groups: dict[tuple[str | None, int], list] = {}
    for image in images:
        try:
            fetched.append(_file_bytes(image.uri) if image.uri is not None else _row_bytes(image, groups))
        except (OSError, ImageError) as exc:
            fetched.append(exc)
    return fetched


def _file_bytes(uri: str) -> bytes:
    fs, path = _fs(uri)
    with fs.open(path, "rb") as f:
        return f.read()


def _row_bytes(image: InputImage, groups: dict[tuple[str | None, int], list]) -> bytes:
    """The ``image`` cell of a table row; ``groups`` keeps the row groups read so far (one block's)."""
    pq = require("pyarrow.parquet", "reading Parquet inputs", extra="cluster")
    fs, path = _fs(image.table)  # type: ignore[arg-type]
    with fs.open(path, "rb") as f:
        table = pq.ParquetFile(f)
        offset = 0
        for group in range(table.num_row_groups):
            rows = table.metadata.row_group(group).num_rows
            if image.row < offset + rows:
                if (image.table, group) not in groups:
                    groups[image.table, group] = table.read_row_group(group, columns=["image"]).column("image").to_pylist()
                return groups[image.table, group][image.row - offset]
            offset += rows
    msg = f"{image.name}: row {image.row} is past the end of the table"
    raise ImageError(msg)


def _write_part(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` as Parquet, atomically (a uniquely named temporary file, then a rename)."""
    pa = require("pyarrow", "writing Parquet", extra="cluster")
    pq = require("pyarrow.parquet", "writing Parquet", extra="cluster")
    schema = _schema(pa)
    table = pa.table({c: [r.get(c) for r in rows] for c in schema.names}, schema=schema)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _schema(pa: Any) -> Any:
    """What a Parquet part holds, per image (or per face with ``detect``)."""
    number = pa.float64()
    return pa.schema([("path", pa.string()), ("face", pa.int32()), ("x0", number), ("y0", number), ("x1", number),
                      ("y1", number), ("confidence", number), ("score", number), ("percentile", number),
                      ("quality", number), ("accepted", pa.bool_()), ("error", pa.string()), ("model", pa.string()),
                      ("bundle_sha256", pa.string())])


def score_dataset(inputs: Sequence[str], out: str | os.PathLike[str], model: str | os.PathLike[str], *,
                  backend: str = "auto", detect: bool = False, detector: str = "both", min_confidence: float | None = None,
                  min_quality: str | None = None, address: str | None = None, actors: int = 2, block_size: int = 256,
                  batch_size: int = 8, threads: int = 1, progress: bool = True) -> ClusterSummary:
    """Score ``inputs`` into the Parquet dataset ``out`` on Ray (a local instance unless ``address`` is given).

    Returns the summary of the whole output; ``out/_summary.json`` holds it too.

    Raises:
        FiqaError: bad inputs, or ``out`` holds a run with another model or other settings.
    """
    ray = require("ray", "scoring on a Ray cluster", extra="cluster")
    from tqdm import tqdm

    started = time.perf_counter()
    out = Path(out)
    parts = parts_folder(out)
    single = parts != out
    settings = {"model": str(model), "bundle_sha256": model_hash(model), "backend": backend, "detect": detect,
                "detector": detector, "min_confidence": min_confidence, "min_quality": min_quality,
                "block_size": block_size, "batch_size": batch_size, "threads": threads}
    images = list_inputs(inputs)
    if not images:
        msg = "no images in the inputs"
        raise FiqaError(msg)
    blocks = _blocks(images, block_size)
    _claim(parts, settings, [name for name, _ in blocks])
    pending = [(name, chunk) for name, chunk in blocks if not (parts / name).exists()]
    if pending:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the bar is ours
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        data = ray.data.from_items([{"part": name, "images": json.dumps([asdict(i) for i in chunk])}
                                    for name, chunk in pending], override_num_blocks=len(pending))
        scored = data.map_batches(BlockScorer, fn_constructor_kwargs={"settings": settings, "out": str(parts)},
                                  batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads,
                                  max_restarts=-1, max_task_retries=-1)
        with tqdm(total=sum(len(c) for _, c in pending), unit="img", desc="scoring on Ray", disable=not progress) as bar:
            for row in scored.iter_rows():
                bar.update(row["images"])
    summary = _summarise(parts, len(images), len(blocks), len(pending), settings)
    if single:
        _join_parts(parts, out)
        summary.out = str(out)
    summary.seconds = time.perf_counter() - started
    atomic_write_text(parts / "_summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def parts_folder(out: Path) -> Path:
    """Where a run into ``out`` keeps its parts, ``_run.json`` and ``_summary.json``: ``out`` itself, or
    ``out.parts/`` when ``out`` is one ``.parquet`` file."""
    return out.with_name(out.name + ".parts") if out.suffix in (".parquet", ".pq") else out


def _join_parts(parts: Path, out: Path) -> None:
    """Write every part of ``parts`` into the one Parquet file ``out``, atomically (the parts stay, to resume)."""
    pq = require("pyarrow.parquet", "writing Parquet", extra="cluster")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(pq.read_table(sorted(str(p) for p in parts.glob("part-*.parquet"))), tmp)
    os.replace(tmp, out)


def _claim(out: Path, settings: dict[str, Any], parts: list[str]) -> None:
    """Record the run in ``out`` (new), or check it is the run recorded there (a resumed one)."""
    record = {k: v for k, v in settings.items() if k not in ("threads", "backend")}
    record["parts"] = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    run = out / RUN_FILE
    if run.exists():
        before = json.loads(run.read_text())
        changed = sorted(k for k in record if before.get(k) != record[k])
        if changed:
            msg = (f"{out}: holds a run with other {', '.join(changed)} (inputs, model or settings); "
                   "score into a new --out, or delete it to start over")
            raise FiqaError(msg)
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run, json.dumps(record, indent=2) + "\n")


def _summarise(out: Path, images: int, blocks: int, scored_now: int, settings: dict[str, Any]) -> ClusterSummary:
    pq = require("pyarrow.parquet", "reading the output", extra="cluster")
    table = pq.read_table(sorted(str(p) for p in out.glob("part-*.parquet")), columns=["path", "score", "accepted", "error"])
    scores = np.array([s for s in table.column("score").to_pylist() if s is not None], dtype=np.float64)
    accepted = [a for a in table.column("accepted").to_pylist() if a is not None]
    failed = sum(e is not None for e in table.column("error").to_pylist())
    return ClusterSummary(
        out=str(out), images=images, rows=table.num_rows, failed=failed, scored=len(scores),
        accepted=sum(accepted) if settings["min_quality"] else None,
        rejected_share=(1 - sum(accepted) / len(accepted)) if settings["min_quality"] and accepted else None,
        score_percentiles={f"p{q}": float(np.percentile(scores, q)) for q in (5, 25, 50, 75, 95)} if len(scores) else {},
        blocks=blocks, blocks_scored_now=scored_now, settings=settings)
