"""Folder mode: pair originals with edited photos by file name and restore them all.

    plan = plan_batch("originals/", "edited/", "restored/")
    print(plan.rule_text, plan.unpaired_originals, plan.unpaired_edited)
    report = run_batch(plan, EditedIDParams(), restorer=get_restorer("classic"))

Built for overnight runs over a studio's folders: a bad file is logged with its error and
the batch goes on; every output is written atomically with its sidecar; a stopped or
killed batch resumes, skipping every output whose sidecar is ours, says it finished and
records the sha256 of the inputs as they are now (a re-exported edit is done again); no
image is kept from one file to the next. Pause and cancel are honoured between files and
inside a file at every diffusion step. One batch at a time writes into an output folder
(`engine.batch.lock`); temp files a killed run left there are removed on the next run.

The report (CSV, with a Markdown and a JSON summary) never replaces a file that is not
a report of this output folder (explicit paths: never an existing file unless
`overwrite_report`), never lands in an input folder, and can be written elsewhere
(`report_dir`) or not at all. Each file's row is appended to the CSV as it finishes; the
full reports are rewritten at most every `REPORT_INTERVAL_S` seconds and at the end.
"""

from __future__ import annotations

import csv
import gc
import inspect
import io
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.batch.identity_text import identity_worse, same_person_text
from engine.batch.lock import OutputLock
from engine.errors import Cancelled, EditedIDError, InputError
from engine.io.export import (
    FORMATS,
    SIDECAR_MARKER,
    SIDECAR_VERSION,
    OutputFolderError,
    check_output_folder,
    estimate_output_bytes,
    read_sidecar,
    sidecar_inputs,
    sidecar_matches_inputs,
    sidecar_path,
)
from engine.io.files import (
    append_text,
    atomic_write_text,
    remove_stale_temp_files,
    sha256_file,
)
from engine.io.folders import (
    EDIT_MARKERS,
    IMAGE_EXTENSIONS,
    RULES,
    NamePairing,
    image_files,
    pair_by_name,
)
from engine.restorers import Restorer, get_restorer

REPORT_NAME = "editedid-batch-report.csv"
REPORT_TOOL = "editedid batch"  # the JSON summary's "tool": the report is ours
REPORT_INTERVAL_S = 5.0  # full report rewrites at most this often (rows are appended)
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
CancelToken = Callable[[], bool] | threading.Event | None


def rule_text(rule: str = "stem") -> str:
    """The pairing rule in words, as shown to the user before a batch starts."""
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    common = (
        "Pairs are made by file name: an edited photo belongs to the original with the same "
        "name, ignoring the extension and upper/lower case (portrait01.jpg \u2194 "
        "PORTRAIT01.png). "
    )
    if rule == "stem":
        common += (
            "An edited name may also carry an editing marker before or after the name, "
            "joined by _ - . or a space: "
            + ", ".join(EDIT_MARKERS)
            + " (portrait01_edited.png, portrait01-edit.jpg, edited_portrait01.png). "
            "An exact name match wins over a marked one. "
        )
    return common + (
        f"Image files: {exts}; other files and hidden files are ignored; sub-folders are "
        "not searched. Each result is saved in the output folder under the edited file's "
        "name (PNG, JPEG and TIFF keep their format, others become PNG) with a .json "
        "sidecar; a result whose sidecar says it finished from the same input files "
        "(same sha256) is skipped, so a stopped batch resumes where it left off."
    )


# --- plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchItem:
    original: Path
    edited: Path
    output: Path


