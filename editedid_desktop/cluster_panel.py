"""The batch dialog's "Run on" choice: this computer, or a Ray cluster of the studio.

"This computer" (the default) runs the batch here, as always, and never imports Ray.
"Ray cluster at [address]" hands the files to Ray workers (engine.batch.cluster): Check
connects and lists the machines, their GPUs and versions; while a batch runs, a table
shows each worker's file, stage and count. The panel builds the executor; the dialog
passes it to `run_batch`. Ray is imported only when a cluster is checked or used.

Two parts: `controls` (one row: Run on, address, workers, Check), which the dialog puts
on a row of its own above its Start/Pause/Cancel buttons (its sections scroll, so the
dialog still fits a small screen), and the panel itself (the check's result and the
workers' table), shown only when a cluster is chosen.

Check runs `check_cluster` on a `PythonThread` of its own (threads.py: one Python thread
state for the thread's life), started for one check and quit when it has answered; the
answer comes back to the panel by a queued signal. Closing the panel's window (or the
application) waits for a check still connecting (`shutdown`).
"""

from __future__ import annotations

import importlib.util

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.batch.run import BatchProgress

from .threads import PythonThread

WORKER_COLUMNS = ("Worker", "File", "Stage", "Files done")
LOST_COLOR = QColor(240, 110, 100)
OK_COLOR = QColor(120, 200, 120)
ERROR_COLOR = QColor(240, 110, 100)
WARN_COLOR = QColor(230, 180, 80)
INSTALL_HINT = "Ray is not installed here: pip install 'editedid-desktop[cluster]'."
CHECK_WAIT_MS = 60000  # closing waits this long at most for a check still connecting

# Checks in progress (thread, checker), held here (not by the panel) so that a panel
# deleted mid-check never destroys a running QThread; released once the thread finished.
_LIVE: set = set()


def ray_installed() -> bool:
    """Whether Ray can be imported (looked up without importing it)."""
    return importlib.util.find_spec("ray") is not None


def model_spec(restorer):
    """The ModelSpec a worker loads to run the same model as `restorer`: the hub id
    (found in each worker's models folder) or the model's folder or file, with its
    low-memory choices; None for a restorer without a model. Each worker picks its own
    device and dtype."""
    from engine.models.spec import ModelSpec
    from engine.restorers import restorer_class

    if not restorer_class(restorer.name).needs_model:
        return None
    model = getattr(restorer, "model", None)
    if model is None:
        return ModelSpec()
    source = model.model_id if model.source_kind == "hub" else str(model.local_path)
    low = getattr(model, "low_memory", None)
    if low is None:
        return ModelSpec(source=source)
    return ModelSpec(
        source=source,
        low_vram=bool(low.offload_encoders or low.vae_tiling),
        cpu_offload=bool(low.cpu_offload),
    )


class ClusterChecker(QObject):
    """Connects to one cluster address on the check's thread and lists what is there."""

    done = Signal(object)  # ClusterCheck, or the error text

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    @Slot()
    def run(self) -> None:
        try:
            from engine.batch.cluster import check_cluster
            from engine.cli.batch import cluster_address

            result = check_cluster(cluster_address(self.address))
        except Exception as error:  # noqa: BLE001 - shown in the panel
            result = str(error) or type(error).__name__
        self.done.emit(result)


