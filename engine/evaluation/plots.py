"""The evaluation report's two plots, drawn with matplotlib on the Agg canvas (pyplot's
global backend is never touched) and written atomically as PNG: mean identity per set
before vs after (`plot_id_before_after`) and the per-face before/after scatter
(`plot_faces_scatter`). matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine.evaluation.results import EvalReport
from engine.io.files import atomic_write_bytes


def _figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, without touching pyplot's global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_id_before_after(report: EvalReport, path: Path) -> Path:
    """Bar chart: mean ID value per set (and overall) before vs after."""
    rows = [im for im in report.images if im.status == "ok" and im.faces]
    labels = [im.name if len(report.variants) == 1 else f"{im.name}\n{im.variant}" for im in rows]
    before = [im.id_before for im in rows]
    after = [im.id_after for im in rows]
    for variant, m in report.means().items():
        labels.append("mean" if len(report.variants) == 1 else f"mean\n{variant}")
        before.append(m["id_before"])
        after.append(m["id_after"])
    fig = _figure(max(6.0, 1.1 * len(labels) + 2), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(labels))
    nan = float("nan")
    ax.bar(
        x - 0.2,
        [nan if v is None else v for v in before],
        0.4,
        label="before (edited)",
        color="#d62728",
    )
    ax.bar(
        x + 0.2,
        [nan if v is None else v for v in after],
        0.4,
        label="after (restored)",
        color="#2ca02c",
    )
    if report.id_threshold is not None:
        ax.axhline(
            report.id_threshold,
            color="k",
            linestyle="--",
            linewidth=1,
            label=f"same-person threshold {report.id_threshold:g}",
        )
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(report.id_label, fontsize=8)
    ax.set_title("Identity vs the original: before and after restoration")
    if not labels:
        ax.text(0.5, 0.5, "no faces scored", ha="center", transform=ax.transAxes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_faces_scatter(report: EvalReport, path: Path) -> Path:
    """Per-face scatter: ID before (x) vs after (y), the y = x line and the thresholds."""
    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    values: list[float] = []
    for variant in report.variants:
        faces = [
            f
            for f in report.faces()
            if f.variant == variant and f.id_before is not None and f.id_after is not None
        ]
        xs = [f.id_before.value for f in faces]
        ys = [f.id_after.value for f in faces]
        values += xs + ys
        ax.scatter(xs, ys, label=f"{variant} ({len(faces)} faces)", alpha=0.8)
    if report.id_threshold is not None:
        values.append(report.id_threshold)
    lo = min(values + [0.0])
    hi = max(values + [1.0]) * 1.05
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, label="y = x (no change)")
    if report.id_threshold is not None:
        t = report.id_threshold
        ax.axvline(t, color="k", linestyle="--", linewidth=1)
        ax.axhline(t, color="k", linestyle="--", linewidth=1, label=f"threshold {t:g}")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"before: original vs edited\n{report.id_label}", fontsize=8)
    ax.set_ylabel("after: original vs restored", fontsize=8)
    better = "below" if report.id_metric == "l2" else "above"
    ax.set_title(f"Per face ({better} the diagonal = identity restored)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, path)
