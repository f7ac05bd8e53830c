"""Writing an evaluation report (`write_report`): eval.csv (per image and MEAN rows),
eval_faces.csv, eval.md and the two plots; with the CSV and Markdown table helpers
(`csv_text`, `md_table`) and the output folder (`make_folder`) that the ablation uses too.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.evaluation.plots import plot_faces_scatter, plot_id_before_after
from engine.evaluation.results import EvalReport, ImageEval
from engine.io.files import atomic_write_text


# --- writing -------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}g}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


IMAGE_COLUMNS = (
    "name",
    "variant",
    "status",
    "faces",
    "id_before",
    "id_after",
    "same_before",
    "same_after",
    "clip_edited",
    "clip_restored",
    "clip_region",
    "reward_edited",
    "reward_restored",
    "psnr_outside_db",
    "ssim_outside",
    "outside_fraction",
    "seconds",
    "error",
    "original",
    "edited",
    "restored",
)
FACE_COLUMNS = (
    "name",
    "variant",
    "face",
    "original_face",
    "model",
    "metric",
    "threshold",
    "id_before",
    "id_after",
    "same_before",
    "same_after",
)


def _image_row(im: ImageEval) -> dict[str, Any]:
    return {
        "name": im.name,
        "variant": im.variant,
        "status": im.status,
        "faces": len(im.faces),
        "id_before": im.id_before,
        "id_after": im.id_after,
        "same_before": sum(1 for f in im.faces if f.id_before and f.id_before.same_person),
        "same_after": sum(1 for f in im.faces if f.id_after and f.id_after.same_person),
        "clip_edited": im.clip_edited,
        "clip_restored": im.clip_restored,
        "clip_region": im.clip_region,
        "reward_edited": im.reward_edited,
        "reward_restored": im.reward_restored,
        "psnr_outside_db": im.psnr_outside,
        "ssim_outside": im.ssim_outside,
        "outside_fraction": im.outside_fraction,
        "seconds": im.seconds,
        "error": im.error,
        "original": im.original,
        "edited": im.edited,
        "restored": im.restored,
    }


def _mean_row(variant: str, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "MEAN",
        "variant": variant,
        "status": f"{m['sets']} ok, {m['errors']} errors",
        "faces": m["faces"],
        "id_before": m["id_before"],
        "id_after": m["id_after"],
        "same_before": m["same_before"],
        "same_after": m["same_after"],
        "clip_edited": m["clip_edited"],
        "clip_restored": m["clip_restored"],
        "reward_edited": m["reward_edited"],
        "reward_restored": m["reward_restored"],
        "psnr_outside_db": m["psnr_outside"],
        "ssim_outside": m["ssim_outside"],
    }


def csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c)) for c in columns})
    return buffer.getvalue()


def md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_fmt(v, 3).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _markdown(report: EvalReport, plots: dict[str, Path | None]) -> str:
    lines = _md_header(report)
    lines += _md_means(report)
    lines += _md_per_image(report)
    lines += _md_per_face(report)
    if report.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in report.problems]
    shown = [(k, p) for k, p in plots.items() if p is not None]
    if shown:
        lines += ["", "## Plots", ""] + [f"![{k}]({p.name})" for k, p in shown]
    return "\n".join(lines) + "\n"


def _md_header(report: EvalReport) -> list[str]:
    same = "below" if report.id_metric == "l2" else "at or above"
    lines = [
        "# EditedID evaluation",
        "",
        f"Folder: `{report.folder}`",
        "",
        f"- Identity: {report.id_label}; same person {same} {_fmt(report.id_threshold, 3)}. "
        "Before = original vs edited, after = original vs restored (per paired face).",
        f"- CLIP-S (100 x cosine): {report.clip_model or 'not computed'}"
        + (f', text "{report.clip_text}"' if report.clip_text else "")
        + (f" ({report.clip_note})" if report.clip_note else "")
        + "; on the edited elements' region.",
        "- PSNR / SSIM: restored vs edited outside the faces' crop frames (a restore "
        "should leave them identical: inf dB / 1.000; inf counts as 100 dB in means).",
    ]
    if report.reward_note:
        lines.append(f"- ImageReward: {report.reward_note}")
    return lines


def _md_means(report: EvalReport) -> list[str]:
    lines = ["", "## Means", ""]
    means = report.means()
    lines += md_table(
        (
            "variant",
            "sets",
            "errors",
            "faces",
            "ID before",
            "ID after",
            "same person before",
            "same person after",
            "CLIP-S edited",
            "CLIP-S restored",
            "PSNR outside (dB)",
            "SSIM outside",
        ),
        [
            (
                v,
                m["sets"],
                m["errors"],
                m["faces"],
                m["id_before"],
                m["id_after"],
                f"{m['same_before']}/{m['faces']}",
                f"{m['same_after']}/{m['faces']}",
                m["clip_edited"],
                m["clip_restored"],
                m["psnr_outside"],
                m["ssim_outside"],
            )
            for v, m in means.items()
        ],
    )
    return lines


def _md_per_image(report: EvalReport) -> list[str]:
    lines = ["", "## Per image", ""]
    lines += md_table(
        (
            "set",
            "variant",
            "status",
            "faces",
            "ID before",
            "ID after",
            "CLIP-S edited",
            "CLIP-S restored",
            "PSNR outside (dB)",
            "SSIM outside",
            "error",
        ),
        [
            (
                im.name,
                im.variant,
                im.status,
                len(im.faces),
                im.id_before,
                im.id_after,
                im.clip_edited,
                im.clip_restored,
                im.psnr_outside,
                im.ssim_outside,
                im.error,
            )
            for im in report.images
        ],
    )
    return lines


def _md_per_face(report: EvalReport) -> list[str]:
    lines = ["", "## Per face", ""]
    lines += md_table(
        ("set", "variant", "face", "original face", "ID before", "ID after", "same after"),
        [
            (
                f.name,
                f.variant,
                f.face,
                f.original_face,
                f.id_before.value if f.id_before else None,
                f.id_after.value if f.id_after else None,
                f.id_after.same_person if f.id_after else None,
            )
            for f in report.faces()
        ],
    )
    return lines


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path | None]:
    """eval.csv (per image + MEAN rows), eval_faces.csv, eval.md and the two plots.

    Plots need matplotlib; without it they are left out with a note in eval.md.
    Returns name -> written path (None for a plot that was left out).
    """
    out = make_folder(out_dir, "report")
    written: dict[str, Path | None] = {}
    rows = [_image_row(im) for im in report.images]
    rows += [_mean_row(v, m) for v, m in report.means().items()]
    written["csv"] = atomic_write_text(out / "eval.csv", csv_text(IMAGE_COLUMNS, rows))
    face_rows = [
        {
            "name": f.name,
            "variant": f.variant,
            "face": f.face,
            "original_face": f.original_face,
            "model": report.id_model,
            "metric": report.id_metric,
            "threshold": report.id_threshold,
            "id_before": f.id_before.value if f.id_before else None,
            "id_after": f.id_after.value if f.id_after else None,
            "same_before": f.id_before.same_person if f.id_before else None,
            "same_after": f.id_after.same_person if f.id_after else None,
        }
        for f in report.faces()
    ]
    written["faces_csv"] = atomic_write_text(
        out / "eval_faces.csv", csv_text(FACE_COLUMNS, face_rows)
    )
    plots: dict[str, Path | None] = {"id_before_after": None, "faces_scatter": None}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        report.problems.append(
            "Plots left out: matplotlib is not installed (pip install matplotlib)."
        )
    else:
        plots["id_before_after"] = plot_id_before_after(report, out / "id_before_after.png")
        plots["faces_scatter"] = plot_faces_scatter(report, out / "faces_scatter.png")
    written.update(plots)
    written["md"] = atomic_write_text(out / "eval.md", _markdown(report, plots))
    return written


def make_folder(out_dir: str | Path, what: str) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create the {what} folder ({error}).") from error
    return out
