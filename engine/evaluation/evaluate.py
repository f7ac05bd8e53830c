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
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import Cancelled, EditedIDError, InputError
from engine.faces.identity import IdentityScore, identity_from_embeddings
from engine.faces.types import Face, FaceAnalyzer
from engine.io.files import atomic_write_bytes, atomic_write_text
from engine.io.folders import NAME_SEPARATOR, image_files, pair_by_name
from engine.io.images import read_rgb, write_image_atomic
from engine.params import load_params

PSNR_CAP_DB = 100.0
SSIM_ERODE_PX = 5  # the SSIM window's radius: windows never reach into the face region
_ORIGINAL_RE = re.compile(rf"^(?P<name>.+){NAME_SEPARATOR}original$", re.IGNORECASE)
_EDITED_RE = re.compile(rf"^(?P<name>.+){NAME_SEPARATOR}edited$", re.IGNORECASE)
_RESTORED_RE = re.compile(
    rf"^(?P<name>.+?){NAME_SEPARATOR}restored(?:{NAME_SEPARATOR}(?P<variant>.+))?$", re.IGNORECASE
)
_RESTORED_DIR_RE = re.compile(rf"^restored(?:{NAME_SEPARATOR}(?P<variant>.+))?$", re.IGNORECASE)

# (variant, restorer, parameter changes)
ABLATION_VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("full", "diffusion", {}),
    ("no-alignment", "diffusion", {"alignment": False}),
    ("no-hybrid-solver", "diffusion", {"hybrid_solver": False}),
    ("no-gating", "diffusion", {"gating": False}),
    ("classic", "classic", {}),  # classic mode: no diffusion model
)


# --- data -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSet:
    name: str
    original: Path
    edited: Path
    restored: Path
    variant: str = "restored"


@dataclass
class FaceEval:
    name: str
    variant: str
    face: int  # edited-photo face index
    original_face: int | None
    id_before: IdentityScore | None
    id_after: IdentityScore | None


@dataclass
class ImageEval:
    name: str
    variant: str
    original: str = ""
    edited: str = ""
    restored: str = ""
    status: str = "ok"
    error: str = ""
    faces: list[FaceEval] = field(default_factory=list)
    clip_edited: float | None = None
    clip_restored: float | None = None
    clip_region: str = ""
    reward_edited: float | None = None
    reward_restored: float | None = None
    psnr_outside: float | None = None
    ssim_outside: float | None = None
    outside_fraction: float | None = None
    seconds: float = 0.0

    def _values(self, which: str) -> list[float]:
        return [getattr(f, which).value for f in self.faces if getattr(f, which) is not None]

    @property
    def id_before(self) -> float | None:
        return _mean(self._values("id_before"))

    @property
    def id_after(self) -> float | None:
        return _mean(self._values("id_after"))


@dataclass
class EvalReport:
    folder: str
    images: list[ImageEval]
    problems: list[str] = field(default_factory=list)
    id_model: str = ""
    id_metric: str = ""
    id_threshold: float | None = None
    clip_model: str | None = None
    clip_text: str | None = None
    clip_note: str = ""
    reward_note: str = ""

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(im.variant for im in self.images))

    def faces(self) -> list[FaceEval]:
        return [f for im in self.images for f in im.faces]

    def means(self) -> dict[str, dict[str, Any]]:
        """Per variant: means over the sets that were scored (errors left out)."""
        out = {}
        for variant in self.variants:
            rows = [im for im in self.images if im.variant == variant and im.status == "ok"]
            faces = [f for im in rows for f in im.faces]
            before = [f.id_before for f in faces if f.id_before is not None]
            after = [f.id_after for f in faces if f.id_after is not None]
            out[variant] = {
                "sets": len(rows),
                "errors": sum(
                    1 for im in self.images if im.variant == variant and im.status != "ok"
                ),
                "faces": len(faces),
                "id_before": _mean([s.value for s in before]),
                "id_after": _mean([s.value for s in after]),
                "same_before": sum(s.same_person for s in before),
                "same_after": sum(s.same_person for s in after),
                "clip_edited": _mean([im.clip_edited for im in rows]),
                "clip_restored": _mean([im.clip_restored for im in rows]),
                "reward_edited": _mean([im.reward_edited for im in rows]),
                "reward_restored": _mean([im.reward_restored for im in rows]),
                "psnr_outside": _mean(
                    [
                        min(im.psnr_outside, PSNR_CAP_DB)
                        for im in rows
                        if im.psnr_outside is not None
                    ]
                ),
                "ssim_outside": _mean([im.ssim_outside for im in rows]),
            }
        return out

    @property
    def id_label(self) -> str:
        if not self.id_metric:
            return "ID-Sim"
        if self.id_metric == "l2":
            return f"ID distance ({self.id_model}, L2, lower = more alike)"
        return f"ID-Sim ({self.id_model}, cosine, higher = more alike)"


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


# --- discovery ----------------------------------------------------------------------------
def _sub(folder: Path, names: Sequence[str]) -> Path | None:
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.casefold() in names:
            return child
    return None


