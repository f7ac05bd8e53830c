"""The role check (engine.photo.roles): a pair opened the wrong way round is noticed."""

from __future__ import annotations

import numpy as np

from engine.photo.pipeline import analyze_photos
from engine.photo.roles import GRAIN_RATIO, check_roles, face_grain
from tests.fixtures.faces import draw_glasses, photo, sample_face, synthetic_edit


def _check(original, edited):
    analysis = analyze_photos(original, edited, backend="dlib")
    pairs = [(f.original_face.box, f.edited_face.box) for f in analysis.faces if f.original_face]
    return check_roles(original, edited, pairs)


def test_a_swapped_pair_looks_swapped_and_the_right_one_does_not():
    original, _, edited, _, _ = synthetic_edit()  # another face pasted in
    right, swapped = _check(original, edited), _check(edited, original)
    assert right.grains and not right.looks_swapped
    assert swapped.looks_swapped
    ((o, e),) = swapped.grains
    assert e >= GRAIN_RATIO * o


def test_an_edit_that_keeps_the_pixels_gives_no_verdict_either_way():
    image = photo("grace_hopper")
    glasses, _ = draw_glasses(image, sample_face("grace_hopper"))
    assert not _check(image, glasses).looks_swapped
    assert not _check(glasses, image).looks_swapped


def test_grain_measures_noise_not_edges_and_skips_tiny_faces():
    rng = np.random.default_rng(0)
    flat = np.full((100, 100, 3), 128, np.uint8)
    flat[:, 50:] = 30  # a strong edge: not grain
    noisy = np.clip(flat + rng.normal(0, 4, flat.shape), 0, 255).astype(np.uint8)
    assert face_grain(flat, (0, 0, 100, 100)) < 0.1
    assert 2.0 < face_grain(noisy, (0, 0, 100, 100)) < 6.0
    assert face_grain(noisy, (0, 0, 10, 10)) is None
    assert not check_roles(flat, flat, [((0, 0, 100, 100), (0, 0, 100, 100))]).looks_swapped
    assert check_roles(flat, noisy, [((0, 0, 100, 100), (0, 0, 100, 100))]).looks_swapped
