"""Paste-back: round trip, the bit-identical rule outside the alpha, ROI-only work,
colour matching, seamless cloning, several faces."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.photo.align import align_edited
from engine.photo.masks import face_mask_from_landmarks, to_photo
from engine.photo.pasteback import PasteItem, crop_alpha, paste_back, paste_many
from tests.fixtures.faces import dlib_faces, moved_face, photo, psnr, sample_face


def _setup():
    image = photo("grace_hopper")
    face = sample_face("grace_hopper")
    crop = align_edited(image, face)
    return image, face, crop, face_mask_from_landmarks(crop, face)


def _support(alpha_crop: np.ndarray, crop, shape) -> np.ndarray:
    """Photo pixels the alpha can reach (its non-zero part, warped, grown by 1 px)."""
    reach = to_photo((alpha_crop > 0).astype(np.uint8) * 255, crop, shape)
    return cv2.dilate(reach, np.ones((3, 3), np.uint8)) > 0


def test_round_trip_identical_outside_and_close_inside():
    image, _, crop, region = _setup()
    before = image.copy()
    out = paste_back(image, crop.image, crop, region)
    assert np.array_equal(image, before)  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.any(out != image, axis=2)
    support = _support(crop_alpha(region, crop), crop, image.shape)
    assert not (changed & ~support).any()  # every pixel outside the alpha: bit-identical
    assert changed.any()
    inside = to_photo(region, crop, image.shape) > 127
    p = psnr(out[inside], image[inside])
    print(f"\nround trip PSNR in the face region: {p:.1f} dB")
    assert p > 30
    assert psnr(out, image) > 35


def test_pixels_with_zero_alpha_are_bit_identical_for_any_restored_crop():
    image, _, crop, region = _setup()
    rng = np.random.default_rng(1)
    restored = rng.integers(0, 256, crop.image.shape, dtype=np.uint8)
    for seamless in (False, True):
        out = paste_back(image, restored, crop, region, seamless=seamless)
        changed = np.any(out != image, axis=2)
        support = _support(crop_alpha(region, crop), crop, image.shape)
        assert not (changed & ~support).any()
        assert changed.mean() > 0.05


def test_keep_mask_pixels_stay():
    image, face, crop, region = _setup()
    keep = np.zeros_like(region)
    keep[260:285, 180:330] = 255  # a band across the eyes
    restored = np.full_like(crop.image, 128)
    out = paste_back(image, restored, crop, region, keep_mask_crop=keep, color_match=False)
    kept = to_photo(keep, crop, image.shape) > 0
    assert kept.sum() > 1000
    assert np.array_equal(out[kept], image[kept])
    nose = face.landmarks5[2].astype(int)
    assert np.abs(out[nose[1], nose[0]].astype(int) - 128).max() <= 1


def test_color_match_removes_a_cast():
    image, _, crop, region = _setup()
    cast = np.clip(crop.image.astype(int) + np.array([40, -10, -25]), 0, 255).astype(np.uint8)
    inside = to_photo(cv2.erode(region, np.ones((15, 15), np.uint8)), crop, image.shape) > 127
    plain = paste_back(image, cast, crop, region, color_match=False)
    matched = paste_back(image, cast, crop, region, color_match=True)
    err_plain = np.abs(plain[inside].astype(float).mean(0) - image[inside].mean(0)).max()
    err_matched = np.abs(matched[inside].astype(float).mean(0) - image[inside].mean(0)).max()
    assert err_plain > 15 and err_matched < min(10.0, err_plain / 3)


def test_seamless_round_trip():
    image, _, crop, region = _setup()
    out = paste_back(image, crop.image, crop, region, seamless=True)
    inside = to_photo(region, crop, image.shape) > 127
    assert psnr(out[inside], image[inside]) > 30


def test_big_photo_only_roi_is_touched():
    image, face, _, _ = _setup()
    big = np.full((3000, 4000, 3), 77, np.uint8)
    big[2000:2600, 3000:3512] = image
    b_face = moved_face(face, np.array([[1.0, 0, 3000], [0, 1.0, 2000]]))
    crop = align_edited(big, b_face)
    region = face_mask_from_landmarks(crop, b_face)
    out = paste_back(big, np.zeros_like(crop.image), crop, region, color_match=False)
    ys, xs = np.nonzero(np.any(out != big, axis=2))
    assert ys.min() > 2000 and xs.min() > 3000 and ys.max() < 2600 and xs.max() < 3512


def test_face_near_border_pastes_without_touching_outside():
    image, face, _, _ = _setup()
    x_cut = int(face.landmarks5[0, 0]) - 40
    cut = np.ascontiguousarray(image[:, x_cut:])
    c_face = moved_face(face, np.array([[1.0, 0, -x_cut], [0, 1.0, 0]]))
    crop = align_edited(cut, c_face)
    region = face_mask_from_landmarks(crop, c_face)
    out = paste_back(cut, crop.image, crop, region)
    inside = to_photo(region, crop, cut.shape) > 127
    assert psnr(out[inside], cut[inside]) > 30
    changed = np.any(out != cut, axis=2)
    assert not (changed & ~_support(crop_alpha(region, crop), crop, cut.shape)).any()


def test_paste_many_group_photo():
    image = photo("t1")
    faces = dlib_faces(image)
    assert len(faces) >= 5
    items = []
    for i, face in enumerate(faces):
        crop = align_edited(image, face)
        restored = np.full_like(crop.image, 40 * i)
        items.append(PasteItem(restored, crop, face_mask_from_landmarks(crop, face)))
    out, alpha = paste_many(image, items, color_match=False, return_alpha=True)
    assert alpha.shape == image.shape[:2] and alpha.dtype == np.float32
    assert np.array_equal(np.any(out != image, axis=2) & (alpha == 0), np.zeros_like(alpha, bool))
    reversed_out = paste_many(image, items[::-1], color_match=False)
    assert np.abs(out.astype(int) - reversed_out.astype(int)).max() <= 1  # order-free
    support = np.zeros(image.shape[:2], bool)
    for it in items:
        support |= _support(crop_alpha(it.region_mask, it.crop), it.crop, image.shape)
    changed = np.any(out != image, axis=2)
    assert not (changed & ~support).any()
    for i, face in enumerate(faces):  # each face got its own colour
        x, y = face.landmarks5[2].astype(int)
        assert abs(int(out[y, x, 0]) - 40 * i) <= 2
    # tuples work too; nothing to paste gives a copy
    single = paste_many(image, [(items[0].restored_crop, items[0].crop, items[0].region_mask)])
    assert single.shape == image.shape
    empty = paste_many(image, [])
    assert np.array_equal(empty, image) and empty is not image


def test_overlapping_faces_are_composed_once():
    """Two crops of the same face, pasting different colours: the overlap is an even
    mix, not the second colour painted over a blend of the first."""
    image, face, crop, region = _setup()
    a = PasteItem(np.full_like(crop.image, 200), crop, region)
    b = PasteItem(np.full_like(crop.image, 100), crop, region)
    out = paste_many(image, [a, b], color_match=False)
    x, y = face.landmarks5[2].astype(int)
    assert abs(int(out[y, x, 1]) - 150) <= 1
    assert np.array_equal(out, paste_many(image, [b, a], color_match=False))


def test_bad_inputs():
    image, _, crop, region = _setup()
    with pytest.raises(InputError):
        paste_back(image, crop.image[:100], crop, region)
    with pytest.raises(InputError):
        paste_back(image, crop.image, crop, region[:100])
    with pytest.raises(InputError):
        paste_back(image[..., 0], crop.image, crop, region)
    with pytest.raises(InputError):
        paste_many(image, ["nope"])
    assert math.isfinite(psnr(image, image))