@dataclass
class BatchPlan:
    original_dir: Path
    edited_dir: Path
    output_dir: Path
    rule: str
    rule_text: str
    items: list[BatchItem]  # to process (includes `conflicts`)
    unpaired_originals: list[Path] = field(default_factory=list)
    unpaired_edited: list[Path] = field(default_factory=list)
    skipped_existing: list[BatchItem] = field(default_factory=list)  # finished earlier
    ambiguous: list[str] = field(default_factory=list)  # one message per unresolved name
    conflicts: list[BatchItem] = field(default_factory=list)  # output exists, not finished
    changed: list[BatchItem] = field(default_factory=list)  # conflicts: ours, inputs changed
    ignored: list[Path] = field(default_factory=list)  # non-image files in the input folders

    @property
    def total(self) -> int:
        return len(self.items) + len(self.skipped_existing)

    def problems(self) -> list[str]:
        """Everything the user should see before starting, one line each."""
        lines = [f"No edited photo for original: {p.name}" for p in self.unpaired_originals]
        lines += [f"No original for edited photo: {p.name}" for p in self.unpaired_edited]
        lines += [f"Ambiguous: {m}" for m in self.ambiguous]
        changed = {c.output for c in self.changed}
        lines += [
            (
                f"An input changed since this output was made (redone only when overwriting "
                f"is allowed): {c.output.name}"
                if c.output in changed
                else f"Output exists but is not marked finished (no sidecar of ours; replaced "
                f"only when overwriting is allowed): {c.output.name}"
            )
            for c in self.conflicts
        ]
        return lines

    def summary(self) -> str:
        return (
            f"{len(self.items)} pairs to process, {len(self.skipped_existing)} already "
            f"finished, {len(self.unpaired_originals)} originals and "
            f"{len(self.unpaired_edited)} edited photos without a partner"
            + (f", {len(self.ambiguous)} ambiguous names" if self.ambiguous else "")
            + "."
        )


def output_name(edited: Path) -> str:
    """The result's file name: the edited file's, with PNG for formats we cannot write."""
    suffix = edited.suffix if edited.suffix.lower() in FORMATS else ".png"
    return edited.stem + suffix


def is_finished(
    output: str | Path, original: str | Path | None = None, edited: str | Path | None = None
) -> bool:
    """True when `output` exists and its sidecar is ours and says it finished; with the
    inputs given, also only when the sha256 it stores of each matches the file now (a
    re-exported input makes the result stale). Resume skips what this accepts."""
    output = Path(output)
    try:
        if not output.is_file() or output.stat().st_size == 0:
            return False
    except OSError:
        return False
    data = read_sidecar(output)
    if data is None or str(data.get("status", "")).lower() != "ok":
        return False
    inputs = {n: p for n, p in (("original", original), ("edited", edited)) if p is not None}
    return sidecar_matches_inputs(data, inputs) if inputs else True


def _resolve_folder(folder: Path) -> Path:
    try:
        return folder.resolve()
    except (OSError, RuntimeError) as error:
        raise InputError(f"{folder}: is a symbolic link loop (or unreadable link).") from error


def _check_dirs(original_dir: Path, edited_dir: Path, output_dir: Path) -> None:
    for name, folder in (("original", original_dir), ("edited", edited_dir)):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {name} folder does not exist or is not a folder.")
    if _resolve_folder(original_dir) == _resolve_folder(edited_dir):
        raise InputError(
            f"{edited_dir}: the edited folder is the original folder ({original_dir}); every "
            "photo would be paired with itself. Choose the folder of the edited photos."
        )
    out = _resolve_folder(output_dir)
    for name, folder in (("original", original_dir), ("edited", edited_dir)):
        if out == _resolve_folder(folder):
            raise InputError(
                f"{output_dir}: the output folder must differ from the {name} folder, so no "
                "input can ever be overwritten. Choose or create a separate folder."
            )
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"{output_dir}: is a file; choose a folder for the results.")


