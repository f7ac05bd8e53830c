"""The sections of the batch dialog: folders and options, check list, run controls,
log and results table, and the summary bar.

Each section only builds and shows its widgets; `batch_dialog.BatchDialog` owns the
state (plan, worker, thread) and wires the buttons.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
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

from engine.batch.identity_text import same_person_text
from engine.batch.run import FACE_SELECTION_TEXT, BatchPlan, BatchProgress, BatchRow

ERROR_COLOR = QColor(240, 110, 100)
WARN_COLOR = QColor(230, 180, 80)
OK_COLOR = QColor(120, 200, 120)
RESULT_COLUMNS = ("File", "Status", "Faces", "Same person: before \u2192 after", "Seconds")
RESULT_ROWS_SHOWN = 5  # the results table shows at least this many rows at any dialog size


def identity_cell(row: BatchRow) -> tuple[str, str]:
    """(text, tooltip) of a row's identity column: "% same person" before -> after per
    restored face, as the face panels and the reports show it; ("", "") when none."""
    if row.status not in ("ok", "skipped"):
        return "", ""
    return same_person_text(row.output)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA: estimating\u2026"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA: {hours}:{minutes:02}:{secs:02}" if hours else f"ETA: {minutes}:{secs:02}"


class FolderRow(QWidget):
    """A folder path with its Browse button."""

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


class FoldersBox(QGroupBox):
    """The three folders, the restoration mode, the face backend and the overwrite option."""

    def __init__(self, backend: str, parent=None):
        super().__init__("Folders", parent)
        form = QFormLayout(self)
        self.original_row = FolderRow("Original photos folder")
        self.edited_row = FolderRow("Edited photos folder")
        self.output_row = FolderRow("Output folder")
        self.edits = (self.original_row.edit, self.edited_row.edit, self.output_row.edit)
        form.addRow("Originals:", self.original_row)
        form.addRow("Edited:", self.edited_row)
        form.addRow("Output:", self.output_row)
        form.addRow(self._options(backend))

    def _options(self, backend: str) -> QVBoxLayout:
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Classic (fast, no SD model)", "classic")
        self.mode_combo.addItem("Diffusion (EditedID)", "diffusion")
        self.mode_combo.setToolTip("Classic needs no SD model; diffusion is the full method.")
        self.backend_combo = QComboBox()
        for name in ("auto", "dlib", "insightface"):
            self.backend_combo.addItem(name, name)
        self.backend_combo.setCurrentIndex(max(0, self.backend_combo.findData(backend)))
        self.backend_combo.setToolTip("Face detector and identity model.")
        self.faces_combo = QComboBox()
        for value, text in FACE_SELECTION_TEXT.items():
            self.faces_combo.addItem(text[:1].upper() + text[1:], value)
        self.faces_combo.setToolTip(
            "Faces whose identity changed: faces the edit left recognisable are kept as "
            "edited, so they are not blurred (the report says why per face). All paired "
            "faces: restore every face that has a partner in the original (CLI --faces all)."
        )
        self.overwrite_check = QCheckBox("Replace unfinished outputs")
        self.overwrite_check.setToolTip(
            "Outputs that exist without a finished sidecar are replaced (otherwise they are "
            "reported and left alone). Finished outputs are always skipped."
        )
        # Two rows: what is done (mode, which faces), then how (face model, outputs).
        options = QVBoxLayout()
        for pairs, extra in (
            ((("Mode:", self.mode_combo), ("Restore:", self.faces_combo)), None),
            ((("Face model:", self.backend_combo),), self.overwrite_check),
        ):
            row = QHBoxLayout()
            for label, widget in pairs:
                row.addWidget(QLabel(label))
                row.addWidget(widget)
                row.addSpacing(12)
            if extra is not None:
                row.addWidget(extra)
            row.addStretch(1)
            options.addLayout(row)
        return options

    def folders(self) -> tuple[str, str, str]:
        original, edited, output = (edit.text().strip() for edit in self.edits)
        return original, edited, output

    def set_editable(self, editable: bool) -> None:
        for widget in (
            self.original_row,
            self.edited_row,
            self.output_row,
            self.mode_combo,
            self.faces_combo,
            self.backend_combo,
            self.overwrite_check,
        ):
            widget.setEnabled(editable)


class CheckSection(QGroupBox):
    """The Check button, its status line, the pairing rule and the grouped check list."""

    def __init__(self, parent=None):
        super().__init__("Check", parent)
        self.check_button = QPushButton("Check pairs")
        self.check_button.setToolTip("Pair the folders and list every mismatch before starting.")
        self.check_status = QLabel("Choose the three folders, then Check.")
        self.check_status.setWordWrap(True)
        self.rule_label = QLabel("")
        self.rule_label.setWordWrap(True)
        self.rule_label.setStyleSheet("color: #9aa0a6;")
        self.check_tree = QTreeWidget()
        self.check_tree.setHeaderHidden(True)
        self.check_tree.setMinimumHeight(60)
        check_bar = QHBoxLayout()
        check_bar.addWidget(self.check_button)
        check_bar.addWidget(self.check_status, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(check_bar)
        layout.addWidget(self.rule_label)
        layout.addWidget(self.check_tree, 1)

    def set_status(self, text: str, color: QColor | None) -> None:
        self.check_status.setText(text)
        self.check_status.setStyleSheet(f"color: {color.name()};" if color is not None else "")

    def show_plan(self, plan: BatchPlan) -> None:
        """The plan's rule, then its groups: problems first and open, the rest closed."""
        self.rule_label.setText(plan.rule_text)
        group = self._add_group
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

    def _add_group(
        self, title: str, lines: list[str], color: QColor | None, expanded: bool
    ) -> None:
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

    def clear_plan(self) -> None:
        self.check_tree.clear()
        self.rule_label.clear()

    def lines(self) -> list[str]:
        """Every line of the check list (groups and their entries)."""
        lines = []
        for i in range(self.check_tree.topLevelItemCount()):
            top = self.check_tree.topLevelItem(i)
            lines.append(top.text(0))
            lines += [f"  {top.child(j).text(0)}" for j in range(top.childCount())]
        return lines


