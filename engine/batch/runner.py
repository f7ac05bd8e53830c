"""Folder mode's run: restore every pair of a plan, with progress, pause and cancel.

`run_batch` takes the output folder's lock and hands the plan's files to an executor
(`LocalExecutor`: one after another in this process; `engine.batch.cluster.RayExecutor`:
on Ray workers). `BatchRun` is one batch in progress, the same code whichever executor
runs: its clock and ETA, the `BatchProgress` events, pause and cancel, and one file's
restore (`BatchRun.process`) with its row and the report's rewrites.
"""

from __future__ import annotations

import gc
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.batch.lock import OutputLock
from engine.batch.plan import BatchItem, BatchPlan, is_finished, path_exists
from engine.batch.report import (
    FACE_SELECTIONS,
    BatchReport,
    BatchRow,
    append_report_row,
    failed_row,
    fingerprints,
    ok_row,
    read_old_rows,
    resolve_report_path,
    skipped_row,
    write_report_files,
)
from engine.errors import Cancelled, InputError
from engine.io.export import (
    OutputFolderError,
    check_output_folder,
    estimate_output_bytes,
    sidecar_path,
)
from engine.io.files import remove_stale_temp_files
from engine.restorers import Restorer, get_restorer

REPORT_INTERVAL_S = 5.0  # full report rewrites at most this often (rows are appended)
CancelToken = Callable[[], bool] | threading.Event | None


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


def _cancel_fn(cancel: CancelToken) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    probe = cancel.is_set if hasattr(cancel, "is_set") else cancel
    return lambda: bool(probe())


def accepts(function, name: str) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _default_processor():
    from engine.photo.pipeline import restore_photo_files

    return restore_photo_files


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
        old_rows = read_old_rows(report_csv) if report_csv and report_csv.is_file() else {}
        run = BatchRun(report, params, restorer, processor, backend, on_progress, pause, cancel)
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

    def run_items(self, run: BatchRun, overwrite: bool, old_rows: dict) -> None:
        raise NotImplementedError


class LocalExecutor(BatchExecutor):
    """Today's batch: the files one after another, in this process, on its device."""

    name = "local"

    def run_items(self, run: BatchRun, overwrite: bool, old_rows: dict) -> None:
        for item in run.plan.items:
            run.begin(item)
            run.check_pause_and_cancel()
            if is_finished(item.output, item.original, item.edited):  # done meanwhile
                run.add_row(skipped_row(item, old_rows, run.report.mode), "skipped")
                continue
            if not run.process(item, overwrite):
                break


class BatchRun:
    """One batch in progress: its clock, the file in hand, progress events, pause."""

    def __init__(self, report, params, restorer, processor, backend, on_progress, pause, cancel):
        self.report, self.plan, self.params = report, report.plan, params
        self.restorer, self.processor, self.backend = restorer, processor, backend
        self.on_progress, self.pause = on_progress, pause
        self.is_cancelled = _cancel_fn(cancel)
        self.pass_overwrite = accepts(processor, "overwrite")
        self.strip_location = True
        self.pass_strip_location = accepts(processor, "strip_location")
        self.faces = "changed"
        self.pass_faces = accepts(processor, "faces")
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
        write_report_files(self.report, self.started)
        self.last_full_write = time.monotonic()

    def record(self, row: BatchRow) -> None:
        """A file's row on disk: appended, or the whole report when it is due."""
        if time.monotonic() - self.last_full_write >= REPORT_INTERVAL_S:
            self.write_reports()
        elif not append_report_row(self.report, row):
            self.write_reports()

    # -- the whole batch -------------------------------------------------------------
    def run(self, overwrite: bool, old_rows: dict) -> BatchReport:
        report, mode = self.report, self.report.mode
        self.emit("start", message=self.plan.summary())
        try:
            for item in self.plan.skipped_existing:
                self.begin(item)
                self.add_row(skipped_row(item, old_rows, mode), "skipped", write=False)
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
            before = fingerprints(item)
            result = self.processor(item.original, item.edited, item.output, self.params, **kwargs)
            row = ok_row(item, result, mode, before)
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
            self.add_row(failed_row(item, error, mode, self.file_seconds()), "file failed")
            gc.collect()
        return True

    def stop_for(self, item: BatchItem, error: OutputFolderError, seconds: float) -> None:
        """The output folder cannot take results: `item` failed and the batch stops."""
        self.report.stopped_reason = str(error)
        self.add_row(failed_row(item, error, self.report.mode, seconds), "file failed")
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
        stale = path_exists(item.output) or path_exists(side)
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