def plan_batch(
    original_dir: str | Path,
    edited_dir: str | Path,
    output_dir: str | Path,
    *,
    rule: str = "stem",
) -> BatchPlan:
    """Pair the two folders by file name (see `rule_text`) and look at what is done.

    Reads only directory listings and sidecars; opens no image. The output folder may not
    exist yet (`run_batch` creates it).
    """
    if rule not in RULES:
        raise InputError(f"Unknown pairing rule {rule!r}; use one of {', '.join(RULES)}.")
    original_dir, edited_dir, output_dir = Path(original_dir), Path(edited_dir), Path(output_dir)
    _check_dirs(original_dir, edited_dir, output_dir)
    ignored: list[Path] = []
    pairing = pair_by_name(
        image_files(original_dir, ignored), image_files(edited_dir, ignored), rule
    )
    items = _unclashing_items(pairing, output_dir)
    todo, done, conflicts, changed = [], [], [], []
    for item in sorted(items, key=lambda i: i.edited.name.casefold()):
        if is_finished(item.output, item.original, item.edited):
            done.append(item)
        else:
            todo.append(item)
            if _exists(item.output) or _exists(sidecar_path(item.output)):
                conflicts.append(item)
                if is_finished(item.output):  # ours and finished, but from other inputs
                    changed.append(item)
    return BatchPlan(
        original_dir=original_dir,
        edited_dir=edited_dir,
        output_dir=output_dir,
        rule=rule,
        rule_text=rule_text(rule),
        items=todo,
        unpaired_originals=sorted(pairing.unpaired_originals, key=lambda p: p.name.casefold()),
        unpaired_edited=sorted(pairing.unpaired_edited, key=lambda p: p.name.casefold()),
        skipped_existing=done,
        ambiguous=pairing.ambiguous,
        conflicts=conflicts,
        changed=changed,
        ignored=ignored,
    )


def _exists(path: Path) -> bool:
    """Something (a file, folder, or a link, even a dangling one) is at `path`."""
    return path.exists() or path.is_symlink()


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
    existing = [p for p in report_files(path) if _exists(p)]
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
    folder = _resolve_folder(path.parent)
    for name, input_dir in (("original", plan.original_dir), ("edited", plan.edited_dir)):
        if folder == _resolve_folder(input_dir):
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
    if folder == _resolve_folder(plan.output_dir):
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
        if _exists(json_path):
            if json_path.stat().st_size > 64 * 1024 * 1024:
                return False
            data = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("tool") != REPORT_TOOL:
                return False
            stored = data.get("output_dir")
            if not isinstance(stored, str) or _resolve_folder(Path(stored)) != _resolve_folder(
                plan.output_dir
            ):
                return False
        elif _exists(csv_path) or _exists(md_path):
            return False  # a report is written whole: its summary is always there
        if _exists(csv_path):
            with open(csv_path, encoding="utf-8", newline="") as handle:
                if handle.readline().strip() != ",".join(REPORT_COLUMNS):
                    return False
        if _exists(md_path):
            with open(md_path, encoding="utf-8") as handle:
                if handle.readline().strip() != "# EditedID batch report":
                    return False
    except (OSError, ValueError, RecursionError, InputError):
        return False
    return True


def _unclashing_items(pairing: NamePairing, output_dir: Path) -> list[BatchItem]:
    """One item per pair; two edited files that would be saved under one output name
    are both ambiguous (moved to `pairing.unpaired_edited`, message in `ambiguous`)."""
    items: list[BatchItem] = []
    used_outputs: dict[str, Path] = {}
    for original, edited in pairing.pairs:
        output = output_dir / output_name(edited)
        clash = used_outputs.get(output.name.casefold())
        if clash is not None:
            pairing.ambiguous.append(
                f"{edited.name} and {clash.name} would both be saved as {output.name}"
            )
            pairing.unpaired_edited.append(edited)
            continue
        used_outputs[output.name.casefold()] = edited
        items.append(BatchItem(original, edited, output))
    return items


# --- run -------------------------------------------------------------------------------
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
class BatchProgress:
    """One progress event. index is 0-based; done/failed/skipped count files so far.

    stage: "start", "file", a diffusion stage name from the engine ("inversion", ...),
    "paused", "file done", "file failed", "skipped", "stopped", "finished", "cancelled".
    step/steps: the engine's step within the current stage. eta_s: seconds left for the
    whole batch (None until one file has finished). row: set on per-file end events.
    """

    index: int
    total: int
    file: str
    stage: str
    step: int = 0
    steps: int = 0
    eta_s: float | None = None
    done: int = 0
    failed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    message: str = ""
    row: BatchRow | None = None
    worker: str = ""  # who works on `file` (a cluster worker's name); "" in this process

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] (finished files plus the current file's step)."""
        if self.total <= 0:
            return 1.0
        finished = self.done + self.failed + self.skipped
        within = self.step / self.steps if self.steps else 0.0
        if self.stage in ("file done", "file failed", "skipped", "finished"):
            within = 0.0
        return min(1.0, (finished + within) / self.total)


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


def _cancel_fn(cancel: CancelToken) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    probe = cancel.is_set if hasattr(cancel, "is_set") else cancel
    return lambda: bool(probe())


def _fmt_scores(scores) -> str:
    values = []
    for score in scores:
        value = getattr(score, "value", score)
        values.append("" if value is None else f"{float(value):.4f}")
    return ";".join(values)


def _accepts(function, name: str) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _default_processor():
    from engine.photo.pipeline import restore_photo_files

    return restore_photo_files


def _read_old_rows(report_path: Path) -> dict[str, dict[str, str]]:
    """Rows of an earlier report keyed by output path (resume keeps their figures)."""
    try:
        with open(report_path, encoding="utf-8", newline="") as handle:
            return {r.get("output", ""): r for r in csv.DictReader(handle) if r.get("output")}
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}


