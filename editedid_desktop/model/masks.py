"""The editable masks of a photo, per face index and kind, with plain undo atoms. Qt-free.

Masks live in EDITED-photo coordinates (the edited photo defines the frame). For each
face index there are two kinds, ``"face"`` (where identity comes from the original) and
``"element"`` (what the edit added). The engine supplies an *auto* mask for each; the user
paints on top of it.

Every change is a `MaskEdit`: one undo step (one brush stroke from press to release, one
clear, ...) made of atoms that keep only the rectangle they changed, before and after
(`PatchAtom`), or nothing at all when the change is its own inverse (`InvertAtom`). A
day of painting on 6000x4000 photos stays light. `MaskModel`'s editing methods apply the
change and return its `MaskEdit`; `undo(edit)` / `redo(edit)` replay it.

Who keeps the history: the Qt layer (`editedid_desktop.mask_document`) wraps each
`MaskEdit` in a QUndoCommand on a QUndoStack. The stack already gives the app what a
plain history would have to re-implement: Undo/Redo actions whose text names the step
("Undo Paint face mask") and follow the stack's state, the undo limit and the clean
state. The model stays free of Qt and testable on its own: an edit is a value, and
replaying it needs nothing but this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .observable import Event, Observable

MASK_KINDS: tuple[str, str] = ("face", "element")

Key = tuple[int, str]  # (edited face index, kind)
Patch = np.ndarray | int  # a rectangle's pixels, or one value for every pixel of it
MaskPairs = dict[int, tuple[np.ndarray | None, np.ndarray | None]]
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in edited-photo pixels


def clip_stroke(
    rect: Rect, alpha: np.ndarray, keep_out: Sequence[Box], allow: Box | None
) -> np.ndarray:
    """The stroke's alpha with the `keep_out` boxes cut away, except inside `allow`.

    A brush paints one face's mask; where another face's box lies, it must not paint or
    erase (issue 12 D8). `allow` is the painted face's own box: where the boxes of two
    faces overlap, the face being painted keeps the pixels."""
    if not keep_out:
        return alpha
    keep = np.ones(alpha.shape, bool)

    def region(box: Box) -> tuple[slice, slice] | None:
        # A box's edges belong to it (as QRectF.contains says): pixels floor .. ceil.
        x0, y0 = math.floor(box[0]), math.floor(box[1])
        x1, y1 = math.ceil(box[2]) + 1, math.ceil(box[3]) + 1
        x0, x1 = max(x0 - rect.x, 0), min(x1 - rect.x, rect.width)
        y0, y1 = max(y0 - rect.y, 0), min(y1 - rect.y, rect.height)
        return (slice(y0, y1), slice(x0, x1)) if x0 < x1 and y0 < y1 else None

    for box in keep_out:
        if (where := region(box)) is not None:
            keep[where] = False
    if allow is not None and (where := region(allow)) is not None:
        keep[where] = True
    return np.where(keep, alpha, 0).astype(alpha.dtype)


def check_kind(kind: str) -> None:
    if kind not in MASK_KINDS:
        raise ValueError(f"Unknown mask kind {kind!r}; expected 'face' or 'element'.")


def _kind_title(kind: str) -> str:
    return f"{kind} mask"


@dataclass(frozen=True)
class Rect:
    """A pixel rectangle; width or height 0 = empty."""

    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def of(self, array: np.ndarray) -> np.ndarray:
        """The rectangle's view into an HxW array."""
        return array[self.y : self.y + self.height, self.x : self.x + self.width]

    def united(self, other: Rect) -> Rect:
        if self.empty:
            return other
        if other.empty:
            return self
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1 = max(self.x + self.width, other.x + other.width)
        y1 = max(self.y + self.height, other.y + other.height)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    @classmethod
    def around_nonzero(cls, array: np.ndarray) -> Rect:
        """The smallest rectangle holding every non-zero pixel (empty if none)."""
        rows = np.flatnonzero(array.any(axis=1))
        if rows.size == 0:
            return cls()
        cols = np.flatnonzero(array[rows[0] : rows[-1] + 1].any(axis=0))
        return cls(
            int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
        )


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


def stroke_alpha(
    points: list[tuple[float, float]], radius: float, hardness: float, size: tuple[int, int]
) -> tuple[Rect, np.ndarray] | None:
    """The alpha of one stroke cropped to what it covers, or None when it is off-frame.

    Round dabs of `radius` and `hardness` every ~radius/4 along the polyline; within a
    stroke dabs do not build up (the stroke's alpha is the maximum of its dabs).
    """
    width, height = size
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
    covered = Rect.around_nonzero(stroke)
    if covered.empty:
        return None
    rect = Rect(x0 + covered.x, y0 + covered.y, covered.width, covered.height)
    return rect, covered.of(stroke)


