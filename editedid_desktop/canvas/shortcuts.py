"""The canvas' keys as window shortcuts: `[` `]` (brush size), Shift+`[` `]` (hardness),
Space (hold to pan) and `\\` (hold to compare).

They work wherever the focus is in the window (after a click on a tool bar or a panel,
too), as in Photoshop, but never take a key from text input: while a line edit, spin box
or text box has the focus the actions are disabled and the key types. Space and `\\` act
while held: the press comes as a shortcut, the release (delivered to whatever widget has
the focus) is caught by an application event filter installed only while a key is held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

if TYPE_CHECKING:
    from .layered import LayeredCanvas

TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QPlainTextEdit, QTextEdit)


@dataclass(frozen=True)
class CanvasKey:
    """One row: object name, text, key sequences, what a press does, what a release does
    (None: a plain shortcut; otherwise the key acts while held)."""

    name: str
    text: str
    keys: tuple[str, ...]
    press: Callable[[LayeredCanvas], None]
    release: Callable[[LayeredCanvas], None] | None = None
    held_key: Qt.Key | None = None


CANVAS_KEYS = (
    CanvasKey("brushSmallerAction", "Smaller Brush", ("[",), lambda c: c.step_brush(False)),
    CanvasKey("brushLargerAction", "Larger Brush", ("]",), lambda c: c.step_brush(True)),
    CanvasKey("brushSofterAction", "Softer Brush", ("Shift+{",), lambda c: c.step_hardness(False)),
    CanvasKey("brushHarderAction", "Harder Brush", ("Shift+}",), lambda c: c.step_hardness(True)),
    CanvasKey(
        "panKeyAction",
        "Pan (hold Space)",
        ("Space",),
        lambda c: c.set_space_pan(True),
        lambda c: c.set_space_pan(False),
        Qt.Key.Key_Space,
    ),
    CanvasKey(
        "holdCompareAction",
        "Compare (hold \\)",
        ("\\",),
        lambda c: c.hold_compare(True),
        lambda c: c.hold_compare(False),
        Qt.Key.Key_Backslash,
    ),
)


def typing_focus() -> bool:
    """Whether the widget with the keyboard focus takes text."""
    return isinstance(QApplication.focusWidget(), TEXT_INPUTS)


# One key sequence per action: a key event matching two sequences of one action (e.g.
# "{" and "Shift+{", which some keyboard mappers both offer for Shift+[) is ambiguous and
# Qt then triggers nothing. Shift+[ arrives as Shift+{ on US layouts.


class CanvasShortcuts(QObject):
    """The rows of `CANVAS_KEYS` as actions of `window` (WindowShortcut) on `canvas`."""

    def __init__(self, canvas: LayeredCanvas, window: QWidget) -> None:
        super().__init__(window)
        self.canvas = canvas
        self.actions: dict[str, QAction] = {}
        self._held: dict[Qt.Key, CanvasKey] = {}
        for row in CANVAS_KEYS:
            action = QAction(row.text, window)
            action.setObjectName(row.name)
            action.setShortcuts([QKeySequence(k) for k in row.keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setAutoRepeat(row.release is None)
            action.triggered.connect(lambda _=False, row=row: self._pressed(row))
            window.addAction(action)
            self.actions[row.name] = action
        QApplication.instance().focusChanged.connect(self._focus_changed)
        self._focus_changed()

    def _focus_changed(self, *_: object) -> None:
        enabled = not typing_focus()
        for action in self.actions.values():
            action.setEnabled(enabled)

    def _pressed(self, row: CanvasKey) -> None:
        if typing_focus():
            return
        row.press(self.canvas)
        if row.release is not None and row.held_key is not None:
            if not self._held:
                QApplication.instance().installEventFilter(self)
            self._held[row.held_key] = row

    def release_all(self) -> None:
        for row in list(self._held.values()):
            self._release(row)

    def _release(self, row: CanvasKey) -> None:
        self._held.pop(row.held_key, None)
        if not self._held:
            QApplication.instance().removeEventFilter(self)
        if row.release is not None:
            row.release(self.canvas)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.KeyRelease and not event.isAutoRepeat():
            row = self._held.get(event.key())
            if row is not None:
                self._release(row)
        elif kind == QEvent.Type.ApplicationDeactivate:
            self.release_all()  # the release would go to another application
        return False