def run_batch(
    plan: BatchPlan,
    params,
    *,
    restorer: Restorer | None = None,
    processor: Callable[..., Any] | None = None,
    model=None,
    mode: str = "diffusion",
    backend: str = "auto",
    on_progress: Callable[[BatchProgress], None] | None = None,
    pause: threading.Event | None = None,
    cancel: CancelToken = None,
    report_path: str | Path | None = None,
    overwrite: bool = False,
    report_dir: str | Path | None = None,
    write_report: bool = True,
    overwrite_report: bool = False,
    strip_location: bool = True,
    faces: str = "changed",
    executor: BatchExecutor | None = None,
) -> BatchReport:
    """Restore every pair of `plan`; returns the report (also written as CSV/MD/JSON).

    restorer: the engine.restorers plugin to use; by default the registered restorer
        named `mode` ("classic" or "diffusion") built around `model`.
    processor: defaults to engine.photo.pipeline.restore_photo_files; any callable with its
        signature (tests inject fakes). It writes the output and its sidecar.
    pause: while set, the batch waits (between files and at every diffusion step).
    cancel: callable returning True or a threading.Event; stops within one step. The
        file in progress is reported "cancelled"; finished outputs are untouched.
    report_path, report_dir, write_report, overwrite_report: where the report goes, see
        `resolve_report_path` (checked before anything is written). Each file's row is
        appended to the CSV as it ends, so a killed batch still has its rows; the CSV and
        its .md/.json summaries are rewritten whole at most every REPORT_INTERVAL_S.
    overwrite: replace outputs that exist but are not finished results of these inputs
        (`plan.conflicts`).
    strip_location: results carry no GPS position (engine.io.export), the default of
        every processor; False is passed on to a processor that takes it.
    faces: "changed" (default: restore only plausible faces whose identity the edit
        changed, the others are left as edited and the report's `left_alone` column says
        why, per face numbered left to right from 1) or "all" (every paired face).
    executor: who restores the files. `LocalExecutor()` (the default): one after another
        in this process. `engine.batch.cluster.RayExecutor`: on a pool of Ray workers,
        the files handed out as workers become free; this process still plans, reads the
        inputs, writes every output, row and report (the same code as here).
    A bad file is logged in the report and the batch goes on. A full or read-only output
    folder stops the batch (`stopped_reason`). KeyboardInterrupt / SystemExit propagate
    after the report is written. BatchLockedError when another batch is writing into the
    same output folder.
    """
    if faces not in FACE_SELECTIONS:
        raise InputError(f"faces must be one of {', '.join(FACE_SELECTIONS)}, got {faces!r}.")
    restorer = restorer or get_restorer(mode, model=model)
    executor = executor or LocalExecutor()
    if executor.runs_here:  # a cluster's workers import the pipeline themselves
        processor = processor or _default_processor()
    report_csv = resolve_report_path(
        plan, report_path, report_dir=report_dir, write_report=write_report,
        overwrite_report=overwrite_report,
    )  # fmt: skip
    out_dir = plan.output_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(
            f"{out_dir}: cannot create the output folder ({error.strerror or error})."
        ) from error
    with OutputLock(out_dir):
        remove_stale_temp_files(out_dir)  # what a killed run left half-written
        if report_csv is not None and report_csv.parent != out_dir:
            remove_stale_temp_files(report_csv.parent)
        check_output_folder(
            out_dir, estimate_output_bytes(plan.items[0].edited) if plan.items else 0
        )
        report = BatchReport(
            plan=plan, rows=[], mode=restorer.name, report_path=report_csv, faces=faces
        )
        old_rows = _read_old_rows(report_csv) if report_csv and report_csv.is_file() else {}
        run = _BatchRun(report, params, restorer, processor, backend, on_progress, pause, cancel)
        run.strip_location = strip_location
        run.faces = faces
        run.executor = executor
        return run.run(overwrite, old_rows)