# ---------------------------------------------------------------------- undo atoms
@dataclass
class PatchAtom:
    """One rectangle of one mask: its pixels before and after, and the edited flag."""

    key: Key
    rect: Rect
    before: Patch
    after: Patch
    edited_before: bool
    edited_after: bool

    def byte_size(self) -> int:
        return sum(p.nbytes if isinstance(p, np.ndarray) else 0 for p in (self.before, self.after))

    def apply(self, masks: MaskModel, forward: bool) -> None:
        if forward:
            masks._write(self.key, self.rect, self.after, self.edited_after)
        else:
            masks._write(self.key, self.rect, self.before, self.edited_before)


@dataclass
class InvertAtom:
    """Inverts a whole mask; its own inverse, so it stores no pixels."""

    key: Key
    edited_before: bool
    rect: Rect = field(default_factory=Rect)  # the whole frame, filled in by the model

    def byte_size(self) -> int:
        return 0

    def apply(self, masks: MaskModel, forward: bool) -> None:
        masks._invert_in_place(self.key, True if forward else self.edited_before)


Atom = PatchAtom | InvertAtom


@dataclass
class MaskEdit:
    """One undo step: the atoms of one stroke or operation, and its menu text."""

    text: str
    atoms: list[Atom]

    @property
    def keys(self) -> set[Key]:
        return {atom.key for atom in self.atoms}

    @property
    def rect(self) -> Rect:
        """The bounding rectangle of everything the step changes."""
        bounds = Rect()
        for atom in self.atoms:
            bounds = bounds.united(atom.rect)
        return bounds

    def byte_size(self) -> int:
        """Memory held by this step's pixels."""
        return sum(atom.byte_size() for atom in self.atoms)


@dataclass
class _MaskState:
    current: np.ndarray
    auto: np.ndarray | None = None
    edited: bool = False


