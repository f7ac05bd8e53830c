"""The canvas tools as a table looked up by mode (napari's `_drag_modes`), not flags.

A mode says what a press on the photo does. Four are tools the user picks ("none",
"select", "brush", "eraser"); two are gestures the canvas picks by itself: "pan" (middle button, or
left button while Space is held) and "split" (on the compare divider). A mode's `press`
returns the `Drag` in progress, which then gets the moves and the release, or None when
the press is a click. The brush stroke is drawn live on a temporary path item and becomes
one undo command on release (BallonsTranslator / InvokeAI).

Tools belong to the canvas package and reach into the canvas' parts (`_brush`, `_masks`,
`_faces`, `_layers`); nothing outside the package should. What a tool may touch of the
canvas is the `ToolCanvas` protocol below (`layered.LayeredCanvas` is one): this module
never imports `layered`, which imports the tools table (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QPointF, QRectF, Qt, SignalInstance
from PySide6.QtGui import QColor, QPainterPath
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene

from ..imaging import mask_color
from .items import StrokeItem, Z

if TYPE_CHECKING:
    from .layers import FaceBoxes, LayerStack
    from .overlay import MaskLayer

TOOLS: tuple[str, ...] = ("none", "select", "brush", "eraser")  # the ones `set_tool` takes
MIN_BRUSH, MAX_BRUSH = 1, 5000
Cursor = Qt.CursorShape
Button = Qt.MouseButton


@dataclass(frozen=True)
class Press:
    """A mouse press on the canvas, in viewport and in photo (scene) coordinates."""

    view_pos: QPointF
    scene_pos: QPointF
    button: Qt.MouseButton
    modifiers: Qt.KeyboardModifier


@dataclass
class Brush:
    """Brush settings shared by the brush and the eraser."""

    size: int = 40  # diameter in photo pixels
    hardness: float = 0.8  # 0 soft to the centre .. 1 hard edge
    last_stroke_end: QPointF | None = None  # where Shift-click draws a straight line from


class ToolCanvas(Protocol):
    """The canvas as the tools see it: its parts, the signals a press emits, and the
    few view operations a drag drives."""

    _brush: Brush
    _masks: MaskLayer
    _faces: FaceBoxes
    _layers: LayerStack
    face_clicked: SignalInstance  # (face)
    stroke_committed: SignalInstance  # (face, kind)

    def scene(self) -> QGraphicsScene: ...

    def image_rect(self) -> QRectF: ...

    def face_at(self, point: QPointF) -> int | None: ...

    def scroll_by(self, dx: int, dy: int) -> None: ...

    def set_split_position(self, fraction: float) -> None: ...

    def hold_compare(self, held: bool) -> None: ...

    def refuse_paint(self, other: int) -> None: ...


class Drag:
    """A gesture in progress: it gets the moves, then the release of one of `buttons`."""

    cursor = Cursor.ArrowCursor
    buttons: tuple[Qt.MouseButton, ...] = (Button.LeftButton,)

    def move(self, view_pos: QPointF, scene_pos: QPointF) -> None:
        pass

    def release(self, scene_pos: QPointF) -> None:
        pass

    def cancel(self) -> None:
        pass


class PanDrag(Drag):
    """Scroll the view with the mouse."""

    cursor = Cursor.ClosedHandCursor
    buttons = (Button.MiddleButton, Button.LeftButton)

    def __init__(self, canvas: ToolCanvas, press: Press) -> None:
        self.canvas = canvas
        self.last = press.view_pos.toPoint()

    def move(self, view_pos: QPointF, scene_pos: QPointF) -> None:
        delta = view_pos.toPoint() - self.last
        self.last = view_pos.toPoint()
        self.canvas.scroll_by(delta.x(), delta.y())


class SplitDrag(Drag):
    """Move the split-compare divider."""

    cursor = Cursor.SplitHCursor

    def __init__(self, canvas: ToolCanvas, press: Press) -> None:
        self.canvas = canvas

    def move(self, view_pos: QPointF, scene_pos: QPointF) -> None:
        width = self.canvas.image_rect().width()
        if width > 0:
            self.canvas.set_split_position(scene_pos.x() / width)


class HoldDrag(Drag):
    """In "hold" compare mode: show the "before" photo while the button is down."""

    def __init__(self, canvas: ToolCanvas) -> None:
        self.canvas = canvas
        canvas.hold_compare(True)

    def release(self, scene_pos: QPointF) -> None:
        self.canvas.hold_compare(False)


class StrokeDrag(Drag):
    """One brush or eraser stroke on the active mask; one undo command on release."""

    cursor = Cursor.BlankCursor  # the brush outline item is the cursor

    def __init__(self, canvas: ToolCanvas, press: Press, erase: bool) -> None:
        self.canvas = canvas
        self.erase = erase
        brush = canvas._brush
        start = first = press.scene_pos
        self.points: list[tuple[float, float]] = []
        shift = press.modifiers & Qt.KeyboardModifier.ShiftModifier
        if shift and brush.last_stroke_end is not None:
            start = brush.last_stroke_end  # Shift-click: straight line from the last stroke
            self.points.append((start.x(), start.y()))
        self.points.append((first.x(), first.y()))
        if erase:
            color = QColor(15, 15, 18, 150)
        else:
            color = QColor(mask_color(canvas._masks.kind))
            color.setAlpha(140)
        self.item: StrokeItem | None = StrokeItem(start, first, color, brush.size)
        faces = canvas._faces
        self.keep_out, self.allow = faces.boxes_except(canvas._masks.face), None
        if self.keep_out:  # the live stroke shows what the mask will get: clipped alike
            self.allow = faces.box(canvas._masks.face)
            clip = stroke_clip(canvas.image_rect(), self.keep_out, self.allow)
            self.clip_item: QGraphicsPathItem | None = clip
            canvas.scene().addItem(clip)
            self.item.setParentItem(clip)
        else:
            self.clip_item = None
            canvas.scene().addItem(self.item)

    def move(self, view_pos: QPointF | None, scene_pos: QPointF) -> None:
        point = (scene_pos.x(), scene_pos.y())
        if self.item is None or point == self.points[-1]:
            return
        self.points.append(point)
        self.item.line_to(scene_pos)

    def release(self, scene_pos: QPointF) -> None:
        self.move(None, scene_pos)
        self.cancel()
        canvas, masks, brush = self.canvas, self.canvas._masks, self.canvas._brush
        if masks.document is None or masks.face is None:
            return
        brush.last_stroke_end = QPointF(*self.points[-1])
        command = masks.document.paint(
            masks.face,
            masks.kind,
            self.points,
            radius=brush.size / 2.0,
            hardness=brush.hardness,
            erase=self.erase,
            keep_out=self.keep_out,
            allow=self.allow,
        )
        if command is not None:
            canvas.stroke_committed.emit(masks.face, masks.kind)

    def cancel(self) -> None:
        if self.item is not None:
            self.canvas.scene().removeItem(self.clip_item or self.item)
            self.item = self.clip_item = None


def stroke_clip(frame: QRectF, keep_out: list, allow) -> QGraphicsPathItem:
    """An invisible item whose shape is the frame less the other faces' boxes (plus the
    painted face's own box): the live stroke, its child, is clipped to it."""
    region = QPainterPath()
    region.addRect(frame)
    for x0, y0, x1, y1 in keep_out:
        box = QPainterPath()
        box.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        region = region.subtracted(box)
    if allow is not None:
        own = QPainterPath()
        own.addRect(QRectF(allow[0], allow[1], allow[2] - allow[0], allow[3] - allow[1]))
        region = region.united(own)
    item = QGraphicsPathItem(region)
    item.setPen(Qt.PenStyle.NoPen)
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
    item.setZValue(Z["stroke"])
    return item


