"""LayeredCanvas and imaging: real widgets driven offscreen with pytest-qt."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QWheelEvent
from PySide6.QtWidgets import QApplication

from editedid_desktop.canvas import LayeredCanvas
from editedid_desktop.imaging import (
    ELEMENT_COLOR,
    FACE_COLOR,
    OVERLAP_COLOR,
    mask_overlay,
    numpy_to_qimage,
    qimage_to_mask,
    qimage_to_numpy,
)
from editedid_desktop.mask_document import MaskDocument
from tests.helpers import sample_photo


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(sample_photo(name)).convert("RGB"))


def _solid(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


@pytest.fixture
def canvas(qtbot):
    view = LayeredCanvas()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def painting(canvas):
    """A canvas showing a 400x300 photo with an empty mask document, brush selected."""
    canvas.set_image("edited", _solid(400, 300, (120, 110, 100)))
    doc = MaskDocument(canvas)
    doc.reset((400, 300))
    canvas.set_mask_document(doc)
    canvas.set_active_mask(0, "face")
    canvas.set_tool("brush")
    canvas.set_brush_size(20)
    canvas.set_brush_hardness(1.0)
    canvas.zoom_100()
    canvas.centerOn(200, 150)
    return canvas, doc


def _stroke(qtbot, canvas, points):
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(*points[0]))
    for x, y in points[1:]:
        qtbot.mouseMove(viewport, canvas.image_to_view(x, y))
        assert canvas.stroke_in_progress()
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(*points[-1]))


def _pixel(canvas, x: float, y: float) -> tuple[int, int, int]:
    image = canvas.viewport().grab().toImage()
    point = canvas.image_to_view(x, y)
    color = image.pixelColor(point)
    return color.red(), color.green(), color.blue()


# ----------------------------------------------------------------------- imaging
def test_numpy_qimage_round_trip_copies():
    rgb = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    view = rgb[:, ::-1]  # not contiguous
    qimage = numpy_to_qimage(view)
    assert (qimage.width(), qimage.height()) == (17, 31)
    del view
    rgb[:] = 0  # the QImage owns its pixels
    back = qimage_to_numpy(qimage)
    assert back.shape == (31, 17, 3) and back.any()
    mask = (np.arange(7 * 9).reshape(7, 9) * 3).astype(np.uint8)
    np.testing.assert_array_equal(qimage_to_mask(numpy_to_qimage(mask)), mask)
    with pytest.raises(ValueError):
        numpy_to_qimage(np.zeros((4, 4, 3), np.float32))


def test_mask_overlay_colours_face_element_and_overlap():
    face = np.array([[255, 255, 0, 0]], np.uint8)
    element = np.array([[0, 255, 255, 0]], np.uint8)
    rgba = mask_overlay(face, element)
    assert tuple(rgba[0, 0]) == (*FACE_COLOR, 255)
    assert tuple(rgba[0, 1]) == (*OVERLAP_COLOR, 255)
    assert tuple(rgba[0, 2]) == (*ELEMENT_COLOR, 255)
    assert tuple(rgba[0, 3]) == (0, 0, 0, 0)
    dim = mask_overlay(face, None, face_opacity=0.5)
    assert dim[0, 0, 3] == 128 and dim[0, 2, 3] == 0


# ---------------------------------------------------------------------- painting
def test_brush_stroke_paints_one_undoable_command(painting, qtbot):
    canvas, doc = painting
    with qtbot.waitSignal(canvas.stroke_committed):
        _stroke(qtbot, canvas, [(100, 100), (150, 100), (200, 110)])
    mask = doc.mask(0, "face")
    assert mask[100, 125] == 255 and mask[108, 195] == 255
    assert mask[200, 300] == 0 and mask[60, 125] == 0
    assert doc.undo_stack.count() == 1  # one stroke = one command
    command = doc.undo_stack.command(0)
    assert command.text() == "Paint face mask"
    assert command.byte_size() < mask.nbytes / 4
    assert not canvas.stroke_in_progress()
    assert canvas.has_image("masks") and canvas.layer_shown("masks")
    painted = mask.copy()

    doc.undo_stack.undo()
    assert not doc.mask(0, "face").any()
    doc.undo_stack.redo()
    np.testing.assert_array_equal(doc.mask(0, "face"), painted)


def test_eraser_stroke(painting, qtbot):
    canvas, doc = painting
    doc.set_auto(0, "element", np.full((300, 400), 255, np.uint8))
    canvas.set_active_mask(0, "element")
    canvas.set_tool("eraser")
    _stroke(qtbot, canvas, [(50, 50), (120, 50)])
    mask = doc.mask(0, "element")
    assert mask[50, 80] == 0 and mask[150, 80] == 255
    assert doc.undo_stack.undoText() == "Erase element mask"
    doc.undo_stack.undo()
    assert (doc.mask(0, "element") == 255).all()


def test_no_painting_without_brush_or_face(painting, qtbot):
    canvas, doc = painting
    canvas.set_tool("none")
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(100, 100))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(150, 100))
    canvas.set_tool("brush")
    canvas.set_active_mask(None, "face")
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(100, 100))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(150, 100))
    assert doc.undo_stack.count() == 0


def test_overlay_shows_mask_colour(painting, qtbot):
    canvas, doc = painting
    canvas.set_layer_opacity("masks", 1.0)
    _stroke(qtbot, canvas, [(100, 100), (160, 100)])
    # The overlay repaints on the event loop: wait for the state, not for a time.
    qtbot.waitUntil(lambda: _pixel(canvas, 130, 100) != (120, 110, 100), timeout=2000)
    r, g, b = _pixel(canvas, 130, 100)
    assert b > 200 and r < 60  # cyan face mask
    assert _pixel(canvas, 130, 200) == (120, 110, 100)
    doc.undo_stack.undo()
    qtbot.waitUntil(lambda: _pixel(canvas, 130, 100) == (120, 110, 100), timeout=2000)


def test_brush_size_shortcuts_and_cursor_outline(painting, qtbot):
    canvas, _ = painting
    sizes = []
    canvas.brush_size_changed.connect(sizes.append)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > 20 and sizes == [canvas.brush_size]
    assert canvas.brush_outline_radius() == canvas.brush_size / 2
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size < 20
    assert canvas.brush_outline_radius() == canvas.brush_size / 2
    for _ in range(100):
        qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size == 1
    canvas.brush_size = 64
    assert canvas.brush_outline_radius() == 32
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.brush_hardness == pytest.approx(0.75)
    # The outline follows the mouse in photo coordinates.
    qtbot.mouseMove(canvas.viewport(), canvas.image_to_view(123, 77))
    assert canvas._cursor.pos().x() == pytest.approx(123, abs=1.5)
    assert canvas.brush_outline_visible()
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    assert canvas.tool() == "eraser"


def test_tools_table_escape_shift_line_and_cursors(painting, qtbot):
    from editedid_desktop.canvas import DRAG_MODES, TOOLS

    canvas, doc = painting
    assert set(TOOLS) <= set(DRAG_MODES) and {"pan", "split"} <= set(DRAG_MODES)
    viewport = canvas.viewport()
    # Escape drops a stroke in progress: no undo command, the release paints nothing.
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(50, 50))
    qtbot.mouseMove(viewport, canvas.image_to_view(90, 50))
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert not canvas.stroke_in_progress()
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(90, 50))
    assert doc.undo_stack.count() == 0
    # Shift-click draws a straight line from the end of the last stroke.
    _stroke(qtbot, canvas, [(100, 100), (110, 100)])
    qtbot.mouseClick(
        viewport,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.ShiftModifier,
        canvas.image_to_view(200, 100),
    )
    assert doc.undo_stack.count() == 2 and doc.mask(0, "face")[100, 150] == 255
    # The cursor comes from the mode under the mouse.
    qtbot.mouseMove(viewport, canvas.image_to_view(300, 200))
    assert viewport.cursor().shape() == Qt.CursorShape.BlankCursor
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    assert viewport.cursor().shape() == Qt.CursorShape.OpenHandCursor
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    canvas.set_image("result", _solid(400, 300, (0, 0, 200)))
    canvas.set_compare_mode("split")
    qtbot.mouseMove(viewport, canvas.image_to_view(200, 150))
    assert viewport.cursor().shape() == Qt.CursorShape.SplitHCursor
    assert not canvas.brush_outline_visible()


def test_6000x4000_paint_is_roi_only(canvas, qtbot):
    canvas.set_image("edited", np.zeros((4000, 6000, 3), np.uint8))
    doc = MaskDocument()
    doc.reset((6000, 4000))
    canvas.set_mask_document(doc)
    canvas.set_active_mask(0, "face")
    canvas.set_tool("brush")
    canvas.set_brush_size(80)
    canvas.fit()
    _stroke(qtbot, canvas, [(3000, 2000), (3200, 2100)])
    command = doc.undo_stack.command(0)
    assert doc.undo_stack.count() == 1
    assert command.byte_size() < 6000 * 4000 / 100
    assert doc.mask_view(0, "face")[2050, 3100] == 255


# ------------------------------------------------------------------ zoom and pan
def test_zoom_fit_100_and_wheel(canvas, qtbot):
    canvas.set_image("edited", _photo("astronaut"))  # 512x512
    canvas.fit()
    assert canvas.is_fitted()
    fitted = canvas.zoom()
    assert 0.9 < fitted < 1.2  # 600 px tall view with a margin
    zooms = []
    canvas.zoom_changed.connect(zooms.append)
    canvas.zoom_100()
    assert canvas.zoom() == pytest.approx(1.0) and zooms[-1] == pytest.approx(1.0)
    canvas.zoom_in()
    assert canvas.zoom() == pytest.approx(1.25)
    canvas.zoom_out()
    canvas.zoom_out()
    assert canvas.zoom() == pytest.approx(0.8)
    assert not canvas.is_fitted()

    # The wheel zooms about the cursor: the photo point under it stays put.
    anchor = QPointF(300, 200)
    under = canvas.view_to_image(anchor)
    event = QWheelEvent(
        anchor,
        canvas.viewport().mapToGlobal(anchor),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas.viewport(), event)
    assert canvas.zoom() == pytest.approx(0.8 * 2**0.5)
    after = canvas.view_to_image(anchor)
    assert abs(after.x() - under.x()) < 2 and abs(after.y() - under.y()) < 2

    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(fitted)


def test_middle_drag_and_space_drag_pan(canvas, qtbot):
    canvas.set_image("edited", _photo("astronaut"))
    canvas.zoom_100()
    viewport = canvas.viewport()
    start = canvas.view_to_image(QPoint(400, 300))
    qtbot.mousePress(viewport, Qt.MouseButton.MiddleButton, pos=QPoint(400, 300))
    qtbot.mouseMove(viewport, QPoint(350, 280))
    qtbot.mouseRelease(viewport, Qt.MouseButton.MiddleButton, pos=QPoint(350, 280))
    moved = canvas.view_to_image(QPoint(400, 300))
    assert moved.x() - start.x() == pytest.approx(50, abs=1)
    assert moved.y() - start.y() == pytest.approx(20, abs=1)

    canvas.set_tool("brush")  # space-drag pans even with the brush selected
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseMove(viewport, QPoint(420, 300))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=QPoint(420, 300))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.view_to_image(QPoint(400, 300)).x() == pytest.approx(moved.x() - 20, abs=1)


# ------------------------------------------------------------- layers and compare
def test_layers_visibility_opacity_and_scaled_original(canvas):
    canvas.set_image("original", _solid(200, 150, (255, 0, 0)))
    canvas.set_image("edited", _solid(400, 300, (0, 255, 0)))
    assert canvas.frame_size() == (400, 300)
    original = canvas._layers.pixmap_items["original"]
    assert original.sceneBoundingRect() == canvas.image_rect()  # drawn scaled to the frame
    assert _pixel(canvas, 200, 150) == (0, 255, 0)
    canvas.set_layer_visible("edited", False)
    assert not canvas.layer_visible("edited") and not canvas.layer_shown("edited")
    assert _pixel(canvas, 200, 150) == (255, 0, 0)
    canvas.set_layer_visible("edited", True)
    canvas.set_layer_opacity("edited", 0.5)
    assert canvas.layer_opacity("edited") == 0.5
    r, g, b = _pixel(canvas, 200, 150)
    assert 100 < r < 160 and 100 < g < 160
    with pytest.raises(ValueError):
        canvas.set_image("masks", _solid(2, 2, (0, 0, 0)))
    with pytest.raises(ValueError):
        canvas.set_layer_visible("hat", True)


def test_preview_is_drawn_over_its_face_box(canvas):
    canvas.set_image("edited", _solid(400, 300, (0, 0, 0)))
    canvas.set_preview(_solid(64, 64, (250, 250, 250)), (100, 50, 228, 178))
    assert canvas.layer_shown("preview")
    item = canvas._layers.pixmap_items["preview"]
    rect = item.sceneBoundingRect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (100, 50, 128, 128)
    assert _pixel(canvas, 160, 110) == (250, 250, 250)
    canvas.set_preview(None, None)
    assert not canvas.layer_shown("preview")


def test_split_compare_and_divider_drag(canvas, qtbot):
    canvas.set_image("edited", _solid(400, 300, (200, 0, 0)))
    canvas.set_image("result", _solid(400, 300, (0, 0, 200)))
    assert _pixel(canvas, 100, 150) == (0, 0, 200)  # result on top
    canvas.set_compare_mode("split")
    canvas.set_split_position(0.5)
    assert _pixel(canvas, 100, 150) == (200, 0, 0)  # before on the left
    assert _pixel(canvas, 300, 150) == (0, 0, 200)  # result on the right

    positions = []
    canvas.split_position_changed.connect(positions.append)
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(200, 150))
    qtbot.mouseMove(viewport, canvas.image_to_view(100, 150))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(100, 150))
    assert canvas.split_position() == pytest.approx(0.25, abs=0.01)
    assert positions
    assert _pixel(canvas, 150, 150) == (0, 0, 200)

    canvas.set_compare_mode("off")
    assert _pixel(canvas, 50, 150) == (0, 0, 200)


def test_hold_compare_with_backslash_and_mouse(canvas, qtbot):
    canvas.set_image("original", _solid(400, 300, (0, 200, 0)))
    canvas.set_image("edited", _solid(400, 300, (200, 0, 0)))
    canvas.set_image("result", _solid(400, 300, (0, 0, 200)))
    qtbot.keyPress(canvas, Qt.Key.Key_Backslash)
    assert canvas.is_holding_compare() and not canvas.layer_shown("result")
    assert _pixel(canvas, 200, 150) == (200, 0, 0)
    qtbot.keyRelease(canvas, Qt.Key.Key_Backslash)
    assert not canvas.is_holding_compare()
    assert _pixel(canvas, 200, 150) == (0, 0, 200)

    canvas.set_compare_before("original")
    canvas.hold_compare(True)
    assert _pixel(canvas, 200, 150) == (0, 200, 0)
    canvas.hold_compare(False)

    canvas.set_compare_mode("hold")  # in hold mode a mouse press shows "before"
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(200, 150))
    assert canvas.is_holding_compare()
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(200, 150))
    assert not canvas.is_holding_compare()


# ------------------------------------------------------------ faces and drops
def test_face_box_click_emits_index(canvas, qtbot):
    canvas.set_image("edited", _solid(400, 300, (90, 90, 90)))
    canvas.set_face_boxes(
        [(0, (20, 20, 120, 140), "Face 1", True), (1, (200, 60, 330, 200), "Face 2", False)]
    )
    canvas.select_face(1)
    assert canvas.selected_face() == 1
    with qtbot.waitSignal(canvas.face_clicked) as blocker:
        qtbot.mouseClick(
            canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.image_to_view(260, 120)
        )
    assert blocker.args == [1]
    with qtbot.assertNotEmitted(canvas.face_clicked):
        qtbot.mouseClick(
            canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.image_to_view(160, 250)
        )


def test_dropping_image_files_emits_their_paths(canvas, qtbot, tmp_path):
    photo = tmp_path / "edited.JPG"
    photo.write_bytes(b"")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"")
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    text_only = QMimeData()
    text_only.setUrls([QUrl.fromLocalFile(str(notes))])
    enter = QDragEnterEvent(QPoint(100, 100), Qt.DropAction.CopyAction, text_only, buttons, mods)
    QApplication.sendEvent(canvas.viewport(), enter)
    assert not enter.isAccepted()  # nothing to open: the drag is refused

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo)), QUrl.fromLocalFile(str(notes))])
    enter = QDragEnterEvent(QPoint(100, 100), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(canvas.viewport(), enter)
    assert enter.isAccepted()
    event = QDropEvent(
        QPointF(100, 100),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(canvas.files_dropped) as blocker:
        QApplication.sendEvent(canvas.viewport(), event)
    assert blocker.args == [[str(photo)]]


# --------------------------------------------------------------- screenshot smoke
def test_screenshot_smoke(canvas, qtbot, tmp_path):
    from editedid_desktop.app import apply_theme

    apply_theme(QApplication.instance())
    edited = _photo("grace_hopper")
    height, width = edited.shape[:2]
    canvas.set_image("original", _photo("astronaut"))
    canvas.set_image("edited", edited)
    result = edited.copy()
    result[..., 2] = np.clip(result[..., 2].astype(int) + 40, 0, 255)
    canvas.set_image("result", result)
    doc = MaskDocument(canvas)
    yy, xx = np.mgrid[0:height, 0:width]
    face = ((((xx - 260) / 90.0) ** 2 + ((yy - 190) / 120.0) ** 2) <= 1).astype(np.uint8) * 255
    element = np.zeros((height, width), np.uint8)
    element[150:200, 150:380] = 255
    doc.set_auto(0, "face", face)
    doc.set_auto(0, "element", element)
    canvas.set_mask_document(doc)
    canvas.set_active_mask(0, "face")
    canvas.set_face_boxes([(0, (160, 60, 360, 330), "Face 1 · ID 0.82", True)])
    canvas.select_face(0)
    canvas.set_compare_mode("split")
    canvas.set_split_position(0.6)
    canvas.set_tool("brush")
    canvas.set_brush_size(70)
    canvas.fit()
    qtbot.mouseMove(canvas.viewport(), canvas.image_to_view(420, 420))
    canvas._cursor.setVisible(True)
    path = tmp_path / "canvas.png"
    assert canvas.grab().save(str(path))
    image = QImage(str(path))
    pixels = qimage_to_numpy(image)
    assert pixels.shape[:2] == (600, 800)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000


# ---------------------------------------------------------------------- tool bar
def test_mask_tool_bar_is_wired_both_ways(painting, qtbot):
    from editedid_desktop.tool_bar import MaskToolBar

    canvas, doc = painting
    canvas.set_tool("none")
    bar = MaskToolBar(canvas)
    qtbot.addWidget(bar)
    assert bar.size_slider.value() == 20 and bar.hardness_slider.value() == 100
    assert bar.size_slider.objectName() == "brushSizeSlider" and bar.size_slider.maximum() > 100
    assert bar.hardness_slider.objectName() == "brushHardnessSlider"
    bar.size_slider.setValue(55)
    assert canvas.brush_size == 55
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert bar.size_slider.value() == canvas.brush_size > 55
    bar.hardness_slider.setValue(30)
    assert canvas.brush_hardness == pytest.approx(0.3)

    bar.eraser_action.trigger()
    assert canvas.tool() == "eraser"
    bar.eraser_action.trigger()  # clicking the checked tool again drops it
    assert canvas.tool() == "none"
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    assert bar.brush_action.isChecked()

    bar.element_target_action.trigger()
    assert canvas.active_mask() == (0, "element")
    bar.swap_target_action.trigger()
    assert canvas.active_mask() == (0, "face") and bar.face_target_action.isChecked()

    bar.invert_action.trigger()
    assert (doc.mask(0, "face") == 255).all()
    assert doc.undo_stack.undoText() == "Invert face mask"
    bar.clear_action.trigger()
    assert not doc.mask(0, "face").any()
    bar.reset_action.trigger()
    assert doc.undo_stack.undoText() == "Reset face mask to auto"
    assert doc.undo_stack.count() == 3
    canvas.set_active_mask(None, "face")
    assert not bar.clear_action.isEnabled()


# ----------------------------------------------------- issue 12: D8, D12, D14
def _two_faces(canvas):
    """Faces 0 and 1 with full face masks; the canvas follows face clicks as the app does."""
    canvas.set_face_boxes([(0, (20, 20, 150, 180), "1", True), (1, (220, 40, 380, 220), "2", True)])
    canvas.face_clicked.connect(canvas.select_face)
    canvas.face_clicked.connect(lambda face: canvas.set_active_mask(face, "face"))
    doc = canvas.mask_document()
    doc.invert(0, "face")
    doc.invert(1, "face")
    canvas.select_face(0)
    canvas.set_active_mask(0, "face")
    return doc


def test_select_tool_and_paint_only_the_selected_face(painting, qtbot):
    canvas, doc = painting
    doc = _two_faces(canvas)
    steps = doc.undo_stack.count()
    viewport = canvas.viewport()
    refused = []
    canvas.paint_refused.connect(lambda *args: refused.append(args))
    canvas.set_brush_size(10)
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    # The eraser on Face 2's box while Face 1 is selected changes no mask at all.
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(300, 120))
    assert doc.undo_stack.count() == steps and refused == [(0, 1)]
    assert doc.mask(0, "face")[120, 300] == 255 and doc.mask(1, "face")[120, 300] == 255
    assert canvas.active_mask() == (0, "face")
    # V is the select/move tool: a click on a box selects that face ...
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    assert canvas.tool() == "select"
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(300, 120))
    assert canvas.selected_face() == 1 and canvas.active_mask() == (1, "face")
    # ... and a drag off the faces moves the view.
    before = canvas.image_to_view(200, 150)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(190, 280))
    qtbot.mouseMove(viewport, canvas.image_to_view(190, 280) + QPoint(30, 0))
    qtbot.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(190, 280) + QPoint(30, 0)
    )
    assert canvas.image_to_view(200, 150).x() == pytest.approx(before.x() + 30, abs=2)
    assert doc.undo_stack.count() == steps
    # The eraser now works on Face 2, and only on Face 2.
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(300, 120))
    assert doc.undo_stack.count() == steps + 1
    assert doc.mask(1, "face")[120, 300] == 0 and doc.mask(0, "face")[120, 300] == 255


def test_each_face_preview_covers_its_own_face_and_not_what_lies_between(canvas):
    """Issue 20: per face, its own item over its own box, blended by its alpha; the
    photo between two faces stays visible; the next step replaces a face's item."""
    canvas.set_image("edited", _solid(400, 300, (10, 20, 30)))
    patch = np.zeros((60, 60, 4), np.uint8)
    patch[..., :3] = (250, 250, 250)
    patch[10:50, 10:50, 3] = 255  # the face region; transparent around it
    canvas.set_preview(patch, (20, 100, 80, 160), face=0)
    canvas.set_preview(patch, (300, 100, 360, 160), face=2)
    assert canvas.layer_shown("preview")
    assert _pixel(canvas, 50, 130) == (250, 250, 250)
    assert _pixel(canvas, 330, 130) == (250, 250, 250)
    assert _pixel(canvas, 190, 130) == (10, 20, 30)  # between the faces: the photo
    assert _pixel(canvas, 22, 102) == (10, 20, 30)  # outside the face region: transparent
    darker = patch.copy()
    darker[..., :3] = (0, 200, 0)
    canvas.set_preview(darker, (20, 100, 80, 160), face=0)  # the next step of face 0
    assert len(canvas._layers.face_previews) == 2
    assert _pixel(canvas, 50, 130) == (0, 200, 0)
    canvas.set_preview(None, None)  # the run ended: every face's preview goes
    assert not canvas.layer_shown("preview") and not canvas._layers.face_previews
    assert _pixel(canvas, 50, 130) == (10, 20, 30)


