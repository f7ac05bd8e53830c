"""A retoucher's session end to end, driven through the real widgets (issue 12): drop a
pair on the canvas, check which faces will be restored, paint the selected face, undo,
classic preview, a diffusion run on the tiny model previewed and cancelled, the re-run,
Save as JPEG, and the pair reopened from File > Open Recent. Each step asserts what the
user sees: titles, ticks, labels, layers, status messages, files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QToolBar, QToolButton

from editedid_desktop.controllers import export
from tests.ui_fixtures import FAST_PARAMS, write_photo_pair
from tests.window_fixtures import answer_box as _answer_box


def _drop(widget, paths) -> None:
    """What the window system delivers when files are dragged onto `widget` and let go."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    at = widget.rect().center()
    actions = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, actions, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the canvas refused the dragged photos"
    QApplication.sendEvent(widget, QDropEvent(QPointF(at), actions, mime, buttons, mods))


def _button(main_window, action) -> QToolButton:
    """The tool-bar button the user clicks for `action`."""
    for bar in main_window.findChildren(QToolBar):
        widget = bar.widgetForAction(action)
        if isinstance(widget, QToolButton) and widget.isVisible():
            return widget
    raise AssertionError(f"no visible tool-bar button for {action.text()!r}")


def _face_centre(main_window, face) -> QPoint:
    x0, y0, x1, y1 = face.box
    return main_window.canvas.image_to_view((x0 + x1) / 2, (y0 + y1) / 2)


def test_a_retouchers_session(qtbot, window, photo_pair, tmp_path, monkeypatch):  # noqa: F811
    original, edited = photo_pair
    canvas, viewport = window.canvas, window.canvas.viewport()
    window.session.params = FAST_PARAMS  # small, quick runs on the tiny model

    # 1. Drop both photos on the canvas, the edited one first: the names say the roles.
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        _drop(viewport, [edited, original])
    assert window.session.original_path == original and window.session.edited_path == edited
    assert window.windowTitle().startswith(edited.name) and not window.isWindowModified()
    assert canvas.has_image("original") and canvas.has_image("result")

    # 2. The faces that will be restored: Face 1 is ticked, its identity changed.
    (panel,) = window.face_list.panels.values()
    face = window.session.faces[0]
    assert panel.enabled_box.text() == "Face 1" and panel.enabled_box.isChecked()
    assert "different person" in panel.id_before.text()
    assert window.restore_action.isEnabled()

    # 3. V selects the face by clicking its box; B paints into it.
    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_V)
    assert canvas.tool() == "select"
    centre = _face_centre(window, face)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert canvas.selected_face() == face.index
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert canvas.tool() == "brush"
    kind = canvas.active_mask()[1]
    before = window.masks.mask(face.index, kind).copy()
    # A short stroke inside the face's box where the automatic mask is still empty.
    x0, y0, x1, y1 = (int(v) for v in face.box)
    ys, xs = np.nonzero(before[y0 + 8 : y1 - 8, x0 + 8 : x1 - 20] == 0)
    assert len(ys), "the automatic mask fills the whole box"
    spot = (x0 + 8 + float(xs[0]), y0 + 8 + float(ys[0]))
    start = canvas.image_to_view(*spot)
    end = canvas.image_to_view(spot[0] + 12, spot[1])
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(viewport, end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    assert window.masks.is_edited(face.index, kind)
    assert not np.array_equal(window.masks.mask(face.index, kind), before)
    assert window.isWindowModified()

    # 4. Ctrl+Z takes the stroke back.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(window.masks.mask(face.index, kind), before)
    assert not window.masks.is_edited(face.index, kind)

    # 5. Classic: the instant blend, from its tool-bar button.
    window.session.classic_result = None
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        qtbot.mouseClick(_button(window, window.classic_action), Qt.MouseButton.LeftButton)
    assert window.session.classic_result is not None
    assert canvas.layer_visible("result") and window.save_action.isEnabled()

    # 6. Restore with diffusion: the preview shows over the face; Esc cancels it.
    seen = []

    def on_preview(image, box):
        if not seen:
            seen.append((canvas.has_image("preview"), window.cancel_button.isVisible()))
            qtbot.keyClick(window, Qt.Key.Key_Escape)

    window.engine.worker.preview.connect(on_preview)
    run = window.run_button
    with qtbot.waitSignal(window.engine.worker.cancelled, timeout=180000):
        qtbot.mouseClick(run, Qt.MouseButton.LeftButton)
        assert window.cancel_button.isVisible() and not run.isEnabled()
    window.engine.worker.preview.disconnect(on_preview)
    # `busy` drops on the worker thread as the job ends; the window hears it through the
    # queued busy_changed, which may come after `cancelled`: wait for what the user sees
    qtbot.waitUntil(
        lambda: not window.engine.busy and run.isEnabled() and not window.cancel_button.isVisible(),
        timeout=10000,
    )
    assert seen == [(True, True)]  # the preview was on the canvas while it ran
    assert "Cancelled" in window.statusBar().currentMessage()
    assert window.session.result is None and not canvas.has_image("preview")

    # 7. Run it again to the end: the result replaces the classic preview.
    with qtbot.waitSignal(window.engine.worker.finished, timeout=180000):
        qtbot.mouseClick(run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.engine.busy, timeout=10000)
    result = window.session.result
    assert result is not None and result.mode == "diffusion"
    assert window.statusBar().currentMessage().startswith("Restored 1 face(s)")
    assert panel.id_after.text() not in ("", "—")

    # 8. Save as JPEG (the dialog answers with a .jpg name): image and sidecar on disk.
    target = tmp_path / "portrait-restored.jpg"
    monkeypatch.setattr(
        export.QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "JPEG (*.jpg)")
    )
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert target.is_file()
    with Image.open(target) as saved:
        assert saved.format == "JPEG" and saved.size == Image.open(edited).size
    sidecar = json.loads(Path(f"{target}.json").read_text(encoding="utf-8"))
    assert sidecar and window.error_box is None
    message = window.statusBar().currentMessage()
    assert message.startswith("Saved diffusion result to") and target.name in message

    # 9. Another pair (the window asks first: the masks and settings are not saved as a
    # project; Discard), then File > Open Recent brings the first back in its roles.
    other_original, other_edited = (
        path.rename(tmp_path / path.name.replace("hopper", "session-2"))
        for path in write_photo_pair(tmp_path)
    )
    answers: list[str] = []
    _answer_box(qtbot, "confirmReplaceBox", QMessageBox.StandardButton.Discard, answers)
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(other_original, other_edited)
    assert answers and "Save your painted masks" in answers[0]
    assert window.session.edited_path == other_edited
    labels = [a.text() for a in window.recent_menu.actions()]
    assert labels[:2] == [
        f"{other_original.name}  \u2192  {other_edited.name}",  # the newest pair first
        f"{original.name}  \u2192  {edited.name}",
    ]
    entries = [a for a in window.recent_menu.actions() if a.text() == labels[1]]
    assert entries[0].toolTip() == f"Original: {original}\nEdited: {edited}"
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        entries[0].trigger()
    assert window.session.original_path == original and window.session.edited_path == edited
    assert window.windowTitle().startswith(edited.name)
    assert list(window.face_list.panels) == [face.index]
