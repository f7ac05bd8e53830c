"""The layered photo canvas: layers, compare, zoom and pan, face boxes, mask painting.

Scene coordinates are EDITED-photo pixels: the edited photo sits at (0, 0) at scale 1 and
defines the frame; the original and the result are drawn scaled to that frame, the live
diffusion preview is drawn scaled over its face box, and masks (from a `MaskDocument`) are
painted in the same coordinates. Nothing here walks a whole photo on a mouse event: the
brush stroke is previewed on a temporary path item and committed on release as one undo
command; the mask overlay is recoloured only in the rectangle that changed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QLineF, QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from ..imaging import (
    MASK_KINDS,
    mask_color,
    mask_overlay,
    numpy_to_qimage,
    rgba_premultiplied_to_qimage,
)
from ..mask_document import MaskDocument

LAYERS: tuple[str, ...] = ("original", "edited", "result", "preview", "masks")
IMAGE_LAYERS: tuple[str, ...] = ("original", "edited", "result")
TOOLS: tuple[str, ...] = ("none", "brush", "eraser")
COMPARE_MODES: tuple[str, ...] = ("off", "split", "hold")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".jxl", ".heic", ".heif"}
)

MIN_ZOOM, MAX_ZOOM = 0.01, 32.0
MIN_BRUSH, MAX_BRUSH = 1, 5000
BACKGROUND = QColor(30, 30, 32)
ACCENT = QColor(64, 150, 255)
INACTIVE_MASK_OPACITY = 0.45  # the mask kind not being painted is dimmed

_Z = {
    "original": 0,
    "edited": 1,
    "result": 2,
    "preview": 3,
    "masks": 4,
    "stroke": 5,
    "boxes": 6,
    "divider": 7,
    "cursor": 8,
}


def _cosmetic_pen(color: QColor, width: float = 1.0, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


class _LayerGroup(QGraphicsRectItem):
    """An invisible container that can clip its layer (used by the split compare)."""

    def __init__(self, z: float) -> None:
        super().__init__()
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setZValue(z)

    def set_clip(self, rect: QRectF | None) -> None:
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, rect is not None)
        self.setRect(rect if rect is not None else QRectF())


class _MaskOverlayItem(QGraphicsItem):
    """A frame-sized premultiplied RGBA image, updated region by region."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.image: QImage | None = None

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return QRectF(self.image.rect()) if self.image is not None else QRectF()

    def resize(self, width: int, height: int) -> None:
        if self.image is None or self.image.size().toTuple() != (width, height):
            self.prepareGeometryChange()
            self.image = QImage(width, height, QImage.Format.Format_RGBA8888_Premultiplied)
        self.image.fill(Qt.GlobalColor.transparent)
        self.update()

    def clear(self) -> None:
        if self.image is not None:
            self.prepareGeometryChange()
            self.image = None

    def write(self, rect: QRect, patch: QImage | None) -> None:
        """Replace `rect` with `patch` (None: make it transparent)."""
        if self.image is None:
            return
        painter = QPainter(self.image)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        if patch is None:
            painter.fillRect(rect, Qt.GlobalColor.transparent)
        else:
            painter.drawImage(rect.topLeft(), patch)
        painter.end()
        self.update(QRectF(rect))

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self.image is None:
            return
        source = option.exposedRect.toAlignedRect().intersected(self.image.rect())
        if not source.isEmpty():
            painter.drawImage(QRectF(source), self.image, QRectF(source))


class _LabelItem(QGraphicsItem):
    """A small text tag of constant screen size, anchored above a face box."""

    def __init__(self, text: str, parent: QGraphicsItem) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
        self.text = text
        self.font = QFont()
        self.font.setPointSizeF(8.5)
        self.color = QColor(220, 220, 220)
        self.background = QColor(20, 20, 22, 200)
        metrics = QFontMetricsF(self.font)
        width = metrics.horizontalAdvance(text) + 8
        height = metrics.height() + 2
        self._rect = QRectF(0, -height - 2, width, height)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect.adjusted(-1, -1, 1, 1)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.background)
        painter.drawRoundedRect(self._rect, 3, 3)
        painter.setFont(self.font)
        painter.setPen(self.color)
        painter.drawText(self._rect, Qt.AlignmentFlag.AlignCenter, self.text)