def test_mask_overlay_hides_while_a_run_previews(painting, qtbot):
    canvas, doc = painting
    _stroke(qtbot, canvas, [(100, 100), (140, 100)])
    assert canvas.layer_shown("masks")
    canvas.set_preview(_solid(64, 64, (0, 200, 0)), (80, 60, 200, 180))
    assert not canvas.layer_shown("masks")
    assert _pixel(canvas, 120, 100) == (0, 200, 0)  # the step is seen, not the overlay
    canvas.set_preview(None, None)
    assert canvas.layer_shown("masks") and canvas.layer_visible("masks")


def test_100_percent_is_one_device_pixel_on_hidpi(canvas, qtbot, monkeypatch):
    canvas.set_image("edited", _solid(400, 300, (90, 90, 90)))
    monkeypatch.setattr(canvas, "devicePixelRatioF", lambda: 2.0)
    labels = []
    canvas.zoom_changed.connect(labels.append)
    qtbot.keyClick(canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(1.0) and labels[-1] == pytest.approx(1.0)
    assert canvas.transform().m11() == pytest.approx(0.5)  # logical px per photo px
    a, b = canvas.image_to_view(100, 100), canvas.image_to_view(300, 100)
    assert b.x() - a.x() == pytest.approx(100, abs=1)  # 200 photo px = 200 device px
    qtbot.keyClick(canvas, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() == pytest.approx(1.25)


def _tag_pixels(canvas) -> list[tuple[str, tuple[int, int, int]]]:
    """Each compare tag's text and the screen colour just inside its left edge."""
    image = canvas.viewport().grab().toImage()
    ratio = image.devicePixelRatio()
    out = []
    for text, rect in canvas.compare_tags():
        point = QPoint(int((rect.left() + 3) * ratio), int(rect.center().y() * ratio))
        color = image.pixelColor(point)
        out.append((text, (color.red(), color.green(), color.blue())))
    return out


def test_split_and_hold_views_paint_before_and_after_tags(canvas, qtbot):
    """D15 (issue 12): as in Lightroom, the compare says which side is Before and which
    After, and which photo "before" is."""
    canvas.set_image("original", _solid(400, 300, (0, 200, 0)))
    canvas.set_image("edited", _solid(400, 300, (200, 0, 0)))
    canvas.set_image("result", _solid(400, 300, (0, 0, 200)))
    assert canvas.compare_tags() == []  # no compare: no tags
    canvas.set_compare_mode("split")
    canvas.set_split_position(0.5)
    tags = _tag_pixels(canvas)
    assert [t for t, _ in tags] == ["Before \u00b7 Edited", "After \u00b7 Restored"]
    for _, rgb in tags:  # painted: the dark tag, not the photo under it
        assert rgb not in ((200, 0, 0), (0, 0, 200)) and max(rgb) < 80
    left, right = (rect for _, rect in canvas.compare_tags())
    divider = canvas.image_to_view(200, 0).x()
    assert left.right() < divider < right.left()
    canvas.set_compare_before("original")
    assert [t for t, _ in _tag_pixels(canvas)][0] == "Before \u00b7 Original"
    canvas.set_split_position(0.02)  # no room left of the divider: only "After"
    assert [t for t, _ in _tag_pixels(canvas)] == ["After \u00b7 Restored"]

    canvas.set_compare_mode("off")
    canvas.set_compare_before("edited")
    qtbot.keyPress(canvas, Qt.Key.Key_Backslash)  # hold: the photo shown is tagged
    ((text, rgb),) = _tag_pixels(canvas)
    assert text == "Before \u00b7 Edited" and max(rgb) < 80
    qtbot.keyRelease(canvas, Qt.Key.Key_Backslash)
    assert canvas.compare_tags() == []


def test_a_stroke_across_another_face_leaves_that_face_alone(painting, qtbot):
    """D8 (issue 12): a brush or eraser stroke of the selected face that crosses another
    face's box changes nothing there, on screen while dragging and in the mask."""
    canvas, doc = painting
    doc = _two_faces(canvas)
    canvas.set_brush_size(16)
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    viewport = canvas.viewport()
    path = [(100, 100), (190, 100), (300, 100), (300, 200), (300, 270), (200, 270)]
    before_inside = _pixel(canvas, 300, 150)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(*path[0]))
    for x, y in path[1:]:
        qtbot.mouseMove(viewport, canvas.image_to_view(x, y))
    assert canvas.stroke_in_progress()
    assert _pixel(canvas, 300, 150) == before_inside  # the live stroke is clipped too
    assert _pixel(canvas, 190, 100) != _pixel(canvas, 190, 20)  # ... and drawn elsewhere
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_view(*path[-1]))
    face0, face1 = doc.mask(0, "face"), doc.mask(1, "face")
    assert face0[100, 100] == 0 and face0[100, 190] == 0 and face0[270, 250] == 0
    assert (face0[40:221, 220:381] == 255).all()  # Face 2's box: untouched
    assert (face1 == 255).all()  # and Face 2's own mask too
    doc.undo_stack.undo()  # still one undo step
    assert (doc.mask(0, "face") == 255).all()

    # The brush alike; where the boxes overlap, the selected face's own box wins.
    canvas.set_face_boxes([(0, (20, 20, 250, 180), "1", True), (1, (220, 40, 380, 220), "2", True)])
    doc.clear(0, "face")
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    _stroke(qtbot, canvas, [(100, 100), (300, 100), (300, 260)])
    face0 = doc.mask(0, "face")
    assert face0[100, 100] == 255 and face0[100, 235] == 255  # the overlap is Face 1's
    assert face0[100, 300] == 0 and face0[150, 300] == 0 and face0[255, 300] == 255
