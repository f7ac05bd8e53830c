"""The graphics items the canvas puts in its scene, each drawing one thing.

Outlines use cosmetic pens and labels ignore the view's transform, so they keep one screen
size at any zoom and on any display scale; photos and masks are drawn in scene units
(edited-photo pixels).
"""

from __future__ import annotations

from PySide6.QtCore import QLineF, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QStyleOptionGraphicsItem,
)

ACCENT = QColor(64, 150, 255)

# Stacking order of everything in the scene, bottom to top.
Z = {
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


def cosmetic_pen(color: QColor, width: float = 1.0, style=Qt.PenStyle.SolidLine) -> QPen:
    """A pen `width` screen pixels wide whatever the zoom."""
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


class LayerGroup(QGraphicsRectItem):
    """An invisible container that can clip its layer (used by the split compare)."""

    def __init__(self, z: float) -> None:
        super().__init__()
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.setZValue(z)

    def set_clip(self, rect: QRectF | None) -> None:
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, rect is not None)
        self.setRect(rect if rect is not None else QRectF())


class MaskOverlayItem(QGraphicsItem):
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


class StrokeItem(QGraphicsPathItem):
    """The live brush stroke: a round-capped path, replaced by the mask on release."""

    def __init__(self, start: QPointF, first: QPointF, color: QColor, width: float) -> None:
        path = QPainterPath(start)
        path.lineTo(first + QPointF(0.01, 0))  # a zero-length path would draw nothing
        super().__init__(path)
        pen = QPen(color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        self.setPen(pen)
        self.setZValue(Z["stroke"])

    def line_to(self, point: QPointF) -> None:
        path = self.path()
        path.lineTo(point)
        self.setPath(path)


class LabelItem(QGraphicsItem):
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


class FaceBoxItem(QGraphicsRectItem):
    """One detected face: its box (dashed when the face is not restored) and its label."""

    def __init__(self, index: int, box, label: str, enabled: bool) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        super().__init__(QRectF(QPointF(x0, y0), QPointF(x1, y1)).normalized())
        self.index = index
        self.enabled = enabled
        self.label = LabelItem(label, self)
        self.label.setPos(self.rect().topLeft())
        self.setZValue(Z["boxes"])
        self.set_selected(False)

    def set_selected(self, selected: bool) -> None:
        if selected:
            color, width = ACCENT, 2.0
        elif self.enabled:
            color, width = QColor(235, 235, 235, 200), 1.0
        else:
            color, width = QColor(150, 150, 150, 170), 1.0
        style = Qt.PenStyle.SolidLine if self.enabled else Qt.PenStyle.DashLine
        self.setPen(cosmetic_pen(color, width, style))
        self.label.color = ACCENT.lighter(130) if selected else QColor(220, 220, 220)
        self.label.update()


class DividerItem(QGraphicsItem):
    """The split-compare divider: a full-height line and a round handle at mid-height."""

    def __init__(self) -> None:
        super().__init__()
        self.height = 0.0
        self.handle = DividerHandle(self)
        self.setZValue(Z["divider"])

    def set_height(self, height: float) -> None:
        self.prepareGeometryChange()
        self.height = height
        self.handle.setPos(0, height / 2)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-1, 0, 2, self.height)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setPen(cosmetic_pen(QColor(0, 0, 0, 140), 3))
        painter.drawLine(QLineF(0, 0, 0, self.height))
        painter.setPen(cosmetic_pen(QColor(255, 255, 255, 230), 1))
        painter.drawLine(QLineF(0, 0, 0, self.height))


class DividerHandle(QGraphicsItem):
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


class BrushCursorItem(QGraphicsItem):
    """The brush outline (scene units, so it follows the zoom) with a small centre cross."""

    def __init__(self) -> None:
        super().__init__()
        self.radius = 20.0
        self.hardness = 1.0
        self.pixel = 1.0  # scene units per screen pixel, set by the canvas on zoom
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(Z["cursor"])

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
        for pen in (cosmetic_pen(QColor(0, 0, 0, 150), 3), cosmetic_pen(QColor(255, 255, 255))):
            painter.setPen(pen)
            painter.drawEllipse(QPointF(0, 0), r, r)
        if self.hardness < 1.0 and r * self.hardness > 3 * self.pixel:
            painter.setPen(cosmetic_pen(QColor(255, 255, 255, 110), 1, Qt.PenStyle.DashLine))
            painter.drawEllipse(QPointF(0, 0), r * self.hardness, r * self.hardness)
        arm = 4 * self.pixel
        painter.setPen(cosmetic_pen(QColor(255, 255, 255, 220)))
        painter.drawLine(QLineF(-arm, 0, arm, 0))
        painter.drawLine(QLineF(0, -arm, 0, arm))
