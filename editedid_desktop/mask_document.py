"""The editable masks of a photo: per face index and kind, with undo.

Masks live in EDITED-photo coordinates (the edited photo defines the frame). For each
face index there are two kinds, ``"face"`` (where identity comes from the original) and
``"element"`` (what the edit added). The engine supplies an *auto* mask for each; the user
paints on top of it. Every change is a QUndoCommand that keeps only the rectangle it
changed (before and after), never a whole mask, so a day of painting on 6000x4000 photos
stays light; one brush stroke (press to release) is one command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from .imaging import MASK_KINDS

Key = tuple[int, str]
Patch = np.ndarray | int  # an ROI's pixels, or one value for every pixel of the ROI


def _check_kind(kind: str) -> None:
    if kind not in MASK_KINDS:
        raise ValueError(f"Unknown mask kind {kind!r}; expected 'face' or 'element'.")


def _kind_title(kind: str) -> str:
    return f"{kind} mask"


@lru_cache(maxsize=8)  # kernels of huge brushes are large: keep few
def brush_kernel(radius: float, hardness: float) -> np.ndarray:
    """A round brush dab as a ``uint8`` alpha kernel (2r+1 square, centre at the middle).

    ``hardness`` 1 gives a hard disc (with a one-pixel anti-aliased rim); lower values keep
    the inner ``hardness * radius`` solid and fall off smoothly (smoothstep) to the rim.
    """
    radius = max(0.5, float(radius))
    hardness = min(1.0, max(0.0, float(hardness)))
    half = int(math.ceil(radius))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    distance = np.hypot(xx, yy)
    alpha = np.clip(radius + 0.5 - distance, 0.0, 1.0)  # anti-aliased hard edge
    inner = radius * hardness
    if hardness < 1.0:
        t = np.clip((distance - inner) / max(radius - inner, 1e-6), 0.0, 1.0)
        alpha = np.minimum(alpha, 1.0 - t * t * (3.0 - 2.0 * t))
    kernel = np.round(alpha * 255).astype(np.uint8)
    kernel.setflags(write=False)
    return kernel


def stroke_dab_centres(
    points: list[tuple[float, float]], radius: float
) -> list[tuple[float, float]]:
    """Dab centres along a polyline, spaced about radius / 4 (at least one pixel) apart."""
    if not points:
        return []
    spacing = max(1.0, radius / 4.0)
    centres = [points[0]]
    carry = 0.0  # distance already covered since the last dab
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        length = math.hypot(x1 - x0, y1 - y0)
        if length == 0:
            continue
        position = spacing - carry
        while position <= length:
            t = position / length
            centres.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))
            position += spacing
        carry = length - (position - spacing)
    if len(points) > 1 and centres[-1] != points[-1]:
        centres.append(points[-1])
    return centres


@dataclass
class _MaskState:
    current: np.ndarray
    auto: np.ndarray | None = None
    edited: bool = False


class MaskEditCommand(QUndoCommand):
    """Writes ``after`` into ``rect`` of one mask on redo and ``before`` back on undo."""

    def __init__(
        self,
        document: MaskDocument,
        key: Key,
        rect: QRect,
        before: Patch,
        after: Patch,
        edited_before: bool,
        edited_after: bool,
        text: str,
    ) -> None:
        super().__init__(text)
        self.document = document
        self.key = key
        self.rect = QRect(rect)
        self.before = before
        self.after = after
        self.edited_before = edited_before
        self.edited_after = edited_after

    def byte_size(self) -> int:
        """Memory held by this command's pixels (an ROI before and after)."""
        return sum(p.nbytes if isinstance(p, np.ndarray) else 0 for p in (self.before, self.after))

    def redo(self) -> None:
        self.document._write(self.key, self.rect, self.after, self.edited_after)

    def undo(self) -> None:
        self.document._write(self.key, self.rect, self.before, self.edited_before)