def discover_sets(folder: str | Path) -> tuple[list[EvalSet], list[str]]:
    """The (original, edited, restored) sets of `folder` and one line per problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: the evaluation folder does not exist or is not a folder.")
    original_dir = _sub(folder, ("original", "originals"))
    edited_dir = _sub(folder, ("edited",))
    if original_dir is not None and edited_dir is not None:
        return _discover_subfolders(folder, original_dir, edited_dir)
    return _discover_flat(folder)


def _discover_flat(folder: Path) -> tuple[list[EvalSet], list[str]]:
    originals: dict[str, list[Path]] = {}
    edited: dict[str, list[Path]] = {}
    restored: dict[str, list[tuple[str, Path]]] = {}
    keys: dict[str, str] = {}
    for path in image_files(folder):
        stem = path.stem
        if m := _RESTORED_RE.match(stem):
            key = m.group("name").casefold()
            restored.setdefault(key, []).append((m.group("variant") or "restored", path))
        elif m := _ORIGINAL_RE.match(stem):
            key = m.group("name").casefold()
            originals.setdefault(key, []).append(path)
        elif m := _EDITED_RE.match(stem):
            key = m.group("name").casefold()
            edited.setdefault(key, []).append(path)
        else:
            continue
        keys.setdefault(key, m.group("name"))
    sets, problems = [], []
    for key in sorted(keys):
        name = keys[key]
        o, e, r = originals.get(key, []), edited.get(key, []), restored.get(key, [])
        if len(o) != 1 or len(e) != 1 or not r:
            missing = [
                what
                for what, files in (("original", o), ("edited", e), ("restored", r))
                if not files
            ]
            several = [what for what, files in (("original", o), ("edited", e)) if len(files) > 1]
            why = (
                f"no {' and no '.join(missing)} file"
                if missing
                else f"several {' and '.join(several)} files"
            )
            problems.append(f"Set {name!r} skipped: {why} (see the naming rules).")
            continue
        seen: set[str] = set()
        for variant, path in sorted(r, key=lambda vp: vp[0].casefold()):
            if variant.casefold() in seen:
                problems.append(
                    f"Set {name!r}: several restored files for variant {variant!r}; "
                    f"{path.name} skipped."
                )
                continue
            seen.add(variant.casefold())
            sets.append(EvalSet(name, o[0], e[0], path, variant))
    if not sets and not problems:
        problems.append(
            f"{folder}: no evaluation sets found. Name files <name>_original.jpg, "
            "<name>_edited.jpg, <name>_restored.png, or use sub-folders original/, edited/ and "
            "restored/."
        )
    return sets, problems


def _discover_subfolders(
    folder: Path, original_dir: Path, edited_dir: Path
) -> tuple[list[EvalSet], list[str]]:
    pairing = pair_by_name(image_files(original_dir), image_files(edited_dir), "stem")
    problems = [f"No original for edited photo: {p.name}" for p in pairing.unpaired_edited]
    problems += [f"Ambiguous: {message}" for message in pairing.ambiguous]
    restored_dirs = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name.casefold()):
        if child.is_dir() and (m := _RESTORED_DIR_RE.match(child.name)):
            restored_dirs.append((m.group("variant") or "restored", child))
    if not restored_dirs:
        problems.append(f"{folder}: no restored/ folder next to original/ and edited/.")
    pairs = sorted(pairing.pairs, key=lambda pair: pair[0].stem.casefold())
    sets = []
    for variant, rdir in restored_dirs:
        by_stem = {p.stem.casefold(): p for p in image_files(rdir)}
        for original, edited in pairs:
            path = _restored_file(by_stem, edited.stem, original.stem)
            if path is None:
                problems.append(f"{rdir.name}/: no restored file for {edited.name}")
                continue
            sets.append(EvalSet(original.stem, original, edited, path, variant))
    return sets, problems


def _restored_file(by_stem: dict[str, Path], edited_stem: str, original_stem: str) -> Path | None:
    """The restored file of a pair: the edited file's name, the original's, or the
    original's name with the `restored` marker (`anna_restored.png`)."""
    key = original_stem.casefold()
    path = by_stem.get(edited_stem.casefold()) or by_stem.get(key)
    if path is not None:
        return path
    for stem, candidate in by_stem.items():
        m = _RESTORED_RE.match(stem)
        if m and m.group("name").casefold() == key and not m.group("variant"):
            return candidate
    return None


# --- scoring -------------------------------------------------------------------------------
def face_region(analysis) -> np.ndarray:
    """HxW bool: the union of every edited face's aligned crop frame (photo coordinates)."""
    from engine.photo.masks import to_photo

    shape = analysis.edited.shape[:2]
    region = np.zeros(shape, bool)
    for face in analysis.faces:
        full = np.full((face.edited_crop.size, face.edited_crop.size), 255, np.uint8)
        region |= to_photo(full, face.edited_crop, shape) > 0
    return region


