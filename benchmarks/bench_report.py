"""The bench report as a terminal table, Markdown, and a latency-vs-quality plot; gates on its figures."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.errors import FiqaError

from .harness import BenchReport, BenchResult

__all__ = ["Gate", "parse_gate", "plot", "table", "markdown"]

_COLUMNS = ("target", "backend", "precision", "status", "MB", "peak RSS MB", "GFLOPs", "p10 ms", "p50 ms", "p90 ms",
            "img/s b1", "img/s b8", "e2e img/s", "parity SRCC", "max |Δ|", "SRCC (labels)")


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _row(r: BenchResult) -> list[str]:
    lat, par, acc = r.latency, r.parity or {}, r.accuracy or {}
    e2e = (r.end_to_end or {}).get("ips")
    status = r.status + (" (noisy)" if r.noisy else "")
    return [Path(r.target).name, r.backend, r.precision, status, _fmt(r.size_mb, ".2f"), _fmt(r.rss_mb, ".0f"),
            _fmt(r.gflops, ".3f"),
            _fmt(lat and lat.p10_ms, ".2f"), _fmt(lat and lat.p50_ms, ".2f"), _fmt(lat and lat.p90_ms, ".2f"),
            _fmt(r.throughput_ips.get("1"), ".1f"),
            _fmt(r.throughput_ips.get("8"), ".1f"), _fmt(e2e, ".1f"), _fmt(par.get("srcc"), ".5f"),
            _fmt(par.get("max_abs"), ".1e"), _fmt(acc.get("srcc"), ".4f")]


def _notes(report: BenchReport) -> list[str]:
    notes = [f"{report.images} images; threads {report.settings['threads'] or 'default'}; "
             f"{report.settings['cpu_count']} CPUs ({report.settings['cpu']})"]
    if report.images < 200:
        notes.append(f"only {report.images} images: at least 200 are recommended for parity and accuracy figures")
    pinned = [f"{r.backend} {r.precision}" for r in report.results if r.pinned]
    if pinned:
        notes.append(f"threads pinned, each to a CPU of its own: {', '.join(pinned)}")
    for r in report.results:
        if r.reason:
            notes.append(f"{r.backend} {r.precision} ({Path(r.target).name}) {r.status}: {r.reason}")
        if r.runtime:
            rt = r.runtime
            notes.append(f"{r.backend} {r.precision}: {rt['browser']}, {rt['backend']}, {rt['threads']} thread(s), "
                         f"{rt['runtime']}, timed inside the page; runtime and model loaded in "
                         f"{rt['load_ms']:.0f} ms, the demo page's first score {rt['first_score_ms']:.0f} ms after "
                         "navigation")
        if r.noisy and r.latency is not None:
            notes.append(f"{r.backend} {r.precision}: p90/p50 = {r.latency.p90_ms / r.latency.p50_ms:.2f}, too noisy to trust")
    return notes


def table(report: BenchReport) -> str:
    """A fixed-width table, one row per artifact, then notes."""
    rows = [list(_COLUMNS)] + [_row(r) for r in report.results]
    widths = [max(len(row[c]) for row in rows) for c in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if c < 4 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines + [""] + _notes(report)) + "\n"


def markdown(report: BenchReport) -> str:
    """The table as GitHub Markdown, notes as a list."""
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in report.results]
    return "\n".join(lines + [""] + [f"- {n}" for n in _notes(report)]) + "\n"


def plot(report: BenchReport, path: Path) -> None:
    """Latency (p50, batch 1) against parity SRCC, or accuracy SRCC when labels were given; Pareto front marked."""
    require("matplotlib", "the latency plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_acc = any(r.accuracy for r in report.results)
    points = []
    for r in report.results:
        quality = (r.accuracy or {}).get("srcc") if use_acc else (r.parity or {}).get("srcc")
        if r.latency is not None and quality is not None:
            points.append((r.latency.p50_ms, quality, f"{r.backend} {r.precision}"))
    if not points:
        msg = "nothing to plot: no artifact has both a latency and a parity/accuracy figure"
        raise FiqaError(msg)
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if p[1] > best:
            front.append(p)
            best = p[1]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue")
    ax.plot([p[0] for p in front], [p[1] for p in front], "--o", color="tab:red", mfc="none", ms=11, label="Pareto front")
    for x, y, name in points:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel("SRCC vs labels" if use_acc else "parity SRCC vs reference")
    ax.set_title(f"fiqa-edge bench, {report.images} images")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class Gate:
    """``field op value``, e.g. ``parity.srcc>=0.99``, checked on every measured row."""

    text: str
    field: str
    op: str
    value: float

    def failures(self, report: BenchReport) -> list[str]:
        """One line per measured row that misses the gate (rows without the figure are named too)."""
        out = []
        for r in report.results:
            if r.status != "ok":
                continue
            value: Any = r.to_dict()
            for key in self.field.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            name = f"{r.backend} {r.precision} ({Path(r.target).name})"
            if not isinstance(value, (int, float)):
                out.append(f"gate {self.text}: {name} has no {self.field}")
            elif not _OPS[self.op](value, self.value):
                out.append(f"gate {self.text}: {name} has {self.field} = {value:.6g}")
        return out


def parse_gate(text: str) -> Gate:
    """Parse ``field op number``.

    Raises:
        FiqaError: not of that form.
    """
    match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(>=|<=|==|>|<)\s*([-+0-9.eE]+)\s*", text)
    if not match:
        msg = f"gate {text!r}: expected FIELD OP NUMBER, e.g. 'parity.srcc>=0.99' or 'latency.p50_ms<=10'"
        raise FiqaError(msg)
    try:
        value = float(match.group(3))
    except ValueError:
        msg = f"gate {text!r}: {match.group(3)!r} is not a number"
        raise FiqaError(msg) from None
    return Gate(text.strip(), match.group(1), match.group(2), value)
