"""What the canvas shows: the photo layers with the compare, and the face boxes.

`LayerStack` owns one clipping group per layer (original, edited, result, preview, masks),
the user's visibility and opacity per layer, and the compare state (split at a divider, or
hold to see "before"); `update()` turns all of that into what is on screen. The edited
photo defines the frame; the original and the result are drawn scaled to it, the live
diffusion preview scaled over its face box.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene

from ..imaging import numpy_to_qimage
from .items import DividerItem, FaceBoxItem, LayerGroup, MaskOverlayItem, Z

LAYERS: tuple[str, ...] = ("original", "edited", "result", "preview", "masks")
IMAGE_LAYERS: tuple[str, ...] = ("original", "edited", "result")
COMPARE_MODES: tuple[str, ...] = ("off", "split", "hold")
FRAME_LAYERS: tuple[str, ...] = ("edited", "result", "original")  # which one sets the frame


def _other_photo(layer: str) -> str:
    return "edited" if layer == "original" else "original"


def check_layer(layer: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"Unknown layer {layer!r}; expected one of {LAYERS}.")


class LayerStack:
    """The photo layers of a scene, their visibility and opacity, and the compare."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self.scene = scene
        self.groups: dict[str, LayerGroup] = {}
        self.pixmap_items: dict[str, QGraphicsPixmapItem] = {}
        self.sizes: dict[str, tuple[int, int]] = {}
        for layer in LAYERS:
            group = LayerGroup(Z[layer])
            scene.addItem(group)
            self.groups[layer] = group
            if layer == "masks":
                continue
            item = QGraphicsPixmapItem(group)
            item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
            item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
            self.pixmap_items[layer] = item
        self.mask_item = MaskOverlayItem()
        self.mask_item.setParentItem(self.groups["masks"])
        self.visible = dict.fromkeys(LAYERS, True)
        self.opacity = dict.fromkeys(LAYERS, 1.0)
        self.opacity["masks"] = 0.5
        self.preview_box: tuple[float, float, float, float] | None = None
        # per-face previews of a run (face index -> item, box), beside the one above
        self.face_previews: dict[int, tuple[QGraphicsPixmapItem, tuple[float, ...]]] = {}

        self.compare_mode = "off"
        self.before = "edited"  # the "before" photo of a compare
        self.split = 0.5
        self.holding = False
        self.divider = DividerItem()
        self.divider.setVisible(False)
        scene.addItem(self.divider)

    # ------------------------------------------------------------- content
    def set_image(self, layer: str, image: np.ndarray | QImage | None) -> bool:
        """Show `image` on a photo layer (None: remove it); True when the frame changed."""
        if layer not in IMAGE_LAYERS:
            raise ValueError(
                f"set_image takes one of {IMAGE_LAYERS}; use set_preview for 'preview' "
                "and set_mask_document for 'masks'."
            )
        old_frame = self.frame_size()
        item = self.pixmap_items[layer]
        if image is None:
            item.setPixmap(QPixmap())
            self.sizes.pop(layer, None)
        else:
            qimage = image if isinstance(image, QImage) else numpy_to_qimage(image)
            item.setPixmap(QPixmap.fromImage(qimage))
            self.sizes[layer] = (qimage.width(), qimage.height())
        if self.frame_size() != old_frame:
            return True
        self.place(layer)
        return False

    def set_preview(
        self,
        image: np.ndarray | QImage | None,
        box: tuple[float, float, float, float] | None,
        face: int | None = None,
    ) -> None:
        """The run's preview over `box`; with `face`, that face's own preview item (a
        run shows one per face, each in its place; RGBA images blend by their alpha).
        image None clears that face's preview, or with face None every preview."""
        if face is not None:
            self._set_face_preview(face, image, box)
            return
        item = self.pixmap_items["preview"]
        if image is None or box is None:
            item.setPixmap(QPixmap())
            self.preview_box = None
            for face_item, _ in self.face_previews.values():
                self.scene.removeItem(face_item)
            self.face_previews.clear()
        else:
            item.setPixmap(QPixmap.fromImage(_qimage(image)))
            self.preview_box = tuple(float(v) for v in box)  # type: ignore[assignment]
            self.place("preview")

    def _set_face_preview(self, face: int, image, box) -> None:
        old = self.face_previews.pop(face, None)
        if image is None or box is None:
            if old is not None:
                self.scene.removeItem(old[0])
            return
        item = old[0] if old is not None else QGraphicsPixmapItem(self.groups["preview"])
        item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
        item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        item.setPixmap(QPixmap.fromImage(_qimage(image)))
        self.face_previews[face] = (item, tuple(float(v) for v in box))
        _place_on_box(item, self.face_previews[face][1])

    def has_image(self, layer: str) -> bool:
        check_layer(layer)
        if layer == "masks":
            return self.mask_item.image is not None
        if layer == "preview" and self.face_previews:
            return True
        return not self.pixmap_items[layer].pixmap().isNull()

    def frame_size(self) -> tuple[int, int] | None:
        for layer in FRAME_LAYERS:
            if layer in self.sizes:
                return self.sizes[layer]
        return None

    def image_rect(self) -> QRectF:
        size = self.frame_size()
        return QRectF(0, 0, *size) if size else QRectF()

    def set_transformation_mode(self, mode: Qt.TransformationMode) -> None:
        for item in self.pixmap_items.values():
            item.setTransformationMode(mode)

    # ------------------------------------------------------------- settings
    # Each setter returns True when something changed (the canvas then emits its signal).
    def set_visible(self, layer: str, visible: bool) -> bool:
        check_layer(layer)
        if self.visible[layer] == bool(visible):
            return False
        self.visible[layer] = bool(visible)
        self.update()
        return True

    def set_opacity(self, layer: str, opacity: float) -> bool:
        check_layer(layer)
        opacity = min(1.0, max(0.0, float(opacity)))
        if self.opacity[layer] == opacity:
            return False
        self.opacity[layer] = opacity
        self.update()
        return True

    def set_compare_mode(self, mode: str) -> bool:
        if mode not in COMPARE_MODES:
            raise ValueError(f"Unknown compare mode {mode!r}; expected one of {COMPARE_MODES}.")
        if mode == self.compare_mode:
            return False
        self.compare_mode = mode
        self.update()
        return True

    def set_before(self, layer: str) -> None:
        if layer not in ("edited", "original"):
            raise ValueError("The 'before' of a compare is 'edited' or 'original'.")
        self.before = layer
        self.update()

    def set_split(self, fraction: float) -> bool:
        fraction = min(1.0, max(0.0, float(fraction)))
        if fraction == self.split:
            return False
        self.split = fraction
        self.update()
        return True

    def set_holding(self, held: bool) -> bool:
        if bool(held) == self.holding:
            return False
        self.holding = bool(held)
        self.update()
        return True

    # ------------------------------------------------------------- layout
    def relayout(self) -> None:
        """After the frame changed: scene rect, every layer's placement, divider height."""
        rect = self.image_rect()
        if rect.isEmpty():
            self.scene.setSceneRect(QRectF(0, 0, 1, 1))
        else:
            pad = max(rect.width(), rect.height())  # room to pan the photo off-centre
            self.scene.setSceneRect(rect.adjusted(-pad, -pad, pad, pad))
        for layer in ("original", "edited", "result", "preview"):
            self.place(layer)
        self.divider.set_height(rect.height())

    def place(self, layer: str) -> None:
        """Scale a layer's pixmap onto the frame (the preview: onto its face box)."""
        item = self.pixmap_items[layer]
        pixmap = item.pixmap()
        if pixmap.isNull() and layer != "preview":
            return
        if layer == "preview":
            for face_item, box in self.face_previews.values():
                _place_on_box(face_item, box)
            if self.preview_box is not None:
                _place_on_box(item, self.preview_box)
            return
        frame = self.frame_size()
        item.setPos(0, 0)
        if frame is None or frame == (pixmap.width(), pixmap.height()):
            item.setTransform(QTransform())
        else:
            item.setTransform(
                QTransform.fromScale(frame[0] / pixmap.width(), frame[1] / pixmap.height())
            )

    def compare_view(self) -> tuple[str, str] | None:
        """("hold", before) while "before" is held, ("split", before) while the split
        shows before | result, else None; `before` is the photo layer shown as before."""
        before = self.before if self.has_image(self.before) else _other_photo(self.before)
        if self.holding:
            return "hold", before
        if (
            self.compare_mode == "split"
            and self.has_image("result")
            and not self.image_rect().isEmpty()
        ):
            return "split", before
        return None

    def update(self) -> None:
        """Show, hide, fade and clip the layers for the settings and the compare."""
        visible = dict(self.visible)
        opacity = dict(self.opacity)
        clips: dict[str, QRectF | None] = dict.fromkeys(LAYERS)
        view = self.compare_view()
        before = self.before if self.has_image(self.before) else _other_photo(self.before)
        frame = self.image_rect()
        split = view is not None and view[0] == "split"
        if self.holding:
            visible = dict.fromkeys(LAYERS, False)
            visible[before] = True
            opacity[before] = 1.0
        elif split:
            x = frame.width() * self.split
            visible["result"] = visible[before] = True
            visible[_other_photo(before)] = False
            opacity["result"] = opacity[before] = 1.0
            clips[before] = QRectF(0, 0, x, frame.height())
            clips["result"] = QRectF(x, 0, frame.width() - x, frame.height())
            clips["preview"] = clips["result"]
        if self.has_image("preview"):
            visible["masks"] = False  # a run previews: the overlay would hide its steps
        for layer in LAYERS:
            group = self.groups[layer]
            group.set_clip(clips[layer])
            group.setOpacity(opacity[layer])
            group.setVisible(visible[layer] and self.has_image(layer))
        self.divider.setVisible(split)
        if split:
            self.divider.setPos(frame.width() * self.split, 0)


