"""Quality labels from face-recognition utility, for face sets without opinion scores.

Definition. For a face x of identity c with a recogniser's embedding e(x):

    d_gen(x) = mean distance from e(x) to the clean images of c other than x's source
    d_imp(x) = distances from e(x) to a fixed sample of clean images of other people
    utility(x) = (mean d_imp(x) - d_gen(x)) / std d_imp(x)

i.e. how many impostor standard deviations x sits closer to its own identity than
to strangers: high for a face that is recognised easily, low or negative for one
that is not. With several recognisers (``recognizers``: dlib's ResNet, SFace),
each one's utility is in its own impostor spread, and the face's utility is their
mean. Labels are utilities mapped linearly so that the 1st and 99th percentiles
of the labelled set fall on 0 and 1 (clipped).

Sets. Identities with two or more images form the labelled set L (at most
``max_per_identity`` images each, plus ``copies`` degraded copies per image),
split by identity into train/val/test. The single-image identities, with their
degraded copies and no labels, are halved into the unlabelled sets U1 and U2.
Everything follows from ``seed``; embeddings are cached in shards (``cache/`` for
dlib, ``cache-<name>/`` for the others), so an interrupted run resumes where it
stopped and a recogniser added to a finished run embeds only for itself.

``extra_copies`` more copies of each image are drawn from ``extra_kinds`` by a
generator of their own, so the split, the other copies and the impostor sample
are those of the same run without them, and a finished run's shards are
extended (only the new copies are embedded).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fiqa_edge._atomic import atomic_path, atomic_write_text
from fiqa_edge.degrade import apply, sample_degradation
from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.imaging import load_image
from fiqa_edge.operating_points import read_pairs

__all__ = ["UtilityConfig", "embed_pairs", "make_pairs", "make_utility_labels", "utility"]

log = logging.getLogger(__name__)
SHARD = 400


@dataclass(frozen=True)
class UtilityConfig:
    """Settings of a labelling run (all recorded in ``labels.json``)."""

    images: Path
    out: Path
    seed: int = 0
    copies: int = 2
    max_per_identity: int = 6
    impostors: int = 500
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    pairs: Path | None = None
    workers: int = 2
    extra_copies: int = 0
    extra_kinds: tuple[str, ...] = ("softnoise", "softjpeg")
    recognizers: tuple[str, ...] = ("dlib",)


#: the recognisers labels may come from (w600k_mbf is left out: its weights are for non-commercial research)
LABEL_RECOGNIZERS = ("dlib", "sface")


def _identities(root: Path) -> dict[str, list[str]]:
    people: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f"{folder.name}/{f.name}" for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".png"))
        if files:
            people[folder.name] = files
    if not people:
        msg = f"{root}: no identity folders with images (expected NAME/NAME_0001.jpg)"
        raise FiqaError(msg)
    return people


def utility(embedding: np.ndarray, genuine: np.ndarray, impostors: np.ndarray) -> float:
    """(mean impostor distance - mean genuine distance) / std of impostor distances.

    Args:
        embedding: the face's embedding, shape (D,).
        genuine: embeddings of other images of the same person, shape (G, D).
        impostors: embeddings of other people, shape (I, D), I >= 2.
    """
    d_gen = np.linalg.norm(genuine - embedding, axis=1).mean()
    d_imp = np.linalg.norm(impostors - embedding, axis=1)
    return float((d_imp.mean() - d_gen) / d_imp.std())


_RECOGNIZERS: dict = {}


def _recognizer(name: str):
    """This process's recogniser ``name`` (made once per worker)."""
    if name not in _RECOGNIZERS:
        from .recognizer import DlibRecognizer, SFaceRecognizer

        makers = {"dlib": DlibRecognizer, "sface": SFaceRecognizer}
        if name not in makers:
            msg = f"unknown recogniser {name!r} for labels; choose from {', '.join(LABEL_RECOGNIZERS)}"
            raise FiqaError(msg)
        _RECOGNIZERS[name] = makers[name]()
    return _RECOGNIZERS[name]


