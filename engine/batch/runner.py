"""Folder mode's run: restore every pair of a plan, with progress, pause and cancel.

`run_batch` takes a `BatchJob` (engine.batch.job: what to do), the output folder's lock,
and hands the plan's files to an executor (`LocalExecutor`: one after another in this
process; `engine.batch.cluster.RayExecutor`: on Ray workers). `BatchRun` is one batch in
progress, the same code whichever executor runs: its clock and ETA, the `BatchProgress`
events, pause and cancel, and one file's restore (`BatchRun.process`) with its row and
the report's rewrites.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.batch.job import (
    BatchJob,
    FileRequest,
    PhotoProcessor,
    PipelineProcessor,
    check_processor,
)
from engine.batch.lock import OutputLock
from engine.batch.plan import BatchItem, BatchPlan, is_finished, path_exists
from engine.batch.report import (
    BatchReport,
    BatchRow,
    append_report_row,
    failed_row,
    fingerprints,
    ok_row,
    read_old_rows,
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


def run_batch(
    job: BatchJob,
    *,
    restorer: Restorer | None = None,
    processor: PhotoProcessor | None = None,
    model=None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    pause: threading.Event | None = None,
    cancel: CancelToken = None,
    executor: BatchExecutor | None = None,
) -> BatchReport:
    """Restore every pair of `job.plan`; returns the report (also written as CSV/MD/JSON).

    job: what to do (engine.batch.job.BatchJob: plan, params, mode, faces, overwrite,
        location, where the report goes); the rest is how and who, and cannot travel.
    restorer: the engine.restorers plugin to use; by default the registered restorer
        named `job.mode` built around `model`. A restorer of another name is refused.
    processor: a `PhotoProcessor` (engine.batch.job); by default
        engine.photo.pipeline.restore_photo_files. It writes the output and its sidecar.
        One without `restore_file(request)` is refused here, before any work.
    pause: while set, the batch waits (between files and at every diffusion step).
    cancel: callable returning True or a threading.Event; stops within one step. The
        file in progress is reported "cancelled"; finished outputs are untouched.
    executor: who restores the files. `LocalExecutor()` (the default): one after another
        in this process. `engine.batch.cluster.RayExecutor`: on a pool of Ray workers,
        the files handed out as workers become free; this process still plans, reads the
        inputs, writes every output, row and report (the same code as here).
    The report's place is checked before anything is written. Each file's row is appended
    to the CSV as it ends, so a killed batch still has its rows; the CSV and its .md/.json
    summaries are rewritten whole at most every REPORT_INTERVAL_S.
    A bad file is logged in the report and the batch goes on. A full or read-only output
    folder stops the batch (`stopped_reason`). KeyboardInterrupt / SystemExit propagate
    after the report is written. BatchLockedError when another batch is writing into the
    same output folder.
    """
    if not isinstance(job, BatchJob):
        raise TypeError(f"run_batch takes a BatchJob (engine.batch.job), not {job!r}.")
    restorer = restorer or get_restorer(job.mode, model=model)
    if restorer.name != job.mode:
        raise ValueError(
            f"The job asks for the {job.mode!r} restorer but was handed {restorer.name!r}."
        )
    executor = executor or LocalExecutor()
    if processor is not None:
        processor = check_processor(processor)
    elif executor.runs_here:  # a cluster's workers have their own
        processor = PipelineProcessor()
    report_csv = job.report.resolve(job.plan)
    out_dir = job.plan.output_dir
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
        items = job.plan.items
        check_output_folder(out_dir, estimate_output_bytes(items[0].edited) if items else 0)
        report = BatchReport(
            plan=job.plan, rows=[], mode=restorer.name, report_path=report_csv, faces=job.faces
        )
        old_rows = read_old_rows(report_csv) if report_csv and report_csv.is_file() else {}
        run = BatchRun(job, report, restorer, processor, on_progress, pause, cancel)
        run.executor = executor
        return run.run(old_rows)


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

    def __init__(self, job: BatchJob, report, restorer, processor, on_progress, pause, cancel):
        self.job, self.report, self.plan, self.params = job, report, job.plan, job.params
        self.backend, self.faces = job.backend, job.faces
        self.strip_location = job.strip_location
        self.restorer, self.processor = restorer, processor
        self.on_progress, self.pause = on_progress, pause
        self.is_cancelled = _cancel_fn(cancel)
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
    def run(self, old_rows: dict) -> BatchReport:
        report, mode = self.report, self.report.mode
        self.emit("start", message=self.plan.summary())
        try:
            for item in self.plan.skipped_existing:
                self.begin(item)
                self.add_row(skipped_row(item, old_rows, mode), "skipped", write=False)
            self.write_reports()  # the header (and earlier results): rows append to it
            self.executor.run_items(self, self.job.overwrite, old_rows)
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
            request = self.request(item, overwrite=self.check_target(item, overwrite))
            before = fingerprints(item)
            result = self.processor.restore_file(request)
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

    def check_target(self, item: BatchItem, overwrite: bool) -> bool:
        """True when an earlier output is in the way and `overwrite` allows replacing it;
        InputError when something that may not go is in the way."""
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
        return stale

    def make_way(self, item: BatchItem, overwrite: bool) -> None:
        """`check_target`, then remove the earlier output: for executors whose workers
        write elsewhere and send the result back (it is gone before the file is sent)."""
        if self.check_target(item, overwrite):
            item.output.unlink(missing_ok=True)
            sidecar_path(item.output).unlink(missing_ok=True)

    def request(self, item: BatchItem, *, overwrite: bool) -> FileRequest:
        """`item` as the processor gets it: the job's choices, this run's step and cancel."""
        return FileRequest(
            item.original, item.edited, item.output, self.params, self.restorer,
            backend=self.backend, faces=self.faces, overwrite=overwrite,
            strip_location=self.strip_location, on_step=self.on_step, cancel=self.is_cancelled,
        )  # fmt: skip

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