class BatchExecutor:
    """Who restores a batch's files (the seam between the batch and where it runs).

    `run_items(run, overwrite, old_rows)` goes through `run.plan.items` and, for each,
    adds exactly one row through `run`'s methods (skipped, ok, failed), so rows, reports,
    progress, pause and cancel are the same code whichever executor runs. It returns when
    every item has its row, returns early when `run.process`-like handling says the batch
    must stop, or raises `Cancelled`.
    """

    name = "base"
    runs_here = True  # the processor runs in this process (False: elsewhere, by bytes)

    def run_items(self, run: _BatchRun, overwrite: bool, old_rows: dict) -> None:
        raise NotImplementedError


class LocalExecutor(BatchExecutor):
    """Today's batch: the files one after another, in this process, on its device."""

    name = "local"

    def run_items(self, run: _BatchRun, overwrite: bool, old_rows: dict) -> None:
        for item in run.plan.items:
            run.begin(item)
            run.check_pause_and_cancel()
            if is_finished(item.output, item.original, item.edited):  # done meanwhile
                run.add_row(_skipped_row(item, old_rows, run.report.mode), "skipped")
                continue
            if not run.process(item, overwrite):
                break


class _BatchRun:
    """One batch in progress: its clock, the file in hand, progress events, pause."""

    def __init__(self, report, params, restorer, processor, backend, on_progress, pause, cancel):
        self.report, self.plan, self.params = report, report.plan, params
        self.restorer, self.processor, self.backend = restorer, processor, backend
        self.on_progress, self.pause = on_progress, pause
        self.is_cancelled = _cancel_fn(cancel)
        self.pass_overwrite = _accepts(processor, "overwrite")
        self.strip_location = True
        self.pass_strip_location = _accepts(processor, "strip_location")
        self.faces = "changed"
        self.pass_faces = _accepts(processor, "faces")
        self.started = time.monotonic()
        self.work_seconds = 0.0  # time spent processing (pauses excluded), for the ETA
        self.worked_files = 0
        self.index, self.position, self.file = 0, 0, ""
        self.file_start, self.paused_s = self.started, 0.0
        self.last_full_write = self.started
        self.executor: BatchExecutor = LocalExecutor()
        self.parallel = 1  # files restored at once (the ETA divides by it)
        self.worker = ""  # progress events name this worker unless told another

    def write_reports(self) -> None:
        """The whole CSV, MD and JSON report, now."""
        _write_reports(self.report, self.started)
        self.last_full_write = time.monotonic()

    def record(self, row: BatchRow) -> None:
        """A file's row on disk: appended, or the whole report when it is due."""
        if time.monotonic() - self.last_full_write >= REPORT_INTERVAL_S:
            self.write_reports()
        elif not _append_row(self.report, row):
            self.write_reports()

    # -- the whole batch -------------------------------------------------------------
    def run(self, overwrite: bool, old_rows: dict) -> BatchReport:
        report, mode = self.report, self.report.mode
        self.emit("start", message=self.plan.summary())
        try:
            for item in self.plan.skipped_existing:
                self.begin(item)
                self.add_row(_skipped_row(item, old_rows, mode), "skipped", write=False)
            self.write_reports()  # the header (and earlier results): rows append to it
            self.executor.run_items(self, overwrite, old_rows)
        except Cancelled:
            return self.cancelled()
        except BaseException:  # KeyboardInterrupt, SystemExit: keep the report, then go
            self.write_reports()
            raise
        self.write_reports()
        self.emit("finished", message=report.final_message())
        return report

    def begin(self, item: BatchItem) -> None:
        """`item` becomes the file in hand (0-based position among all the plan's files)."""
        self.index, self.file = self.position, item.edited.name
        self.position += 1
        self.file_start, self.paused_s = time.monotonic(), 0.0

    def focus(self, index: int, item: BatchItem) -> None:
        """Progress events name `item` at plan position `index` (files run side by side)."""
        self.index, self.file = index, item.edited.name

    def cancelled(self) -> BatchReport:
        report = self.report
        report.cancelled = True
        current = _current_item(self.plan, self.file)
        if current is not None and not any(r.edited == str(current.edited) for r in report.rows):
            row = BatchRow(
                str(current.original), str(current.edited), str(current.output), "cancelled",
                error="cancelled by the user", mode=report.mode,
            )  # fmt: skip
            report.rows.append(row)
        self.write_reports()
        self.emit("cancelled", message="Cancelled")
        return report

    # -- one file ----------------------------------------------------------------------
    def process(self, item: BatchItem, overwrite: bool) -> bool:
        """Restore one pair and add its row; False when the batch must stop."""
        self.emit("file", message=f"{item.original.name} + {item.edited.name}")
        mode = self.report.mode
        try:
            check_output_folder(self.plan.output_dir, estimate_output_bytes(item.edited))
            kwargs = self.processor_options(item, overwrite)
            before = _fingerprints(item)
            result = self.processor(item.original, item.edited, item.output, self.params, **kwargs)
            row = _ok_row(item, result, mode, before)
            del result  # nothing of the image survives the file
            row.seconds = f"{self.count_work():.2f}"
            self.add_row(row, "file done")
        except Cancelled:
            raise
        except OutputFolderError as error:
            self.stop_for(item, error, self.file_seconds())
            return False
        except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
            self.count_work()
            self.add_row(_failed_row(item, error, mode, self.file_seconds()), "file failed")
            gc.collect()
        return True

    def stop_for(self, item: BatchItem, error: OutputFolderError, seconds: float) -> None:
        """The output folder cannot take results: `item` failed and the batch stops."""
        self.report.stopped_reason = str(error)
        self.add_row(_failed_row(item, error, self.report.mode, seconds), "file failed")
        self.emit("stopped", message=str(error))

    def processor_options(self, item: BatchItem, overwrite: bool) -> dict[str, Any]:
        """The processor's keyword arguments; clears a stale, unfinished output."""
        side = sidecar_path(item.output)
        for path in (item.output, side):
            if path.is_dir():
                raise InputError(
                    f"{path}: is a folder, in the way of the result or its sidecar. Move it "
                    "away and run again."
                )
        stale = _exists(item.output) or _exists(side)
        if stale and not overwrite:
            if is_finished(item.output):
                raise InputError(
                    f"{item.output}: was made from other versions of the inputs (their "
                    "sha256 differ from its sidecar's). Allow overwriting to redo it."
                )
            raise InputError(
                f"{item.output}: already exists but is not marked finished (no finished "
                "sidecar of ours). Remove it, or allow overwriting, and run again."
            )
        kwargs: dict[str, Any] = dict(
            restorer=self.restorer,
            backend=self.backend,
            on_step=self.on_step,
            cancel=self.is_cancelled,
        )
        if self.faces != "changed" and self.pass_faces:
            kwargs["faces"] = self.faces  # "changed" is every processor's default
        if not self.strip_location and self.pass_strip_location:
            kwargs["strip_location"] = False  # stripping is every processor's default
        if stale and self.pass_overwrite:
            kwargs["overwrite"] = True
        elif stale:
            item.output.unlink(missing_ok=True)  # stale, unfinished: allowed to go
            sidecar_path(item.output).unlink(missing_ok=True)
        return kwargs

    def file_seconds(self) -> float:
        return time.monotonic() - self.file_start - self.paused_s

    def count_work(self, seconds: float | None = None) -> float:
        """Count a finished file's work (by default the file in hand's time so far)."""
        seconds = self.file_seconds() if seconds is None else seconds
        self.work_seconds += seconds
        self.worked_files += 1
        return seconds

    # -- progress, pause, cancel -----------------------------------------------------------
    def add_row(self, row: BatchRow, stage: str, write: bool = True) -> None:
        self.report.rows.append(row)
        if write:
            self.record(row)
        self.emit(stage, message=row.error, row=row)

    def eta(self) -> float | None:
        if self.worked_files == 0:
            return None
        report = self.report
        remaining = self.plan.total - (report.ok + report.failed + report.skipped)
        per_file = self.work_seconds / self.worked_files / max(1, self.parallel)
        return max(0.0, per_file * remaining - max(0.0, self.file_seconds()))

    def emit(
        self, stage: str, step: int = 0, steps: int = 0, message: str = "", row=None, worker=""
    ):
        if self.on_progress is None:
            return
        report = self.report
        self.on_progress(
            BatchProgress(
                index=self.index,
                total=self.plan.total,
                file=self.file,
                stage=stage,
                step=step,
                steps=steps,
                eta_s=self.eta(),
                done=report.ok,
                failed=report.failed,
                skipped=report.skipped,
                elapsed_s=time.monotonic() - self.started,
                message=message,
                row=row,
                worker=worker or self.worker,
            )
        )

    def check_pause_and_cancel(self) -> None:
        """Wait while paused (the pause does not count as work); raise when cancelled."""
        if self.pause is not None and self.pause.is_set():
            t0 = time.monotonic()
            self.emit("paused", message="Paused")
            while self.pause.is_set() and not self.is_cancelled():
                time.sleep(0.05)
            self.paused_s += time.monotonic() - t0
        if self.is_cancelled():
            raise Cancelled("Batch cancelled.")

    def on_step(self, stage="processing", step=0, steps=0, *rest, **kwargs) -> None:
        self.check_pause_and_cancel()
        self.emit(str(stage), int(step or 0), int(steps or 0))