class ClusterPanel(QWidget):
    """Run on: this computer / Ray cluster at [address] [Check], workers, and the
    workers' progress while a batch runs."""

    checked = Signal(object)  # ClusterCheck, or the error text (on the UI thread)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.run_on_combo = QComboBox()
        self.run_on_combo.addItem("This computer", "here")
        self.run_on_combo.addItem("Ray cluster at", "cluster")
        self.run_on_combo.setToolTip("Where the batch's photos are restored.")
        self.address_edit = QLineEdit("auto")
        self.address_edit.setMinimumWidth(150)
        self.address_edit.setPlaceholderText("ray://studio-head:10001, or auto")
        self.address_edit.setToolTip(
            "ray://HOST:10001 from any computer (Ray Client), auto on a machine where "
            "`ray start` runs, or local for a private Ray on this computer."
        )
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(0, 512)
        self.workers_spin.setSpecialValueText("1/GPU")
        self.workers_spin.setToolTip("Workers to start: by default one per GPU of the cluster.")
        self.check_cluster_button = QPushButton("Check")
        self.check_cluster_button.setToolTip(
            "Connect to the cluster and list its machines, GPUs and versions."
        )
        self.cluster_status = QLabel("Runs here, on this computer's GPU or CPU.")
        self.cluster_status.setWordWrap(True)
        self.workers_table = QTableWidget(0, len(WORKER_COLUMNS))
        self.workers_table.setHorizontalHeaderLabels(WORKER_COLUMNS)
        self.workers_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.workers_table.verticalHeader().setVisible(False)
        header = self.workers_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.workers_table.setMaximumHeight(130)
        self.cpus_per_worker = 1.0  # a worker's CPUs on a cluster without GPUs
        self._rows: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._running = False
        self._checked_address: str | None = None  # what the shown check result is about
        self._check: tuple[PythonThread, ClusterChecker] | None = None  # while one runs
        self._watched: QWidget | None = None  # the window whose closing stops the check
        self._layout()
        self.run_on_combo.currentIndexChanged.connect(self._update)
        self.address_edit.textChanged.connect(self._address_changed)
        self.check_cluster_button.clicked.connect(self.check)
        self.checked.connect(self._show_check)
        if not ray_installed():
            self.run_on_combo.model().item(1).setEnabled(False)
            self.run_on_combo.setToolTip(INSTALL_HINT)
        self._update()

    def _layout(self) -> None:
        self.controls = QWidget()
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Run on:"))
        row.addWidget(self.run_on_combo)
        row.addWidget(self.address_edit, 1)
        self.workers_label = QLabel("Workers:")
        row.addWidget(self.workers_label)
        row.addWidget(self.workers_spin)
        row.addWidget(self.check_cluster_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.cluster_status)
        layout.addWidget(self.workers_table)

    # -- choices ---------------------------------------------------------------------
    def use_cluster(self) -> bool:
        return self.run_on_combo.currentData() == "cluster"

    def address(self) -> str:
        return self.address_edit.text().strip() or "auto"

    def workers(self) -> int | None:
        return self.workers_spin.value() or None

    def set_cluster(self, address: str | None, workers: int | None = None) -> None:
        """Choose the cluster at `address` (None: this computer)."""
        if address is None:
            self.run_on_combo.setCurrentIndex(0)
            return
        self.address_edit.setText(address)
        self.workers_spin.setValue(workers or 0)
        self.run_on_combo.setCurrentIndex(1)

    def executor(self, mode: str, restorer, processor=None):
        """The batch's executor: None for this computer, else a RayExecutor whose
        workers load the same mode and model as `restorer`. InputError when the
        address is not one (or Ray is missing)."""
        if not self.use_cluster():
            return None
        from engine.cli.batch import cluster_address
        from engine.errors import InputError

        if not ray_installed():
            raise InputError(INSTALL_HINT)
        try:
            address = cluster_address(self.address())
        except Exception as error:  # argparse's message names the accepted forms
            raise InputError(f"Ray cluster address {error}") from None
        from engine.batch.cluster import RayExecutor
        from engine.batch.remote import WorkerSpec

        spec = WorkerSpec(mode, model_spec(restorer), processor)
        self._reset_workers()
        return RayExecutor(
            spec, cluster=address, workers=self.workers(), cpus_per_worker=self.cpus_per_worker
        )

    # -- check -----------------------------------------------------------------------
    @Slot()
    def check(self) -> None:
        """Connect to the cluster in the background and show what is there."""
        if self._check is not None:  # one check at a time (the button is off meanwhile)
            return
        self.check_cluster_button.setEnabled(False)
        address = self._checked_address = self.address()
        self._status(f"Connecting to {address}\u2026", None)
        thread = PythonThread("editedid-cluster-check")  # one thread state: threads.py
        checker = ClusterChecker(address)
        checker.moveToThread(thread)
        thread.started.connect(checker.run)
        # The thread stops itself once the check answered (even if the panel is gone);
        # the answer reaches the panel on the UI thread (queued: the checker lives on
        # `thread`).
        checker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        checker.done.connect(self._check_answered, Qt.ConnectionType.QueuedConnection)
        self._check = (thread, checker)
        _LIVE.add(self._check)
        thread.start()

    def check_running(self) -> bool:
        """Whether a check's thread has not been waited for yet."""
        return self._check is not None

    def shutdown(self, timeout_ms: int = CHECK_WAIT_MS) -> bool:
        """Stop the check's thread and wait for it (the window closes, the app quits).
        A check still connecting is waited for (Ray's connect cannot be interrupted), up
        to `timeout_ms`; its answer is then dropped. True when no check thread runs."""
        if self._check is None:
            return True
        thread = self._check[0]
        thread.quit()  # its event loop ends once the check has answered
        if not thread.wait(timeout_ms):
            return False
        self._release_check()
        return True

    @Slot(object)
    def _check_answered(self, result) -> None:
        if self._check is None:  # shut down meanwhile: nobody waits for this answer
            return
        self._release_check()
        self.checked.emit(result)

    def _release_check(self) -> None:
        thread, checker = self._check
        self._check = None
        thread.wait()  # it quits right after the answer: at most a moment
        _LIVE.discard((thread, checker))
        checker.deleteLater()
        thread.deleteLater()
        self.check_cluster_button.setEnabled(self.use_cluster() and not self._running)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        window = self.window()
        if window is not self and window is not self._watched:
            if self._watched is not None:
                self._watched.removeEventFilter(self)
            window.installEventFilter(self)  # its Close stops the check (shutdown)
            self._watched = window
            app = QCoreApplication.instance()
            if app is not None:
                app.aboutToQuit.connect(self.shutdown)
        super().showEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self._watched and event.type() == QEvent.Type.Close:
            self.shutdown()
        return super().eventFilter(watched, event)

    @Slot(object)
    def _show_check(self, result) -> None:
        if self._checked_address is None:  # the address changed meanwhile: not its answer
            return
        if isinstance(result, str):
            self._status(f"Cannot use the cluster: {result}", ERROR_COLOR)
            return
        lines = [result.summary()]
        for node in result.nodes:
            found = ", ".join(f"{k} {v}" for k, v in node.versions.items())
            state = "" if node.alive else " (down)"
            lines.append(
                f"\u2022 {node.host}{state}: {node.gpus:.0f} GPU, {node.cpus:.0f} CPU; {found}"
            )
        self._status("\n".join(lines), WARN_COLOR if result.mismatches() else OK_COLOR)

    @Slot()
    def _address_changed(self) -> None:
        """The check's result (or error) is about another address: say so, never show it
        as this one's."""
        if self._checked_address is not None and self._checked_address != self.address():
            self._checked_address = None
            self._status("Address changed: Check again.", None)

    # -- while a batch runs ------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        self.run_on_combo.setEnabled(not running)
        self._enable()

    def show_progress(self, p: BatchProgress) -> None:
        """One progress event: the worker it names gets its file, stage and count."""
        if not p.worker:
            return
        row = self._row(p.worker)
        if p.stage == "worker lost":
            self._set(row, 1, "")
            self._set(row, 2, p.message, LOST_COLOR)
            return
        if p.stage == "worker ready":
            self._set(row, 2, "ready", OK_COLOR)
            self._set(row, 3, str(self._done.setdefault(p.worker, 0)))
            return
        if p.stage in ("file done", "file failed", "skipped"):
            self._done[p.worker] = self._done.get(p.worker, 0) + (p.stage != "skipped")
            self._set(row, 3, str(self._done[p.worker]))
            self._set(row, 2, "idle" if p.stage != "file failed" else "failed: " + p.message)
            return
        stage = f"{p.stage} {p.step}/{p.steps}" if p.steps else p.stage
        self._set(row, 1, p.file)
        self._set(row, 2, stage)

    def worker_lines(self) -> list[str]:
        """Each worker's row as text (tests, logs)."""
        table = self.workers_table
        return [
            " | ".join(table.item(r, c).text() if table.item(r, c) else "" for c in range(4))
            for r in range(table.rowCount())
        ]

    def _row(self, worker: str) -> int:
        key = worker.split(" (", 1)[0]  # "worker 2 (host, cuda:0)" and "worker 2" are one
        if key not in self._rows:
            self._rows[key] = self.workers_table.rowCount()
            self.workers_table.insertRow(self._rows[key])
        row = self._rows[key]
        self._set(row, 0, worker)
        return row

    def _set(self, row: int, column: int, text: str, color: QColor | None = None) -> None:
        item = self.workers_table.item(row, column)
        if item is None:
            item = QTableWidgetItem()
            self.workers_table.setItem(row, column, item)
        item.setText(text)
        item.setToolTip(text)
        if color is not None:
            item.setForeground(QBrush(color))

    def _reset_workers(self) -> None:
        self.workers_table.setRowCount(0)
        self._rows.clear()
        self._done.clear()

    def _enable(self) -> None:
        editable = self.use_cluster() and not self._running
        for widget in (self.address_edit, self.workers_spin, self.check_cluster_button):
            widget.setEnabled(editable)

    def _update(self) -> None:
        cluster = self.use_cluster()
        self._checked_address = None  # the status below replaces any check's result
        self._enable()
        for widget in (self.address_edit, self.workers_label, self.workers_spin,
                       self.check_cluster_button):  # fmt: skip
            widget.setVisible(cluster)
        self.setVisible(cluster)  # the check's result and the workers' table
        if not cluster:
            self._status("Runs here, on this computer's GPU or CPU.", None)
        else:
            self._status(
                "Files are restored by the cluster's workers; only image bytes travel "
                "between the studio's machines, and this computer writes every result.",
                None,
            )

    def _status(self, text: str, color: QColor | None) -> None:
        self.cluster_status.setText(text)
        style = "" if color is None else f"color: {color.name()};"
        self.cluster_status.setStyleSheet(style)
