"""Alignment into the 512 crop frame, on real photos with dlib landmarks.

The dlib helpers at the top are shared with test_masks / test_pasteback / test_classic
(imported from here, cached per test session).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.faces.types import Face
from engine.photo.align import (
    MAX_UPSCALE,
    align_edited,
    align_original_to_edited,
    crop_landmarks,
    crop_template,
    min_eye_distance,
    similarity_transform,
    template_eye_distance,
    too_small_message,
    transform_points,
)
from tests.fixtures.faces import (
    dlib_faces,
    eye_angle_deg,
    moved_face,
    photo,
    psnr,
    sample_face,
    warp_photo,
)

# ----------------------------------------------------------------- shared dlib helpers

# ------------------------------------------------------------------------- template


def test_template_geometry_and_margin():
    t = crop_template(512)
    assert t.shape == (5, 2)
    assert abs(t[0, 1] - t[1, 1]) < 1.0  # eyes level
    assert 75 < template_eye_distance(512) < 86
    # face in the middle half, more room above the eyes than below the mouth
    assert 0.25 * 512 < t[:, 0].min() and t[:, 0].max() < 0.75 * 512
    assert t[0, 1] > 0.45 * 512 and t[3, 1] < 0.8 * 512
    np.testing.assert_allclose(crop_template(256), (t + 0.5) / 2 - 0.5, atol=1e-9)
    # a larger margin gives a smaller face
    assert template_eye_distance(512, margin=0.35) < template_eye_distance(512)
    assert 19 < min_eye_distance(512) < 21
    with pytest.raises(InputError):
        crop_template(512, margin=0.6)


def test_similarity_transform_recovers_known_transform():
    a = math.radians(23)
    m = np.array(
        [
            [1.7 * math.cos(a), -1.7 * math.sin(a), 31.0],
            [1.7 * math.sin(a), 1.7 * math.cos(a), -7.0],
        ]
    )
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    np.testing.assert_allclose(similarity_transform(src, transform_points(m, src)), m, atol=1e-9)
    with pytest.raises(InputError):
        similarity_transform(np.ones((5, 2)), src)


# ---------------------------------------------------------------------- align_edited


def test_align_edited_on_real_photo():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    crop = align_edited(image, face)
    assert crop.image.shape == (512, 512, 3) and crop.image.dtype == np.uint8
    assert crop.size == 512 and not crop.too_small
    pts = crop_landmarks(crop, face.landmarks5)
    assert np.abs(pts - crop_template(512)).max() < 12  # least-squares fit of a real face
    assert abs(eye_angle_deg(pts)) < 2
    assert crop.valid.dtype == np.uint8 and set(np.unique(crop.valid)) <= {0, 255}
    assert (crop.valid[200:400, 150:350] == 255).all()  # the face itself is real
    # dlib finds the face again inside the crop, where the template put it
    again = dlib_faces(crop.image)
    assert again and np.abs(again[0].landmarks5[:2] - crop_template(512)[:2]).max() < 8


def test_face_near_border_has_valid_mask_and_same_content():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    x_cut = int(face.landmarks5[0, 0]) - 40  # the left edge runs just left of the eye
    cut = np.ascontiguousarray(image[:, x_cut:])
    shift = np.array([[1.0, 0, -x_cut], [0, 1.0, 0]])
    ref = align_edited(image, face)
    crop = align_edited(cut, moved_face(face, shift))
    np.testing.assert_allclose(crop.matrix[:, :2], ref.matrix[:, :2], atol=1e-9)
    outside = crop.valid == 0
    assert outside.mean() > 0.2  # a big part of the crop lies left of the photo
    assert (crop.valid[100:450, 250:480] == 255).all()
    assert (crop.valid[:, :60] == 0).all()
    # where the crop saw real pixels it shows the same thing as the uncut photo
    inner = cv2.erode(crop.valid, np.ones((5, 5), np.uint8)) > 0
    diff = np.abs(crop.image.astype(int) - ref.image.astype(int))[inner]
    assert diff.mean() < 0.5
    # padding is reflected photo content, not black
    assert crop.image[outside].mean() > 30


def test_rotated_photo_gives_level_eyes_in_crop():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    rotated = warp_photo(image, rot, (w, h))
    rotated_face = moved_face(face, rot)
    assert abs(eye_angle_deg(rotated_face.landmarks5)) > 15
    crop = align_edited(rotated, rotated_face)
    # the crop's content is upright: dlib's landmarks in it have a level eye line
    found = dlib_faces(crop.image)
    assert found, "dlib should find the re-aligned face"
    assert abs(eye_angle_deg(found[0].landmarks5)) < 3
    ref = align_edited(image, face)
    assert psnr(crop.image[160:400, 160:360], ref.image[160:400, 160:360]) > 25


def test_profile_face_five_points():
    """A ~70 degree yaw: eyes almost coincide, nose sticks out to the side."""
    image = photo("grace_hopper")
    frontal = sample_face("grace_hopper")
    ed = float(np.linalg.norm(frontal.landmarks5[1] - frontal.landmarks5[0]))
    cx, cy = frontal.landmarks5[:2].mean(0)
    l5 = np.array(
        [
            [cx - 0.12 * ed, cy],
            [cx + 0.22 * ed, cy + 1],
            [cx - 0.45 * ed, cy + 0.55 * ed],
            [cx - 0.15 * ed, cy + 1.1 * ed],
            [cx + 0.12 * ed, cy + 1.1 * ed],
        ]
    )
    profile = Face(box=frontal.box.copy(), landmarks5=l5)
    crop = align_edited(image, profile)
    ref = align_edited(image, frontal)
    assert not crop.too_small
    assert 0.5 < crop.scale / ref.scale < 2.5  # not blown up by the short eye distance
    pts = crop_landmarks(crop, l5)
    assert (pts > 100).all() and (pts < 412).all()
    assert abs(eye_angle_deg(pts)) < 15


def test_small_face_flagged_with_message():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    assert too_small_message(align_edited(image, face)) is None
    f = 1 / 6
    small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    m = np.array([[f, 0, 0.5 * f - 0.5], [0, f, 0.5 * f - 0.5]])
    small_face = moved_face(face, m)
    assert np.linalg.norm(np.diff(small_face.landmarks5[:2], axis=0)) < min_eye_distance()
    crop = align_edited(small, small_face)
    assert crop.too_small and crop.scale > MAX_UPSCALE
    msg = too_small_message(crop, "Face 2")
    assert msg and msg.startswith("Face 2") and "larger" in msg
    assert too_small_message(small_face) and too_small_message(face) is None


def test_large_face_downscale_is_not_aliased():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    f = 4.0
    big = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    m = np.array([[f, 0, 0.5 * f - 0.5], [0, f, 0.5 * f - 0.5]])
    crop = align_edited(big, moved_face(face, m))
    ref = align_edited(image, face)
    assert crop.scale < 0.3
    assert psnr(crop.image[100:450, 100:420], ref.image[100:450, 100:420]) > 28


# ------------------------------------------------------------ align_original_to_edited


def test_original_aligned_onto_shifted_scaled_rotated_edit():
    original = photo("grace_hopper")
    o_face = sample_face("grace_hopper")
    a, s = math.radians(10), 0.8
    m = np.array(
        [[s * math.cos(a), -s * math.sin(a), 140.0], [s * math.sin(a), s * math.cos(a), 20.0]]
    )
    edited = warp_photo(original, m, (700, 560))  # other size, aspect, position, roll
    found = dlib_faces(edited)
    assert found
    e_face = found[0]  # the edited face's own (re-detected) landmarks
    e_crop = align_edited(edited, e_face)
    o_crop = align_original_to_edited(original, o_face, e_crop, e_face)
    assert o_crop.size == e_crop.size
    o_pts = crop_landmarks(o_crop, o_face.landmarks)
    e_pts = crop_landmarks(e_crop, e_face.landmarks)
    err = np.linalg.norm(o_pts - e_pts, axis=1)
    assert np.median(err) < 3 and err[[36, 39, 42, 45, 30, 48, 54]].max() < 5
    # same content; the edit is softer (shrunk 0.8x), so compare at a slightly coarser scale
    blur_o = cv2.GaussianBlur(o_crop.image, (0, 0), 1.5)[180:420, 170:340]
    blur_e = cv2.GaussianBlur(e_crop.image, (0, 0), 1.5)[180:420, 170:340]
    assert psnr(blur_o, blur_e) > 27
    # the original has more pixels on the face than the shrunk edit
    assert o_crop.scale < e_crop.scale


def test_bad_inputs():
    face = sample_face("grace_hopper")
    gray = np.zeros((100, 100), np.uint8)
    with pytest.raises(InputError, match="RGB"):
        align_edited(gray, face)
    bad = Face(box=face.box, landmarks5=np.zeros((3, 2)))
    with pytest.raises(InputError, match="5 landmarks"):
        align_edited(photo("grace_hopper"), bad)
    nan = Face(box=face.box, landmarks5=np.full((5, 2), np.nan))
    with pytest.raises(InputError):
        align_edited(photo("grace_hopper"), nan)