def _embed_source(args: tuple[str, str, str, list[tuple[str, float]]]) -> tuple[list[str], np.ndarray | None, str]:
    """Embed one clean image and its degraded copies with one recogniser (runs in a worker process). The face is
    located once, on the clean image; every copy is embedded at that place.

    Returns (refs, vectors, note): note is "detected", "central box" or the read error.
    """
    name, root, source, degradations = args
    recognizer = _recognizer(name)
    try:
        image = load_image(Path(root) / source)
    except ImageError as exc:
        return [], None, str(exc)
    place, detected = recognizer.locate(image)
    refs, vectors = [source], [recognizer.embed(image, place)]
    for kind, strength in degradations:
        refs.append(f"{source}#{kind}={strength}")
        vectors.append(recognizer.embed(apply(image, kind, strength, seed_text=source), place))
    return refs, np.stack(vectors), "detected" if detected else "central box"


def _cache_dir(out: Path, name: str) -> Path:
    return out / ("cache" if name == "dlib" else f"cache-{name}")


def _embed_all(images: Path, cache: Path, jobs: list[tuple[str, list[tuple[str, float]]]],
               workers: int, recognizer: str = "dlib") -> tuple[dict[str, np.ndarray], int]:
    """Embeddings by ``recognizer`` of every job's images, and how many faces were not detected (a central
    place used). Shards of finished work are kept in ``cache``, so an interrupted run resumes.
    """
    cache.mkdir(parents=True, exist_ok=True)
    shards = [jobs[i : i + SHARD] for i in range(0, len(jobs), SHARD)]
    embeddings: dict[str, np.ndarray] = {}
    undetected = 0
    total = sum(1 + len(d) for _, d in jobs)
    bar = tqdm(total=total, unit="face", desc=f"embedding ({recognizer})")
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, shard in enumerate(shards):
            path = cache / f"shard-{n:04d}-{len(shard)}.npz"
            if path.exists():  # a finished shard; copies added since are embedded and the shard extended
                data = np.load(path)
                done = dict(zip(data["refs"].tolist(), data["vectors"]))
                misses = int(data["undetected"])
                todo = [(s, [c for c in d if f"{s}#{c[0]}={c[1]}" not in done]) for s, d in shard if s in done]
                todo = [(s, d) for s, d in todo if d]
            else:
                done, misses, todo = {}, 0, shard
            if todo:
                for r, v, note in pool.map(_embed_source, [(recognizer, str(images), s, d) for s, d in todo], chunksize=8):
                    if v is None:
                        tqdm.write(f"skipped: {note}")
                        continue
                    if r[0] not in done:
                        misses += note == "central box"
                    done.update(zip(r, v))
                with atomic_path(path) as tmp, open(tmp, "wb") as f:
                    np.savez(f, refs=np.array(list(done)), vectors=np.stack(list(done.values())), undetected=misses)
            embeddings.update(done)
            undetected += misses
            bar.update(sum(1 + len(d) for _, d in shard))
    bar.close()
    return embeddings, undetected


