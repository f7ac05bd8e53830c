"""Photo analysis: every face of the edited photo detected, paired with its partner in
the original, aligned into crops with automatic face and element masks, thumbnails and the
identity score before any restore (analyze_photos -> PhotoAnalysis of PhotoFaces);
ensure_crop_size re-aligns an analysis for a restore at another crop size.
engine.photo.pipeline re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.identity import IdentityScore, identity_from_embeddings
from engine.faces.plausibility import FaceVerdict, default_reason, left_to_right, pair_verdict
from engine.faces.types import Face, FaceAnalyzer, FaceCrop, FacePairing
from engine.photo.align import align_edited, align_original_to_edited, too_small_message
from engine.photo.masks import element_mask_from_difference, face_mask_from_landmarks, to_photo
from engine.photo.roles import RoleCheck, check_roles

THUMB_SIZE = 96


@dataclass
class PhotoFace:
    """One edited face, its original partner (if any), crops and automatic masks."""

    index: int
    original_index: int | None
    box: np.ndarray  # edited-photo coordinates
    edited_face: Face
    original_face: Face | None
    edited_crop: FaceCrop
    original_crop: FaceCrop | None
    auto_face_mask: np.ndarray  # edited-photo coordinates, uint8
    auto_element_mask: np.ndarray
    crop_face_mask: np.ndarray  # crop coordinates, uint8
    crop_element_mask: np.ndarray
    too_small: bool = False
    warnings: list[str] = field(default_factory=list)
    thumb_edited: np.ndarray | None = None
    thumb_original: np.ndarray | None = None
    id_before: IdentityScore | None = None
    verdict: FaceVerdict = field(default_factory=FaceVerdict)

    @property
    def restorable(self) -> bool:
        return self.original_crop is not None

    @property
    def number(self) -> int:
        """The face's number as shown everywhere: 1 = leftmost face of the edited photo."""
        return self.index + 1

    @property
    def plausible(self) -> bool:
        return self.verdict.plausible

    @property
    def changed(self) -> bool | None:
        """The edit changed the identity (ID before fails the threshold); None: unknown."""
        return None if self.id_before is None else not self.id_before.same_person

    @property
    def left_alone_reason(self) -> str | None:
        """Why this face is not restored by default (None: it is)."""
        return default_reason(
            paired=self.restorable, verdict=self.verdict, id_before=self.id_before
        )

    @property
    def restore_by_default(self) -> bool:
        return self.left_alone_reason is None


@dataclass
class PhotoAnalysis:
    original: np.ndarray
    edited: np.ndarray
    backend: str
    original_faces: list[Face]
    edited_faces: list[Face]
    pairing: FacePairing
    faces: list[PhotoFace]
    crop_size: int
    analyzer: FaceAnalyzer | None = None
    # whether the photo opened as the original looks like the AI edit (engine.photo.roles),
    # measured with the faces, before any preview is composed; None: nothing measured
    roles: RoleCheck | None = None

    def face(self, index: int) -> PhotoFace:
        for face in self.faces:
            if face.index == index:
                return face
        raise InputError(
            f"There is no face {index + 1} in the edited photo ({len(self.faces)} found, "
            "numbered left to right from 1)."
        )


# --- analysis -------------------------------------------------------------------------
def _thumb(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)


def _identity(
    analyzer: FaceAnalyzer | None, a: Face | None, b: Face | None
) -> IdentityScore | None:
    if analyzer is None or a is None or b is None or a.embedding is None or b.embedding is None:
        return None
    return identity_from_embeddings(a.embedding, b.embedding, analyzer)


