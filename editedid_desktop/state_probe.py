"""An opt-in test hook: the window's state and the screen positions of its controls, written
as JSON to the file named by EDITEDID_STATE_FILE several times a second.

Only for the user-path tests (tests/user_paths/): they run the real `editedid` process on
an X display and drive it with real input events (xdotool), so they need to know, from
outside the process, (1) that its UI thread is alive and answering: the file is rewritten
from a timer of the UI thread's event loop, so a `seq` that stops growing means a frozen
window, whatever the window manager still shows; (2) what the user would see: title,
status bar, which dialog is open, the face panels' values; (3) where to point the mouse:
the on-screen rectangles of the controls (global X coordinates, the visible part only).
Nothing is read from the file; without the variable nothing of this module runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QTimer
from PySide6.QtGui import QWindow
from PySide6.QtWidgets import QAbstractButton, QApplication, QMenu, QTabBar, QWidget

ENV_VAR = "EDITEDID_STATE_FILE"
LAYERS = ("original", "edited", "result", "masks")
INTERVAL_MS = 200


def _rect(widget: QWidget | None) -> list[int] | None:
    """The part of `widget` on the screen as [x, y, width, height] (clipped by every
    ancestor up to its window, so a scrolled-away control is None)."""
    if widget is None or not widget.isVisible():
        return None
    area = QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())
    parent = widget.parentWidget()
    while parent is not None:
        area = area.intersected(QRect(parent.mapToGlobal(QPoint(0, 0)), parent.size()))
        if parent.isWindow():
            break
        parent = parent.parentWidget()
    return None if area.isEmpty() else [area.x(), area.y(), area.width(), area.height()]


def _image_rect(window: Any, box: Any) -> list[int] | None:
    """A box in edited-photo pixels as a rectangle on the screen (canvas at its zoom)."""
    canvas = window.canvas
    viewport = canvas.viewport()
    x0, y0, x1, y1 = (float(v) for v in box)
    corners = [viewport.mapToGlobal(canvas.image_to_view(x, y)) for x, y in ((x0, y0), (x1, y1))]
    rect = QRect(corners[0], corners[1]).normalized()
    shown = QRect(viewport.mapToGlobal(QPoint(0, 0)), viewport.size())
    rect = rect.intersected(shown)
    return None if rect.isEmpty() else [rect.x(), rect.y(), rect.width(), rect.height()]


def _popup(popup: QWidget | None) -> dict[str, Any] | None:
    """An open menu (or other popup) and, for a menu, where each item is on the screen."""
    if popup is None:
        return None
    items = {}
    if isinstance(popup, QMenu):
        for action in popup.actions():
            if action.isVisible() and not action.isSeparator():
                geometry = popup.actionGeometry(action)
                corner = popup.mapToGlobal(geometry.topLeft())
                text = action.text().replace("&", "")
                items[text] = [corner.x(), corner.y(), geometry.width(), geometry.height()]
    return {"class": type(popup).__name__, "items": items}


def _modal(modal: QWidget | None) -> dict[str, Any] | None:
    """The open dialog: class, title, and where each of its buttons is."""
    if modal is None:
        return None
    buttons = {
        button.text().replace("&", ""): _rect(button)
        for button in modal.findChildren(QAbstractButton)
        if button.isVisible() and button.text()
    }
    return {
        "class": type(modal).__name__,
        "object": modal.objectName(),
        "title": modal.windowTitle(),
        "rect": _rect(modal),
        "buttons": buttons,
    }


def snapshot(window: Any, seq: int = 0) -> dict[str, Any]:
    """What the probe writes (see the module docstring)."""
    session, engine = window.session, window.engine
    modal, popup = QApplication.activeModalWidget(), QApplication.activePopupWidget()
    faces = list(session.faces) if session.analysis is not None else []
    panels = {}
    for index, panel in window.face_list.panels.items():
        panels[str(index)] = {
            "panel": _rect(panel),
            "combo": _rect(panel.pairing_combo),
            "combo_text": panel.pairing_combo.currentText(),
            "enabled": panel.enabled_box.isChecked(),
            "enabled_box": _rect(panel.enabled_box),
            "lambda_o": _rect(panel.lambda_o),
            "lambda_o_slider": panel.lambda_o.value(),
            "lambda_o_text": panel.lambda_o_value.text(),
            "lambda_e_text": panel.lambda_e_value.text(),
            "link_text": panel.link_button.text(),
        }
    params = window.params_panel.widgets
    return {
        "seq": seq,
        "pid": os.getpid(),
        "time": time.time(),
        "title": window.windowTitle(),
        "modified": window.isWindowModified(),
        "status": window.statusBar().currentMessage(),
        "stage": window.stage_label.text() if window.stage_label.isVisible() else "",
        "engine_ready": bool(getattr(window, "engine_ready", False)),
        "busy": engine.busy,
        "stalled": bool(getattr(getattr(window, "watchdog", None), "is_stalled", False)),
        "original_path": str(session.original_path or ""),
        "edited_path": str(session.edited_path or ""),
        "analysis": session.analysis is not None,
        "faces": [
            {"index": int(f.index), "screen": _image_rect(window, f.box), "box": list(f.box)}
            for f in faces
        ],
        "classic": session.classic_result is not None,
        "classic_id": id(session.classic_result) if session.classic_result is not None else 0,
        "result": session.result is not None,
        "result_id": id(session.result) if session.result is not None else 0,
        "undo_enabled": window.undo_action.isEnabled(),
        "modal": _modal(modal),
        "popup": _popup(popup),
        "canvas": _rect(window.canvas.viewport()),
        "layers": {name: window.canvas.layer_shown(name) for name in LAYERS},
        "panels": panels,
        "params": {
            "dock_visible": window.params_dock.isVisible(),
            "panel": _rect(window.params_panel),
            "resolution": _rect(params["resolution"]),
            "resolution_value": params["resolution"].value(),
            "nulltext_iters": _rect(params["nulltext_iters"]),
            "nulltext_iters_value": params["nulltext_iters"].value(),
            "session_resolution": session.params.resolution,
            "session_nulltext_iters": session.params.nulltext_iters,
        },
        "widgets": {
            "cancel_button": _rect(window.cancel_button),
            "run_button": _rect(window.run_button),
            "run_enabled": window.run_button.isEnabled(),
            "menu_bar": {
                action.text().replace("&", ""): _menu_title_rect(window, action)
                for action in window.menuBar().actions()
            },
            "dock_tabs": _dock_tabs(window),
        },
    }


def _menu_title_rect(window: Any, action: Any) -> list[int] | None:
    bar = window.menuBar()
    geometry = bar.actionGeometry(action)
    if geometry.isEmpty():
        return None
    corner = bar.mapToGlobal(geometry.topLeft())
    return [corner.x(), corner.y(), geometry.width(), geometry.height()]


def _dock_tabs(window: Any) -> dict[str, list[int]]:
    """The on-screen tabs of tabified docks (Faces and Advanced share one column)."""
    tabs = {}
    for bar in window.findChildren(QTabBar):
        if not bar.isVisible() or bar.visibleRegion().isEmpty():
            continue
        for index in range(bar.count()):
            geometry = bar.tabRect(index)
            corner = bar.mapToGlobal(geometry.topLeft())
            tabs[bar.tabText(index).replace("&", "")] = [
                corner.x(), corner.y(), geometry.width(), geometry.height()
            ]  # fmt: skip
    return tabs


# The input events the X server delivers, as the UI thread takes them (one per mouse button
# press or release, wheel notch, key press or release).
INPUT_EVENTS = frozenset(
    {
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.Wheel,
        QEvent.Type.KeyPress,
        QEvent.Type.KeyRelease,
    }
)


class InputCounter(QObject):
    """Counts the input events the UI thread has taken from the window system.

    xdotool returns once the X server has the events, not once the app has handled them;
    a driver that reads positions right after a wheel notch may read the ones from before
    the scroll. `inputs` in the state tells it the notch has been handled. Counted where Qt
    hands a window-system event to a top-level QWindow, once per event."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.count = 0
        QApplication.instance().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() in INPUT_EVENTS and event.spontaneous() and isinstance(watched, QWindow):
            self.count += 1
        return False


class StateProbe(QObject):
    """Writes `snapshot(window)` to `path` every INTERVAL_MS from the UI thread."""

    def __init__(self, window: Any, path: str | Path, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(window)
        self.window = window
        self.path = Path(path)
        self.seq = 0
        self.inputs = InputCounter(self)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.write)
        self.timer.start()
        self.write()

    def write(self) -> None:
        self.seq += 1
        state = snapshot(self.window, self.seq)
        state["inputs"] = self.inputs.count
        data = json.dumps(state, default=str)
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_text(data, encoding="utf-8")
        os.replace(partial, self.path)  # readers never see half a file


def install_probe(window: Any) -> StateProbe | None:
    """Start the probe if EDITEDID_STATE_FILE names a file; else do nothing."""
    path = os.environ.get(ENV_VAR)
    return StateProbe(window, path) if path else None
