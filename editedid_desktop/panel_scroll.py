"""The scroll area of a side panel or a tall dialog: scrolls up and down, never sideways.

A plain QScrollArea asks for no minimum width of its own, so a dock (or a dialog) may be
made narrower than the panel inside it; the panel's right side is then cut off behind a
horizontal scroll bar at the very bottom of a tall panel, where nobody sees it (the
Advanced panel at 1920 px, issue 20). `PanelScrollArea` asks for the width its content
needs (plus the vertical scroll bar), so the dock or dialog around it cannot get narrower
than that; it scrolls vertically only, and the wheel over its value controls scrolls it
(wheel_guard) instead of changing an unfocused value.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtWidgets import QScrollArea, QWidget

from .wheel_guard import guard_wheel


class PanelScrollArea(QScrollArea):
    """A frameless, vertically scrolling area as wide as its content needs."""

    def __init__(self, content: QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        if content is not None:
            self.setWidget(content)

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt API
        super().setWidget(widget)
        guard_wheel(widget)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the content's minimum width may have changed: ask again
        return super().eventFilter(watched, event)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        margins = self.contentsMargins()
        width = (
            content.minimumSizeHint().width()
            + self.verticalScrollBar().sizeHint().width()
            + margins.left()
            + margins.right()
        )
        return QSize(max(hint.width(), width), hint.height())
