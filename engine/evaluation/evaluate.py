"""Evaluation a studio can be shown: identity before/after, edits kept, background untouched.

    report = evaluate_folder("eval_sets/", clip=ClipScorer.load(...), element_words=["glasses"])
    write_report(report, "eval_out/")   # eval.csv, eval_faces.csv, eval.md, two plots
    run_ablation("o.jpg", "e.jpg", model, params, "ablation_out/")   # paper Table 7

Sets of (original, edited, restored) are found in a folder in one of two layouts:

1. Flat, by name: `<name>_original.<ext>`, `<name>_edited.<ext>` and one or more
   `<name>_restored[_<variant>].<ext>` (separator `_`, `-`, `.` or space; case ignored),
   e.g. `anna_original.jpg`, `anna_edited.png`, `anna_restored.png`,
   `anna_restored_classic.png` (variant "classic").
2. Sub-folders `original/` (or `originals/`), `edited/` and `restored/` (a batch run's
   output folder works as is); edited files pair with originals by the batch rule (same
   name, or the name with an editing marker such as `_edited`), restored files with the
   edited file of the same name (batch outputs keep it) or the original's name. Further
   folders named `restored<sep><variant>/` (e.g. `restored-classic/`) are more variants.

Per set and per paired face: ID-Sim(original, edited) ("before") and ID-Sim(original,
restored) ("after"), on the face backend's own scale and labelled with its model (dlib:
L2 distance, lower = more alike, same person below 0.6; ArcFace: cosine, higher = more
alike). The restored face is embedded at the edited face's landmarks (the restored photo
has the edited layout). CLIP-S of the element prompt ("a photo of a face with <words>")
on the edited and on the restored photo, inside the padded bounding box of the edited
elements (the automatic element masks), else of the face crops, else the whole image.
PSNR and SSIM of restored vs edited OUTSIDE the face region - the union of every edited
face's aligned crop frame, the only pixels a restore may change - so a correct tool gives
PSNR inf / SSIM 1 there (SSIM uses the region shrunk by the window radius). In means a
PSNR of inf counts as 100 dB. Element words: the argument, else the restored file's
sidecar JSON (`<file>.json`, params.element_words), else CLIP-S is left out.

A bad or missing file makes that set's row an error with the message; the rest go on.
Every file is written atomically.

This module is the driver (`evaluate_folder`, `evaluate_sets`) and the entry point for
the rest: discovery finds the sets, results holds the records, scoring scores one
restored photo, report and plots write the report, ablation runs the paper's Table 7.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, EditedIDError
from engine.evaluation.ablation import (  # noqa: F401 - re-exported, see __all__
    ABLATION_COLUMNS,
    ABLATION_VARIANTS,
    AblationReport,
    AblationRow,
    contact_sheet,
    run_ablation,
)
from engine.evaluation.discovery import (  # noqa: F401 - re-exported, see __all__
    EvalSet,
    discover_sets,
)
from engine.evaluation.plots import (  # noqa: F401 - re-exported, see __all__
    plot_faces_scatter,
    plot_id_before_after,
)
from engine.evaluation.report import (  # noqa: F401 - re-exported, see __all__
    FACE_COLUMNS,
    IMAGE_COLUMNS,
    write_report,
)
from engine.evaluation.results import (  # noqa: F401 - re-exported, see __all__
    PSNR_CAP_DB,
    EvalReport,
    FaceEval,
    ImageEval,
    id_model,
)
from engine.evaluation.scoring import (  # noqa: F401 - re-exported, see __all__
    SSIM_ERODE_PX,
    face_region,
    score_restored,
)
from engine.faces.types import FaceAnalyzer
from engine.io.images import read_rgb
from engine.params import load_params

__all__ = [
    "ABLATION_COLUMNS",
    "ABLATION_VARIANTS",
    "AblationReport",
    "AblationRow",
    "EvalReport",
    "EvalSet",
    "FACE_COLUMNS",
    "FaceEval",
    "IMAGE_COLUMNS",
    "ImageEval",
    "PSNR_CAP_DB",
    "SSIM_ERODE_PX",
    "contact_sheet",
    "discover_sets",
    "evaluate_folder",
    "evaluate_sets",
    "face_region",
    "plot_faces_scatter",
    "plot_id_before_after",
    "run_ablation",
    "score_restored",
    "write_report",
]


def _sidecar_words(path: Path) -> tuple[str, ...] | None:
    side = path.with_name(path.name + ".json")
    try:
        params = load_params(json.loads(side.read_text(encoding="utf-8")), source=side)
    except (OSError, ValueError, RecursionError, EditedIDError):
        return None  # no usable sidecar: the caller's element words apply
    return params.element_words if params is not None and params.element_words else None


def evaluate_sets(
    sets: Sequence[EvalSet],
    *,
    analyzer: FaceAnalyzer | None = None,
    backend: str = "auto",
    clip=None,
    element_words: Sequence[str] | None = None,
    image_reward: bool = False,
    reward_options: dict[str, Any] | None = None,
    folder: str = "",
    problems: Sequence[str] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> EvalReport:
    """Score the given sets (see the module docstring); errors become rows, not failures."""
    from engine.evaluation.clip_score import element_prompt
    from engine.faces.detection import get_analyzer

    analyzer = analyzer or get_analyzer(backend)
    report = _new_report(folder, problems, analyzer, clip)
    if image_reward:
        report.reward_note = _image_reward_note(reward_options)
        image_reward = not report.reward_note
    texts: list[str] = []
    analyses: dict[tuple[Path, Path], Any] = {}
    for index, item in enumerate(sets):
        if progress is not None:
            progress(index, len(sets), item.name)
        start = time.perf_counter()
        words = tuple(element_words) if element_words else _sidecar_words(item.restored)
        text = element_prompt(words) if words else None
        try:
            row = score_restored(
                _cached_analysis(analyses, item, analyzer),
                read_rgb(item.restored),
                name=item.name,
                variant=item.variant,
                clip=clip,
                clip_text=text,
                reward_prompt=(text or "a photo of a face") if image_reward else None,
                reward_options=reward_options,
            )
            if text and clip is not None:
                texts.append(text)
        except Cancelled:
            raise
        except (EditedIDError, OSError, ValueError) as error:
            row = ImageEval(name=item.name, variant=item.variant, status="error", error=str(error))
        row.original, row.edited, row.restored = map(
            str, (item.original, item.edited, item.restored)
        )
        row.seconds = round(time.perf_counter() - start, 3)
        report.images.append(row)
    if clip is not None:
        distinct = list(dict.fromkeys(texts))
        report.clip_text = " | ".join(distinct) if distinct else None
        if not distinct:
            report.clip_note = "CLIP-S left out: no element words (give --element WORD)."
    return report


def _new_report(folder, problems: Sequence[str], analyzer: FaceAnalyzer, clip) -> EvalReport:
    """An empty report labelled with the identity model and the CLIP model (or a note)."""
    report = EvalReport(folder=str(folder), images=[], problems=list(problems))
    report.id_metric = analyzer.embedding_metric
    report.id_threshold = float(analyzer.same_person_threshold)
    report.id_model = id_model(analyzer)
    if clip is not None:
        report.clip_model = clip.model_id
    else:
        report.clip_note = "CLIP-S left out: no CLIP model was given."
    return report


def _image_reward_note(reward_options: dict[str, Any] | None) -> str:
    """Why ImageReward cannot be scored, or "" when it can."""
    from engine.evaluation.image_quality import imagereward_status

    status = imagereward_status((reward_options or {}).get("models_dir"))
    return "" if status == "ready" else status


def _cached_analysis(analyses: dict, item: EvalSet, analyzer: FaceAnalyzer):
    """The analysed (original, edited) pair of `item`; only the latest pair is kept in
    memory (sets come grouped by pair)."""
    from engine.photo.pipeline import analyze_photos

    key = (item.original, item.edited)
    if key not in analyses:
        analyses.clear()
        analyses[key] = analyze_photos(
            read_rgb(item.original),
            read_rgb(item.edited),
            analyzer=analyzer,
            original_name=str(item.original),
            edited_name=str(item.edited),
        )
    return analyses[key]


def evaluate_folder(
    folder: str | Path,
    *,
    analyzer: FaceAnalyzer | None = None,
    clip=None,
    element_words: Sequence[str] | None = None,
    backend: str = "auto",
    image_reward: bool = False,
    reward_options: dict[str, Any] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> EvalReport:
    """Find the sets of `folder` (see the module docstring) and score them all."""
    sets, problems = discover_sets(folder)
    return evaluate_sets(
        sets,
        analyzer=analyzer,
        backend=backend,
        clip=clip,
        element_words=element_words,
        image_reward=image_reward,
        reward_options=reward_options,
        folder=str(folder),
        problems=problems,
        progress=progress,
    )
