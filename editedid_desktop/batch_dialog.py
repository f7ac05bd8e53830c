"""Batch folder mode: pair two folders, check, run overnight, read the report.

The dialog never blocks the UI: `engine.batch.run.run_batch` runs in a `BatchWorker` moved to
a QThread; progress arrives through queued signals. Pause holds the batch between files
and at every diffusion step; Cancel stops within one step; a new run resumes, skipping
the files that finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.batch.run import BatchPlan, BatchProgress, BatchReport, BatchRow, plan_batch, run_batch

ERROR_COLOR = QColor(240, 110, 100)
WARN_COLOR = QColor(230, 180, 80)
OK_COLOR = QColor(120, 200, 120)
# Threads and workers of running batches, held here (not by the dialog) so that a dialog
# deleted mid-run can never destroy a running QThread; released on the UI thread once the
# thread has finished.
_LIVE: set = set()


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA: estimating\u2026"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA: {hours}:{minutes:02}:{secs:02}" if hours else f"ETA: {minutes}:{secs:02}"


class BatchWorker(QObject):
    """Runs one batch on its thread; emits progress, then finished or failed."""

    progress = Signal(object)  # BatchProgress
    finished = Signal(object)  # BatchReport
    failed = Signal(str)

    def __init__(self, plan: BatchPlan, params, *, restorer, backend, processor, overwrite):
        super().__init__()
        self.plan, self.params, self.restorer = plan, params, restorer
        self.backend, self.processor, self.overwrite = backend, processor, overwrite
        self.pause = threading.Event()
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            report = run_batch(
                self.plan,
                self.params,
                processor=self.processor,
                restorer=self.restorer,
                backend=self.backend,
                on_progress=self.progress.emit,
                pause=self.pause,
                cancel=self.cancel,
                overwrite=self.overwrite,
            )
        except Exception as error:  # noqa: BLE001 - shown in the dialog, never a crash
            self.failed.emit(str(error) or type(error).__name__)
            return
        self.finished.emit(report)


class _FolderRow(QWidget):
    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(f"{title}\u2026")
        self.button = QPushButton("Browse\u2026")
        self.button.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.title, self.edit.text())
        if folder:
            self.edit.setText(folder)


class BatchDialog(QDialog):
    """Folder mode. `params_provider()` gives the EditedIDParams to use, `model_provider()`
    the loaded SD model (or None); both are called when Start is pressed, so the main
    window's current settings and model are shared. `processor` replaces
    engine.photo.pipeline.restore_photo_files (tests)."""

    batch_progress = Signal(object)  # BatchProgress, re-emitted on the UI thread
    batch_finished = Signal(object)  # BatchReport; emitted after the thread has stopped
    batch_failed = Signal(str)  # the batch could not run at all (e.g. read-only output)

    COLUMNS = ("File", "Status", "Faces", "ID before \u2192 after", "Seconds")

    def __init__(
        self,
        params_provider: Callable[[], object],
        model_provider: Callable[[], object | None],
        parent: QWidget | None = None,
        *,
        processor: Callable | None = None,
        backend: str = "auto",
    ):
        super().__init__(parent)
        self.setWindowTitle("Batch folder mode")
        self.setModal(False)
        self.resize(880, 760)
        self.params_provider = params_provider
        self.model_provider = model_provider
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

    # -- layout --------------------------------------------------------------------
    def _build(self, backend: str) -> None:
        folders = QGroupBox("Folders")
        form = QFormLayout(folders)
        self.original_row = _FolderRow("Original photos folder")
        self.edited_row = _FolderRow("Edited photos folder")
        self.output_row = _FolderRow("Output folder")
        self.original_edit = self.original_row.edit
        self.edited_edit = self.edited_row.edit
        self.output_edit = self.output_row.edit
        form.addRow("Originals:", self.original_row)
        form.addRow("Edited:", self.edited_row)
        form.addRow("Output:", self.output_row)
        options = QHBoxLayout()
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Classic (fast, no SD model)", "classic")
        self.mode_combo.addItem("Diffusion (EditedID)", "diffusion")
        self.mode_combo.setToolTip("Classic needs no SD model; diffusion is the full method.")
        self.backend_combo = QComboBox()
        for name in ("auto", "dlib", "insightface"):
            self.backend_combo.addItem(name, name)
        self.backend_combo.setCurrentIndex(max(0, self.backend_combo.findData(backend)))
        self.backend_combo.setToolTip("Face detector and identity model.")
        self.overwrite_check = QCheckBox("Replace unfinished outputs")
        self.overwrite_check.setToolTip(
            "Outputs that exist without a finished sidecar are replaced (otherwise they are "
            "reported and left alone). Finished outputs are always skipped."
        )
        options.addWidget(QLabel("Mode:"))
        options.addWidget(self.mode_combo)
        options.addSpacing(12)
        options.addWidget(QLabel("Faces:"))
        options.addWidget(self.backend_combo)
        options.addSpacing(12)
        options.addWidget(self.overwrite_check)
        options.addStretch(1)
        form.addRow(options)
        for edit in (self.original_edit, self.edited_edit, self.output_edit):
            edit.textChanged.connect(self._invalidate_check)

        check_box = QGroupBox("Check")
        check_layout = QVBoxLayout(check_box)
        check_bar = QHBoxLayout()
        self.check_button = QPushButton("Check pairs")
        self.check_button.setToolTip("Pair the folders and list every mismatch before starting.")
        self.check_button.clicked.connect(self.run_check)
        self.check_status = QLabel("Choose the three folders, then Check.")
        self.check_status.setWordWrap(True)
        check_bar.addWidget(self.check_button)
        check_bar.addWidget(self.check_status, 1)
        self.rule_label = QLabel("")
        self.rule_label.setWordWrap(True)
        self.rule_label.setStyleSheet("color: #9aa0a6;")
        self.check_tree = QTreeWidget()
        self.check_tree.setHeaderHidden(True)
        self.check_tree.setMinimumHeight(120)
        check_layout.addLayout(check_bar)
        check_layout.addWidget(self.rule_label)
        check_layout.addWidget(self.check_tree, 1)

        run_box = QGroupBox("Run")
        run_layout = QVBoxLayout(run_box)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)
        for button in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.eta_label = QLabel(format_eta(None))
        buttons.addWidget(self.eta_label)
        self.file_label = QLabel("")
        self.file_bar = QProgressBar()
        self.file_bar.setFormat("%p% of this file")
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setFormat("No batch running")
        run_layout.addLayout(buttons)
        run_layout.addWidget(self.file_label)
        run_layout.addWidget(self.file_bar)
        run_layout.addWidget(self.overall_bar)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setPlaceholderText("Failures and events are listed here.")
        self.report_table = QTableWidget(0, len(self.COLUMNS))
        self.report_table.setHorizontalHeaderLabels(self.COLUMNS)
        self.report_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.report_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.report_table.verticalHeader().setVisible(False)
        header = self.report_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.log_view)
        splitter.addWidget(self.report_table)

        bottom = QHBoxLayout()
        self.summary_label = QLabel("")
        self.open_report_button = QPushButton("Open report (CSV)")
        self.open_report_button.setEnabled(False)
        self.open_report_button.clicked.connect(self.open_report)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        bottom.addWidget(self.summary_label, 1)
        bottom.addWidget(self.open_report_button)
        bottom.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(folders)
        layout.addWidget(check_box, 2)
        layout.addWidget(run_box)
        layout.addWidget(splitter, 3)
        layout.addLayout(bottom)

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
        return (
            self.original_edit.text().strip(),
            self.edited_edit.text().strip(),
            self.output_edit.text().strip(),
        )

    @Slot()
    def run_check(self) -> bool:
        """Pair the folders and show the rule, pairs, mismatches and finished files."""
        self.check_tree.clear()
        self.plan = None
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
        self._checked_for = self._folders()
        self.rule_label.setText(plan.rule_text)
        self._fill_check_tree(plan)
        problems = plan.problems()
        if not plan.items and not plan.skipped_existing:
            self._status("No pairs found. " + plan.summary(), ERROR_COLOR)
        elif problems:
            self._status(plan.summary() + " See the list below.", WARN_COLOR)
        else:
            self._status(plan.summary(), OK_COLOR)
        self._set_running(False)
        return True

    def _fill_check_tree(self, plan: BatchPlan) -> None:
        def group(title: str, lines: list[str], color: QColor | None, expanded: bool) -> None:
            if not lines:
                return
            top = QTreeWidgetItem([f"{title} ({len(lines)})"])
            font = QFont(top.font(0))
            font.setBold(True)
            top.setFont(0, font)
            if color is not None:
                top.setForeground(0, QBrush(color))
            for line in lines:
                top.addChild(QTreeWidgetItem([line]))
            self.check_tree.addTopLevelItem(top)
            top.setExpanded(expanded)

        group("No edited photo for these originals", [p.name for p in plan.unpaired_originals],
              ERROR_COLOR, True)  # fmt: skip
        group("No original for these edited photos", [p.name for p in plan.unpaired_edited],
              ERROR_COLOR, True)  # fmt: skip
        group("Ambiguous names", plan.ambiguous, ERROR_COLOR, True)
        group(
            "Outputs that exist but are not finished",
            [c.output.name for c in plan.conflicts],
            WARN_COLOR,
            True,
        )
        group(
            "Already finished \u2014 will be skipped",
            [i.output.name for i in plan.skipped_existing],
            None,
            False,
        )
        group(
            "Pairs to process",
            [f"{i.original.name}  \u2194  {i.edited.name}" for i in plan.items],
            None,
            len(plan.items) <= 50,
        )
        group("Ignored (not images)", [p.name for p in plan.ignored], None, False)

    def check_lines(self) -> list[str]:
        """Every line of the check list (groups and their entries), for tests and logs."""
        lines = []
        for i in range(self.check_tree.topLevelItemCount()):
            top = self.check_tree.topLevelItem(i)
            lines.append(top.text(0))
            lines += [f"  {top.child(j).text(0)}" for j in range(top.childCount())]
        return lines

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
        self.report_table.setRowCount(0)
        self.log_view.clear()
        self.summary_label.clear()
        self.open_report_button.setEnabled(False)
        self.file_bar.setValue(0)
        self.overall_bar.setValue(0)
        self._log(f"Started: {plan.summary()} Mode: {self.mode}.")
        self._worker = BatchWorker(
            plan,
            params,
            restorer=restorer,
            backend=self.backend_combo.currentData(),
            processor=self.processor,
            overwrite=self.overwrite_check.isChecked(),
        )
        self._thread = QThread()
        _LIVE.add((self._thread, self._worker))
        self._thread.setObjectName("editedid-batch")
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
        """The chosen mode's restorer, with the shared SD model when it needs one and
        there is something to restore; None (and a message) when it cannot run."""
        from engine.restorers import get_restorer, restorer_class

        model = None
        if restorer_class(self.mode).needs_model and needed:
            try:
                model = self.model_provider()
            except Exception as error:  # noqa: BLE001
                self._status(f"The SD model could not be loaded: {error}", ERROR_COLOR)
                return None
            if model is None:
                self._status(
                    "Diffusion mode needs a Stable Diffusion model: load one in the model "
                    "manager, or choose Classic mode.",
                    ERROR_COLOR,
                )
                return None
        return get_restorer(self.mode, model=model)

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
        self.overall_bar.setValue(int(round(p.fraction * 1000)))
        finished = p.done + p.failed + p.skipped
        self.overall_bar.setFormat(
            f"{finished} of {p.total} files \u2014 {p.done} restored, {p.failed} failed, "
            f"{p.skipped} skipped"
        )
        self.eta_label.setText(format_eta(p.eta_s) if finished < p.total else "ETA: done")
        if p.steps:
            self.file_bar.setRange(0, p.steps)
            self.file_bar.setValue(min(p.step, p.steps))
            self.file_label.setText(f"{p.file} \u2014 {p.stage} {p.step}/{p.steps}")
        elif p.stage == "file":
            self.file_bar.setRange(0, 1)
            self.file_bar.setValue(0)
            self.file_label.setText(f"{p.file} \u2014 starting")
        elif p.stage == "paused":
            self.file_label.setText(f"{p.file} \u2014 paused")
            self._log("Paused.")
        elif p.stage == "stopped":
            self._log(f"STOPPED: {p.message}")
        if p.row is not None:
            self._add_row(p.row)
            if p.row.status == "failed":
                self._log(f"FAILED {Path(p.row.edited).name}: {p.row.error}")
            if p.row.warnings:
                for warning in p.row.warnings:
                    self._log(f"note {Path(p.row.edited).name}: {warning}")
        self.batch_progress.emit(p)

    def _add_row(self, row: BatchRow) -> None:
        r = self.report_table.rowCount()
        self.report_table.insertRow(r)
        before = row.id_before.replace(";", ", ")
        after = row.id_after.replace(";", ", ")
        ids = f"{before} \u2192 {after}" if (before or after) else ""
        values = (Path(row.edited).name, row.status, row.faces, ids, row.seconds)
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            if row.status == "failed":
                item.setForeground(QBrush(ERROR_COLOR))
                item.setToolTip(row.error)
            self.report_table.setItem(r, c, item)
        self.report_table.scrollToBottom()

    @Slot(object)
    def _on_finished(self, report: BatchReport) -> None:
        self.report = report
        text = f"{report.ok} restored, {report.failed} failed, {report.skipped} skipped"
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
        for widget in (
            self.original_row,
            self.edited_row,
            self.output_row,
            self.mode_combo,
            self.backend_combo,
            self.overwrite_check,
            self.check_button,
        ):
            widget.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.pause_button.setText("Pause")
        if not running:
            self.file_label.setText("")

    @Slot()
    def _invalidate_check(self) -> None:
        if self.plan is not None and self._checked_for != self._folders():
            self.plan = None
            self.check_tree.clear()
            self.rule_label.clear()
            self._status("Folders changed: Check again.", None)

    def _status(self, text: str, color: QColor | None) -> None:
        self.check_status.setText(text)
        self.check_status.setStyleSheet(f"color: {color.name()};" if color is not None else "")

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

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
