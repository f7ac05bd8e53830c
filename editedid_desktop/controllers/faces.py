"""The engine's analysis of the photo pair: faces, their masks, the selected face."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QRect, Signal

from ..jobs import AnalyzeRequest
from ..model.masks import MASK_KINDS, MaskPairs
from ..pairing_command import PairingCommand, PairingHistory
from . import Controller

if TYPE_CHECKING:
    from .host import Document, FacesView, Shell


def _display_name(path: Any, fallback: str) -> str:
    return str(path) if path else fallback


class FacesController(Controller):
    """Runs the analysis and shows its faces and masks; keeps the user's masks across
    re-analyses and puts a project's saved masks back once the faces are known."""

    analysis_shown = Signal(object)  # an analysis is in the session, its faces shown
    preview_stale = Signal()  # a face's settings or a mask changed: compose it again

    def __init__(self, document: Document, shell: Shell, view: FacesView) -> None:
        super().__init__(document, shell)
        self.canvas = view.canvas
        self.face_list = view.face_list
        self._saved_masks: MaskPairs = {}  # from a project, applied after the analysis
        self._opening_project = False
        self._applying_masks = False

    def expect_saved_masks(self, masks: MaskPairs) -> None:
        """A project is opening: apply these masks when its analysis arrives."""
        self._saved_masks = dict(masks)
        self._opening_project = True

    def start_analysis(self) -> None:
        session = self.session
        if not session.has_photos:
            return
        self.status("Detecting and pairing faces…")
        self.engine.configure(None, self.settings.face_config())
        self.engine.analyze(
            AnalyzeRequest(
                session.original,
                session.edited,
                session.pairing_overrides(),
                original_name=_display_name(session.original_path, "the original photo"),
                edited_name=_display_name(session.edited_path, "the edited photo"),
            )
        )
        self.state_changed.emit()

    # -- pairing (undoable: Edit ▸ Undo) ---------------------------------------------------
    def change_pairing(self, index: int, pairing: Any) -> None:
        """The user paired edited face `index` with another original face (or none)."""
        before = self.session.settings_for(index).pairing
        if pairing == before:
            return
        self.masks.undo_stack.push(PairingCommand(self._apply_pairing, index, before, pairing))

    def _apply_pairing(self, index: int, pairing: Any) -> None:
        self.session.update_face(index, pairing=pairing)
        self.start_analysis()

    def on_analyzed(self, analysis: Any) -> None:
        session = self.session
        if analysis.edited is not session.edited or analysis.original is not session.original:
            return  # photos changed while it ran
        previous_user = self.masks.user_masks()
        # A re-analysis of the same photos (the old analysis is still there: new photos
        # clear it) keeps the pairing history through the reset below.
        pairings = PairingHistory.take(self.masks.undo_stack if session.analysis else None)
        self.masks.reset((analysis.edited.shape[1], analysis.edited.shape[0]))
        session.set_analysis(analysis)
        for face in analysis.faces:
            self.masks.set_auto(face.index, "face", face.auto_face_mask)
            self.masks.set_auto(face.index, "element", face.auto_element_mask)
        from_project = bool(self._saved_masks) or self._opening_project
        self._put_back_masks(self._saved_masks or previous_user, analysis)
        pairings.put_back(self.masks.undo_stack, self._apply_pairing)
        self._saved_masks = {}
        if from_project:
            self._opening_project = False
            session.dirty = False
        self.update_face_boxes()
        if analysis.faces:
            selected = self.face_list.selected
            if selected is None:
                selected = analysis.faces[0].index
            self.face_list.select(selected)
            self.on_face_selected(selected)
        n = len(analysis.faces)
        paired = len(session.enabled_faces())
        self.status(
            f"{n} face{'s' if n != 1 else ''} found, {paired} to restore "
            f"({analysis.backend}). Classic preview shown; Ctrl+R restores with diffusion.",
            10000,
        )
        self.analysis_shown.emit(analysis)  # the roles checked, then the classic preview

    def _put_back_masks(self, masks: MaskPairs, analysis: Any) -> None:
        """The user's masks over the new auto masks; loading them is not an undo step."""
        indices = {face.index for face in analysis.faces}
        self._applying_masks = True
        try:
            for index, pair in masks.items():
                if index in indices:
                    for kind, mask in zip(MASK_KINDS, pair, strict=True):
                        if mask is not None:
                            self.apply_saved_mask(index, kind, mask)
        finally:
            self._applying_masks = False
        self.masks.undo_stack.clear()

    def apply_saved_mask(self, face: int, kind: str, mask: np.ndarray) -> None:
        """Put a saved user mask back as the current (edited) mask of face/kind."""
        size = self.masks.image_size
        mask = np.asarray(mask, np.uint8)
        if size is None or mask.shape != (size[1], size[0]):
            self.status(
                f"Saved {kind} mask of face {face + 1} does not fit the photo; "
                "using the auto mask.",
                8000,
            )
            return
        self.masks.set_user_mask(face, kind, mask.copy())

    # -- faces on the canvas --------------------------------------------------------------
    def update_face_boxes(self) -> None:
        boxes = []
        for face in self.session.faces:
            settings = self.session.settings_for(face.index)
            label = f"{face.index + 1}"
            boxes.append((face.index, tuple(float(v) for v in face.box), label, settings.enabled))
        self.canvas.set_face_boxes(boxes)

    def on_face_selected(self, index: int) -> None:
        self.canvas.select_face(index)
        _, kind = self.canvas.active_mask()
        self.canvas.set_active_mask(index, kind)

    def on_face_changed(self, index: int) -> None:
        self.update_face_boxes()
        self.state_changed.emit()
        self.preview_stale.emit()

    def on_mask_changed(self, face: int, kind: str, rect: QRect) -> None:
        if self._applying_masks:
            return
        if self.session.analysis is not None and self.masks.is_edited(face, kind):
            self.session.dirty = True
            self.preview_stale.emit()
