"""Which faces of an analysed photo a restore takes and with which masks: the face
selection ("changed", "all" or face indices: select_faces), the faces left alone and why
(faces_left_alone), and each face's crop masks, user-painted ones winning over the
automatic ones (crop_masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import InputError
from engine.photo.analysis import PhotoAnalysis, PhotoFace
from engine.photo.masks import to_crop

MaskPair = tuple[np.ndarray | None, np.ndarray | None]
FACES_DEFAULT = "changed"  # restore only faces whose identity the edit changed
FACE_SELECTIONS = ("changed", "all")
FaceSelection = Sequence[int] | str | None


def select_faces(analysis: PhotoAnalysis, faces: FaceSelection) -> list[PhotoFace]:
    """The faces to restore: indices, "all" (every paired face) or "changed"/None (the
    default: paired, plausible and with a changed identity, see engine.faces.plausibility).
    """
    if faces is None or isinstance(faces, str):
        which = FACES_DEFAULT if faces is None else faces
        if which not in FACE_SELECTIONS:
            raise InputError(f"Faces to restore: {which!r}; use face numbers, 'changed' or 'all'.")
        restorable = [f for f in analysis.faces if f.restorable]
        chosen = restorable if which == "all" else [f for f in restorable if f.restore_by_default]
        if not restorable:
            raise InputError(
                "No face of the edited photo could be paired with a face of the original "
                "photo. Check that both photos show the same people, or pair the faces by hand."
            )
        return chosen
    chosen = []
    for index in faces:
        face = analysis.face(index)
        if not face.restorable:
            raise InputError(
                f"Face {index + 1} has no partner in the original photo; pair it by hand "
                "or leave it out."
            )
        chosen.append(face)
    if not chosen:
        raise InputError(
            "No face of the edited photo could be paired with a face of the original photo. "
            "Check that both photos show the same people, or pair the faces by hand."
        )
    return chosen


def faces_left_alone(analysis: PhotoAnalysis, chosen: list[PhotoFace]) -> list[tuple[int, str]]:
    """(face index, why) of every face not restored; "not selected" when the caller chose."""
    picked = {f.index for f in chosen}
    return [
        (f.index, f.left_alone_reason or "not selected")
        for f in analysis.faces
        if f.index not in picked
    ]


def crop_masks(face: PhotoFace, masks: dict[int, MaskPair] | None) -> tuple[np.ndarray, np.ndarray]:
    """User masks (edited-photo coordinates) always win over the automatic ones."""
    user_face, user_element = (masks or {}).get(face.index, (None, None))
    face_mask = (
        to_crop(user_face, face.edited_crop) if user_face is not None else face.crop_face_mask
    )
    element = (
        to_crop(user_element, face.edited_crop)
        if user_element is not None
        else face.crop_element_mask
    )
    return face_mask, element
