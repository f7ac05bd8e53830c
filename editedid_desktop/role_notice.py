"""The non-blocking "is the original really the original?" notice (issue 12 D3).

Floats at the top of the canvas (it never moves the photo or the docks), says why the
roles look swapped (engine.photo.roles) and offers one click to swap them; "Keep" hides
it until other photos are opened. It never blocks and never swaps by itself.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from .theme import WARN

MARGIN = 12  # pixels between the notice and the canvas' top edge


class RoleNotice(QFrame):
    """A warning strip over the top of `host` with Swap roles / Keep buttons."""

    swap_requested = Signal()
    dismissed = Signal()

    def __init__(self, host: QWidget) -> None:
        super().__init__(host)
        self.setObjectName("roleNotice")
        self.setStyleSheet(
            f"QFrame#roleNotice {{ background: #3a3220; border: 1px solid {WARN};"
            " border-radius: 6px; } QFrame#roleNotice QLabel { color: #f2e3bf; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.swap_button = QPushButton("Swap roles")
        self.swap_button.setToolTip("Open the two photos again, each in the other role.")
        self.swap_button.clicked.connect(self.swap_requested)
        self.keep_button = QPushButton("Keep")
        self.keep_button.setToolTip("The roles are right: hide this notice.")
        self.keep_button.clicked.connect(self._keep)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.swap_button)
        layout.addWidget(self.keep_button)
        host.installEventFilter(self)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self._place()
        self.show()
        self.raise_()

    def _keep(self) -> None:
        self.hide()
        self.dismissed.emit()

    def _place(self) -> None:
        host = self.parentWidget()
        width = min(host.width() - 2 * MARGIN, 720)
        self.setFixedWidth(max(width, 200))
        self.adjustSize()
        self.move((host.width() - self.width()) // 2, MARGIN)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False