class FaceBoxes:
    """The detected faces' boxes in a scene, one of them highlighted."""

    def __init__(self, scene: QGraphicsScene) -> None:
        self.scene = scene
        self.items: dict[int, FaceBoxItem] = {}
        self.selected: int | None = None

    def set(self, boxes) -> None:
        """Boxes as (index, (x0, y0, x1, y1), label, enabled) in edited-photo pixels."""
        for item in self.items.values():
            self.scene.removeItem(item)
        self.items = {}
        for index, box, label, enabled in boxes:
            item = FaceBoxItem(int(index), box, str(label), bool(enabled))
            self.scene.addItem(item)
            self.items[int(index)] = item
        self.select(self.selected if self.selected in self.items else None)

    def select(self, index: int | None) -> None:
        self.selected = index
        for i, item in self.items.items():
            item.set_selected(i == index)

    def contains(self, index: int | None, point: QPointF) -> bool:
        item = self.items.get(index) if index is not None else None
        return item is not None and item.rect().contains(point)

    def box(self, index: int | None) -> tuple[float, float, float, float] | None:
        item = self.items.get(index) if index is not None else None
        return None if item is None else item.rect().getCoords()

    def boxes_except(self, index: int | None) -> list[tuple[float, float, float, float]]:
        """The boxes of every face but `index` (where its brush must not go)."""
        return [item.rect().getCoords() for i, item in self.items.items() if i != index]

    def at(self, point: QPointF) -> int | None:
        """The face whose box contains `point` (the smallest one if nested)."""
        hits = [
            (item.rect().width() * item.rect().height(), index)
            for index, item in self.items.items()
            if item.rect().contains(point)
        ]
        return min(hits)[1] if hits else None


def _qimage(image: np.ndarray | QImage) -> QImage:
    return image if isinstance(image, QImage) else numpy_to_qimage(image)


def _place_on_box(item: QGraphicsPixmapItem, box: tuple[float, ...]) -> None:
    """Scale a pixmap item onto a scene box (x0, y0, x1, y1)."""
    pixmap = item.pixmap()
    if pixmap.isNull():
        return
    x0, y0, x1, y1 = box
    item.setPos(x0, y0)
    item.setTransform(QTransform.fromScale((x1 - x0) / pixmap.width(), (y1 - y0) / pixmap.height()))
