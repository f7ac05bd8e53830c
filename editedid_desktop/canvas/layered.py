"""The layered photo canvas: layers, compare, zoom and pan, face boxes, mask painting.

Scene coordinates are EDITED-photo pixels: the edited photo sits at (0, 0) at scale 1 and
defines the frame; the original and the result are drawn scaled to that frame, the live
diffusion preview is drawn scaled over its face box, and masks (from a `MaskDocument`) are
painted in the same coordinates. Nothing here walks a whole photo on a mouse event: the
brush stroke is previewed on a temporary path item and committed on release as one undo
command; the mask overlay is recoloured only in the rectangle that changed.

`LayeredCanvas` is the public face; the work is done by its parts: `PhotoView` (zoom, pan,
drops), `LayerStack` and `FaceBoxes` (what is shown), `MaskLayer` (the mask overlay) and
the tools table `DRAG_MODES` (what a press does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QWidget

from .items import BrushCursorItem
from .labels import compare_tags, paint_tags
from .layers import FaceBoxes, LayerStack, check_layer
from .overlay import MaskLayer
from .tools import DRAG_MODES, MAX_BRUSH, MIN_BRUSH, TOOLS, Brush, Drag, Press, StrokeDrag
from .view import PhotoView

if TYPE_CHECKING:
    from ..mask_document import MaskDocument

DIVIDER_GRAB = 6  # screen pixels either side of the split divider that grab it
_CTRL = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier
_CTRL_KEYS = {  # Ctrl+key: view method
    Qt.Key.Key_0: "fit",
    Qt.Key.Key_1: "zoom_100",
    Qt.Key.Key_Plus: "zoom_in",
    Qt.Key.Key_Equal: "zoom_in",
    Qt.Key.Key_Minus: "zoom_out",
}
_TOOL_KEYS = {DRAG_MODES[t].shortcut: t for t in TOOLS if DRAG_MODES[t].shortcut is not None}


class LayeredCanvas(PhotoView):
    """Photo canvas with layers, compare, zoom/pan, face boxes and mask painting."""

    face_clicked = Signal(int)
    brush_size_changed = Signal(int)
    brush_hardness_changed = Signal(float)
    tool_changed = Signal(str)
    compare_mode_changed = Signal(str)
    compare_hold_changed = Signal(bool)
    split_position_changed = Signal(float)
    layer_changed = Signal(str)  # visibility or opacity of a layer changed
    stroke_committed = Signal(int, str)  # face, kind: one stroke became one undo command
    active_mask_changed = Signal(object, str)  # face (int or None), kind
    paint_refused = Signal(int, int)  # selected face, the other face a press landed on

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layeredCanvas")
        self._layers = LayerStack(self._scene)
        self._faces = FaceBoxes(self._scene)
        self._masks = MaskLayer(self._layers.mask_item, self.frame_size, self._layers.update)
        self._brush = Brush()
        self._tool = "none"
        self._cursor = BrushCursorItem()
        self._cursor.setVisible(False)
        self._scene.addItem(self._cursor)
        self._drag: Drag | None = None
        self._space_down = False
        self._update_cursor_item()
        self._layers.update()

    # ================================================================== layers
    def set_image(self, layer: str, image: np.ndarray | QImage | None) -> None:
        """Show an RGB(A) uint8 array (or QImage) on "original", "edited" or "result".

        None removes the layer's image. The edited photo defines the frame; the original
        and the result are drawn scaled to it when their sizes differ.
        """
        if self._layers.set_image(layer, image):  # the frame changed
            self._layers.relayout()
            self._masks.refresh()
            self.fit()
        self._layers.update()

    def has_image(self, layer: str) -> bool:
        return self._layers.has_image(layer)

    def set_preview(
        self,
        image: np.ndarray | QImage | None,
        box: tuple[float, float, float, float] | None,
        face: int | None = None,
    ) -> None:
        """Show the live diffusion preview scaled over `box` (x0, y0, x1, y1); with
        `face`, as that face's own preview (one per face, each in its place). None hides
        that face's preview, or with face None every preview."""
        self._layers.set_preview(image, box, face)
        self._layers.update()

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        if self._layers.set_visible(layer, visible):
            self.layer_changed.emit(layer)

    def layer_visible(self, layer: str) -> bool:
        """The user's visibility setting for a layer (compare may hide it for a while)."""
        check_layer(layer)
        return self._layers.visible[layer]

    def layer_shown(self, layer: str) -> bool:
        """Whether the layer is on screen now (has content, visible, not hidden by compare)."""
        check_layer(layer)
        return self._layers.groups[layer].isVisible()

    def set_layer_opacity(self, layer: str, opacity: float) -> None:
        if self._layers.set_opacity(layer, opacity):
            self.layer_changed.emit(layer)

    def layer_opacity(self, layer: str) -> float:
        check_layer(layer)
        return self._layers.opacity[layer]

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame: the edited photo, else the result, else original."""
        return self._layers.frame_size()

    def image_rect(self) -> QRectF:
        return self._layers.image_rect()

    # ================================================================= compare
    def set_compare_mode(self, mode: str) -> None:
        """ "off", "split" (draggable divider: before | result) or "hold" (press to see before)."""
        if self._layers.set_compare_mode(mode):
            self.compare_mode_changed.emit(mode)

    def set_compare_before(self, layer: str) -> None:
        """Which photo is "before" in compare: "edited" (default) or "original"."""
        self._layers.set_before(layer)

    def set_split_position(self, fraction: float) -> None:
        """Divider position as a fraction of the frame width (0 = left edge)."""
        if self._layers.set_split(fraction):
            self.split_position_changed.emit(self._layers.split)

    def split_position(self) -> float:
        return self._layers.split

    def hold_compare(self, held: bool) -> None:
        """While held, only the "before" photo is shown (the backslash key does this)."""
        if self._layers.set_holding(held):
            self.compare_hold_changed.emit(self._layers.holding)

    def is_holding_compare(self) -> bool:
        return self._layers.holding

    def compare_tags(self) -> list[tuple[str, QRectF]]:
        """The Before / After tags on screen now: (text, viewport rectangle)."""
        photo = self.mapFromScene(self.image_rect()).boundingRect()
        divider = self.mapFromScene(self._layers.divider.pos()).x()
        return compare_tags(self._layers.compare_view(), QRectF(photo), float(divider))

    def drawForeground(self, painter, rect: QRectF) -> None:  # noqa: N802 - Qt override
        super().drawForeground(painter, rect)
        tags = self.compare_tags()
        if tags:
            painter.save()
            painter.resetTransform()  # viewport pixels: tags keep their size at any zoom
            paint_tags(painter, tags)
            painter.restore()

    # =============================================================== face boxes
    def set_face_boxes(self, boxes) -> None:
        """Boxes as (index, (x0, y0, x1, y1), label, enabled) in edited-photo pixels."""
        self._faces.set(boxes)

    def select_face(self, index: int | None) -> None:
        """Highlight one face box (None: none)."""
        self._faces.select(index)

    def selected_face(self) -> int | None:
        return self._faces.selected

    def face_at(self, point: QPointF) -> int | None:
        """The face whose box contains a photo position (the smallest one if nested)."""
        return self._faces.at(point)

    # ==================================================================== masks
    def set_mask_document(self, document: MaskDocument | None) -> None:
        self._masks.set_document(document)

    def mask_document(self) -> MaskDocument | None:
        return self._masks.document

    def set_active_mask(self, face: int | None, kind: str) -> None:
        """Which face's masks are shown and which kind the brush paints."""
        changed = self._masks.set_active(face, kind)
        self._cancel_stroke()
        if changed:
            self.active_mask_changed.emit(face, kind)

    def active_mask(self) -> tuple[int | None, str]:
        return self._masks.face, self._masks.kind

    # ==================================================================== tools
    def set_tool(self, tool: str) -> None:
        """ "none", "select" (pick a face, move the view), "brush" (add to the active
        mask) or "eraser"; brush and eraser paint only the selected face."""
        if tool not in TOOLS:
            raise ValueError(f"Unknown tool {tool!r}; expected one of {TOOLS}.")
        if tool != self._tool:
            self._cancel_stroke()
            self._tool = tool
            self._update_cursor_item()
            self.tool_changed.emit(tool)

    def tool(self) -> str:
        return self._tool

    @property
    def brush_size(self) -> int:
        """Brush diameter in photo pixels."""
        return self._brush.size

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        self.set_brush_size(size)

    def set_brush_size(self, size: int) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, round(size))))
        if size != self._brush.size:
            self._brush.size = size
            self._update_cursor_item()
            self.brush_size_changed.emit(size)

    @property
    def brush_hardness(self) -> float:
        """0 (soft edge all the way to the centre) .. 1 (hard edge)."""
        return self._brush.hardness

    @brush_hardness.setter
    def brush_hardness(self, hardness: float) -> None:
        self.set_brush_hardness(hardness)

    def set_brush_hardness(self, hardness: float) -> None:
        hardness = min(1.0, max(0.0, float(hardness)))
        if hardness != self._brush.hardness:
            self._brush.hardness = hardness
            self._update_cursor_item()
            self.brush_hardness_changed.emit(hardness)

    def brush_outline_radius(self) -> float:
        """Radius of the cursor outline in photo pixels (follows the brush size)."""
        return self._cursor.radius

    def brush_outline_visible(self) -> bool:
        return self._cursor.isVisible()

    def refuse_paint(self, other: int) -> None:
        """A brush/eraser press landed on another face's box: nothing is painted."""
        if self._masks.face is not None:
            self.paint_refused.emit(self._masks.face, other)

    def stroke_in_progress(self) -> bool:
        return isinstance(self._drag, StrokeDrag)

    def _cancel_stroke(self) -> None:
        if isinstance(self._drag, StrokeDrag):
            self._drag.cancel()
            self._drag = None

    def step_brush(self, up: bool) -> None:
        """One step larger (]) or smaller ([), about 15 %."""
        size = self._brush.size
        self.set_brush_size(
            max(size + 1, round(size * 1.15)) if up else min(size - 1, round(size / 1.15))
        )

    def step_hardness(self, up: bool) -> None:
        """Harder (Shift+]) or softer (Shift+[) by 25 %."""
        self.set_brush_hardness(self._brush.hardness + (0.25 if up else -0.25))

    def set_space_pan(self, held: bool) -> None:
        """While Space is held, a left drag pans whatever the tool."""
        if bool(held) != self._space_down:
            self._space_down = bool(held)
            self._update_mouse_cursor()

    def is_space_pan(self) -> bool:
        return self._space_down

    def _mode_at(self, pos: QPointF | None, button: Qt.MouseButton) -> str:
        """The row of the tools table a press of `button` at `pos` would use."""
        if button == Qt.MouseButton.MiddleButton or self._space_down:
            return "pan"
        if pos is not None and self._near_divider(pos):
            return "split"
        return self._tool

    def _near_divider(self, pos: QPointF) -> bool:
        divider = self._layers.divider
        if not divider.isVisible():
            return False
        return abs(pos.x() - self.mapFromScene(divider.pos()).x()) <= DIVIDER_GRAB

    def _update_cursor_item(self) -> None:
        self._cursor.set_radius(self._brush.size / 2.0, self._brush.hardness)
        under_mouse = self.viewport().underMouse() or not self.isVisible()
        self._cursor.setVisible(DRAG_MODES[self._tool].paints and under_mouse)
        self._update_mouse_cursor()

    def _update_mouse_cursor(self, pos: QPointF | None = None) -> None:
        if self._drag is not None:
            shape = self._drag.cursor
        else:
            shape = DRAG_MODES[self._mode_at(pos, Qt.MouseButton.LeftButton)].cursor
        if shape != Qt.CursorShape.BlankCursor:
            self._cursor.setVisible(False)  # panning or on the divider: no brush outline
        elif pos is not None:
            self._cursor.setVisible(True)
        self.viewport().setCursor(shape)

    def _zoom_applied(self, zoom: float) -> None:
        self._layers.set_transformation_mode(
            Qt.TransformationMode.FastTransformation  # crisp pixels when peeping
            if zoom >= 2.0
            else Qt.TransformationMode.SmoothTransformation
        )
        self._cursor.set_pixel(1.0 / self.transform().m11())  # scene units per screen px

    # ================================================================== events
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl = bool(mods & _CTRL)
        repeat = event.isAutoRepeat()
        if key == Qt.Key.Key_Space and not ctrl:
            if not repeat:
                self.set_space_pan(True)
        elif key == Qt.Key.Key_Backslash:
            if not repeat:
                self.hold_compare(True)
        elif key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight) and not ctrl:
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.step_hardness(key == Qt.Key.Key_BracketRight)
            else:
                self.step_brush(key == Qt.Key.Key_BracketRight)
        elif key in (Qt.Key.Key_BraceLeft, Qt.Key.Key_BraceRight) and not ctrl:
            self.step_hardness(key == Qt.Key.Key_BraceRight)  # Shift+[ / ] on US layouts
        elif ctrl and key in _CTRL_KEYS:
            getattr(self, _CTRL_KEYS[key])()
        elif not mods and key in _TOOL_KEYS:
            self.set_tool(_TOOL_KEYS[key])
        elif key == Qt.Key.Key_Escape and self.stroke_in_progress():
            self._cancel_stroke()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.isAutoRepeat():
            event.accept()
            return
        if event.key() == Qt.Key.Key_Space:
            self.set_space_pan(False)
        elif event.key() == Qt.Key.Key_Backslash:
            self.hold_compare(False)
        else:
            super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        # A key released while another window has focus never arrives: let go here.
        self._space_down = False
        self.hold_compare(False)
        self._update_mouse_cursor()
        super().focusOutEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos, button = event.position(), event.button()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            super().mousePressEvent(event)
            return
        if self._drag is None:  # one gesture at a time; other presses wait for its release
            press = Press(pos, self.mapToScene(pos.toPoint()), button, event.modifiers())
            self._drag = DRAG_MODES[self._mode_at(pos, button)].press(self, press)
            self._update_mouse_cursor(pos)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        scene_pos = self.mapToScene(pos.toPoint())
        self._cursor.setPos(scene_pos)
        if self._drag is not None:
            self._drag.move(pos, scene_pos)
        self._update_mouse_cursor(pos)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        drag = self._drag
        if drag is not None and event.button() in drag.buttons:
            self._drag = None
            drag.release(self.mapToScene(event.position().toPoint()))
        self._update_mouse_cursor(event.position())
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Leave:
            self._cursor.setVisible(False)
        elif event.type() == QEvent.Type.Enter:
            self._update_cursor_item()
        return super().viewportEvent(event)