class _FaceBoxItem(QGraphicsRectItem):
    def __init__(self, index: int, box, label: str, enabled: bool) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        super().__init__(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        self.index = index
        self.enabled = enabled
        self.label = _LabelItem(label, self)
        self.label.setPos(self.rect().topLeft())
        self.set_selected(False)

    def set_selected(self, selected: bool) -> None:
        if selected:
            color, width = ACCENT, 2.0
        elif self.enabled:
            color, width = QColor(235, 235, 235, 200), 1.0
        else:
            color, width = QColor(150, 150, 150, 170), 1.0
        style = Qt.PenStyle.SolidLine if self.enabled else Qt.PenStyle.DashLine
        self.setPen(_cosmetic_pen(color, width, style))
        self.label.color = ACCENT.lighter(130) if selected else QColor(220, 220, 220)
        self.label.update()


class _DividerItem(QGraphicsItem):
    """The split-compare divider: a full-height line and a round handle at mid-height."""

    def __init__(self) -> None:
        super().__init__()
        self.height = 0.0
        self.handle = _DividerHandle(self)

    def set_height(self, height: float) -> None:
        self.prepareGeometryChange()
        self.height = height
        self.handle.setPos(0, height / 2)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-1, 0, 2, self.height)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setPen(_cosmetic_pen(QColor(0, 0, 0, 140), 3))
        painter.drawLine(QLineF(0, 0, 0, self.height))
        painter.setPen(_cosmetic_pen(QColor(255, 255, 255, 230), 1))
        painter.drawLine(QLineF(0, 0, 0, self.height))


class _DividerHandle(QGraphicsItem):
    RADIUS = 11.0

    def __init__(self, parent: QGraphicsItem) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)

    def boundingRect(self) -> QRectF:  # noqa: N802
        r = self.RADIUS + 2
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        r = self.RADIUS
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(QColor(255, 255, 255, 230), 1.2))
        painter.setBrush(QColor(25, 25, 28, 220))
        painter.drawEllipse(QPointF(0, 0), r, r)
        painter.setBrush(QColor(235, 235, 235))
        painter.setPen(Qt.PenStyle.NoPen)
        for sign in (-1, 1):
            tip = QPointF(sign * 7.0, 0)
            base = sign * 2.5
            painter.drawPolygon([tip, QPointF(base, -4), QPointF(base, 4)])


class _BrushCursorItem(QGraphicsItem):
    """The brush outline (scene units, so it follows the zoom) with a small centre cross."""

    def __init__(self) -> None:
        super().__init__()
        self.radius = 20.0
        self.hardness = 1.0
        self.pixel = 1.0  # scene units per screen pixel, set by the canvas on zoom
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_radius(self, radius: float, hardness: float) -> None:
        self.prepareGeometryChange()
        self.radius = radius
        self.hardness = hardness

    def set_pixel(self, pixel: float) -> None:
        self.prepareGeometryChange()
        self.pixel = pixel

    def boundingRect(self) -> QRectF:  # noqa: N802
        r = max(self.radius, 6 * self.pixel) + 3 * self.pixel
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        r = self.radius
        # A dark halo under a light line keeps the outline visible on any photo.
        for pen in (_cosmetic_pen(QColor(0, 0, 0, 150), 3), _cosmetic_pen(QColor(255, 255, 255))):
            painter.setPen(pen)
            painter.drawEllipse(QPointF(0, 0), r, r)
        if self.hardness < 1.0 and r * self.hardness > 3 * self.pixel:
            painter.setPen(_cosmetic_pen(QColor(255, 255, 255, 110), 1, Qt.PenStyle.DashLine))
            painter.drawEllipse(QPointF(0, 0), r * self.hardness, r * self.hardness)
        arm = 4 * self.pixel
        painter.setPen(_cosmetic_pen(QColor(255, 255, 255, 220)))
        painter.drawLine(QLineF(-arm, 0, arm, 0))
        painter.drawLine(QLineF(0, -arm, 0, arm))


