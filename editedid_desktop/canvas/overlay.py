"""The mask overlay: one face's face and element masks from a mask document, coloured.

Only the document's public methods are used (`image_size`, `faces`, `reset`, `has_mask`,
`mask_view`, `paint` and its `changed(face, kind, rect)` signal). A change recolours only
the rectangle it reports; a full refresh walks the masks once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRect

from ..imaging import MASK_KINDS, mask_overlay, rgba_premultiplied_to_qimage
from .items import MaskOverlayItem

if TYPE_CHECKING:
    from ..mask_document import MaskDocument

INACTIVE_MASK_OPACITY = 0.45  # the mask kind not being painted is dimmed


def nonzero_rect(array: np.ndarray) -> QRect:
    """The bounding rectangle of the non-zero pixels of a 2-D array (empty if none)."""
    rows = np.flatnonzero(array.any(axis=1))
    if rows.size == 0:
        return QRect()
    cols = np.flatnonzero(array[rows[0] : rows[-1] + 1].any(axis=0))
    return QRect(
        int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
    )


class MaskLayer:
    """The active face's masks drawn on an overlay item, kept in step with the document.

    `frame_size` tells the canvas' current frame (masks are shown only when the document
    has the same size); `refreshed` runs after every redraw (the canvas re-evaluates which
    layers are shown, since an empty overlay hides the masks layer).
    """

    def __init__(
        self,
        item: MaskOverlayItem,
        frame_size: Callable[[], tuple[int, int] | None],
        refreshed: Callable[[], None],
    ) -> None:
        self.item = item
        self._frame_size = frame_size
        self._refreshed = refreshed
        self.document: MaskDocument | None = None
        self.face: int | None = None
        self.kind = "face"

    def set_document(self, document: MaskDocument | None) -> None:
        if self.document is not None:
            self.document.changed.disconnect(self._on_changed)
        self.document = document
        if document is not None:
            document.changed.connect(self._on_changed)
        self.refresh()

    def set_active(self, face: int | None, kind: str) -> bool:
        """Show `face`'s masks with `kind` at full strength; True when that changed."""
        if kind not in MASK_KINDS:
            raise ValueError(f"Unknown mask kind {kind!r}; expected 'face' or 'element'.")
        changed = (face, kind) != (self.face, self.kind)
        self.face, self.kind = face, kind
        self.refresh()
        return changed

    def matches_frame(self) -> bool:
        doc = self.document
        return (
            doc is not None
            and doc.image_size is not None
            and doc.image_size == (self._frame_size())
        )

    def can_paint(self) -> bool:
        """Whether a stroke can go to the active mask now (starts empty masks if none)."""
        doc, frame = self.document, self._frame_size()
        if self.face is None or doc is None or frame is None:
            return False
        if doc.image_size is None and not doc.faces():
            doc.reset(frame)  # no auto masks yet: start from empty ones
        return self.matches_frame()

    def refresh(self, region: QRect | None = None) -> None:
        """Redraw `region` of the overlay (None: all of it) from the document."""
        doc = self.document
        if doc is None or self.face is None or not self.matches_frame():
            self.item.clear()
            self._refreshed()
            return
        width, height = doc.image_size
        masks = {
            kind: doc.mask_view(self.face, kind) if doc.has_mask(self.face, kind) else None
            for kind in MASK_KINDS
        }
        if region is None:
            self.item.resize(width, height)
            region = QRect()
            for mask in masks.values():
                if mask is not None:
                    region = region.united(nonzero_rect(mask))
        region = region.intersected(QRect(0, 0, width, height))
        if not region.isEmpty():
            self._draw(region, masks)
        self._refreshed()

    def _draw(self, region: QRect, masks: dict[str, np.ndarray | None]) -> None:
        y0, y1 = region.y(), region.y() + region.height()
        x0, x1 = region.x(), region.x() + region.width()
        crops = {k: (m[y0:y1, x0:x1] if m is not None else None) for k, m in masks.items()}
        if crops["face"] is None and crops["element"] is None:
            self.item.write(region, None)
            return
        opacity = {k: 1.0 if k == self.kind else INACTIVE_MASK_OPACITY for k in MASK_KINDS}
        rgba = mask_overlay(
            crops["face"],
            crops["element"],
            face_opacity=opacity["face"],
            element_opacity=opacity["element"],
        )
        self.item.write(region, rgba_premultiplied_to_qimage(rgba))

    def _on_changed(self, face: int, kind: str, region: QRect) -> None:
        if face != self.face:
            return
        if region.isEmpty() or self.item.image is None:
            self.refresh()
        else:
            self.refresh(region)
