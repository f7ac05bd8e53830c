"""Face and element masks on real photos (dlib landmarks), frame changes, user masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.faces.types import Face
from engine.photo.align import align_edited, align_original_to_edited, crop_landmarks
from engine.photo.masks import (
    combine_element_masks,
    element_mask_from_attention,
    element_mask_from_difference,
    face_mask_from_landmarks,
    overlap,
    resolve_masks,
    to_crop,
    to_photo,
)
from tests.fixtures.faces import dlib_faces, draw_glasses, moved_face, photo, sample_face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def _grace_crop():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    return image, face, align_edited(image, face)


# ---------------------------------------------------------------------------- face mask


def test_face_mask_covers_landmarks_and_forehead_not_background():
    _, face, crop = _grace_crop()
    mask = face_mask_from_landmarks(crop, face)
    assert mask.shape == (512, 512) and mask.dtype == np.uint8
    pts = np.round(crop_landmarks(crop, face.landmarks)).astype(int)
    assert (mask[pts[:, 1], pts[:, 0]] > 0).all()
    # forehead: well above the eyebrows (dlib's highest points) is inside
    brow_top = pts[17:27, 1].min()
    eye_y = crop_landmarks(crop, face.landmarks5)[:2, 1].mean()
    chin_y = pts[8, 1]
    cx = int(pts[27, 0])
    forehead_y = int(brow_top - 0.25 * (chin_y - eye_y))
    assert mask[forehead_y, cx] == 255
    top = np.nonzero(mask[:, cx])[0].min()
    assert eye_y - top > 0.45 * (chin_y - eye_y)
    # background corners and the area beside the head are out
    for ys, xs in ((slice(0, 60), slice(0, 60)), (slice(0, 60), slice(-60, None))):
        assert mask[ys, xs].max() == 0
    assert mask[-40:].max() == 0 and mask[:, :100].max() == 0
    assert 0.08 < (mask > 127).mean() < 0.3


def test_face_mask_from_five_points_is_an_ellipse_close_to_dense_hull():
    _, face, crop = _grace_crop()
    dense = face_mask_from_landmarks(crop, face)
    five = face_mask_from_landmarks(crop, Face(box=face.box, landmarks5=face.landmarks5))
    pts = np.round(crop_landmarks(crop, face.landmarks5)).astype(int)
    assert (five[pts[:, 1], pts[:, 0]] == 255).all()
    assert five[:60].max() == 0 and five[-40:].max() == 0
    assert iou(dense, five) > 0.75


def test_face_mask_follows_a_rotated_crop():
    """The mask is made in the crop frame, so it follows the face whatever the roll."""
    image, face, crop = _grace_crop()
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), -25, 1.0)
    rotated = cv2.warpAffine(image, rot, (w, h), borderMode=cv2.BORDER_REFLECT)

    r_face = moved_face(face, rot)
    r_crop = align_edited(rotated, r_face)
    assert (
        iou(face_mask_from_landmarks(r_crop, r_face), face_mask_from_landmarks(crop, face)) > 0.97
    )


# ------------------------------------------------------------------------ element masks


def test_difference_finds_drawn_glasses():
    image, face, crop = _grace_crop()
    edited, frames = draw_glasses(image, face)
    e_crop = align_edited(edited, face)
    o_crop = align_original_to_edited(image, face, e_crop, face)
    truth = to_crop(frames, e_crop)
    face_mask = face_mask_from_landmarks(o_crop, face)
    mask = element_mask_from_difference(o_crop, e_crop, face_mask)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert iou(mask, truth) > 0.5
    # without a face mask too; and identical crops give an empty mask
    assert iou(element_mask_from_difference(o_crop, e_crop), truth) > 0.5
    assert element_mask_from_difference(o_crop, o_crop, face_mask).max() == 0


def test_identity_change_is_separated_from_glasses_with_attention():
    """Another person's face + glasses: the difference alone also marks hair, mouth and jaw
    of the new face; the attention map for "glasses" picks the right blobs."""
    from tests.fixtures.faces import synthetic_edit

    original, o_face, edited, e_face, frames = synthetic_edit()
    e_crop = align_edited(edited, e_face)
    o_crop = align_original_to_edited(original, o_face, e_crop, e_face)
    truth = to_crop(frames, e_crop)
    face_mask = face_mask_from_landmarks(o_crop, o_face)
    diff_only = element_mask_from_difference(o_crop, e_crop, face_mask)
    # a 16x16 "cross-attention map" of the element word: blobs on the eyes
    eyes = crop_landmarks(e_crop, e_face.landmarks5)[:2] / 32.0
    yy, xx = np.mgrid[0:16, 0:16] + 0.5
    amap = sum(np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0) for x, y in eyes)
    attention = element_mask_from_attention(amap, size=512)
    both = element_mask_from_difference(o_crop, e_crop, face_mask, attention_mask=attention)
    assert iou(both, truth) > 0.5
    # The difference alone got tighter (issue 12 D12: 0.21 -> 0.53), so attention adds
    # less than it used to (+0.5 then, +0.18 now); it must still add.
    assert iou(both, truth) > iou(diff_only, truth) + 0.1
    assert iou(both, truth) > iou(attention, truth) + 0.2


def _rim_neck_arm_pair(size: int = 512, temples: bool = False):
    """Aligned crops of one synthetic face whose edit draws glasses (a strong difference)
    and, as an identity change and misalignment do, changes the face, the hair rim, the
    neck and a neighbour's arm beside it slightly. (original, edited, face mask,
    glasses, {part: where})."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy, rx, ry = size * 0.5, size * 0.47, size * 0.2, size * 0.27
    face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    hair = (((xx - cx) / (rx * 1.25)) ** 2 + ((yy - cy + size * 0.04) / (ry * 1.1)) ** 2 <= 1) & (
        yy < cy
    )
    neck = (np.abs(xx - cx) < rx * 0.55) & (yy > cy) & ~face
    arm = (xx > cx + rx * 1.35) & (xx < cx + rx * 1.75) & (yy > cy)
    jacket_top = int(cy + ry + 10)  # dark shoulders beside the neck, below the chin
    shoulders = (yy >= jacket_top) & (np.abs(xx - cx) > rx * 0.6) & (np.abs(xx - cx) < rx * 1.3)
    image = np.empty((size, size, 3), np.float32)
    image[:] = (90, 110, 140)
    for where, rgb in ((hair, (60, 45, 35)), (neck, (200, 160, 135)), (face, (210, 170, 145))):
        image[where] = rgb
    image[arm] = (190, 150, 125)
    image[np.roll(shoulders, -20, axis=0)] = (235, 235, 235)  # a white collar above them
    edited = image.copy()
    image[shoulders] = edited[np.roll(shoulders, -7, axis=0)] = (20, 22, 35)
    shoulder_edge = np.roll(shoulders, -7, axis=0) & ~shoulders  # 7 px off: misalignment
    edited[face] += (8, -4, -6)  # the new identity: a little everywhere on the face
    rim = cv2.dilate(hair.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
    rim &= ~hair & ~face
    edited[rim] = (95, 72, 55)  # the hair, a few pixels off
    edited[neck] += (75, 62, 50)  # a shade lighter
    edited[arm] += (-80, -70, -60)  # a shade darker
    glasses = np.zeros((size, size), np.uint8)
    eye_y = int(cy - ry * 0.15)
    for ex in (cx - rx * 0.45, cx + rx * 0.45):
        cv2.ellipse(glasses, (int(ex), eye_y), (int(rx * 0.35), int(ry * 0.17)), 0, 0, 360, 255, 7)
    cv2.line(glasses, (int(cx - rx * 0.1), eye_y), (int(cx + rx * 0.1), eye_y), 255, 6)
    if temples:  # the glasses' arms run into the hair rim; a strap on to the crop's edge
        ends = (int(cx - rx * 1.3), int(cx - rx * 0.8)), (int(cx + rx * 0.8), size - 1)
        for x0, x1 in ends:
            cv2.line(glasses, (x0, eye_y - 40), (x1, eye_y), 255, 5)
    edited[glasses > 0] = (15, 12, 18)

    def photo_like(array):  # sensor noise, 8 bits
        return np.clip(array + rng.normal(0, 2.0, array.shape) + 0.5, 0, 255).astype(np.uint8)

    parts = {"hair rim": rim, "neck": neck, "neighbour's arm": arm, "shoulders": shoulder_edge}
    return photo_like(image), photo_like(edited), face.astype(np.uint8) * 255, glasses, parts


def test_element_mask_keeps_the_edit_and_drops_rim_neck_and_arm():
    """D12 (issue 12): slight differences around the face (hair rim, neck, a neighbour's
    arm) and edges the alignment drifted off away from the face (shoulders) are not the
    element; the glasses, a strong difference, are."""
    from engine.photo.masks import new_content_difference

    original, edited, face, glasses, parts = _rim_neck_arm_pair()
    diff = new_content_difference(original, edited, 3.0, 1.0)
    mask = element_mask_from_difference(original, edited, face) > 127
    assert mask[glasses > 0].mean() > 0.95
    for name, where in parts.items():
        assert np.median(diff[where]) > 18.0, name  # each passes the plain threshold ...
        assert mask[where].mean() < 0.02, name  # ... and is still left out
    assert mask.sum() < 3 * (glasses > 0).sum()

    # Glasses whose arms reach into the hair rim and a strap that runs off the crop: the
    # rim stays out (too thin to be an element) and the mask ends near the face.
    original, edited, face, glasses, parts = _rim_neck_arm_pair(temples=True)
    mask = element_mask_from_difference(original, edited, face) > 127
    assert mask[glasses > 0].mean() > 0.6
    rim = parts["hair rim"] & (glasses == 0)
    assert mask[rim].mean() < 0.05
    columns = np.nonzero(mask.any(axis=0))[0]
    face_right = np.nonzero(face.any(axis=0))[0].max()
    assert columns.max() < face_right + 0.6 * 2 * np.sqrt((face > 0).sum() / np.pi)
    assert mask[:, -20:].sum() == 0


def test_attention_mask():
    amap = np.zeros((16, 16), np.float32)
    amap[6:9, 4:12] = 1.0
    amap += 0.05
    mask = element_mask_from_attention(amap, 0.5, size=512)
    assert mask.shape == (512, 512) and mask.dtype == np.uint8
    assert mask[240, 256] == 255 and mask[20, 20] == 0 and mask[500, 256] == 0
    thin = element_mask_from_attention(amap, 0.5, size=512, dilate_px=0)
    assert (thin > 0).sum() < (mask > 0).sum()
    assert element_mask_from_attention(np.ones((8, 8)), size=64).max() == 0
    assert element_mask_from_attention(amap).shape == (16, 16)
    with pytest.raises(InputError):
        element_mask_from_attention(np.full((4, 4), np.nan))
    with pytest.raises(InputError):
        element_mask_from_attention(np.zeros((2, 3, 4)))


def test_combine_and_overlap():
    diff = np.zeros((64, 64), np.uint8)
    diff[10:20, 10:20] = 255  # touches the attention
    diff[40:50, 40:50] = 255  # does not
    att = np.zeros((64, 64), np.uint8)
    att[15:30, 15:30] = 255
    both = combine_element_masks(diff, att)
    assert both[12, 12] == 255 and both[45, 45] == 0 and both[25, 25] == 0
    assert np.array_equal(combine_element_masks(diff, None), diff)
    assert np.array_equal(combine_element_masks(None, att), att)
    assert np.array_equal(combine_element_masks(diff, np.zeros_like(att)), np.zeros_like(att))
    with pytest.raises(InputError):
        combine_element_masks()
    face = np.zeros((64, 64), np.uint8)
    face[:, :32] = 200
    ov = overlap(face, att)
    assert ov[20, 20] == 200 and ov[20, 40] == 0 and ov[5, 5] == 0
    assert overlap(face > 0, att > 0).max() == 255
    with pytest.raises(InputError):
        overlap(face, att[:10])


# ------------------------------------------------------------------------ frame changes


def test_to_photo_and_back():
    image, face, crop = _grace_crop()
    mask = face_mask_from_landmarks(crop, face)
    in_photo = to_photo(mask, crop, image.shape)
    assert in_photo.shape == image.shape[:2] and in_photo.dtype == np.uint8
    # the photo mask covers the face's landmarks in the photo and not the corners
    pts = np.round(face.landmarks).astype(int)
    assert (in_photo[pts[:, 1], pts[:, 0]] > 0).all()
    assert in_photo[:40, :40].max() == 0 and in_photo[-40:].max() == 0
    back = to_crop(in_photo, crop)
    assert iou(back, mask) > 0.97
    # a user's stroke painted in the photo lands on the same face part in the crop
    painted = np.zeros(image.shape[:2], np.uint8)
    nose = face.landmarks5[2].astype(int)
    cv2.circle(painted, (int(nose[0]), int(nose[1])), 10, 255, -1)
    n_crop = np.round(crop_landmarks(crop, face.landmarks5[2:3])[0]).astype(int)
    assert to_crop(painted, crop)[n_crop[1], n_crop[0]] == 255
    with pytest.raises(InputError):
        to_photo(mask[:100], crop, image.shape)


def test_to_photo_of_a_face_in_a_big_photo_only_touches_its_box():
    image, face, _ = _grace_crop()
    big = np.zeros((2400, 3000, 3), np.uint8)
    big[1500:2100, 2000:2512] = image
    shift = np.array([[1.0, 0, 2000], [0, 1.0, 1500]])

    b_face = moved_face(face, shift)
    crop = align_edited(big, b_face)
    out = to_photo(face_mask_from_landmarks(crop, b_face), crop, big.shape)
    ys, xs = np.nonzero(out)
    assert ys.min() > 1500 and xs.min() > 2000 and ys.max() < 2100 and xs.max() < 2512


# ---------------------------------------------------------------------------- user masks


def test_user_masks_always_win():
    auto_face = np.full((32, 32), 255, np.uint8)
    auto_elem = np.zeros((32, 32), np.uint8)
    auto_elem[:8] = 255
    r = resolve_masks(auto_face, auto_elem)
    assert r.face_source == "auto" and r.element_source == "auto"
    assert np.array_equal(r.overlap, auto_elem)
    user_face = np.zeros((32, 32), bool)
    user_face[10:20, 10:20] = True
    user_elem = np.zeros((32, 32), np.float32)  # an empty user mask still wins
    r = resolve_masks(auto_face, auto_elem, user_face=user_face, user_element=user_elem)
    assert r.face_source == "user" and r.element_source == "user"
    assert r.face.dtype == np.uint8 and r.face[15, 15] == 255 and r.face[0, 0] == 0
    assert r.element.max() == 0 and r.overlap.max() == 0
    with pytest.raises(InputError):
        resolve_masks(auto_face, auto_elem, user_face=np.zeros((16, 16), np.uint8))
    with pytest.raises(InputError):
        resolve_masks(auto_face, np.zeros((32, 32, 3), np.uint8))


def test_face_mask_on_every_face_of_a_group_photo():
    image = photo("t1")
    faces = dlib_faces(image)
    assert len(faces) >= 5
    for face in faces:
        crop = align_edited(image, face)
        mask = face_mask_from_landmarks(crop, face)
        pts = np.round(crop_landmarks(crop, face.landmarks5)).astype(int)
        assert (mask[pts[:, 1], pts[:, 0]] == 255).all()
        assert 0.05 < (mask > 127).mean() < 0.35