class InvertMaskCommand(QUndoCommand):
    """Inverts a whole mask; its own inverse, so it stores no pixels."""

    def __init__(self, document: MaskDocument, key: Key, edited_before: bool) -> None:
        super().__init__(f"Invert {_kind_title(key[1])}")
        self.document = document
        self.key = key
        self.edited_before = edited_before

    def byte_size(self) -> int:
        return 0

    def redo(self) -> None:
        self.document._invert_in_place(self.key, True)

    def undo(self) -> None:
        self.document._invert_in_place(self.key, self.edited_before)


class MaskDocument(QObject):
    """All editable masks of one photo pair, in edited-photo coordinates.

    ``changed(face, kind, region)`` is emitted after every change of a current mask with
    the rectangle that changed (the whole frame for auto masks, clear and invert).
    """

    changed = Signal(int, str, QRect)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(200)
        self._size: tuple[int, int] | None = None  # (width, height)
        self._masks: dict[Key, _MaskState] = {}

    # ----------------------------------------------------------------- frame and data
    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame, or None before the first mask or `reset`."""
        return self._size

    def reset(self, size: tuple[int, int] | None = None) -> None:
        """Drop every mask and the undo history (new photos); optionally fix the size."""
        self.undo_stack.clear()
        keys = list(self._masks)
        self._masks.clear()
        self._size = None if size is None else (int(size[0]), int(size[1]))
        for face, kind in keys:
            self.changed.emit(face, kind, QRect())

    def faces(self) -> list[int]:
        """The face indices that have at least one mask."""
        return sorted({face for face, _ in self._masks})

    def has_mask(self, face: int, kind: str) -> bool:
        _check_kind(kind)
        return (face, kind) in self._masks

    def set_auto(self, face: int, kind: str, mask: np.ndarray | None) -> None:
        """Store the engine's mask; it also becomes the current mask unless edited.

        The first mask fixes the frame size; later masks must have the same size. None
        means the engine has no mask of this kind (the auto mask is empty).
        """
        _check_kind(kind)
        if mask is None:
            mask = np.zeros(self._require_size()[::-1], np.uint8)
        mask = self._validated(face, kind, mask)
        if self._size is None:
            self._size = (mask.shape[1], mask.shape[0])
        auto = mask.copy()
        auto.setflags(write=False)
        key = (face, kind)
        state = self._masks.get(key)
        if state is not None and state.edited:
            state.auto = auto
            return
        if state is not None and self._stack_touches(key):
            # Old commands hold patches of the replaced content: they cannot apply anymore.
            self.undo_stack.clear()
        self._masks[key] = _MaskState(current=auto.copy(), auto=auto, edited=False)
        self.changed.emit(face, kind, self._full_rect())

    def set_user_mask(
        self, face: int, kind: str, mask: np.ndarray, text: str = "Load saved mask"
    ) -> None:
        """Make `mask` the user's (edited) mask of face/kind as one undo command.

        For masks read back from a project file; stores only the differing rectangle.
        """
        _check_kind(kind)
        self._require_size()
        mask = self._validated(face, kind, mask)
        key = (face, kind)
        state = self._ensure(key)
        rect = self._nonzero_rect(state.current != mask)
        before: Patch = self._roi(state.current, rect).copy() if not rect.isEmpty() else 0
        after: Patch = self._roi(mask, rect).copy() if not rect.isEmpty() else 0
        self.undo_stack.push(
            MaskEditCommand(self, key, rect, before, after, state.edited, True, text)
        )

    def mask(self, face: int, kind: str) -> np.ndarray:
        """A copy of the current mask (zeros where there is none yet)."""
        return self.mask_view(face, kind).copy()

    def mask_view(self, face: int, kind: str) -> np.ndarray:
        """A read-only view of the current mask, without copying (for the canvas)."""
        _check_kind(kind)
        state = self._masks.get((face, kind))
        if state is None:
            view = np.zeros(self._require_size()[::-1], np.uint8)
        else:
            view = state.current.view()
        view.setflags(write=False)
        return view

    def auto_mask(self, face: int, kind: str) -> np.ndarray | None:
        _check_kind(kind)
        state = self._masks.get((face, kind))
        return None if state is None or state.auto is None else state.auto

    def is_edited(self, face: int, kind: str) -> bool:
        """Whether the user changed this mask (so the engine must use it)."""
        _check_kind(kind)
        state = self._masks.get((face, kind))
        return bool(state and state.edited)

    def user_masks(self) -> dict[int, tuple[np.ndarray | None, np.ndarray | None]]:
        """Copies of the masks the user changed: {face: (face_mask, element_mask)}.

        A kind the user did not change is None (the engine keeps its own); faces with no
        change are absent. User masks win over the engine's.
        """
        result: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
        for face in self.faces():
            pair = tuple(
                self._masks[(face, kind)].current.copy() if self.is_edited(face, kind) else None
                for kind in MASK_KINDS
            )
            if pair[0] is not None or pair[1] is not None:
                result[face] = pair  # type: ignore[assignment]
        return result

    # ---------------------------------------------------------------------- edits
    def paint(
        self,
        face: int,
        kind: str,
        stroke_points: list[tuple[float, float]],
        radius: float,
        hardness: float = 1.0,
        erase: bool = False,
    ) -> MaskEditCommand | None:
        """Paint (or erase) one stroke as one undo command; returns it (None if off-frame).

        ``stroke_points`` are (x, y) in edited-photo pixels; round dabs of ``radius`` and
        ``hardness`` (0..1) are laid every ~radius/4 along the polyline. Within a stroke
        dabs do not build up (the stroke's alpha is the maximum of its dabs); the stroke
        is then composited over the mask (paint) or cut out of it (erase). Only the
        stroke's bounding rectangle is touched and stored.
        """
        _check_kind(kind)
        points = [(float(x), float(y)) for x, y in stroke_points]
        if not points:
            return None
        width, height = self._require_size()
        kernel = brush_kernel(radius, hardness)
        half = kernel.shape[0] // 2
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        x0 = max(0, int(math.floor(min(xs))) - half - 1)
        y0 = max(0, int(math.floor(min(ys))) - half - 1)
        x1 = min(width, int(math.ceil(max(xs))) + half + 2)
        y1 = min(height, int(math.ceil(max(ys))) + half + 2)
        if x0 >= x1 or y0 >= y1:
            return None
        stroke = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for cx, cy in stroke_dab_centres(points, radius):
            ix, iy = int(round(cx)) - x0, int(round(cy)) - y0
            # Kernel window clipped to the stroke buffer.
            sx0, sy0 = max(0, ix - half), max(0, iy - half)
            sx1, sy1 = min(stroke.shape[1], ix + half + 1), min(stroke.shape[0], iy + half + 1)
            if sx0 >= sx1 or sy0 >= sy1:
                continue
            k = kernel[sy0 - (iy - half) : sy1 - (iy - half), sx0 - (ix - half) : sx1 - (ix - half)]
            np.maximum(stroke[sy0:sy1, sx0:sx1], k, out=stroke[sy0:sy1, sx0:sx1])
        # Shrink the ROI to what the stroke actually covers.
        rows = np.flatnonzero(stroke.any(axis=1))
        cols = np.flatnonzero(stroke.any(axis=0))
        if rows.size == 0:
            return None
        stroke = stroke[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        rect = QRect(x0 + int(cols[0]), y0 + int(rows[0]), stroke.shape[1], stroke.shape[0])
        key = (face, kind)
        state = self._ensure(key)
        before = self._roi(state.current, rect).copy()
        old = before.astype(np.uint16)
        alpha = stroke.astype(np.uint16)
        if erase:
            after = (old * (255 - alpha) + 127) // 255
        else:
            after = old + ((255 - old) * alpha + 127) // 255
        after = after.astype(np.uint8)
        verb = "Erase" if erase else "Paint"
        command = MaskEditCommand(
            self, key, rect, before, after, state.edited, True, f"{verb} {_kind_title(kind)}"
        )
        self.undo_stack.push(command)
        return command

    def clear(self, face: int, kind: str) -> None:
        """Empty the mask (undoable); the empty mask then wins over the engine's."""
        _check_kind(kind)
        key = (face, kind)
        state = self._ensure(key)
        rect = self._nonzero_rect(state.current)
        before: Patch = self._roi(state.current, rect).copy() if not rect.isEmpty() else 0
        self.undo_stack.push(
            MaskEditCommand(
                self, key, rect, before, 0, state.edited, True, f"Clear {_kind_title(kind)}"
            )
        )

    def invert(self, face: int, kind: str) -> None:
        """Invert the mask (undoable); stores no pixels."""
        _check_kind(kind)
        key = (face, kind)
        state = self._ensure(key)
        self.undo_stack.push(InvertMaskCommand(self, key, state.edited))

    def reset_to_auto(self, face: int, kind: str) -> None:
        """Back to the engine's mask (empty if none); undoable, stores the differing ROI."""
        _check_kind(kind)
        key = (face, kind)
        state = self._ensure(key)
        target = state.auto
        if target is None:
            rect = self._nonzero_rect(state.current)
        else:
            rect = self._nonzero_rect(state.current != target)
        if rect.isEmpty() and not state.edited:
            return  # already the auto mask: nothing to undo
        if rect.isEmpty():
            before: Patch = 0
            after: Patch = 0
        else:
            before = self._roi(state.current, rect).copy()
            after = 0 if target is None else self._roi(target, rect).copy()
        self.undo_stack.push(
            MaskEditCommand(
                self,
                key,
                rect,
                before,
                after,
                state.edited,
                False,
                f"Reset {_kind_title(kind)} to auto",
            )
        )

    # ------------------------------------------------------------------ internals
    def _validated(self, face: int, kind: str, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"A mask is an HxW array; got shape {mask.shape}.")
        if mask.dtype == bool:
            mask = mask.astype(np.uint8) * 255
        elif mask.dtype != np.uint8:
            raise ValueError(f"A mask is uint8 (0-255) or bool; got {mask.dtype}.")
        if self._size is not None and self._size != (mask.shape[1], mask.shape[0]):
            raise ValueError(
                f"The {kind} mask of face {face} is {mask.shape[1]}x{mask.shape[0]}, but the "
                f"edited photo is {self._size[0]}x{self._size[1]}."
            )
        return mask

    def _require_size(self) -> tuple[int, int]:
        if self._size is None:
            raise RuntimeError("No photo yet: set an auto mask or call reset(size) first.")
        return self._size

    def _full_rect(self) -> QRect:
        width, height = self._require_size()
        return QRect(0, 0, width, height)

    def _ensure(self, key: Key) -> _MaskState:
        state = self._masks.get(key)
        if state is None:
            width, height = self._require_size()
            state = _MaskState(current=np.zeros((height, width), np.uint8))
            self._masks[key] = state
        return state

    def _stack_touches(self, key: Key) -> bool:
        stack = self.undo_stack
        return any(getattr(stack.command(i), "key", None) == key for i in range(stack.count()))

    @staticmethod
    def _roi(array: np.ndarray, rect: QRect) -> np.ndarray:
        return array[rect.y() : rect.y() + rect.height(), rect.x() : rect.x() + rect.width()]

    @staticmethod
    def _nonzero_rect(array: np.ndarray) -> QRect:
        rows = np.flatnonzero(array.any(axis=1))
        if rows.size == 0:
            return QRect()
        cols = np.flatnonzero(array[rows[0] : rows[-1] + 1].any(axis=0))
        return QRect(
            int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
        )

    def _write(self, key: Key, rect: QRect, patch: Patch, edited: bool) -> None:
        state = self._ensure(key)
        if not rect.isEmpty():
            self._roi(state.current, rect)[...] = patch
        state.edited = edited
        self.changed.emit(key[0], key[1], QRect(rect))

    def _invert_in_place(self, key: Key, edited: bool) -> None:
        state = self._ensure(key)
        np.subtract(255, state.current, out=state.current)
        state.edited = edited
        self.changed.emit(key[0], key[1], self._full_rect())
