"""Issue 12 in the main window: roles that look swapped, a clean window after opening."""

from __future__ import annotations

from PySide6.QtCore import Qt


def _open(qtbot, window, original, edited):  # noqa: F811
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photos(original, edited)
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=5000)


def test_opening_two_photos_leaves_the_window_clean(qtbot, window, photo_pair):  # noqa: F811
    """D15: opening is no unsaved work; a brush stroke is."""
    _open(qtbot, window, *photo_pair)
    assert not window.isWindowModified() and window.windowTitle().startswith("hopper-edited")
    assert not window.files.role_notice.isVisible()  # the roles are right: no warning
    face = window.session.faces[0].index
    window.canvas.set_tool("brush")
    viewport = window.canvas.viewport()
    x0, y0, x1, y1 = window.session.faces[0].box
    centre = window.canvas.image_to_view((x0 + x1) / 2, (y0 + y1) / 2)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert window.masks.is_edited(face, window.canvas.active_mask()[1])
    assert window.isWindowModified() and "[*]" in window.windowTitle()


def test_swapped_roles_are_flagged_and_swapped_with_one_click(qtbot, window, photo_pair):  # noqa: F811
    """D3: the pair opened the wrong way round gets a non-blocking warning whose
    "Swap roles" button reopens it the right way round."""
    original, edited = photo_pair
    _open(qtbot, window, edited, original)  # the AI edit opened as the original
    notice = window.files.role_notice
    assert notice.isVisible() and "really the original" in notice.label.text()
    assert edited.name in notice.label.text()
    assert window.restore_action.isEnabled()  # non-blocking: everything still works
    notice_geometry = notice.geometry()
    assert window.canvas.rect().contains(notice_geometry)
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        qtbot.mouseClick(notice.swap_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=5000)
    assert window.session.original_path == original
    assert window.session.edited_path == edited
    assert not notice.isVisible()
    assert window.settings.recent_pairs[0] == (str(original), str(edited))
    # "Keep" hides the warning and opens nothing
    _open(qtbot, window, edited, original)
    assert notice.isVisible()
    qtbot.mouseClick(notice.keep_button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible() and window.session.original_path == edited
    # ... and is remembered: the same pair in the same roles is not questioned again
    _open(qtbot, window, edited, original)
    assert not notice.isVisible() and window.session.original_path == edited


def test_a_face_left_alone_says_included_once_ticked(qtbot):
    """The flag of a face the engine leaves alone follows its tick box."""
    import types

    from editedid_desktop.face_panel import FacePanel
    from editedid_desktop.model.session import Session

    face = types.SimpleNamespace(
        index=0, original_index=0, plausible=True, warnings=[], too_small=False,
        left_alone_reason="unchanged: the edit kept the identity (84% same person)",
    )  # fmt: skip
    session = Session()
    session.update_face(0, enabled=False)  # as set_analysis leaves such a face
    panel = FacePanel(session, face)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.verdict.text() == "unchanged — include?" and not panel.enabled_box.isChecked()
    assert "84% same person" in panel.verdict.toolTip()
    qtbot.mouseClick(panel.enabled_box, Qt.MouseButton.LeftButton)
    assert session.settings_for(0).enabled and panel.verdict.text() == "unchanged — included"
    session.update_face(0, enabled=False)  # the session wins, the label follows
    assert panel.verdict.text() == "unchanged — include?"
