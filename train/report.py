"""The training report of a recipe run on utility labels: test table, baseline, EDC.

Adds to a run's ``summary.json`` what FIQA is judged by when labels come from
face recognition: the variance-of-Laplacian baseline on the same test split,
and Error-versus-Discard curves on verification pairs (dlib distances) for the
student and the baseline, on all pairs and on the pairs whose people were in
no training or validation label file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fiqa_edge._atomic import atomic_path, atomic_write_text
from fiqa_edge.baselines import laplacian_variance
from fiqa_edge.degrade import open_image_ref
from fiqa_edge.edc import EdcCurve, edc
from fiqa_edge.metrics import quality_metrics
from fiqa_edge.operating_points import load_embeddings, read_pairs
from fiqa_edge.zoo import load_model

from .data import Item, read_labels
from .distributed import Dist
from .engine import predict

__all__ = ["make_report", "plot_edc"]

DISCARDS = (0.1, 0.2)
FMRS = (1e-2, 1e-3)


def _laplacian(items: list[Item], root: Path, desc: str) -> np.ndarray:
    return np.array([laplacian_variance(open_image_ref(it.image, root)) for it in tqdm(items, desc=desc, unit="img")])


def _edc_rows(name: str, curves: dict[float, EdcCurve]) -> list[dict]:
    rows = []
    for fmr, c in curves.items():
        rows.append({"method": name, "fmr": fmr, "fnmr_0": c.fnmr[0],
                     **{f"fnmr_{int(d * 100)}": c.fnmr_at(d) for d in DISCARDS},
                     **{f"reduction_{int(d * 100)}": c.reduction_at(d) for d in DISCARDS}})
    return rows


def make_report(run: Path, labels_dir: Path, root: Path, pairs: Path, out: Path, *, batch_size: int = 64, workers: int = 2) -> dict:
    """Write ``out/report.json``, ``out/report.md`` and ``out/edc.png``; return the report."""
    summary = json.loads((run / "summary.json").read_text())
    test = read_labels(labels_dir / "test.csv", root)
    lap = _laplacian(test, root, "laplacian (test split)")
    labels = np.array([it.score for it in test])
    baseline = quality_metrics(lap, labels).to_dict()

    vectors = load_embeddings(labels_dir / "embeddings.npz")
    pair_list = [(p.a, p.b, p.same) for p in read_pairs(pairs) if p.a in vectors and p.b in vectors]
    images = sorted({r for a, b, _ in pair_list for r in (a, b)})
    items = [Item(r) for r in images]
    student = load_model(summary["models"]["student"]["checkpoint"])
    q_student = predict(student.model, items, root, student.spec, Dist(), batch_size=batch_size, workers=workers,
                        desc="student (pair images)")
    q_lap = _laplacian(items, root, "laplacian (pair images)")
    index = {r: i for i, r in enumerate(images)}
    a_idx = np.array([index[a] for a, _, _ in pair_list])
    b_idx = np.array([index[b] for _, b, _ in pair_list])
    genuine = np.array([g for _, _, g in pair_list])
    distance = np.array([np.linalg.norm(vectors[a] - vectors[b]) for a, b, _ in pair_list])

    seen = set()
    for split in ("train", "val"):
        seen |= {it.image.split("/")[0] for it in read_labels(labels_dir / f"{split}.csv", root)}
    held_out = np.array([a.split("/")[0] not in seen and b.split("/")[0] not in seen for a, b, _ in pair_list])

    subsets = {name: mask for name, mask in (("all pairs", np.ones(len(pair_list), bool)), ("held-out pairs", held_out))
               if genuine[mask].any() and (~genuine[mask]).any()}  # an EDC needs both kinds of pairs
    curves: dict[str, dict[str, dict[float, EdcCurve]]] = {}
    for subset, mask in subsets.items():
        curves[subset] = {}
        for method, q in (("student", q_student), ("laplacian", q_lap)):
            pair_q = np.minimum(q[a_idx], q[b_idx])[mask]
            curves[subset][method] = {f: edc(distance[mask], genuine[mask], pair_q, fmr=f) for f in FMRS}

    report = {
        "test_images": len(test),
        "models": summary["models"],
        "laplacian_baseline": baseline,
        "edc": {subset: {"pairs": int(mask.sum()), "genuine": int(genuine[mask].sum()),
                         "rows": [r for m, c in curves[subset].items() for r in _edc_rows(m, c)]}
                for subset, mask in subsets.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", _markdown(report))
    plot_edc({subset: {m: by_fmr[FMRS[0]] for m, by_fmr in methods.items()} for subset, methods in curves.items()},
             out / "edc.png")
    return report


def _markdown(report: dict) -> str:
    lines = [f"Test split: {report['test_images']} images (identities in no training or validation file).", "",
             "| model | SRCC | PLCC | KRCC | RMSE | score | params | GFLOPs |", "|---|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        lines.append(f"| {name} ({m['arch']}, {m['input_size']} px) | {m['srcc']:.4f} | {m['plcc']:.4f} | {m['krcc']:.4f} | "
                     f"{m['rmse']:.4f} | {m['score']:.4f} | {m['params']:,} | {m['gflops']:.4f} |")
    b = report["laplacian_baseline"]
    figures = " | ".join(f"{b[k]:.4f}" for k in ("srcc", "plcc", "krcc", "rmse", "score"))
    lines.append(f"| variance of Laplacian | {figures} | – | – |")
    for subset, e in report["edc"].items():
        lines += ["", f"EDC, {subset}: {e['pairs']} pairs ({e['genuine']} genuine), dlib distance, threshold fixed at the FMR.", "",
                  "| quality | FMR | FNMR, 0 % discarded | 10 % | 20 % | FNMR fall at 10 % | at 20 % |", "|---|---|---|---|---|---|---|"]
        for r in e["rows"]:
            lines.append(f"| {r['method']} | {r['fmr']:g} | {r['fnmr_0']:.4f} | {r['fnmr_10']:.4f} | {r['fnmr_20']:.4f} | "
                         f"{100 * r['reduction_10']:.1f} % | {100 * r['reduction_20']:.1f} % |")
    return "\n".join(lines) + "\n"


def plot_edc(panels: dict[str, dict[str, EdcCurve]], path: Path) -> None:
    """One panel per entry (a pair subset, a recogniser), one line per quality measure; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (panel, methods) in zip(axes[0], panels.items()):
        for method, c in methods.items():
            ax.plot(100 * c.discard, c.fnmr, label=method)
        fmrs = sorted({c.fmr for c in methods.values()})
        ax.set(title=f"EDC, {panel} (FMR {', '.join(f'{f:g}' for f in fmrs)})", xlabel="pairs discarded (%)",
               ylabel="FNMR")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
