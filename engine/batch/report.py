"""Folder mode's report: each file's row and the CSV, Markdown and JSON written of them.

`BatchRow` is one file's line (made by `skipped_row`, `failed_row`, `ok_row`, which also
writes the sidecar of a processor that wrote none), `BatchReport` the whole batch's.
`resolve_report_path` decides where the report goes before any work (never over a file
that is not this output folder's report, never into an input folder);
`append_report_row` adds a finished file's row to the CSV, `write_report_files` rewrites
the CSV and its .md/.json summaries whole, `read_old_rows` keeps an earlier run's figures.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.batch.identity_text import identity_worse, same_person_text
from engine.batch.plan import BatchItem, BatchPlan, path_exists, resolve_folder
from engine.errors import EditedIDError, InputError
from engine.io.export import (
    SIDECAR_MARKER,
    SIDECAR_VERSION,
    OutputFolderError,
    sidecar_inputs,
    sidecar_path,
)
from engine.io.files import append_text, atomic_write_text, sha256_file
from engine.io.names import escape_controls, md_cell, md_code

REPORT_NAME = "editedid-batch-report.csv"
REPORT_TOOL = "editedid batch"  # the JSON summary's "tool": the report is ours
REPORT_COLUMNS = (
    "original",
    "edited",
    "output",
    "status",
    "error",
    "faces",
    "id_before",  # raw scores of the face backend (metric and threshold in the sidecar)
    "id_after",
    "same_person",  # the same scores as every view shows them: "1: 66% → 31%, 2: ..."
    "seconds",
    "mode",
    "left_alone",  # faces left as edited and why: "2: unchanged (...); 3: not a face? (...)"
)
FACE_SELECTIONS = ("changed", "all")  # batch default "changed": see engine.faces.plausibility
FACE_SELECTION_TEXT = {  # the words the report and the batch dialog use for each choice
    "changed": "faces whose identity changed",
    "all": "all paired faces",
}


# --- rows and the report ---------------------------------------------------------------
@dataclass
class BatchRow:
    original: str
    edited: str
    output: str
    status: str  # ok | failed | skipped | cancelled
    error: str = ""
    faces: str = ""
    id_before: str = ""
    id_after: str = ""
    same_person: str = ""
    seconds: str = ""
    mode: str = ""
    left_alone: str = ""
    warnings: tuple[str, ...] = ()
    # faces the restore made look less like the person: "43% → 35%" (a warning, shown
    # as such by the dialog and the Markdown report; the CSV has it in same_person)
    identity_worse: str = ""

    def csv_row(self) -> dict[str, str]:
        return {c: getattr(self, c) for c in REPORT_COLUMNS}

    @property
    def status_text(self) -> str:
        """The status as a person reads it: "ok" with a warning when identity got worse."""
        return f"{self.status} \u26a0 identity worse" if self.identity_worse else self.status


@dataclass
class BatchReport:
    plan: BatchPlan
    rows: list[BatchRow]
    mode: str
    seconds: float = 0.0
    cancelled: bool = False
    stopped_reason: str = ""  # set when the batch stopped early (disk full, ...)
    report_path: Path | None = None
    summary_md_path: Path | None = None
    summary_json_path: Path | None = None
    report_error: str = ""  # why the report could not be written (the batch went on)
    full_report_writes: int = 0  # whole CSV+MD+JSON rewrites (rows are appended between)
    faces: str = "changed"  # which faces were restored: FACE_SELECTIONS

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r.edited, r.error) for r in self.rows if r.status == "failed"]

    @property
    def succeeded(self) -> bool:
        """Something usable came out: a file restored now or finished in an earlier run."""
        return self.ok + self.skipped > 0

    def final_message(self) -> str:
        text = f"{self.ok} restored, {self.failed} failed, {self.skipped} skipped"
        if self.stopped_reason:
            text += f"; stopped: {self.stopped_reason}"
        return text + "."


# --- the report's place ----------------------------------------------------------------
def report_files(csv_path: Path) -> tuple[Path, Path, Path]:
    """The report CSV and its Markdown and JSON summaries."""
    return csv_path, csv_path.with_suffix(".md"), csv_path.with_suffix(".json")


def resolve_report_path(
    plan: BatchPlan,
    report_path: str | Path | None = None,
    *,
    report_dir: str | Path | None = None,
    write_report: bool = True,
    overwrite_report: bool = False,
) -> Path | None:
    """Where the batch report goes (None: no report), checked before any work.

    Default: `editedid-batch-report.csv` in the output folder. `report_dir`: the same name
    in another folder (client file names stay out of the delivered folder). An explicit
    `report_path` (a .csv) never replaces an existing file, nor its .md/.json neighbours,
    unless `overwrite_report`; the default places replace only a report of this output
    folder (resume). A report never lands in an input folder, never replaces an input
    (also through links) and never takes a name an output or sidecar of this batch uses.
    """
    if not write_report:
        return None
    if report_path is not None and report_dir is not None:
        raise InputError("Give either a report file or a report folder, not both.")
    explicit = report_path is not None
    if explicit:
        path = Path(report_path)
    elif report_dir is not None:
        folder = Path(report_dir)
        if not folder.is_dir():
            raise OutputFolderError(
                f"{folder}: the report folder does not exist or is not a folder. Create it first."
            )
        path = folder / REPORT_NAME
    else:
        path = plan.output_dir / REPORT_NAME
    if path.is_dir():
        raise InputError(
            f"{path}: is a folder; give the report a file name ending in .csv (or a report folder)."
        )
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: the report is a CSV file; give a name ending in .csv.")
    folder = path.parent
    if folder != plan.output_dir and not folder.is_dir():
        raise OutputFolderError(
            f"{folder}: the report's folder does not exist"
            + (" (it is a file)" if folder.exists() else "")
            + ". Create it first or choose another place for the report."
        )
    _check_report_not_an_input(plan, path)
    existing = [p for p in report_files(path) if path_exists(p)]
    for p in existing:
        if p.is_dir() or (p.exists() and not p.is_file()):
            raise InputError(f"{p}: is not a regular file; the report cannot replace it.")
    if existing and not overwrite_report and (explicit or not _is_our_report(plan, path)):
        raise InputError(
            f"{existing[0]}: already exists; the batch report never replaces a file. Choose "
            "another report name"
            + (", or allow replacing reports (--overwrite-report)." if explicit else ".")
        )
    return path


def _check_report_not_an_input(plan: BatchPlan, path: Path) -> None:
    folder = resolve_folder(path.parent)
    for name, input_dir in (("original", plan.original_dir), ("edited", plan.edited_dir)):
        if folder == resolve_folder(input_dir):
            raise InputError(
                f"{path}: the report would be written into the {name} folder; inputs and "
                "their folders are never written to. Choose another place for the report."
            )
    inputs = set()
    for input_dir in (plan.original_dir, plan.edited_dir):
        try:
            with os.scandir(input_dir) as entries:
                for entry in entries:
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    inputs.add((st.st_dev, st.st_ino))
        except OSError:
            continue
    taken = set()
    if folder == resolve_folder(plan.output_dir):
        for item in (*plan.items, *plan.skipped_existing):
            taken |= {item.output.name.casefold(), sidecar_path(item.output).name.casefold()}
    for p in report_files(path):
        try:
            st = p.stat()
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) in inputs:
            raise InputError(
                f"{p}: is one of the input files (or a link to one); the report never "
                "replaces an input. Choose another place for the report."
            )
        if p.name.casefold() in taken:
            raise InputError(
                f"{p}: an output of this batch (or its sidecar) has that name. Choose "
                "another report name."
            )


def _is_our_report(plan: BatchPlan, path: Path) -> bool:
    """True when every existing report file at `path` is this output folder's report."""
    csv_path, md_path, json_path = report_files(path)
    try:
        if path_exists(json_path):
            if json_path.stat().st_size > 64 * 1024 * 1024:
                return False
            data = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("tool") != REPORT_TOOL:
                return False
            stored = data.get("output_dir")
            if not isinstance(stored, str) or resolve_folder(Path(stored)) != resolve_folder(
                plan.output_dir
            ):
                return False
        elif path_exists(csv_path) or path_exists(md_path):
            return False  # a report is written whole: its summary is always there
        if path_exists(csv_path):
            with open(csv_path, encoding="utf-8", newline="") as handle:
                if handle.readline().strip() != ",".join(REPORT_COLUMNS):
                    return False
        if path_exists(md_path):
            with open(md_path, encoding="utf-8") as handle:
                if handle.readline().strip() != "# EditedID batch report":
                    return False
    except (OSError, ValueError, RecursionError, InputError):
        return False
    return True