class LayeredCanvas(QGraphicsView):
    """Photo canvas with layers, compare, zoom/pan, face boxes and mask painting."""

    zoom_changed = Signal(float)
    face_clicked = Signal(int)
    files_dropped = Signal(list)
    brush_size_changed = Signal(int)
    brush_hardness_changed = Signal(float)
    tool_changed = Signal(str)
    compare_mode_changed = Signal(str)
    compare_hold_changed = Signal(bool)
    split_position_changed = Signal(float)
    layer_changed = Signal(str)  # visibility or opacity of a layer changed
    stroke_committed = Signal(int, str)  # face, kind: one stroke became one undo command
    active_mask_changed = Signal(object, str)  # face (int or None), kind

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self._scene.setBackgroundBrush(BACKGROUND)
        self.setScene(self._scene)
        self.setObjectName("layeredCanvas")
        self.setRenderHints(
            QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform
        )
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setMinimumSize(200, 150)

        self._groups: dict[str, _LayerGroup] = {}
        self._pixmap_items: dict[str, QGraphicsPixmapItem] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        for layer in LAYERS:
            group = _LayerGroup(_Z[layer])
            self._scene.addItem(group)
            self._groups[layer] = group
            if layer == "masks":
                continue
            item = QGraphicsPixmapItem(group)
            item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            self._pixmap_items[layer] = item
        self._mask_item = _MaskOverlayItem()
        self._mask_item.setParentItem(self._groups["masks"])
        self._visible = dict.fromkeys(LAYERS, True)
        self._opacity = dict.fromkeys(LAYERS, 1.0)
        self._opacity["masks"] = 0.5
        self._preview_box: tuple[float, float, float, float] | None = None

        self._compare_mode = "off"
        self._compare_before = "edited"
        self._split = 0.5
        self._holding = False
        self._divider = _DividerItem()
        self._divider.setZValue(_Z["divider"])
        self._divider.setVisible(False)
        self._scene.addItem(self._divider)

        self._face_boxes: dict[int, _FaceBoxItem] = {}
        self._selected_face: int | None = None

        self._document: MaskDocument | None = None
        self._active_face: int | None = None
        self._active_kind = "face"
        self._tool = "none"
        self._brush_size = 40
        self._brush_hardness = 0.8
        self._cursor = _BrushCursorItem()
        self._cursor.setZValue(_Z["cursor"])
        self._cursor.setVisible(False)
        self._scene.addItem(self._cursor)
        self._stroke_points: list[tuple[float, float]] | None = None
        self._stroke_item: QGraphicsPathItem | None = None
        self._last_stroke_end: QPointF | None = None

        self._fit_mode = True
        self._space_down = False
        self._panning = False
        self._pan_last = QPoint()
        self._dragging_divider = False
        self._mouse_hold = False
        self._update_cursor_item()
        self._update_layers()

    # ================================================================== layers
    def set_image(self, layer: str, image: np.ndarray | QImage | None) -> None:
        """Show an RGB(A) uint8 array (or QImage) on "original", "edited" or "result".

        None removes the layer's image. The edited photo defines the frame; the original
        and the result are drawn scaled to it when their sizes differ.
        """
        if layer not in IMAGE_LAYERS:
            raise ValueError(
                f"set_image takes one of {IMAGE_LAYERS}; use set_preview for 'preview' "
                "and set_mask_document for 'masks'."
            )
        old_frame = self.frame_size()
        item = self._pixmap_items[layer]
        if image is None:
            item.setPixmap(QPixmap())
            self._sizes.pop(layer, None)
        else:
            qimage = image if isinstance(image, QImage) else numpy_to_qimage(image)
            item.setPixmap(QPixmap.fromImage(qimage))
            self._sizes[layer] = (qimage.width(), qimage.height())
        if self.frame_size() != old_frame:
            self._relayout()
        else:
            self._place_layer(layer)
        self._update_layers()

    def has_image(self, layer: str) -> bool:
        self._check_layer(layer)
        if layer == "masks":
            return self._mask_item.image is not None
        return not self._pixmap_items[layer].pixmap().isNull()

    def set_preview(
        self, image: np.ndarray | QImage | None, box: tuple[float, float, float, float] | None
    ) -> None:
        """Show the live diffusion preview scaled over `box` (x0, y0, x1, y1); None hides."""
        item = self._pixmap_items["preview"]
        if image is None or box is None:
            item.setPixmap(QPixmap())
            self._preview_box = None
        else:
            qimage = image if isinstance(image, QImage) else numpy_to_qimage(image)
            item.setPixmap(QPixmap.fromImage(qimage))
            self._preview_box = tuple(float(v) for v in box)  # type: ignore[assignment]
            self._place_layer("preview")
        self._update_layers()

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        self._check_layer(layer)
        if self._visible[layer] != bool(visible):
            self._visible[layer] = bool(visible)
            self._update_layers()
            self.layer_changed.emit(layer)

    def layer_visible(self, layer: str) -> bool:
        """The user's visibility setting for a layer (compare may hide it for a while)."""
        self._check_layer(layer)
        return self._visible[layer]

    def layer_shown(self, layer: str) -> bool:
        """Whether the layer is on screen now (has content, visible, not hidden by compare)."""
        self._check_layer(layer)
        return self._groups[layer].isVisible()

    def set_layer_opacity(self, layer: str, opacity: float) -> None:
        self._check_layer(layer)
        opacity = min(1.0, max(0.0, float(opacity)))
        if self._opacity[layer] != opacity:
            self._opacity[layer] = opacity
            self._update_layers()
            self.layer_changed.emit(layer)

    def layer_opacity(self, layer: str) -> float:
        self._check_layer(layer)
        return self._opacity[layer]

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame: the edited photo, else the result, else original."""
        for layer in ("edited", "result", "original"):
            if layer in self._sizes:
                return self._sizes[layer]
        return None

    def image_rect(self) -> QRectF:
        size = self.frame_size()
        return QRectF(0, 0, *size) if size else QRectF()

    # ================================================================= compare
    def set_compare_mode(self, mode: str) -> None:
        """ "off", "split" (draggable divider: before | result) or "hold" (press to see before)."""
        if mode not in COMPARE_MODES:
            raise ValueError(f"Unknown compare mode {mode!r}; expected one of {COMPARE_MODES}.")
        if mode != self._compare_mode:
            self._compare_mode = mode
            self._update_layers()
            self.compare_mode_changed.emit(mode)

    def compare_mode(self) -> str:
        return self._compare_mode

    def set_compare_before(self, layer: str) -> None:
        """Which photo is "before" in compare: "edited" (default) or "original"."""
        if layer not in ("edited", "original"):
            raise ValueError("The 'before' of a compare is 'edited' or 'original'.")
        self._compare_before = layer
        self._update_layers()

    def compare_before(self) -> str:
        return self._compare_before

    def set_split_position(self, fraction: float) -> None:
        """Divider position as a fraction of the frame width (0 = left edge)."""
        fraction = min(1.0, max(0.0, float(fraction)))
        if fraction != self._split:
            self._split = fraction
            self._update_layers()
            self.split_position_changed.emit(fraction)

    def split_position(self) -> float:
        return self._split

    def hold_compare(self, held: bool) -> None:
        """While held, only the "before" photo is shown (the backslash key does this)."""
        held = bool(held)
        if held != self._holding:
            self._holding = held
            self._update_layers()
            self.compare_hold_changed.emit(held)

    def is_holding_compare(self) -> bool:
        return self._holding

    # ============================================================ zoom and pan
    def zoom(self) -> float:
        """Screen pixels per photo pixel (1.0 = 100 %)."""
        return self.transform().m11()

    def set_zoom(self, zoom: float, anchor: QPoint | QPointF | None = None) -> None:
        """Zoom keeping the photo point under `anchor` (viewport coords; default: centre)."""
        self._fit_mode = False
        self._apply_zoom(zoom, anchor)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * 1.25)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / 1.25)

    def zoom_100(self) -> None:
        self.set_zoom(1.0)

    def fit(self) -> None:
        """Fit the whole frame in the view; stays fitted when the view is resized."""
        self._fit_mode = True
        rect = self.image_rect()
        if rect.isEmpty():
            return
        margin = 16
        viewport = self.viewport().rect()
        scale = min(
            max(1, viewport.width() - 2 * margin) / rect.width(),
            max(1, viewport.height() - 2 * margin) / rect.height(),
        )
        old = self.zoom()
        self.setTransform(QTransform.fromScale(scale, scale))
        self.centerOn(rect.center())
        self._after_zoom(old)

    def is_fitted(self) -> bool:
        return self._fit_mode

    def image_to_view(self, x: float, y: float) -> QPoint:
        """Viewport position of a photo pixel position (for tools and tests)."""
        return self.mapFromScene(QPointF(x, y))

    def view_to_image(self, point: QPoint | QPointF) -> QPointF:
        """Photo pixel position under a viewport position."""
        return self.mapToScene(QPointF(point).toPoint())

    def _apply_zoom(self, zoom: float, anchor: QPoint | QPointF | None) -> None:
        old = self.zoom()
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, float(zoom)))
        if math.isclose(zoom, old, rel_tol=1e-9):
            return
        anchor_view = (
            QPointF(anchor) if anchor is not None else QRectF(self.viewport().rect()).center()
        )
        anchor_scene = self.mapToScene(anchor_view.toPoint())
        self.setTransform(QTransform.fromScale(zoom, zoom))
        moved = self.mapFromScene(anchor_scene) - anchor_view.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._after_zoom(old)

    def _after_zoom(self, old: float) -> None:
        zoom = self.zoom()
        mode = (
            Qt.TransformationMode.FastTransformation  # crisp pixels when peeping
            if zoom >= 2.0
            else Qt.TransformationMode.SmoothTransformation
        )
        for item in self._pixmap_items.values():
            item.setTransformationMode(mode)
        self._cursor.set_pixel(1.0 / zoom)
        if not math.isclose(zoom, old, rel_tol=1e-9):
            self.zoom_changed.emit(zoom)

    # =============================================================== face boxes
    def set_face_boxes(self, boxes) -> None:
        """Boxes as (index, (x0, y0, x1, y1), label, enabled) in edited-photo pixels."""
        for item in self._face_boxes.values():
            self._scene.removeItem(item)
        self._face_boxes = {}
        for index, box, label, enabled in boxes:
            item = _FaceBoxItem(int(index), box, str(label), bool(enabled))
            item.setZValue(_Z["boxes"])
            self._scene.addItem(item)
            self._face_boxes[int(index)] = item
        self.select_face(self._selected_face if self._selected_face in self._face_boxes else None)

    def select_face(self, index: int | None) -> None:
        """Highlight one face box (None: none)."""
        self._selected_face = index
        for i, item in self._face_boxes.items():
            item.set_selected(i == index)

    def selected_face(self) -> int | None:
        return self._selected_face

    def face_at(self, point: QPointF) -> int | None:
        """The face whose box contains a photo position (the smallest one if nested)."""
        hits = [
            (item.rect().width() * item.rect().height(), index)
            for index, item in self._face_boxes.items()
            if item.rect().contains(point)
        ]
        return min(hits)[1] if hits else None

    # ==================================================================== masks
    def set_mask_document(self, document: MaskDocument | None) -> None:
        if self._document is not None:
            self._document.changed.disconnect(self._on_mask_changed)
        self._document = document
        if document is not None:
            document.changed.connect(self._on_mask_changed)
        self._refresh_overlay()

    def mask_document(self) -> MaskDocument | None:
        return self._document

    def set_active_mask(self, face: int | None, kind: str) -> None:
        """Which face's masks are shown and which kind the brush paints."""
        if kind not in MASK_KINDS:
            raise ValueError(f"Unknown mask kind {kind!r}; expected 'face' or 'element'.")
        self._cancel_stroke()
        changed = (face, kind) != (self._active_face, self._active_kind)
        self._active_face = face
        self._active_kind = kind
        self._refresh_overlay()
        if changed:
            self.active_mask_changed.emit(face, kind)

    def active_mask(self) -> tuple[int | None, str]:
        return self._active_face, self._active_kind

    def set_tool(self, tool: str) -> None:
        """ "none" (select/pan), "brush" (add to the active mask) or "eraser"."""
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
        return self._brush_size

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        self.set_brush_size(size)

    def set_brush_size(self, size: int) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, round(size))))
        if size != self._brush_size:
            self._brush_size = size
            self._update_cursor_item()
            self.brush_size_changed.emit(size)

    @property
    def brush_hardness(self) -> float:
        """0 (soft edge all the way to the centre) .. 1 (hard edge)."""
        return self._brush_hardness

    @brush_hardness.setter
    def brush_hardness(self, hardness: float) -> None:
        self.set_brush_hardness(hardness)

    def set_brush_hardness(self, hardness: float) -> None:
        hardness = min(1.0, max(0.0, float(hardness)))
        if hardness != self._brush_hardness:
            self._brush_hardness = hardness
            self._update_cursor_item()
            self.brush_hardness_changed.emit(hardness)

    def brush_outline_radius(self) -> float:
        """Radius of the cursor outline in photo pixels (follows the brush size)."""
        return self._cursor.radius

    def brush_outline_visible(self) -> bool:
        return self._cursor.isVisible()

    # ================================================================== events
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl = mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier)
        if key == Qt.Key.Key_Space and not ctrl:
            if not event.isAutoRepeat():
                self._space_down = True
                self._update_mouse_cursor()
            event.accept()
        elif key == Qt.Key.Key_Backslash:
            if not event.isAutoRepeat():
                self.hold_compare(True)
            event.accept()
        elif key in (Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight) and not ctrl:
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self._step_hardness(key == Qt.Key.Key_BracketRight)
            else:
                self._step_brush(key == Qt.Key.Key_BracketRight)
            event.accept()
        elif key in (Qt.Key.Key_BraceLeft, Qt.Key.Key_BraceRight) and not ctrl:
            self._step_hardness(key == Qt.Key.Key_BraceRight)  # Shift+[ / ] on US layouts
            event.accept()
        elif ctrl and key == Qt.Key.Key_0:
            self.fit()
        elif ctrl and key == Qt.Key.Key_1:
            self.zoom_100()
        elif ctrl and key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif ctrl and key == Qt.Key.Key_Minus:
            self.zoom_out()
        elif not mods and key == Qt.Key.Key_B:
            self.set_tool("brush")
        elif not mods and key == Qt.Key.Key_E:
            self.set_tool("eraser")
        elif key == Qt.Key.Key_Escape and self._stroke_points is not None:
            self._cancel_stroke()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.isAutoRepeat():
            event.accept()
            return
        if event.key() == Qt.Key.Key_Space:
            self._space_down = False
            self._update_mouse_cursor()
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

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            self.set_zoom(self.zoom() * 2.0 ** (delta / 480.0), event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        button = event.button()
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._panning = True
            self._pan_last = pos.toPoint()
            self._update_mouse_cursor()
            event.accept()
            return
        if button != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        if self._near_divider(pos):
            self._dragging_divider = True
            event.accept()
            return
        scene_pos = self.mapToScene(pos.toPoint())
        if self._can_paint():
            self._begin_stroke(scene_pos, event.modifiers())
            event.accept()
            return
        if self._compare_mode == "hold" and self._tool == "none":
            self._mouse_hold = True
            self.hold_compare(True)
        face = self.face_at(scene_pos)
        if face is not None:
            self.face_clicked.emit(face)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        scene_pos = self.mapToScene(pos.toPoint())
        self._cursor.setPos(scene_pos)
        if self._panning:
            delta = pos.toPoint() - self._pan_last
            self._pan_last = pos.toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            self._fit_mode = False
        elif self._dragging_divider:
            width = self.image_rect().width()
            if width > 0:
                self.set_split_position(scene_pos.x() / width)
        elif self._stroke_points is not None:
            self._extend_stroke(scene_pos)
        self._update_mouse_cursor(pos)
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        button = event.button()
        if self._panning and button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
        elif self._dragging_divider and button == Qt.MouseButton.LeftButton:
            self._dragging_divider = False
        elif self._stroke_points is not None and button == Qt.MouseButton.LeftButton:
            self._extend_stroke(self.mapToScene(event.position().toPoint()))
            self._commit_stroke()
        elif self._mouse_hold and button == Qt.MouseButton.LeftButton:
            self._mouse_hold = False
            self.hold_compare(False)
        self._update_mouse_cursor(event.position())
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Leave:
            self._cursor.setVisible(False)
        elif event.type() == QEvent.Type.Enter:
            self._update_cursor_item()
        return super().viewportEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._fit_mode:
            self.fit()

    # Drag and drop of photo files -------------------------------------------
    @staticmethod
    def image_paths(mime) -> list[str]:
        """Local image file paths in a drag's mime data."""
        if not mime.hasUrls():
            return []
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        return [p for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES]

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self.image_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = self.image_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            event.ignore()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, BACKGROUND)
        frame = self.image_rect()
        if frame.isEmpty():
            return
        # A soft shadow and a hairline edge set the photo off the dark background.
        pixel = 1.0 / max(self.zoom(), 1e-6)
        for step, alpha in ((6, 18), (4, 26), (2, 40)):
            painter.fillRect(
                frame.adjusted(-step * pixel, -step * pixel, step * pixel, step * pixel).translated(
                    0, 2 * pixel
                ),
                QColor(0, 0, 0, alpha),
            )
        painter.fillRect(frame, QColor(45, 45, 48))
        painter.setPen(_cosmetic_pen(QColor(70, 70, 74)))
        painter.drawRect(frame)

    # =============================================================== internals
    @staticmethod
    def _check_layer(layer: str) -> None:
        if layer not in LAYERS:
            raise ValueError(f"Unknown layer {layer!r}; expected one of {LAYERS}.")

    def _relayout(self) -> None:
        rect = self.image_rect()
        if rect.isEmpty():
            self._scene.setSceneRect(QRectF(0, 0, 1, 1))
        else:
            pad = max(rect.width(), rect.height())
            self._scene.setSceneRect(rect.adjusted(-pad, -pad, pad, pad))
        for layer in ("original", "edited", "result", "preview"):
            self._place_layer(layer)
        self._divider.set_height(rect.height())
        self._refresh_overlay()
        self.fit()

    def _place_layer(self, layer: str) -> None:
        item = self._pixmap_items[layer]
        pixmap = item.pixmap()
        if pixmap.isNull():
            return
        if layer == "preview":
            if self._preview_box is None:
                return
            x0, y0, x1, y1 = self._preview_box
            item.setPos(x0, y0)
            item.setTransform(
                QTransform.fromScale((x1 - x0) / pixmap.width(), (y1 - y0) / pixmap.height())
            )
            return
        frame = self.frame_size()
        item.setPos(0, 0)
        if frame is None or frame == (pixmap.width(), pixmap.height()):
            item.setTransform(QTransform())
        else:
            item.setTransform(
                QTransform.fromScale(frame[0] / pixmap.width(), frame[1] / pixmap.height())
            )

    def _update_layers(self) -> None:
        visible = dict(self._visible)
        opacity = dict(self._opacity)
        clips: dict[str, QRectF | None] = dict.fromkeys(LAYERS)
        before = self._compare_before
        if not self.has_image(before):
            before = "edited" if before == "original" else "original"
        frame = self.image_rect()
        split = (
            self._compare_mode == "split"
            and not self._holding
            and self.has_image("result")
            and not frame.isEmpty()
        )
        if self._holding:
            visible = dict.fromkeys(LAYERS, False)
            visible[before] = True
            opacity[before] = 1.0
        elif split:
            x = frame.width() * self._split
            visible["result"] = visible[before] = True
            visible["edited" if before == "original" else "original"] = False
            opacity["result"] = opacity[before] = 1.0
            clips[before] = QRectF(0, 0, x, frame.height())
            clips["result"] = QRectF(x, 0, frame.width() - x, frame.height())
            clips["preview"] = clips["result"]
        for layer in LAYERS:
            group = self._groups[layer]
            group.set_clip(clips[layer])
            group.setOpacity(opacity[layer])
            group.setVisible(visible[layer] and self.has_image(layer))
        self._divider.setVisible(split)
        if split:
            self._divider.setPos(frame.width() * self._split, 0)

    def _near_divider(self, pos: QPointF) -> bool:
        if not self._divider.isVisible():
            return False
        x = self.mapFromScene(self._divider.pos()).x()
        return abs(pos.x() - x) <= 6

    # Masks and painting -------------------------------------------------------
    def _doc_matches_frame(self) -> bool:
        doc = self._document
        return (
            doc is not None and doc.image_size is not None and doc.image_size == self.frame_size()
        )

    def _refresh_overlay(self, region: QRect | None = None) -> None:
        item = self._mask_item
        doc = self._document
        if doc is None or self._active_face is None or not self._doc_matches_frame():
            item.clear()
            self._update_layers()
            return
        width, height = doc.image_size
        face = self._active_face
        masks = {
            kind: doc.mask_view(face, kind) if doc.has_mask(face, kind) else None
            for kind in MASK_KINDS
        }
        if region is None:
            item.resize(width, height)
            region = QRect()
            for mask in masks.values():
                if mask is not None:
                    region = region.united(MaskDocument._nonzero_rect(mask))
        region = region.intersected(QRect(0, 0, width, height))
        if not region.isEmpty():
            y0, y1 = region.y(), region.y() + region.height()
            x0, x1 = region.x(), region.x() + region.width()
            crops = {k: (m[y0:y1, x0:x1] if m is not None else None) for k, m in masks.items()}
            if crops["face"] is None and crops["element"] is None:
                item.write(region, None)
            else:
                rgba = mask_overlay(
                    crops["face"],
                    crops["element"],
                    face_opacity=1.0 if self._active_kind == "face" else INACTIVE_MASK_OPACITY,
                    element_opacity=(
                        1.0 if self._active_kind == "element" else INACTIVE_MASK_OPACITY
                    ),
                )
                item.write(region, rgba_premultiplied_to_qimage(rgba))
        self._update_layers()

    def _on_mask_changed(self, face: int, kind: str, region: QRect) -> None:
        if face != self._active_face:
            return
        if region.isEmpty() or self._mask_item.image is None:
            self._refresh_overlay()
        else:
            self._refresh_overlay(region)

    def _can_paint(self) -> bool:
        if self._tool not in ("brush", "eraser") or self._active_face is None:
            return False
        doc = self._document
        if doc is None or self.frame_size() is None:
            return False
        if doc.image_size is None and not doc.faces():
            doc.reset(self.frame_size())  # no auto masks yet: start from empty ones
        return self._doc_matches_frame()

    def _begin_stroke(self, scene_pos: QPointF, modifiers) -> None:
        start = scene_pos
        self._stroke_points = []
        if modifiers & Qt.KeyboardModifier.ShiftModifier and self._last_stroke_end is not None:
            start = self._last_stroke_end  # Shift-click: straight line from the last stroke
            self._stroke_points.append((start.x(), start.y()))
        self._stroke_points.append((scene_pos.x(), scene_pos.y()))
        color = (
            QColor(15, 15, 18, 150)
            if self._tool == "eraser"
            else QColor(mask_color(self._active_kind))
        )
        if self._tool != "eraser":
            color.setAlpha(140)
        pen = QPen(color, self._brush_size, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        path = QPainterPath(start)
        path.lineTo(scene_pos + QPointF(0.01, 0))
        self._stroke_item = QGraphicsPathItem(path)
        self._stroke_item.setPen(pen)
        self._stroke_item.setZValue(_Z["stroke"])
        self._scene.addItem(self._stroke_item)

    def _extend_stroke(self, scene_pos: QPointF) -> None:
        if self._stroke_points is None or self._stroke_item is None:
            return
        last = self._stroke_points[-1]
        if (scene_pos.x(), scene_pos.y()) == last:
            return
        self._stroke_points.append((scene_pos.x(), scene_pos.y()))
        path = self._stroke_item.path()
        path.lineTo(scene_pos)
        self._stroke_item.setPath(path)

    def _commit_stroke(self) -> None:
        points = self._stroke_points or []
        self._remove_stroke_item()
        if not points or self._document is None or self._active_face is None:
            return
        self._last_stroke_end = QPointF(*points[-1])
        command = self._document.paint(
            self._active_face,
            self._active_kind,
            points,
            radius=self._brush_size / 2.0,
            hardness=self._brush_hardness,
            erase=self._tool == "eraser",
        )
        if command is not None:
            self.stroke_committed.emit(self._active_face, self._active_kind)

    def _cancel_stroke(self) -> None:
        self._remove_stroke_item()

    def _remove_stroke_item(self) -> None:
        if self._stroke_item is not None:
            self._scene.removeItem(self._stroke_item)
        self._stroke_item = None
        self._stroke_points = None

    def stroke_in_progress(self) -> bool:
        return self._stroke_points is not None

    def _step_brush(self, up: bool) -> None:
        size = self._brush_size
        self.set_brush_size(
            max(size + 1, round(size * 1.15)) if up else min(size - 1, round(size / 1.15))
        )

    def _step_hardness(self, up: bool) -> None:
        self.set_brush_hardness(self._brush_hardness + (0.25 if up else -0.25))

    def _update_cursor_item(self) -> None:
        self._cursor.set_radius(self._brush_size / 2.0, self._brush_hardness)
        painting = self._tool in ("brush", "eraser")
        under_mouse = self.viewport().underMouse() or not self.isVisible()
        self._cursor.setVisible(painting and under_mouse)
        self._update_mouse_cursor()

    def _update_mouse_cursor(self, pos: QPointF | None = None) -> None:
        viewport = self.viewport()
        if self._panning:
            shape = Qt.CursorShape.ClosedHandCursor
        elif self._space_down:
            shape = Qt.CursorShape.OpenHandCursor
        elif self._dragging_divider or (pos is not None and self._near_divider(pos)):
            shape = Qt.CursorShape.SplitHCursor
        elif self._tool in ("brush", "eraser"):
            shape = Qt.CursorShape.BlankCursor  # the outline item is the cursor
        else:
            shape = Qt.CursorShape.ArrowCursor
        if shape != Qt.CursorShape.BlankCursor:
            self._cursor.setVisible(False)  # panning or on the divider: no brush outline
        elif pos is not None:
            self._cursor.setVisible(True)
        viewport.setCursor(shape)
