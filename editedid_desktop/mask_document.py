"""The Qt side of the masks: `model.masks.MaskModel` behind a QObject with a QUndoStack.

`MaskDocument` keeps the public API the canvas and the tool bar use (``changed`` with a
QRect, ``paint``/``clear``/``invert``/``reset_to_auto`` as undo commands, ``undo_stack``)
and forwards everything else to its `MaskModel` (``document.model``). Each `MaskEdit`
the model returns becomes one `MaskEditCommand`; why the history is a QUndoStack and
not a plain list is told in `model.masks`.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from .model.masks import Key, MaskEdit, MaskModel, MaskPairs, Rect

UNDO_LIMIT = 200


def to_qrect(rect: Rect) -> QRect:
    return QRect() if rect.empty else QRect(rect.x, rect.y, rect.width, rect.height)


class MaskEditCommand(QUndoCommand):
    """One `MaskEdit` on the undo stack. The model applied it already when it was made,
    so the push's first `redo` has nothing to do."""

    def __init__(self, model: MaskModel, edit: MaskEdit) -> None:
        super().__init__(edit.text)
        self.model = model
        self.edit = edit
        self._applied = True

    @property
    def rect(self) -> QRect:
        return to_qrect(self.edit.rect)

    @property
    def keys(self) -> set[Key]:
        return self.edit.keys

    def byte_size(self) -> int:
        """Memory held by this command's pixels (a rectangle before and after)."""
        return self.edit.byte_size()

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self.model.redo(self.edit)

    def undo(self) -> None:
        self.model.undo(self.edit)


class MaskDocument(QObject):
    """All editable masks of one photo pair, with undo (see `model.masks.MaskModel`).

    ``changed(face, kind, region)`` is emitted after every change of a current mask with
    the rectangle that changed (the whole frame for auto masks and invert).
    """

    changed = Signal(int, str, QRect)

    def __init__(self, parent: QObject | None = None, model: MaskModel | None = None) -> None:
        super().__init__(parent)
        self.model = model if model is not None else MaskModel()
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self.model.changed.connect(self._forward_change)

    def _forward_change(self, face: int, kind: str, rect: Rect) -> None:
        self.changed.emit(face, kind, to_qrect(rect))

    def _push(self, edit: MaskEdit | None) -> MaskEditCommand | None:
        if edit is None:
            return None
        command = MaskEditCommand(self.model, edit)
        self.undo_stack.push(command)
        return command

    # -- reading (the model's) ---------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int] | None:
        return self.model.image_size

    def faces(self) -> list[int]:
        return self.model.faces()

    def has_mask(self, face: int, kind: str) -> bool:
        return self.model.has_mask(face, kind)

    def mask(self, face: int, kind: str) -> np.ndarray:
        return self.model.mask(face, kind)

    def mask_view(self, face: int, kind: str) -> np.ndarray:
        return self.model.mask_view(face, kind)

    def is_edited(self, face: int, kind: str) -> bool:
        return self.model.is_edited(face, kind)

    def user_masks(self) -> MaskPairs:
        return self.model.user_masks()

    # -- changes --------------------------------------------------------------------------
    def reset(self, size: tuple[int, int] | None = None) -> None:
        """Drop every mask and the undo history (new photos); optionally fix the size."""
        self.undo_stack.clear()
        self.model.reset(size)

    def set_auto(self, face: int, kind: str, mask: np.ndarray | None) -> None:
        """The engine's mask (see MaskModel.set_auto); drops history it invalidates."""
        if self.model.set_auto(face, kind, mask) and self._stack_touches((face, kind)):
            # Old commands hold patches of the replaced content: they cannot apply anymore.
            self.undo_stack.clear()

    def set_user_mask(
        self, face: int, kind: str, mask: np.ndarray, text: str = "Load saved mask"
    ) -> MaskEditCommand:
        return self._push(self.model.set_user_mask(face, kind, mask, text))  # type: ignore[return-value]

    def paint(
        self,
        face: int,
        kind: str,
        stroke_points: list[tuple[float, float]],
        radius: float,
        hardness: float = 1.0,
        erase: bool = False,
        **clip,
    ) -> MaskEditCommand | None:
        """One stroke as one undo command; returns it (None if it changes nothing).
        `clip`: keep_out / allow boxes, see MaskModel.paint."""
        edit = self.model.paint(face, kind, stroke_points, radius, hardness, erase, **clip)
        return self._push(edit)

    def clear(self, face: int, kind: str) -> None:
        self._push(self.model.clear(face, kind))

    def invert(self, face: int, kind: str) -> None:
        self._push(self.model.invert(face, kind))

    def reset_to_auto(self, face: int, kind: str) -> None:
        self._push(self.model.reset_to_auto(face, kind))

    def _stack_touches(self, key: Key) -> bool:
        stack = self.undo_stack
        return any(key in getattr(stack.command(i), "keys", ()) for i in range(stack.count()))