def read_old_rows(report_path: Path) -> dict[str, dict[str, str]]:
    """Rows of an earlier report keyed by output path (resume keeps their figures)."""
    try:
        with open(report_path, encoding="utf-8", newline="") as handle:
            return {r.get("output", ""): r for r in csv.DictReader(handle) if r.get("output")}
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}


# --- a file's row ----------------------------------------------------------------------
def _fmt_scores(scores) -> str:
    values = []
    for score in scores:
        value = getattr(score, "value", score)
        values.append("" if value is None else f"{float(value):.4f}")
    return ";".join(values)


def skipped_row(item: BatchItem, old_rows: dict, mode: str) -> BatchRow:
    old = old_rows.get(str(item.output), {})
    return BatchRow(
        str(item.original),
        str(item.edited),
        str(item.output),
        "skipped",
        error="finished in an earlier run",
        faces=old.get("faces", ""),
        id_before=old.get("id_before", ""),
        id_after=old.get("id_after", ""),
        same_person=old.get("same_person", "") or same_person_text(item.output)[0],
        seconds=old.get("seconds", ""),
        mode=old.get("mode", "") or mode,
        left_alone=old.get("left_alone", ""),
        identity_worse=identity_worse(item.output),
    )


def failed_row(item: BatchItem, error: BaseException, mode: str, seconds: float) -> BatchRow:
    message = str(error) or type(error).__name__
    if not isinstance(error, EditedIDError):
        message = f"{type(error).__name__}: {message}"
    return BatchRow(
        str(item.original), str(item.edited), str(item.output), "failed",
        error=message, seconds=f"{seconds:.2f}", mode=mode,
    )  # fmt: skip