class RunSection(QGroupBox):
    """Start / Pause / Cancel, the ETA, and the file and overall progress bars."""

    def __init__(self, parent=None):
        super().__init__("Run", parent)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.eta_label = QLabel(format_eta(None))
        buttons.addWidget(self.eta_label)
        self.file_label = QLabel("")
        self.file_bar = QProgressBar()
        self.file_bar.setFormat(self.IDLE_FORMAT)
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setFormat("No batch running")
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.file_label)
        layout.addWidget(self.file_bar)
        layout.addWidget(self.overall_bar)

    IDLE_FORMAT = "No file in progress"
    END_FORMATS = {"finished": "Done", "cancelled": "Cancelled", "stopped": "Stopped"}

    def reset_bars(self) -> None:
        self.file_bar.setRange(0, 1)
        self.file_bar.setValue(0)
        self.file_bar.setFormat(self.IDLE_FORMAT)
        self.overall_bar.setValue(0)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.pause_button.setText("Pause")
        if not running:
            self.file_label.setText("")

    def show_progress(self, p: BatchProgress) -> None:
        self.overall_bar.setValue(int(round(p.fraction * 1000)))
        finished = p.done + p.failed + p.skipped
        self.overall_bar.setFormat(
            f"{finished} of {p.total} files \u2014 {p.done} restored, {p.failed} failed, "
            f"{p.skipped} skipped"
        )
        self.eta_label.setText(format_eta(p.eta_s) if finished < p.total else "ETA: done")
        if p.stage in self.END_FORMATS:  # the batch ended: no file in progress any more
            self.file_bar.setRange(0, 1)
            self.file_bar.setValue(1 if p.stage == "finished" else 0)
            self.file_bar.setFormat(self.END_FORMATS[p.stage])
        elif p.steps:
            self.file_bar.setRange(0, p.steps)
            self.file_bar.setValue(min(p.step, p.steps))
            self.file_bar.setFormat("%p% of this file")
            self.file_label.setText(f"{p.file} \u2014 {p.stage} {p.step}/{p.steps}")
        elif p.stage == "file":
            self.file_bar.setRange(0, 1)
            self.file_bar.setValue(0)
            self.file_bar.setFormat("%p% of this file")
            self.file_label.setText(f"{p.file} \u2014 starting")
        elif p.stage == "paused":
            self.file_label.setText(f"{p.file} \u2014 paused")


class ResultsSplitter(QSplitter):
    """The event log above the per-file results table."""

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setPlaceholderText("Failures and events are listed here.")
        self.report_table = QTableWidget(0, len(RESULT_COLUMNS))
        self.report_table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.report_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.report_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.report_table.verticalHeader().setVisible(False)
        header = self.report_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # never clipped
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table = self.report_table
        rows = table.verticalHeader().defaultSectionSize() * RESULT_ROWS_SHOWN
        table.setMinimumHeight(rows + header.sizeHint().height() + 2 * table.frameWidth())
        self.log_view.setMinimumHeight(3 * self.log_view.fontMetrics().lineSpacing())
        self.addWidget(self.log_view)
        self.addWidget(self.report_table)
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 3)  # the results are what a user reads after a run

    def clear_results(self) -> None:
        self.report_table.setRowCount(0)
        self.log_view.clear()

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def add_row(self, row: BatchRow) -> None:
        table = self.report_table
        r = table.rowCount()
        table.insertRow(r)
        ids, ids_tip = identity_cell(row)
        worse = bool(row.identity_worse) and row.status in ("ok", "skipped")
        values = (Path(row.edited).name, row.status_text, row.faces, ids, row.seconds)
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            if row.status == "failed":
                item.setForeground(QBrush(ERROR_COLOR))
                item.setToolTip(row.error)
            elif worse:  # restored, but the person looks less like themselves: a warning
                item.setForeground(QBrush(WARN_COLOR))
                item.setToolTip(
                    f"Identity got worse in the restore ({row.identity_worse} same person): "
                    "check this file, or restore it again with other settings."
                    + (f"\n{ids_tip}" if c == 3 and ids_tip else "")
                )
            elif c == 3 and ids_tip:
                item.setToolTip(ids_tip)
            table.setItem(r, c, item)
        table.scrollToBottom()


def summary_bar() -> tuple[QHBoxLayout, QLabel, QPushButton, QPushButton]:
    """The bottom row: the summary label, Open report (disabled until a report exists)
    and Close; returns the layout and those three widgets."""
    summary_label = QLabel("")
    open_report_button = QPushButton("Open report (CSV)")
    open_report_button.setEnabled(False)
    close_button = QPushButton("Close")
    bottom = QHBoxLayout()
    bottom.addWidget(summary_label, 1)
    bottom.addWidget(open_report_button)
    bottom.addWidget(close_button)
    return bottom, summary_label, open_report_button, close_button