def _current_item(plan: BatchPlan, file_name: str) -> BatchItem | None:
    for item in plan.items:
        if item.edited.name == file_name:
            return item
    return None


def _skipped_row(item: BatchItem, old_rows: dict, mode: str) -> BatchRow:
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


def _failed_row(item: BatchItem, error: BaseException, mode: str, seconds: float) -> BatchRow:
    message = str(error) or type(error).__name__
    if not isinstance(error, EditedIDError):
        message = f"{type(error).__name__}: {message}"
    return BatchRow(
        str(item.original), str(item.edited), str(item.output), "failed",
        error=message, seconds=f"{seconds:.2f}", mode=mode,
    )  # fmt: skip


def _fingerprints(item: BatchItem) -> tuple:
    """What tells that an input changed on disk (device, inode, size, mtime)."""
    prints = []
    for path in (item.original, item.edited):
        try:
            st = os.stat(path)
            prints.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            prints.append(None)
    return tuple(prints)


def _ok_row(item: BatchItem, result, mode: str, before: tuple | None = None) -> BatchRow:
    if not item.output.is_file():
        raise InputError(f"{item.output}: the restore finished but wrote no file.")
    side = sidecar_path(item.output)
    if not _exists(side):  # processors that do not write one: the batch marks the finish
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
    if before is not None and _fingerprints(item) != before:
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
        writer.writerow(row.csv_row())
    return buffer.getvalue()


def _append_row(report: BatchReport, row: BatchRow) -> bool:
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


def _write_reports(report: BatchReport, started: float) -> None:
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
        f"- Original folder: `{data['original_dir']}`",
        f"- Edited folder: `{data['edited_dir']}`",
        f"- Output folder: `{data['output_dir']}`",
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
            error = failure["error"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {Path(failure['file']).name} | {error} |")
    unpaired = data["unpaired_originals"] + data["unpaired_edited"]
    if unpaired or data["ambiguous"]:
        lines += ["", "## Not paired", ""]
        lines += [f"- {Path(p).name}" for p in unpaired]
        lines += [f"- {m}" for m in data["ambiguous"]]
    lines += ["", "## Files", ""]
    lines.append("| File | Status | Faces | Same person: before → after | s | Left as edited |")
    lines.append("|---|---|---|---|---|---|")
    for row in report.rows:
        left = row.left_alone.replace("|", "\\|")
        lines.append(
            f"| {Path(row.edited).name} | {row.status_text} | {row.faces} | {row.same_person} | "
            f"{row.seconds} | {left} |"
        )
    return "\n".join(lines) + "\n"