def fingerprints(item: BatchItem) -> tuple:
    """What tells that an input changed on disk (device, inode, size, mtime)."""
    prints = []
    for path in (item.original, item.edited):
        try:
            st = os.stat(path)
            prints.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            prints.append(None)
    return tuple(prints)


def ok_row(item: BatchItem, result, mode: str, before: tuple | None = None) -> BatchRow:
    if not item.output.is_file():
        raise InputError(f"{item.output}: the restore finished but wrote no file.")
    side = sidecar_path(item.output)
    if not path_exists(side):  # processors that do not write one: the batch marks the finish
        _write_fallback_sidecar(item, result, before)
    faces = list(getattr(result, "faces", None) or [])
    warnings = tuple(str(w) for w in (getattr(result, "warnings", None) or ()))
    worse = identity_worse(item.output)
    if worse:
        warnings += (f"identity worse after the restore ({worse} same person)",)
    return BatchRow(
        str(item.original),
        str(item.edited),
        str(item.output),
        "ok",
        faces=str(len(faces)),
        id_before=_fmt_scores(getattr(f, "id_before", None) for f in faces),
        id_after=_fmt_scores(getattr(f, "id_after", None) for f in faces),
        same_person=same_person_text(item.output)[0],
        mode=str(getattr(result, "mode", None) or mode),
        left_alone=_fmt_left_alone(getattr(result, "left_alone", None) or ()),
        warnings=warnings,
        identity_worse=worse,
    )


def _fmt_left_alone(left: Sequence[tuple[int, str]]) -> str:
    """ "2: unchanged: ...; 3: not a face? ..." (faces numbered left to right from 1)."""
    return "; ".join(f"{int(index) + 1}: {why}" for index, why in left)


def _write_fallback_sidecar(item: BatchItem, result, before: tuple | None) -> None:
    """The sidecar of a processor that wrote none: ours, with the inputs' sha256, taken
    now and valid only because the files did not change since the processor read them."""
    hashes = {"original": sha256_file(item.original), "edited": sha256_file(item.edited)}
    if before is not None and fingerprints(item) != before:
        item.output.unlink(missing_ok=True)
        raise InputError(
            f"{item.edited.name}: an input changed while it was being restored; run again."
        )
    sidecar = dict(getattr(result, "sidecar", None) or {})
    sidecar.update({SIDECAR_MARKER: SIDECAR_VERSION, "status": "ok"})
    sidecar["inputs"] = sidecar_inputs({"original": item.original, "edited": item.edited}, hashes)
    sidecar.setdefault("output", str(item.output))
    try:
        atomic_write_text(sidecar_path(item.output), json.dumps(sidecar, indent=2, default=str))
    except BaseException:
        item.output.unlink(missing_ok=True)  # no output without its sidecar
        raise


# --- reports ---------------------------------------------------------------------------
def _csv_text(rows: list[BatchRow], header: bool) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        # File names may hold control characters or bytes that are not UTF-8 (lone
        # surrogates, which cannot be written): shown escaped, as in the Markdown.
        writer.writerow(
            {
                key: escape_controls(str(value), keep="\n\t\r")
                for key, value in row.csv_row().items()
            }
        )
    return buffer.getvalue()


def append_report_row(report: BatchReport, row: BatchRow) -> bool:
    """Append one row to the CSV on disk; False when it is not there to append to."""
    csv_path = report.report_path
    if csv_path is None:
        return True
    if not csv_path.is_file():
        return False
    try:
        append_text(csv_path, _csv_text([row], header=False))
    except OSError as error:
        report.report_error = f"{csv_path}: could not add a row ({error.strerror or error})."
    return True


