"""The mouse wheel scrolls a panel; it changes a value only in the control the user chose.

Qt gives a wheel turn to the widget under the pointer: scrolling a panel of face cards
with the pointer passing over a combo box or a spin box changed that control's value
instead (a face's pairing set to "None" by scrolling, issue 20). The common fix, as in
Qt Creator's and Krita's settings panels: those controls take focus only by click or Tab
(``Qt.StrongFocus``, never by the wheel) and, while they have no focus, pass the wheel on
to their parent, so the scroll area around them scrolls. Once clicked (focused), the
wheel steps through their values as usual.

    guard_wheel(panel)   # every combo box, spin box and slider inside `panel`, now
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

GUARDED = (QComboBox, QAbstractSpinBox, QAbstractSlider)


def _guarded(widget: QObject) -> bool:
    """A value control; scroll bars are sliders too, but scrolling is their job."""
    return isinstance(widget, GUARDED) and not isinstance(widget, QScrollBar)


class WheelGuard(QObject):
    """Event filter: a wheel event over an unfocused guarded control scrolls the scroll
    area around it instead (or goes to the parent widgets when there is none)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.Type.Wheel or not _guarded(watched) or watched.hasFocus():
            return False
        area = _scroll_area_around(watched)
        if area is None:
            # Filtered but not accepted: QApplication offers a real (spontaneous) wheel
            # event to the parent widgets in turn.
            event.ignore()
            return True
        # Handed to the scroll area ourselves: Qt passes only spontaneous wheel events
        # on to parents, and this way a synthesised one scrolls the same.
        viewport = area.viewport()
        position = viewport.mapFromGlobal(event.globalPosition())
        forwarded = QWheelEvent(
            position,
            event.globalPosition(),
            event.pixelDelta(),
            event.angleDelta(),
            event.buttons(),
            event.modifiers(),
            event.phase(),
            event.inverted(),
            event.source(),
        )
        QApplication.sendEvent(viewport, forwarded)
        event.accept()  # handled: not offered to the parents a second time
        return True


def _scroll_area_around(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return parent
        parent = parent.parentWidget()
    return None


_guard: WheelGuard | None = None


def _the_guard() -> WheelGuard:
    """One filter for the whole app, owned by the application object."""
    global _guard
    if _guard is None:
        _guard = WheelGuard(QApplication.instance())
    return _guard


def guard_wheel(root: QWidget) -> int:
    """Guard every combo box, spin box and slider in `root` (and `root` itself); returns
    how many. Call it again for controls added later (it is idempotent)."""
    guard = _the_guard()
    controls = [w for w in (root, *root.findChildren(QWidget)) if _guarded(w)]
    for widget in controls:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.removeEventFilter(guard)  # installed once, however often called
        widget.installEventFilter(guard)
    return len(controls)