def _build_face(
    index: int,
    edited: np.ndarray,
    original: np.ndarray,
    edited_face: Face,
    original_face: Face | None,
    original_index: int | None,
    crop_size: int,
    analyzer: FaceAnalyzer | None,
) -> PhotoFace:
    crop_e = align_edited(edited, edited_face, size=crop_size)
    crop_o = None
    face_crop_mask = face_mask_from_landmarks(crop_e, edited_face)
    element_crop_mask = np.zeros_like(face_crop_mask)
    warnings: list[str] = []
    if original_face is not None:
        crop_o = align_original_to_edited(original, original_face, crop_e, edited_face)
        # Restore wherever either face is: the original's outline may be wider or taller.
        face_crop_mask = np.maximum(face_crop_mask, face_mask_from_landmarks(crop_o, original_face))
        element_crop_mask = element_mask_from_difference(crop_o.image, crop_e.image, face_crop_mask)
    else:
        warnings.append(
            f"Face {index + 1} has no partner in the original photo: choose one in its panel "
            "or leave it as edited."
        )
    small = bool(crop_e.too_small or (crop_o is not None and crop_o.too_small))
    if small:
        message = too_small_message(crop_e if crop_e.too_small else crop_o, f"Face {index + 1}")
        warnings.append(message or f"Face {index + 1} is small; the result may be soft.")
    return PhotoFace(
        index=index,
        original_index=original_index,
        box=np.asarray(edited_face.box, dtype=float),
        edited_face=edited_face,
        original_face=original_face,
        edited_crop=crop_e,
        original_crop=crop_o,
        auto_face_mask=to_photo(face_crop_mask, crop_e, edited.shape[:2]),
        auto_element_mask=to_photo(element_crop_mask, crop_e, edited.shape[:2]),
        crop_face_mask=face_crop_mask,
        crop_element_mask=element_crop_mask,
        too_small=small,
        warnings=warnings,
        thumb_edited=_thumb(crop_e.image),
        thumb_original=_thumb(crop_o.image) if crop_o is not None else None,
        id_before=_identity(analyzer, original_face, edited_face),
        verdict=pair_verdict(edited_face, original_face, getattr(analyzer, "name", None)),
    )


def analyze_photos(
    original: np.ndarray,
    edited: np.ndarray,
    *,
    backend: str = "auto",
    analyzer: FaceAnalyzer | None = None,
    overrides: dict[int, int | None] | None = None,
    crop_size: int = 512,
    original_name: str = "the original photo",
    edited_name: str = "the edited photo",
) -> PhotoAnalysis:
    """Detect, pair and align every face; automatic masks in edited-photo coordinates.

    Faces of both photos are indexed left to right (index 0 = face 1, the leftmost)."""
    from engine.faces.detection import get_analyzer, pair_faces

    analyzer = analyzer or get_analyzer(backend)
    edited_faces = left_to_right(analyzer.detect(edited))
    if not edited_faces:
        raise InputError(
            f"No face found in {edited_name}. EditedID restores faces: use a photo where the "
            "face is visible and at least about 64 pixels wide."
        )
    original_faces = left_to_right(analyzer.detect(original))
    if not original_faces:
        raise InputError(
            f"No face found in {original_name}, so there is no identity to restore. Check that "
            "the original photo shows the same person's face."
        )
    pairing = pair_faces(edited_faces, original_faces, edited, original, overrides=overrides)
    partner = dict(pairing.pairs)
    faces = []
    for j, face in enumerate(edited_faces):
        i = partner.get(j)
        faces.append(
            _build_face(
                j,
                edited,
                original,
                face,
                original_faces[i] if i is not None else None,
                i,
                crop_size,
                analyzer,
            )
        )
    return PhotoAnalysis(
        original,
        edited,
        analyzer.name,
        original_faces,
        edited_faces,
        pairing,
        faces,
        crop_size,
        analyzer,
        roles=_check_roles(original, edited, faces),
    )


def _check_roles(original: np.ndarray, edited: np.ndarray, faces: list[PhotoFace]):
    """The role check on the paired faces (None when no face is paired)."""
    pairs = [(f.original_face.box, f.edited_face.box) for f in faces if f.original_face]
    return check_roles(original, edited, pairs) if pairs else None


def ensure_crop_size(analysis: PhotoAnalysis, size: int) -> PhotoAnalysis:
    """Re-align crops when the run's resolution differs from the analysis' (cheap)."""
    if analysis.crop_size == size:
        return analysis
    faces = [
        _build_face(
            f.index,
            analysis.edited,
            analysis.original,
            f.edited_face,
            f.original_face,
            f.original_index,
            size,
            analysis.analyzer,
        )
        for f in analysis.faces
    ]
    return PhotoAnalysis(
        analysis.original,
        analysis.edited,
        analysis.backend,
        analysis.original_faces,
        analysis.edited_faces,
        analysis.pairing,
        faces,
        size,
        analysis.analyzer,
        roles=analysis.roles,
    )