def _element_region(analysis) -> tuple[np.ndarray | None, str]:
    union = np.zeros(analysis.edited.shape[:2], np.uint8)
    for face in analysis.faces:
        if face.restorable:
            union = np.maximum(union, face.auto_element_mask)
    if (union > 127).sum() >= 64:
        return union, "element"
    faces = face_region(analysis)
    if faces.any():
        return faces.astype(np.uint8) * 255, "face"
    return None, "image"


def _restored_identity(
    analyzer: FaceAnalyzer, face, original_face: Face, image: np.ndarray
) -> IdentityScore:
    edited = face.edited_face
    probe = Face(edited.box, edited.landmarks5, edited.score, edited.landmarks, None, analyzer.name)
    embedding = analyzer.embed(image, probe)
    return identity_from_embeddings(original_face.embedding, embedding, analyzer)


def score_restored(
    analysis,
    restored: np.ndarray,
    *,
    name: str = "",
    variant: str = "restored",
    clip=None,
    clip_text: str | None = None,
    reward_prompt: str | None = None,
    reward_options: dict[str, Any] | None = None,
) -> ImageEval:
    """Every figure of one restored photo against its analysed (original, edited) pair."""
    from engine.evaluation.image_quality import masked_psnr, ssim

    edited = analysis.edited
    if restored.shape != edited.shape:
        raise InputError(
            f"the restored photo is {restored.shape[1]}x{restored.shape[0]} but the edited "
            f"photo is {edited.shape[1]}x{edited.shape[0]}; a restored photo keeps the edited "
            "photo's size."
        )
    row = ImageEval(name=name, variant=variant)
    analyzer = analysis.analyzer
    for face in analysis.faces:
        if not face.restorable:
            continue
        after = None
        if analyzer is not None and face.original_face.embedding is not None:
            after = _restored_identity(analyzer, face, face.original_face, restored)
        row.faces.append(
            FaceEval(name, variant, face.index, face.original_index, face.id_before, after)
        )
    outside = ~face_region(analysis)
    row.outside_fraction = float(outside.mean())
    if outside.any():
        row.psnr_outside = masked_psnr(restored, edited, outside)
        import cv2

        kernel = np.ones((2 * SSIM_ERODE_PX + 1,) * 2, np.uint8)
        inner = cv2.erode(outside.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
        if inner.any():
            row.ssim_outside = ssim(restored, edited, inner)
    if clip is not None and clip_text:
        region, row.clip_region = _element_region(analysis)
        row.clip_edited = clip.score(edited, clip_text, region=region)
        row.clip_restored = clip.score(restored, clip_text, region=region)
    if reward_prompt:
        from engine.evaluation.image_quality import image_reward

        row.reward_edited = image_reward(edited, reward_prompt, **(reward_options or {}))
        row.reward_restored = image_reward(restored, reward_prompt, **(reward_options or {}))
    return row


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
    report.id_model = _id_model(analyzer)
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


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c)) for c in columns})
    return buffer.getvalue()


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
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
    lines += _md_table(
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
    lines += _md_table(
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
    lines += _md_table(
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


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path | None]:
    """eval.csv (per image + MEAN rows), eval_faces.csv, eval.md and the two plots.

    Plots need matplotlib; without it they are left out with a note in eval.md.
    Returns name -> written path (None for a plot that was left out).
    """
    out = _make_folder(out_dir, "report")
    written: dict[str, Path | None] = {}
    rows = [_image_row(im) for im in report.images]
    rows += [_mean_row(v, m) for v, m in report.means().items()]
    written["csv"] = atomic_write_text(out / "eval.csv", _csv_text(IMAGE_COLUMNS, rows))
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
        out / "eval_faces.csv", _csv_text(FACE_COLUMNS, face_rows)
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
    out = _make_folder(out_dir, "ablation")
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
        rows, _id_label(analyzer), clip.model_id if clip is not None else None, text
    )
    report.files["sheet"] = write_image_atomic(out / "ablation_sheet.png", contact_sheet(tiles))
    table = [_ablation_table_row(row) for row in rows]
    report.files["csv"] = atomic_write_text(
        out / "ablation.csv", _csv_text(ABLATION_COLUMNS, table)
    )
    markdown = _ablation_markdown(report, table, original_name, edited_name, params, clip)
    report.files["md"] = atomic_write_text(out / "ablation.md", markdown)
    return report


def _make_folder(out_dir: str | Path, what: str) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create the {what} folder ({error}).") from error
    return out


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


def _id_model(analyzer: FaceAnalyzer) -> str:
    return getattr(analyzer, "model_id", None) or (
        "arcface-buffalo_l" if analyzer.name == "insightface" else "dlib-resnet-v1"
    )


def _id_label(analyzer: FaceAnalyzer) -> str:
    model, metric = _id_model(analyzer), analyzer.embedding_metric
    return EvalReport(folder="", images=[], id_model=model, id_metric=metric).id_label


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
    md += _md_table(shown, [[r[c] for c in shown] for r in table])
    errors = [r for r in report.rows if r.error]
    if errors:
        md += ["", "## Errors", ""] + [f"- {r.variant}: {r.error}" for r in errors]
    md += ["", "![side by side](ablation_sheet.png)", ""]
    return "\n".join(md)
