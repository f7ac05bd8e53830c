"""Batch folder mode: pair two folders, check, run overnight, read the report.

The dialog never blocks the UI: `engine.batch.run.run_batch` runs in a `BatchWorker` moved to
a QThread; progress arrives through queued signals. Pause holds the batch between files
and at every diffusion step; Cancel stops within one step; a new run resumes, skipping
the files that finished. The dialog's sections (folders, check list, run controls, log and
results) are built in `batch_widgets`; this module holds the state and the wiring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QDialog, QVBoxLayout, QWidget

from engine.batch.run import (
    FACE_SELECTION_TEXT,
    BatchJob,
    BatchPlan,
    BatchProgress,
    BatchReport,
    PhotoProcessor,
    plan_batch,
    run_batch,
)
from engine.runtime import Engine

from .batch_widgets import (
    ERROR_COLOR,
    OK_COLOR,
    RESULT_COLUMNS,
    WARN_COLOR,
    CheckSection,
    FoldersBox,
    ResultsSplitter,
    RunSection,
    format_eta,
    summary_bar,
)
from .cluster_panel import ClusterPanel
from .panel_scroll import PanelScrollArea
from .threads import PythonThread

__all__ = ["BatchDialog", "BatchWorker", "format_eta"]

# Threads and workers of running batches, held here (not by the dialog) so that a dialog
# deleted mid-run can never destroy a running QThread; released on the UI thread once the
# thread has finished.
_LIVE: set = set()
BATCH = "the batch"  # who holds the shared Engine, as the window is told while it waits
SCREEN_MARGIN = 48  # px of the screen left to the window's title bar and frame


class BatchWorker(QObject):
    """Runs one batch on its thread; emits progress, then finished or failed."""

    progress = Signal(object)  # BatchProgress
    finished = Signal(object)  # BatchReport
    failed = Signal(str)

    def __init__(self, job: BatchJob, *, restorer, processor=None, executor=None):
        super().__init__()
        self.job, self.restorer, self.processor = job, restorer, processor
        self.executor = executor  # None: this computer; else the Ray cluster's
        self.pause = threading.Event()
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            report = run_batch(
                self.job,
                processor=self.processor,
                restorer=self.restorer,
                on_progress=self.progress.emit,
                pause=self.pause,
                cancel=self.cancel,
                executor=self.executor,
            )
        except Exception as error:  # noqa: BLE001 - shown in the dialog, never a crash
            self.failed.emit(str(error) or type(error).__name__)
            return
        self.finished.emit(report)


class BatchDialog(QDialog):
    """Folder mode. `params_provider()` gives the EditedIDParams to use (called when Start
    is pressed, so the main window's current settings are used); `engine` is the app's
    engine.runtime.Engine: its loaded SD model, shared with the window's restores, one
    run at a time (a batch photo waits for an interactive restore and says so).
    `processor` (a PhotoProcessor) replaces engine.photo.pipeline.restore_photo_files
    (tests)."""

    batch_progress = Signal(object)  # BatchProgress, re-emitted on the UI thread
    batch_finished = Signal(object)  # BatchReport; emitted after the thread has stopped
    batch_failed = Signal(str)  # the batch could not run at all (e.g. read-only output)
    # Emitted on the batch's thread when its next photo waits for the model (queued here).
    model_waiting = Signal(str)  # what holds the model

    COLUMNS = RESULT_COLUMNS

    def __init__(
        self,
        params_provider: Callable[[], object],
        engine: Engine,
        parent: QWidget | None = None,
        *,
        processor: PhotoProcessor | None = None,
        backend: str = "auto",
        strip_location: bool = True,
    ):
        super().__init__(parent)
        self.strip_location = strip_location  # the app's Settings > location choice
        self.setWindowTitle("Batch folder mode")
        self.setModal(False)
        self.params_provider = params_provider
        self.engine = engine
        self.model_waiting.connect(self._on_model_waiting)
        self.processor = processor
        self.plan: BatchPlan | None = None
        self.report: BatchReport | None = None
        self._checked_for: tuple | None = None
        self._thread: QThread | None = None
        self._worker: BatchWorker | None = None
        self._close_when_done = False
        self._failure: str | None = None
        self._build(backend)
        self._set_running(False)
        self._fit_screen(880, 760)

    # -- layout --------------------------------------------------------------------
    def _build(self, backend: str) -> None:
        self.folders_box = FoldersBox(backend)
        self.check_section = CheckSection()
        self.run_section = RunSection()
        self.cluster_panel = ClusterPanel()
        self.results = ResultsSplitter()
        bottom, self.summary_label, self.open_report_button, self.close_button = summary_bar()
        # The sections scroll (on a small screen, or with the cluster's rows shown) while
        # the bottom row with Close stays in view: the dialog fits an 800 px screen.
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.folders_box)
        layout.addWidget(self.check_section, 2)
        layout.addWidget(self.run_section)
        layout.addWidget(self.cluster_panel)  # shown only when a cluster is chosen
        # "Run on" gets a row of its own above Start: beside the buttons, a cluster's
        # address and workers made the dialog wider than a small screen.
        self.run_section.layout().insertWidget(0, self.cluster_panel.controls)
        layout.addWidget(self.results, 3)
        self.sections = PanelScrollArea(body)
        outer = QVBoxLayout(self)
        outer.addWidget(self.sections, 1)
        outer.addLayout(bottom)
        self._alias_widgets()
        for edit in self.folders_box.edits:
            edit.textChanged.connect(self._invalidate_check)
        self.check_button.clicked.connect(self.run_check)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_report_button.clicked.connect(self.open_report)
        self.close_button.clicked.connect(self.close)

    def _fit_screen(self, width: int, height: int) -> None:
        """Open at `width` x `height`, or smaller where the screen is (title bar and
        panels included): every part scrolls, Close stays on the screen."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            available = screen.availableGeometry()
            width = min(width, available.width() - SCREEN_MARGIN)
            height = min(height, available.height() - SCREEN_MARGIN)
        self.resize(width, height)

    def _alias_widgets(self) -> None:
        """The sections' widgets under the dialog's own names (tests and callers use them)."""
        folders, check, run = self.folders_box, self.check_section, self.run_section
        self.original_row, self.edited_row = folders.original_row, folders.edited_row
        self.output_row = folders.output_row
        self.original_edit, self.edited_edit, self.output_edit = folders.edits
        self.mode_combo, self.backend_combo = folders.mode_combo, folders.backend_combo
        self.faces_combo = folders.faces_combo
        self.overwrite_check = folders.overwrite_check
        self.check_button, self.check_status = check.check_button, check.check_status
        self.rule_label, self.check_tree = check.rule_label, check.check_tree
        self.start_button, self.pause_button = run.start_button, run.pause_button
        self.cancel_button, self.eta_label = run.cancel_button, run.eta_label
        self.file_label, self.file_bar = run.file_label, run.file_bar
        self.overall_bar = run.overall_bar
        self.log_view, self.report_table = self.results.log_view, self.results.report_table

    # -- public API ----------------------------------------------------------------
    def set_folders(self, original=None, edited=None, output=None) -> None:
        for edit, value in (
            (self.original_edit, original),
            (self.edited_edit, edited),
            (self.output_edit, output),
        ):
            if value is not None:
                edit.setText(str(value))

    def set_mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(mode)))

    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def set_faces(self, faces: str) -> None:
        """Which faces to restore: "changed" (default) or "all", as the CLI's --faces."""
        index = self.faces_combo.findData(faces)
        if index < 0:
            raise ValueError(f"faces must be one of {', '.join(FACE_SELECTION_TEXT)}.")
        self.faces_combo.setCurrentIndex(index)

    @property
    def faces(self) -> str:
        return self.faces_combo.currentData()

    def is_running(self) -> bool:
        return self._thread is not None

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel a running batch and wait for its thread (application exit). True when
        nothing runs any more."""
        thread = self._thread
        if thread is None:
            return True
        self.cancel()
        return thread.wait(timeout_ms)

    def _folders(self) -> tuple[str, str, str]:
        return self.folders_box.folders()

    @Slot()
    def run_check(self) -> bool:
        """Pair the folders and show the rule, pairs, mismatches and finished files."""
        self.check_tree.clear()
        self.plan = None
        self._checked_for = self._folders()  # what the shown result (or error) is about
        original, edited, output = self._folders()
        if not (original and edited and output):
            self._status("Choose the original, edited and output folders first.", ERROR_COLOR)
            return False
        try:
            plan = plan_batch(original, edited, output)
        except Exception as error:  # noqa: BLE001 - InputError mostly; shown inline
            self._status(str(error), ERROR_COLOR)
            return False
        self.plan = plan
        self.check_section.show_plan(plan)
        problems = plan.problems()
        if not plan.items and not plan.skipped_existing:
            self._status("No pairs found. " + plan.summary(), ERROR_COLOR)
        elif problems:
            self._status(plan.summary() + " See the list below.", WARN_COLOR)
        else:
            self._status(plan.summary(), OK_COLOR)
        self._set_running(False)
        return True

    def check_lines(self) -> list[str]:
        """Every line of the check list (groups and their entries), for tests and logs."""
        return self.check_section.lines()

    @Slot()
    def start(self) -> bool:
        if self.is_running():
            return False
        if self.plan is None or self._checked_for != self._folders():
            if not self.run_check():
                return False
        plan = self.plan
        if not plan.items and not plan.skipped_existing:
            return False
        try:
            params = self.params_provider()
        except Exception as error:  # noqa: BLE001
            self._status(f"The parameters are not valid: {error}", ERROR_COLOR)
            return False
        restorer = self._restorer(needed=bool(plan.items))
        if restorer is None:
            return False
        self.report = None
        self._failure = None
        self.results.clear_results()
        self.summary_label.clear()
        self.open_report_button.setEnabled(False)
        self.run_section.reset_bars()
        self._log(
            f"Started: {plan.summary()} Mode: {self.mode}. "
            f"Restoring {FACE_SELECTION_TEXT[self.faces]}."
        )
        try:  # "Run on": None for this computer, else the Ray cluster's executor
            executor = self.cluster_panel.executor(self.mode, restorer, self.processor)
        except Exception as error:  # noqa: BLE001 - a bad address or no Ray: said inline
            self._status(str(error), ERROR_COLOR)
            return False
        job = BatchJob(
            plan,
            params,
            mode=self.mode,
            backend=self.backend_combo.currentData(),
            faces=self.faces,
            overwrite=self.overwrite_check.isChecked(),
            strip_location=self.strip_location,
        )
        self._worker = BatchWorker(
            job, restorer=restorer, processor=self.processor, executor=executor
        )
        self._thread = PythonThread("editedid-batch")  # one thread state: threads.py
        _LIVE.add((self._thread, self._worker))
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        # Direct: quit from the worker thread itself, so shutdown() may block the UI thread.
        direct = Qt.ConnectionType.DirectConnection
        self._worker.finished.connect(self._thread.quit, direct)
        self._worker.failed.connect(self._thread.quit, direct)
        self._thread.finished.connect(self._on_thread_done)
        self._set_running(True)
        self._thread.start()
        return True

    def _restorer(self, needed: bool):
        """The chosen mode's restorer on the shared Engine (its model calls take turns
        with the window's restores); None (and a message) when it cannot run."""
        restorer = self.engine.restorer(self.mode, who=BATCH, on_wait=self.model_waiting.emit)
        if restorer.needs_model and needed and self.engine.model is None:
            self._status(
                "Diffusion mode needs a Stable Diffusion model: load one in the model "
                "manager, or choose Classic mode.",
                ERROR_COLOR,
            )
            return None
        return restorer

    @Slot(str)
    def _on_model_waiting(self, holder: str) -> None:
        self._log(f"Waiting for {holder} to finish before the next photo…")

    @Slot()
    def toggle_pause(self) -> None:
        worker = self._worker
        if worker is None:
            return
        if worker.pause.is_set():
            worker.pause.clear()
            self.pause_button.setText("Pause")
            self._log("Resumed.")
        else:
            worker.pause.set()
            self.pause_button.setText("Resume")
            self._log("Pausing (at the next step)\u2026")

    @Slot()
    def cancel(self) -> None:
        worker = self._worker
        if worker is None:
            return
        worker.cancel.set()
        worker.pause.clear()
        self.cancel_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.file_label.setText("Cancelling (within one step)\u2026")

    @Slot()
    def open_report(self) -> None:
        if self.report is not None and self.report.report_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report.report_path)))

    # -- worker signals ------------------------------------------------------------
    @Slot(object)
    def _on_progress(self, p: BatchProgress) -> None:
        self.run_section.show_progress(p)
        self.cluster_panel.show_progress(p)
        if p.stage == "paused" and not p.steps:
            self._log("Paused.")
        elif p.stage == "stopped" and not p.steps:
            self._log(f"STOPPED: {p.message}")
        if p.row is not None:
            self.results.add_row(p.row)
            if p.row.status == "failed":
                self._log(f"FAILED {Path(p.row.edited).name}: {p.row.error}")
            if p.row.warnings:
                for warning in p.row.warnings:
                    self._log(f"note {Path(p.row.edited).name}: {warning}")
        self.batch_progress.emit(p)

    @Slot(object)
    def _on_finished(self, report: BatchReport) -> None:
        self.report = report
        text = (
            f"{report.ok} restored ({FACE_SELECTION_TEXT.get(report.faces, report.faces)}), "
            f"{report.failed} failed, {report.skipped} skipped"
        )
        if report.cancelled:
            text = "Cancelled: " + text + ". Start again to resume."
        elif report.stopped_reason:
            text = "Stopped: " + text + f". {report.stopped_reason}"
        else:
            text += f" in {report.seconds:.0f} s."
        self.summary_label.setText(text)
        self._log(text)
        if report.report_path is not None:
            self._log(f"Report: {report.report_path}")
        self.open_report_button.setEnabled(
            report.report_path is not None and Path(report.report_path).exists()
        )
        self.eta_label.setText("ETA: done" if not report.cancelled else "ETA: \u2014")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._log(f"The batch could not run: {message}")
        self.summary_label.setText(f"Not run: {message}")
        self._failure = message

    @Slot()
    def _on_thread_done(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        if thread is not None:
            thread.wait()
        _LIVE.discard((thread, worker))
        if worker is not None:
            worker.deleteLater()
        if thread is not None:
            thread.deleteLater()
        self.plan = None  # a new Start re-checks, so finished files are skipped
        self._set_running(False)
        # Emitted only now, when the thread has really stopped.
        if self.report is not None:
            self.batch_finished.emit(self.report)
        elif self._failure is not None:
            self.batch_failed.emit(self._failure)
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    # -- state -----------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        self.folders_box.set_editable(not running)
        self.check_button.setEnabled(not running)
        self.run_section.set_running(running)
        self.cluster_panel.set_running(running)

    @Slot()
    def _invalidate_check(self) -> None:
        """A folder changed: the check's result, or its error, is about other folders."""
        if self._checked_for is not None and self._checked_for != self._folders():
            self.plan = None
            self._checked_for = None
            self.check_section.clear_plan()
            self._status("Folders changed: Check again.", None)

    def _status(self, text: str, color: QColor | None) -> None:
        self.check_section.set_status(text, color)

    def _log(self, text: str) -> None:
        self.results.log(text)

    # -- closing while running: cancel first, close when the worker has stopped -------
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.is_running():
            self._close_when_done = True
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:
        if self.is_running():
            self._close_when_done = True
            self.cancel()
            return
        super().reject()