def make_utility_labels(cfg: UtilityConfig) -> dict:
    """Build L (train/val/test CSVs with labels) and U1/U2 (CSVs of images); return the summary."""
    rng = np.random.default_rng(cfg.seed)
    people = _identities(cfg.images)
    multi = sorted(n for n, files in people.items() if len(files) >= 2)
    single = sorted(n for n, files in people.items() if len(files) == 1)
    labelled = {n: sorted(rng.permutation(people[n])[: cfg.max_per_identity].tolist()) for n in multi}

    order = rng.permutation(multi).tolist()
    cut1 = round(cfg.split[0] * len(order))
    cut2 = cut1 + round(cfg.split[1] * len(order))
    split_of = {n: "train" if i < cut1 else "val" if i < cut2 else "test" for i, n in enumerate(order)}

    jobs: dict[str, list[tuple[str, float]]] = {}
    extra_rng = np.random.default_rng([cfg.seed, 1])
    for n in multi:
        for src in labelled[n]:
            jobs[src] = [sample_degradation(rng) for _ in range(cfg.copies)]
            jobs[src] += [sample_degradation(extra_rng, cfg.extra_kinds) for _ in range(cfg.extra_copies)]
    pair_sources = []
    if cfg.pairs:
        pair_sources = sorted({r for p in read_pairs(cfg.pairs) for r in (p.a, p.b)})
    for src in pair_sources:
        jobs.setdefault(src, [])
    if not cfg.recognizers or set(cfg.recognizers) - set(LABEL_RECOGNIZERS):
        msg = f"recognisers for labels: one or more of {', '.join(LABEL_RECOGNIZERS)}, not {', '.join(cfg.recognizers)}"
        raise FiqaError(msg)
    by_recognizer, undetected_by = {}, {}
    for name in cfg.recognizers:
        by_recognizer[name], undetected_by[name] = _embed_all(cfg.images, _cache_dir(cfg.out, name), sorted(jobs.items()),
                                                              cfg.workers, name)
    embedded = set.intersection(*(set(e) for e in by_recognizer.values()))
    for n in multi:  # an unreadable image leaves its identity's set
        labelled[n] = [s for s in labelled[n] if s in embedded]
    multi = [n for n in multi if len(labelled[n]) >= 2]

    all_clean = [(n, s) for n in multi for s in labelled[n]]
    imp_idx = rng.choice(len(all_clean), size=min(cfg.impostors, len(all_clean)), replace=False)
    imp_names = np.array([all_clean[i][0] for i in imp_idx])
    impostors = {name: np.stack([e[all_clean[i][1]] for i in imp_idx]) for name, e in by_recognizer.items()}
    rows = []
    for n in multi:
        for k, src in enumerate(labelled[n]):
            refs = [src] + [f"{src}#{kd}={st}" for kd, st in jobs[src]]
            utils = np.zeros((len(refs), len(cfg.recognizers)))
            for j, name in enumerate(cfg.recognizers):
                embeddings = by_recognizer[name]
                gallery = np.stack([embeddings[s] for i, s in enumerate(labelled[n]) if i != k])
                others = impostors[name][imp_names != n]
                utils[:, j] = [utility(embeddings[ref], gallery, others) for ref in refs]
            for ref, per in zip(refs, utils):
                kind, _, strength = ref.partition("#")[2].partition("=")
                rows.append([ref, n, split_of[n], kind or "none", strength or "", float(per.mean()), per])
    utilities = np.array([r[5] for r in rows])
    lo, hi = np.percentile(utilities, [1, 99])

    cfg.out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r[2] == split]
        counts[split] = len(chosen)
        several = len(cfg.recognizers) > 1
        table = [["image", "score", "identity", "degradation", "strength", "utility",
                  *([f"utility_{name}" for name in cfg.recognizers] if several else [])]]
        for ref, n, _, kind, strength, util, per in chosen:
            score = float(np.clip((util - lo) / (hi - lo), 0.0, 1.0))
            table.append([ref, f"{score:.6f}", n, kind, strength, f"{util:.6f}",
                          *([f"{u:.6f}" for u in per] if several else [])])
        atomic_write_text(cfg.out / f"{split}.csv", _csv_text(table))

    halves = rng.permutation(single).tolist()
    for name, part in (("U1", halves[: len(halves) // 2]), ("U2", halves[len(halves) // 2 :])):
        table = [["image"]]
        for n in part:
            src = people[n][0]
            table.append([src])
            table += [[f"{src}#{kd}={st}"] for kd, st in (sample_degradation(rng) for _ in range(cfg.copies))]
            table += [[f"{src}#{kd}={st}"] for kd, st in
                      (sample_degradation(extra_rng, cfg.extra_kinds) for _ in range(cfg.extra_copies))]
        counts[name] = len(table) - 1
        atomic_write_text(cfg.out / f"{name}.csv", _csv_text(table))

    summary = {
        "definition": "utility = (mean impostor distance - mean genuine distance) / std impostor distance "
                      f"({', '.join(cfg.recognizers)}{'; their mean' if len(cfg.recognizers) > 1 else ''})",
        "score_mapping": {"utility_at_0": float(lo), "utility_at_1": float(hi)},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items() if k != "workers"},
        "counts": counts,
        "faces_not_detected": undetected_by["dlib"] if cfg.recognizers == ("dlib",) else undetected_by,
        "identities": {"labelled": len(multi), "unlabelled": len(single)},
    }
    atomic_write_text(cfg.out / "labels.json", json.dumps(summary, indent=2) + "\n")
    for name, embeddings in by_recognizer.items():  # dlib's feed `fiqa-edge calibrate --embeddings`
        _save_embeddings(cfg.out / ("embeddings.npz" if name == "dlib" else f"embeddings-{name}.npz"), embeddings)
    return summary


def _save_embeddings(path: Path, embeddings: dict[str, np.ndarray]) -> None:
    """The ``.npz`` :func:`fiqa_edge.operating_points.load_embeddings` reads (written atomically)."""
    images = sorted(embeddings)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=np.array(images), vectors=np.stack([embeddings[r] for r in images]))


def embed_pairs(images: Path, pairs: Path, out: Path, workers: int = 2) -> tuple[int, int]:
    """dlib embeddings of every image ``pairs`` names, saved to ``out`` (``.npz``); (images embedded, not
    detected). Unreadable images are named and left out; shards in ``out``'s ``.cache`` folder make an
    interrupted run resume."""
    sources = sorted({r for p in read_pairs(pairs) for r in (p.a, p.b)})
    missing = [s for s in sources if not (images / s).is_file()]
    for s in missing:
        log.warning("%s: %s: no such image under %s; left out", pairs, s, images)
    jobs: list[tuple[str, list[tuple[str, float]]]] = [(s, []) for s in sources if s not in missing]
    embeddings, undetected = _embed_all(images, out.with_name(out.name + ".cache"), jobs, workers)
    _save_embeddings(out, embeddings)
    return len(embeddings), undetected


def make_pairs(images: Path, labels: Path, out: Path, *, impostors: int = 20000, seed: int = 0,
               workers: int = 2) -> tuple[int, int]:
    """Verification pairs among the clean images of a label file's identities, with their dlib distances.

    Every same-person pair, and ``impostors`` different-person pairs drawn with ``seed``, written to ``out``
    as ``image_a,image_b,same,distance`` (the CSV ``fiqa-edge calibrate --pairs`` reads). Returns
    (genuine, impostor) counts. Embeddings are cached beside ``out``, so an interrupted run resumes.
    """
    with open(labels, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("degradation", "none") == "none"]
    if not rows or "identity" not in rows[0]:
        msg = f"{labels}: expected clean images with an identity column (a `fiqa-edge label utility` split)"
        raise FiqaError(msg)
    jobs: list[tuple[str, list[tuple[str, float]]]] = [(r["image"], []) for r in rows]
    embeddings, _ = _embed_all(images, out.with_name(out.name + ".cache"), jobs, workers)
    people = [(r["image"], r["identity"]) for r in rows if r["image"] in embeddings]
    same = [(a, b) for (a, na), (b, nb) in combinations(people, 2) if na == nb]
    rng = np.random.default_rng(seed)
    drawn: set[tuple[int, int]] = set()
    limit = len(people) * (len(people) - 1) // 2 - len(same)
    while len(drawn) < min(impostors, limit):
        i, j = sorted(int(k) for k in rng.choice(len(people), 2, replace=False))
        if people[i][1] != people[j][1]:
            drawn.add((i, j))
    different = [(people[i][0], people[j][0]) for i, j in sorted(drawn)]
    table = [["image_a", "image_b", "same", "distance"]]
    for pairs, flag in ((same, "1"), (different, "0")):
        table += [[a, b, flag, f"{np.linalg.norm(embeddings[a] - embeddings[b]):.6f}"] for a, b in pairs]
    atomic_write_text(out, _csv_text(table))
    return len(same), len(different)


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
