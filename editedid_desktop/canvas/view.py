"""`PhotoView`: a zoomable, pannable view of one photo frame, which accepts dropped photos.

Zoom is DEVICE pixels per photo pixel, as in Photoshop: at 100 % one photo pixel is one
pixel of the display, also at 200 % scaling (the view's transform, in logical pixels, is
then 0.5). The canvas' outlines use cosmetic pens, so they stay one pixel wide there.
The view knows nothing of layers or tools: a subclass tells it the frame (`image_rect`)
and hears about zoom changes through `_zoom_applied`.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from engine.io.folders import IMAGE_EXTENSIONS

from .items import cosmetic_pen

# What the engine opens (camera RAW, HEIC and AVIF included), and nothing it refuses; in
# both cases, for the open dialog's filter: Qt's own dialog matches names case-sensitively
# on Linux, and cameras name their files IMG_0001.CR2.
IMAGE_SUFFIXES = frozenset(IMAGE_EXTENSIONS) | {s.upper() for s in IMAGE_EXTENSIONS}
MIN_ZOOM, MAX_ZOOM = 0.01, 32.0
FIT_MARGIN = 16  # screen pixels around a fitted photo
BACKGROUND = QColor(30, 30, 32)


class PhotoView(QGraphicsView):
    """Zoom (fit, 100 %, steps, wheel about the cursor), pan by scrolling, photo drops."""

    zoom_changed = Signal(float)
    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self._scene.setBackgroundBrush(BACKGROUND)
        self.setScene(self._scene)
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
        self._fit_mode = True

    def image_rect(self) -> QRectF:
        """The photo frame in scene coordinates (empty: nothing to show)."""
        return QRectF()

    def _zoom_applied(self, zoom: float) -> None:
        """Called after every zoom change (for a subclass to adapt its items)."""

    # ================================================================= zoom
    def device_ratio(self) -> float:
        """Device pixels per logical pixel of the screen the view is on (2.0 at 200 %)."""
        return max(float(self.devicePixelRatioF()), 1e-6)

    def zoom(self) -> float:
        """Device (display) pixels per photo pixel (1.0 = 100 %)."""
        return self.transform().m11() * self.device_ratio()

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
        viewport = self.viewport().rect()
        scale = min(
            max(1, viewport.width() - 2 * FIT_MARGIN) / rect.width(),
            max(1, viewport.height() - 2 * FIT_MARGIN) / rect.height(),
        )
        old = self.zoom()
        self.setTransform(QTransform.fromScale(scale, scale))
        self.centerOn(rect.center())
        self._after_zoom(old)

    def is_fitted(self) -> bool:
        return self._fit_mode

    def scroll_by(self, dx: int, dy: int) -> None:
        """Pan: move the photo by (dx, dy) screen pixels; the view stops being fitted."""
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - dx)
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() - dy)
        self._fit_mode = False

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
        scale = zoom / self.device_ratio()
        self.setTransform(QTransform.fromScale(scale, scale))
        moved = self.mapFromScene(anchor_scene) - anchor_view.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._after_zoom(old)

    def _after_zoom(self, old: float) -> None:
        zoom = self.zoom()
        self._zoom_applied(zoom)
        if not math.isclose(zoom, old, rel_tol=1e-9):
            self.zoom_changed.emit(zoom)

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            self.set_zoom(self.zoom() * 2.0 ** (delta / 480.0), event.position())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._fit_mode:
            self.fit()

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, BACKGROUND)
        frame = self.image_rect()
        if frame.isEmpty():
            return
        # A soft shadow and a hairline edge set the photo off the dark background.
        pixel = 1.0 / max(self.transform().m11(), 1e-6)  # scene units per screen pixel
        for step, alpha in ((6, 18), (4, 26), (2, 40)):
            margin = step * pixel
            shadow = frame.adjusted(-margin, -margin, margin, margin).translated(0, 2 * pixel)
            painter.fillRect(shadow, QColor(0, 0, 0, alpha))
        painter.fillRect(frame, QColor(45, 45, 48))
        painter.setPen(cosmetic_pen(QColor(70, 70, 74)))
        painter.drawRect(frame)

    # ======================================================== photo file drops
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