def _click_face(canvas: ToolCanvas, press: Press) -> None:
    face = canvas.face_at(press.scene_pos)
    if face is not None:
        canvas.face_clicked.emit(face)


def select_press(canvas: ToolCanvas, press: Press) -> Drag | None:
    """No tool: a click picks a face; in "hold" compare, holding shows "before"."""
    drag = HoldDrag(canvas) if canvas._layers.compare_mode == "hold" else None
    _click_face(canvas, press)
    return drag


def move_press(canvas: ToolCanvas, press: Press) -> Drag | None:
    """Select/move tool (V): a click on a face box selects that face; a drag elsewhere
    moves the view (in "hold" compare, holding shows "before" as with no tool)."""
    if canvas._layers.compare_mode == "hold":
        return select_press(canvas, press)
    face = canvas.face_at(press.scene_pos)
    if face is not None:
        canvas.face_clicked.emit(face)
        return None
    return PanDrag(canvas, press)


def foreign_face(canvas: ToolCanvas, point: QPointF) -> int | None:
    """The face whose box holds `point` when that is not the selected face's region.

    Brush and eraser paint only the selected face: a press there would change the selected
    face's mask where another person is, so it is refused (select that face first)."""
    selected = canvas._masks.face
    face = canvas.face_at(point)
    if face is None or face == selected or canvas._faces.contains(selected, point):
        return None
    return face


def _stroke_press(erase: bool) -> Callable[[ToolCanvas, Press], Drag | None]:
    def press_(canvas: ToolCanvas, press: Press) -> Drag | None:
        if canvas._masks.can_paint():
            other = foreign_face(canvas, press.scene_pos)
            if other is not None:
                canvas.refuse_paint(other)
                return None
            return StrokeDrag(canvas, press, erase)
        _click_face(canvas, press)  # no mask to paint yet: a click still picks a face
        return None

    return press_


@dataclass(frozen=True)
class Mode:
    """One row of the tools table."""

    press: Callable[[ToolCanvas, Press], Drag | None]
    cursor: Qt.CursorShape  # over the photo, before pressing
    paints: bool = False  # shows the brush outline
    shortcut: Qt.Key | None = None  # the canvas' key for the tool
    label: str = ""  # tool bar text and tip, for the tools a user picks
    tip: str = ""


DRAG_MODES: dict[str, Mode] = {
    "none": Mode(select_press, Cursor.ArrowCursor),
    "select": Mode(
        move_press,
        Cursor.ArrowCursor,
        shortcut=Qt.Key.Key_V,
        label="Select",
        tip="Select a face by clicking its box; drag to move the view (V)",
    ),
    "brush": Mode(
        _stroke_press(erase=False),
        Cursor.BlankCursor,
        paints=True,
        shortcut=Qt.Key.Key_B,
        label="Brush",
        tip="Paint the mask (B)",
    ),
    "eraser": Mode(
        _stroke_press(erase=True),
        Cursor.BlankCursor,
        paints=True,
        shortcut=Qt.Key.Key_E,
        label="Eraser",
        tip="Erase the mask (E)",
    ),
    "pan": Mode(PanDrag, Cursor.OpenHandCursor),
    "split": Mode(SplitDrag, Cursor.SplitHCursor),
}
