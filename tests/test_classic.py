"""Classic mode on a synthetic edit: another person's face over the original, plus glasses.

Identity is measured with dlib's 128-d ResNet descriptor (same person ~0.1-0.4,
different people ~0.6-0.9 on these photos; the usual threshold is 0.6).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.photo.align import (
    align_edited,
    align_original_to_edited,
)
from engine.photo.masks import dilate, face_mask_from_landmarks, to_crop
from engine.photo.pasteback import paste_back
from engine.restorers.classic import classic_restore_crop
from tests.fixtures.faces import descriptor, synthetic_edit


def _classic_pipeline(method: str = "laplacian"):
    original, o_face, edited, e_face, frames = synthetic_edit()
    e_crop = align_edited(edited, e_face)
    o_crop = align_original_to_edited(original, o_face, e_crop, e_face)
    face_mask = face_mask_from_landmarks(o_crop, o_face)
    element = dilate((to_crop(frames, e_crop) > 0).astype(np.uint8) * 255, 2)
    t0 = time.perf_counter()
    restored = classic_restore_crop(o_crop, e_crop, face_mask, element, method=method)
    elapsed = time.perf_counter() - t0
    result = paste_back(
        edited, restored, e_crop, np.maximum(face_mask, element), keep_mask_crop=element
    )
    return result, restored, e_crop, face_mask, element, elapsed


def test_classic_restores_identity_and_keeps_glasses():
    original, o_face, edited, e_face, frames = synthetic_edit()
    d_orig = descriptor(original, o_face)
    before = float(np.linalg.norm(descriptor(edited, e_face) - d_orig))
    assert before > 0.6, "the synthetic edit must change the identity"
    result, restored, e_crop, face_mask, element, elapsed = _classic_pipeline()
    after = float(np.linalg.norm(descriptor(result) - d_orig))
    print(
        f"\nclassic: identity distance to original {before:.3f} -> {after:.3f}; "
        f"classic_restore_crop {elapsed * 1000:.1f} ms at 512"
    )
    assert after < 0.6
    assert after < before - 0.2
    # the glasses pixels are the edited photo's, bit for bit
    glasses = frames > 0
    assert np.array_equal(result[glasses], edited[glasses])
    # ... and in the crop too
    assert np.array_equal(restored[element > 0], e_crop.image[element > 0])
    # the background did not move
    assert np.array_equal(result[:100], edited[:100])


def test_classic_crop_contract():
    original, o_face, edited, e_face, _ = synthetic_edit()
    e_crop = align_edited(edited, e_face)
    o_crop = align_original_to_edited(original, o_face, e_crop, e_face)
    face_mask = face_mask_from_landmarks(o_crop, o_face)
    out = classic_restore_crop(o_crop, e_crop, face_mask, None)
    assert out.shape == e_crop.image.shape and out.dtype == np.uint8
    far = dilate(face_mask, 80) == 0
    assert np.array_equal(out[far], e_crop.image[far])  # far from the face: untouched
    inside = cv2.erode(face_mask, np.ones((41, 41), np.uint8)) > 0
    diff_orig = np.abs(out[inside].astype(int) - o_crop.image[inside].astype(int)).mean()
    diff_edit = np.abs(out[inside].astype(int) - e_crop.image[inside].astype(int)).mean()
    assert diff_orig < diff_edit  # the face is the original's
    # with arrays instead of FaceCrops, without colour matching, other blends
    for method in ("poisson", "alpha"):
        alt = classic_restore_crop(
            o_crop.image, e_crop.image, face_mask, None, color_match=False, method=method
        )
        assert alt.shape == out.shape
    # an empty face mask changes nothing
    assert np.array_equal(
        classic_restore_crop(o_crop, e_crop, np.zeros_like(face_mask), None), e_crop.image
    )
    with pytest.raises(InputError):
        classic_restore_crop(o_crop, e_crop, face_mask, None, method="magic")
    with pytest.raises(InputError):
        classic_restore_crop(o_crop, e_crop, face_mask[:100], None)
    with pytest.raises(InputError):
        classic_restore_crop(o_crop.image[:256, :256], e_crop, face_mask, None)