def write_report_files(report: BatchReport, started: float) -> None:
    """The whole CSV, Markdown and JSON report, each written atomically."""
    csv_path = report.report_path
    if csv_path is None:
        return
    report.seconds = time.monotonic() - started
    report.full_report_writes += 1
    _, md_path, json_path = report_files(csv_path)
    try:
        atomic_write_text(csv_path, _csv_text(report.rows, header=True))
        atomic_write_text(md_path, _summary_markdown(report))
        atomic_write_text(json_path, json.dumps(_summary_dict(report), indent=2))
        report.summary_md_path, report.summary_json_path = md_path, json_path
        report.report_error = ""
    except (OSError, EditedIDError) as error:
        # the report must never be the reason a batch dies; results are on disk
        report.report_error = str(error)


def _mean_scores(rows: list[BatchRow], column: str) -> float | None:
    values = []
    for row in rows:
        for part in getattr(row, column).split(";"):
            try:
                values.append(float(part))
            except ValueError:
                continue
    return sum(values) / len(values) if values else None


def _summary_dict(report: BatchReport) -> dict:
    plan = report.plan
    ok_rows = [r for r in report.rows if r.status in ("ok", "skipped")]
    return {
        "tool": REPORT_TOOL,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "original_dir": str(plan.original_dir),
        "edited_dir": str(plan.edited_dir),
        "output_dir": str(plan.output_dir),
        "mode": report.mode,
        "faces": report.faces,
        "rule": plan.rule_text,
        "counts": {
            "pairs": plan.total,
            "ok": report.ok,
            "failed": report.failed,
            "skipped": report.skipped,
            "cancelled": report.count("cancelled"),
            "not_started": max(0, plan.total - len(report.rows)),
        },
        "cancelled": report.cancelled,
        "stopped_reason": report.stopped_reason,
        "seconds": round(report.seconds, 2),
        "mean_id_before": _mean_scores(ok_rows, "id_before"),
        "mean_id_after": _mean_scores(ok_rows, "id_after"),
        "failures": [{"file": f, "error": e} for f, e in report.failures],
        "warnings": {r.edited: list(r.warnings) for r in report.rows if r.warnings},
        "identity_worse": {r.edited: r.identity_worse for r in report.rows if r.identity_worse},
        "unpaired_originals": [str(p) for p in plan.unpaired_originals],
        "unpaired_edited": [str(p) for p in plan.unpaired_edited],
        "ambiguous": list(plan.ambiguous),
    }


def _summary_markdown(report: BatchReport) -> str:
    data = _summary_dict(report)
    counts = data["counts"]

    def score(value):
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        "# EditedID batch report",
        "",
        f"- Original folder: {md_code(data['original_dir'])}",
        f"- Edited folder: {md_code(data['edited_dir'])}",
        f"- Output folder: {md_code(data['output_dir'])}",
        f"- Mode: {data['mode']}; time: {data['seconds']:.1f} s",
        f"- Faces restored: {FACE_SELECTION_TEXT.get(report.faces, report.faces)}",
        f"- {counts['ok']} restored, {counts['failed']} failed, {counts['skipped']} skipped "
        f"(finished earlier), {counts['not_started']} not started, of {counts['pairs']} pairs",
        f"- Mean identity score before -> after: {score(data['mean_id_before'])} -> "
        f"{score(data['mean_id_after'])}",
    ]
    if data["identity_worse"]:
        count = len(data["identity_worse"])
        lines.append(
            f"- **{count} file{'s' if count != 1 else ''} look less like the person after "
            "the restore** (\u26a0 identity worse below): check them before delivery."
        )
    if report.cancelled:
        lines.append("- **Cancelled** by the user; run the batch again to resume.")
    if report.stopped_reason:
        lines.append(f"- **Stopped**: {report.stopped_reason}")
    if data["failures"]:
        lines += ["", "## Failures", "", "| File | Error |", "|---|---|"]
        for failure in data["failures"]:
            error = md_cell(failure["error"].replace("\n", " "))
            lines.append(f"| {md_cell(Path(failure['file']).name)} | {error} |")
    unpaired = data["unpaired_originals"] + data["unpaired_edited"]
    if unpaired or data["ambiguous"]:
        lines += ["", "## Not paired", ""]
        lines += [f"- {md_cell(Path(p).name)}" for p in unpaired]
        lines += [f"- {md_cell(m)}" for m in data["ambiguous"]]
    lines += ["", "## Files", ""]
    lines.append("| File | Status | Faces | Same person: before → after | s | Left as edited |")
    lines.append("|---|---|---|---|---|---|")
    for row in report.rows:
        lines.append(
            f"| {md_cell(Path(row.edited).name)} | {row.status_text} | {row.faces} | "
            f"{row.same_person} | {row.seconds} | {md_cell(row.left_alone)} |"
        )
    return "\n".join(lines) + "\n"
