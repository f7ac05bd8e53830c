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


def _portrait_pair(name: str = "grace_hopper", **edit):
    """A real portrait and its simulated AI edit (smoothed, the face re-rendered
    smoother, rescaled and cropped: tests/fixtures/ai_edit.py)."""
    from tests.fixtures.ai_edit import simulate_ai_edit
    from tests.fixtures.faces import dlib_faces

    real = photo(name)
    return real, simulate_ai_edit(real, dlib_faces(real), **edit)


def test_a_lightly_smoothed_and_rescaled_portrait_is_caught_the_wrong_way_round():
    """Issue 20: a single portrait opened the wrong way round went unflagged (its
    grain differences vanished in 8-bit grey rounding and under the old 1.6 ratio)."""
    from tests.fixtures.ai_edit import jpeg_again

    real, edit = _portrait_pair(smoothing="bilateral", strength=0.5)
    real = jpeg_again(real)  # the real photo as shared: saved as a JPEG once more
    right = analyze_photos(real, edit, backend="dlib").roles
    wrong = analyze_photos(edit, real, backend="dlib").roles
    assert right is not None and wrong is not None  # measured by the analysis itself
    assert not right.looks_swapped and right.score < 0
    assert wrong.looks_swapped and wrong.score > 0


def test_the_jpeg_of_a_real_group_photo_against_its_edit_is_told_apart_both_ways():
    from tests.fixtures.ai_edit import jpeg_again

    real, edit = _portrait_pair("t1", smoothing="gaussian", strength=0.6)
    real = jpeg_again(real)
    right = analyze_photos(real, edit, backend="dlib").roles
    wrong = analyze_photos(edit, real, backend="dlib").roles
    assert len(right.grains) >= 5  # each paired face votes
    assert not right.looks_swapped and wrong.looks_swapped


def test_grain_is_measured_without_rounding_to_grey_levels():
    """Grain below one grey level still counts: noise of one level in the red channel
    alone moves the grey by 0.3 levels, which 8-bit grey rounds away (what hid the
    soft group photo's wrong order)."""
    rng = np.random.default_rng(1)
    image = np.full((120, 120, 3), 128, np.uint8)
    image[..., 0] += rng.integers(0, 2, (120, 120), dtype=np.uint8)
    assert face_grain(image, (0, 0, 120, 120)) > 0.1
