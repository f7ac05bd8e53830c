"""Scoring one restored photo against its analysed (original, edited) pair
(`score_restored`): identity of each paired face after the restore, CLIP-S on the edited
elements' region, ImageReward, and PSNR/SSIM outside the faces' crop frames
(`face_region`), the only pixels a restore may change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import InputError
from engine.evaluation.results import FaceEval, ImageEval
from engine.faces.identity import IdentityScore, identity_from_embeddings
from engine.faces.types import Face, FaceAnalyzer

SSIM_ERODE_PX = 5  # the SSIM window's radius: windows never reach into the face region


# --- scoring -------------------------------------------------------------------------------
def face_region(analysis) -> np.ndarray:
    """HxW bool: the union of every edited face's aligned crop frame (photo coordinates)."""
    from engine.photo.masks import to_photo

    shape = analysis.edited.shape[:2]
    region = np.zeros(shape, bool)
    for face in analysis.faces:
        full = np.full((face.edited_crop.size, face.edited_crop.size), 255, np.uint8)
        region |= to_photo(full, face.edited_crop, shape) > 0
    return region


def _element_region(analysis) -> tuple[np.ndarray | None, str]:
    union = np.zeros(analysis.edited.shape[:2], np.uint8)
    for face in analysis.faces:
        if face.restorable:
            union = np.maximum(union, face.auto_element_mask)
    if (union > 127).sum() >= 64:
        return union, "element"
    faces = face_region(analysis)
    if faces.any():
        return faces.astype(np.uint8) * 255, "face"
    return None, "image"


def _restored_identity(
    analyzer: FaceAnalyzer, face, original_face: Face, image: np.ndarray
) -> IdentityScore:
    edited = face.edited_face
    probe = Face(edited.box, edited.landmarks5, edited.score, edited.landmarks, None, analyzer.name)
    embedding = analyzer.embed(image, probe)
    return identity_from_embeddings(original_face.embedding, embedding, analyzer)


def score_restored(
    analysis,
    restored: np.ndarray,
    *,
    name: str = "",
    variant: str = "restored",
    clip=None,
    clip_text: str | None = None,
    reward_prompt: str | None = None,
    reward_options: dict[str, Any] | None = None,
) -> ImageEval:
    """Every figure of one restored photo against its analysed (original, edited) pair."""
    from engine.evaluation.image_quality import masked_psnr, ssim

    edited = analysis.edited
    if restored.shape != edited.shape:
        raise InputError(
            f"the restored photo is {restored.shape[1]}x{restored.shape[0]} but the edited "
            f"photo is {edited.shape[1]}x{edited.shape[0]}; a restored photo keeps the edited "
            "photo's size."
        )
    row = ImageEval(name=name, variant=variant)
    analyzer = analysis.analyzer
    for face in analysis.faces:
        if not face.restorable:
            continue
        after = None
        if analyzer is not None and face.original_face.embedding is not None:
            after = _restored_identity(analyzer, face, face.original_face, restored)
        row.faces.append(
            FaceEval(name, variant, face.index, face.original_index, face.id_before, after)
        )
    outside = ~face_region(analysis)
    row.outside_fraction = float(outside.mean())
    if outside.any():
        row.psnr_outside = masked_psnr(restored, edited, outside)
        import cv2

        kernel = np.ones((2 * SSIM_ERODE_PX + 1,) * 2, np.uint8)
        inner = cv2.erode(outside.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
        if inner.any():
            row.ssim_outside = ssim(restored, edited, inner)
    if clip is not None and clip_text:
        region, row.clip_region = _element_region(analysis)
        row.clip_edited = clip.score(edited, clip_text, region=region)
        row.clip_restored = clip.score(restored, clip_text, region=region)
    if reward_prompt:
        from engine.evaluation.image_quality import image_reward

        row.reward_edited = image_reward(edited, reward_prompt, **(reward_options or {}))
        row.reward_restored = image_reward(restored, reward_prompt, **(reward_options or {}))
    return row
