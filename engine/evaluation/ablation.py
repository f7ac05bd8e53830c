"""The ablation of the paper's Table 7 (`run_ablation`): one photo pair restored with
full EditedID, each component off (alignment, hybrid solver, gating) and classic mode,
each variant scored, written side by side (`contact_sheet`) and as ablation.csv and
ablation.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import Cancelled, EditedIDError, InputError
from engine.evaluation.report import csv_text, make_folder, md_table
from engine.evaluation.results import ImageEval, id_label
from engine.evaluation.scoring import score_restored
from engine.faces.types import FaceAnalyzer
from engine.io.files import atomic_write_text
from engine.io.images import read_rgb, write_image_atomic

# (variant, restorer, parameter changes)
ABLATION_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("full", "diffusion", {}),
    ("no-alignment", "diffusion", {"alignment": False}),
    ("no-hybrid-solver", "diffusion", {"hybrid_solver": False}),
    ("no-gating", "diffusion", {"gating": False}),
    ("classic", "classic", {}),  # classic mode: no diffusion model
)


# --- ablation (paper Table 7) ------------------------------------------------------------
@dataclass
class AblationRow:
    variant: str
    status: str = "ok"
    error: str = ""
    output: str = ""
    seconds: float = 0.0
    scores: ImageEval | None = None


@dataclass
class AblationReport:
    rows: list[AblationRow]
    id_label: str
    clip_model: str | None
    clip_text: str | None
    files: dict[str, Path] = field(default_factory=dict)


def _as_image(value, what: str) -> tuple[np.ndarray, str]:
    if isinstance(value, str | Path):
        return read_rgb(value), str(value)
    array = np.asarray(value)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"The {what} must be an RGB uint8 image or a file path.")
    return array, f"the {what} photo"


def contact_sheet(tiles: Sequence[tuple[str, np.ndarray | None]], height: int = 256) -> np.ndarray:
    """Side-by-side tiles of one height with a label strip above each (None: grey tile)."""
    from PIL import Image, ImageDraw

    label_h = 22
    images = []
    for label, image in tiles:
        if image is None:
            tile = Image.new("RGB", (height, height), (128, 128, 128))
        else:
            pil = Image.fromarray(np.asarray(image, np.uint8))
            width = max(1, round(pil.width * height / pil.height))
            tile = pil.resize((width, height), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (tile.width, height + label_h), (255, 255, 255))
        canvas.paste(tile, (0, label_h))
        ImageDraw.Draw(canvas).text((4, 4), label, fill=(0, 0, 0))
        images.append(canvas)
    gap = 4
    total = sum(im.width for im in images) + gap * (len(images) - 1)
    sheet = Image.new("RGB", (total, height + label_h), (255, 255, 255))
    x = 0
    for im in images:
        sheet.paste(im, (x, 0))
        x += im.width + gap
    return np.asarray(sheet)


def run_ablation(
    original,
    edited,
    model,
    params=None,
    out_dir: str | Path = "ablation",
    *,
    analyzer: FaceAnalyzer | None = None,
    backend: str = "auto",
    clip=None,
    element_words: Sequence[str] | None = None,
    variants: Sequence[tuple[str, str, dict[str, Any]]] = ABLATION_VARIANTS,
    on_step: Callable | None = None,
    cancel=None,
) -> AblationReport:
    """Restore one photo pair with full EditedID, each component off, and classic mode.

    Writes `ablation_<variant>.png` per variant, `ablation_sheet.png` (original, edited,
    then every variant side by side), `ablation.csv` and `ablation.md`. A variant that
    fails is a row with its error; the others still run. model may be None when only
    classic mode is asked for.
    """
    # Over 60 lines only by its signature, docstring and one long call: the body is
    # three numbered steps, each a few lines or a named helper.
    from engine.evaluation.clip_score import element_prompt
    from engine.faces.detection import get_analyzer
    from engine.params import EditedIDParams
    from engine.photo.pipeline import analyze_photos
    from engine.restorers import get_restorer

    # 1. parameters, the CLIP text, the output folder, the analysed photo pair
    params = params or EditedIDParams()
    words = tuple(element_words) if element_words else tuple(params.element_words)
    text = element_prompt(words) if words else None
    out = make_folder(out_dir, "ablation")
    original_rgb, original_name = _as_image(original, "original")
    edited_rgb, edited_name = _as_image(edited, "edited")
    analyzer = analyzer or get_analyzer(backend)
    analysis = analyze_photos(
        original_rgb,
        edited_rgb,
        analyzer=analyzer,
        crop_size=params.resolution,
        original_name=original_name,
        edited_name=edited_name,
    )
    # 2. every variant restored and scored; a failure is that variant's row
    restorers = {name: get_restorer(name, model=model) for _, name, _ in variants}
    rows: list[AblationRow] = []
    tiles: list[tuple[str, np.ndarray | None]] = [
        ("original", original_rgb),
        ("edited", edited_rgb),
    ]
    for variant, restorer_name, changes in variants:
        restorer, variant_params = restorers[restorer_name], params.replace(**changes)
        row, image = _ablation_variant(
            variant, analysis, restorer, variant_params, out, clip, text, on_step, cancel
        )
        rows.append(row)
        tiles.append((variant, image) if image is not None else (f"{variant} (failed)", None))
    # 3. the side-by-side sheet, the table as CSV and Markdown
    report = AblationReport(
        rows, id_label(analyzer), clip.model_id if clip is not None else None, text
    )
    report.files["sheet"] = write_image_atomic(out / "ablation_sheet.png", contact_sheet(tiles))
    table = [_ablation_table_row(row) for row in rows]
    report.files["csv"] = atomic_write_text(out / "ablation.csv", csv_text(ABLATION_COLUMNS, table))
    markdown = _ablation_markdown(report, table, original_name, edited_name, params, clip)
    report.files["md"] = atomic_write_text(out / "ablation.md", markdown)
    return report


def _ablation_variant(
    variant: str, analysis, restorer, params, out: Path, clip, text, on_step, cancel
) -> tuple[AblationRow, np.ndarray | None]:
    """One variant restored, written and scored: its row and image (None if it failed)."""
    from engine.photo.pipeline import restore_analysis

    row = AblationRow(variant)
    start = time.perf_counter()
    # restore_analysis refines the automatic element masks in place: each variant starts
    # from its own copy of the analysis, so every variant sees the same masks.
    copy = dataclasses.replace(analysis, faces=[dataclasses.replace(f) for f in analysis.faces])
    image = None
    try:
        # every paired face: an ablation compares variants, whatever the identity check says
        result = restore_analysis(
            copy, restorer, params, faces="all", on_step=on_step, cancel=cancel
        )
        row.output = str(write_image_atomic(out / f"ablation_{variant}.png", result.image))
        row.scores = score_restored(
            analysis, result.image, name="ablation", variant=variant, clip=clip, clip_text=text
        )
        image = result.image
    except Cancelled:
        raise
    except (EditedIDError, OSError, RuntimeError, ValueError) as error:
        row.status, row.error = "error", str(error)
    row.seconds = round(time.perf_counter() - start, 3)
    return row, image


ABLATION_COLUMNS = (
    "variant",
    "status",
    "faces",
    "id_before",
    "id_after",
    "same_after",
    "clip_edited",
    "clip_restored",
    "psnr_outside_db",
    "ssim_outside",
    "seconds",
    "output",
    "error",
)


def _ablation_table_row(row: AblationRow) -> dict[str, Any]:
    s = row.scores
    return {
        "variant": row.variant,
        "status": row.status,
        "faces": len(s.faces) if s else None,
        "id_before": s.id_before if s else None,
        "id_after": s.id_after if s else None,
        "same_after": sum(1 for f in s.faces if f.id_after and f.id_after.same_person)
        if s
        else None,
        "clip_edited": s.clip_edited if s else None,
        "clip_restored": s.clip_restored if s else None,
        "psnr_outside_db": s.psnr_outside if s else None,
        "ssim_outside": s.ssim_outside if s else None,
        "seconds": row.seconds,
        "output": Path(row.output).name if row.output else "",
        "error": row.error,
    }


def _ablation_markdown(
    report: AblationReport, table, original_name: str, edited_name: str, params, clip
) -> str:
    text = report.clip_text
    md = [
        "# EditedID ablation (paper Table 7)",
        "",
        f"Original: `{original_name}`; edited: `{edited_name}`.",
        f"Identity: {report.id_label}. CLIP-S: {report.clip_model or 'not computed'}"
        + (f', text "{text}"' if text and clip is not None else "")
        + ".",
        f"Parameters: `{json.dumps(params.to_dict(), sort_keys=True)}`",
        "",
    ]
    shown = ABLATION_COLUMNS[:-2]
    md += md_table(shown, [[r[c] for c in shown] for r in table])
    errors = [r for r in report.rows if r.error]
    if errors:
        md += ["", "## Errors", ""] + [f"- {r.variant}: {r.error}" for r in errors]
    md += ["", "![side by side](ablation_sheet.png)", ""]
    return "\n".join(md)