class MaskModel(Observable):
    """All editable masks of one photo pair, in edited-photo coordinates.

    ``changed(face, kind, rect)`` is emitted after every change of a current mask with
    the `Rect` that changed (the whole frame for auto masks and invert; an empty Rect
    when a mask went away).
    """

    changed = Event()

    def __init__(self) -> None:
        super().__init__()
        self._size: tuple[int, int] | None = None  # (width, height)
        self._masks: dict[Key, _MaskState] = {}

    # ----------------------------------------------------------------- frame and data
    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame, or None before the first mask or `reset`."""
        return self._size

    def reset(self, size: tuple[int, int] | None = None) -> None:
        """Drop every mask (new photos); optionally fix the frame size."""
        keys = list(self._masks)
        self._masks.clear()
        self._size = None if size is None else (int(size[0]), int(size[1]))
        for face, kind in keys:
            self.changed.emit(face, kind, Rect())

    def faces(self) -> list[int]:
        """The face indices that have at least one mask."""
        return sorted({face for face, _ in self._masks})

    def has_mask(self, face: int, kind: str) -> bool:
        check_kind(kind)
        return (face, kind) in self._masks

    def set_auto(self, face: int, kind: str, mask: np.ndarray | None) -> bool:
        """Store the engine's mask; it also becomes the current mask unless edited.

        The first mask fixes the frame size; later masks must have the same size. None
        means the engine has no mask of this kind (the auto mask is empty). Returns True
        when it replaced the content of an existing mask: recorded edits of that mask
        no longer apply.
        """
        check_kind(kind)
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
            return False
        self._masks[key] = _MaskState(current=auto.copy(), auto=auto, edited=False)
        self.changed.emit(face, kind, self.frame)
        return state is not None

    def mask(self, face: int, kind: str) -> np.ndarray:
        """A copy of the current mask (zeros where there is none yet)."""
        return self.mask_view(face, kind).copy()

    def mask_view(self, face: int, kind: str) -> np.ndarray:
        """A read-only view of the current mask, without copying (for the canvas)."""
        check_kind(kind)
        state = self._masks.get((face, kind))
        if state is None:
            view = np.zeros(self._require_size()[::-1], np.uint8)
        else:
            view = state.current.view()
        view.setflags(write=False)
        return view

    def is_edited(self, face: int, kind: str) -> bool:
        """Whether the user changed this mask (so the engine must use it)."""
        check_kind(kind)
        state = self._masks.get((face, kind))
        return bool(state and state.edited)

    def user_masks(self) -> MaskPairs:
        """Copies of the masks the user changed: {face: (face_mask, element_mask)}.

        A kind the user did not change is None (the engine keeps its own); faces with no
        change are absent. User masks win over the engine's.
        """
        result: MaskPairs = {}
        for face in self.faces():
            face_mask, element_mask = (
                self._masks[(face, kind)].current.copy() if self.is_edited(face, kind) else None
                for kind in MASK_KINDS
            )
            if face_mask is not None or element_mask is not None:
                result[face] = (face_mask, element_mask)
        return result

    @property
    def frame(self) -> Rect:
        width, height = self._require_size()
        return Rect(0, 0, width, height)

    # ---------------------------------------------------------------------- edits
    def undo(self, edit: MaskEdit) -> None:
        for atom in reversed(edit.atoms):
            atom.apply(self, forward=False)

    def redo(self, edit: MaskEdit) -> None:
        for atom in edit.atoms:
            atom.apply(self, forward=True)

    def _commit(self, text: str, *atoms: Atom) -> MaskEdit:
        edit = MaskEdit(text, list(atoms))
        self.redo(edit)
        return edit

    def set_user_mask(
        self, face: int, kind: str, mask: np.ndarray, text: str = "Load saved mask"
    ) -> MaskEdit:
        """Make `mask` the user's (edited) mask of face/kind; stores the differing rectangle."""
        check_kind(kind)
        self._require_size()
        mask = self._validated(face, kind, mask)
        state = self._ensure((face, kind))
        rect = Rect.around_nonzero(state.current != mask)
        before: Patch = rect.of(state.current).copy() if not rect.empty else 0
        after: Patch = rect.of(mask).copy() if not rect.empty else 0
        return self._commit(text, PatchAtom((face, kind), rect, before, after, state.edited, True))

    def paint(
        self,
        face: int,
        kind: str,
        stroke_points: list[tuple[float, float]],
        radius: float,
        hardness: float = 1.0,
        erase: bool = False,
        keep_out: Sequence[Box] = (),
        allow: Box | None = None,
    ) -> MaskEdit | None:
        """Paint (or erase) one stroke as one edit; None when it changes nothing.

        ``stroke_points`` are (x, y) in edited-photo pixels (`stroke_alpha` lays the
        dabs). The stroke is composited over the mask (paint) or cut out of it (erase);
        only its bounding rectangle is touched and stored. It leaves the `keep_out`
        boxes (other faces) alone, except inside `allow` (`clip_stroke`).
        """
        check_kind(kind)
        points = [(float(x), float(y)) for x, y in stroke_points]
        if not points:
            return None
        stroke = stroke_alpha(points, radius, hardness, self._require_size())
        if stroke is None:
            return None
        rect, alpha_u8 = stroke
        alpha_u8 = clip_stroke(rect, alpha_u8, keep_out, allow)
        if not alpha_u8.any():
            return None  # the whole stroke lay on other faces
        state = self._ensure((face, kind))
        before = rect.of(state.current).copy()
        old = before.astype(np.uint16)
        alpha = alpha_u8.astype(np.uint16)
        if erase:
            after = (old * (255 - alpha) + 127) // 255
        else:
            after = old + ((255 - old) * alpha + 127) // 255
        verb = "Erase" if erase else "Paint"
        atom = PatchAtom((face, kind), rect, before, after.astype(np.uint8), state.edited, True)
        return self._commit(f"{verb} {_kind_title(kind)}", atom)

    def clear(self, face: int, kind: str) -> MaskEdit:
        """Empty the mask; the empty mask then wins over the engine's."""
        check_kind(kind)
        state = self._ensure((face, kind))
        rect = Rect.around_nonzero(state.current)
        before: Patch = rect.of(state.current).copy() if not rect.empty else 0
        atom = PatchAtom((face, kind), rect, before, 0, state.edited, True)
        return self._commit(f"Clear {_kind_title(kind)}", atom)

    def invert(self, face: int, kind: str) -> MaskEdit:
        """Invert the mask; stores no pixels."""
        check_kind(kind)
        state = self._ensure((face, kind))
        atom = InvertAtom((face, kind), state.edited, self.frame)
        return self._commit(f"Invert {_kind_title(kind)}", atom)

    def reset_to_auto(self, face: int, kind: str) -> MaskEdit | None:
        """Back to the engine's mask (empty if none); None when it is that already."""
        check_kind(kind)
        state = self._ensure((face, kind))
        target = state.auto
        if target is None:
            rect = Rect.around_nonzero(state.current)
        else:
            rect = Rect.around_nonzero(state.current != target)
        if rect.empty and not state.edited:
            return None  # already the auto mask: nothing to undo
        before: Patch = 0 if rect.empty else rect.of(state.current).copy()
        after: Patch = 0 if rect.empty or target is None else rect.of(target).copy()
        atom = PatchAtom((face, kind), rect, before, after, state.edited, False)
        return self._commit(f"Reset {_kind_title(kind)} to auto", atom)

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

    def _ensure(self, key: Key) -> _MaskState:
        state = self._masks.get(key)
        if state is None:
            width, height = self._require_size()
            state = _MaskState(current=np.zeros((height, width), np.uint8))
            self._masks[key] = state
        return state

    def _write(self, key: Key, rect: Rect, patch: Patch, edited: bool) -> None:
        state = self._ensure(key)
        if not rect.empty:
            rect.of(state.current)[...] = patch
        state.edited = edited
        self.changed.emit(key[0], key[1], rect)

    def _invert_in_place(self, key: Key, edited: bool) -> None:
        state = self._ensure(key)
        np.subtract(255, state.current, out=state.current)
        state.edited = edited
        self.changed.emit(key[0], key[1], self.frame)
