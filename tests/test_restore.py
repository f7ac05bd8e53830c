"""End to end on a tiny SD model loaded from a folder through engine.models."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import Cancelled, InputError
from engine.models import load_sd_model
from engine.params import EditedIDParams
from engine.restore import FacePair, InversionCache, restore_faces
from tests.helpers import face_and_element_masks, face_crop

FAST = EditedIDParams(nulltext_iters=2)
SIZE = 32  # 32 px crops -> 16 px latents with the tiny VAE: fast and still real


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def _pair(original="grace_hopper", edited="astronaut", **kw) -> FacePair:
    face, element = face_and_element_masks(SIZE)
    return FacePair(face_crop(original, SIZE), face_crop(edited, SIZE), face, element, **kw)


def test_restore_output_progress_and_diagnostics(tiny_model):
    calls = []
    result = restore_faces(
        tiny_model, [_pair()], FAST, on_step=lambda *a: calls.append(a), cache=InversionCache()
    )
    crop = result.faces[0].restored
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    steps = FAST.steps
    for stage in ("inversion", "nulltext", "entanglement"):
        seen = [c for c in calls if c[0] == stage]
        assert [c[1] for c in seen] == list(range(1, steps + 1)) and all(
            c[2] == steps for c in seen
        )
        assert all(isinstance(c[3], np.ndarray) and c[3].ndim == 3 for c in seen)
    face = result.faces[0]
    assert face.mix_weights[-1] == 0.5 and not face.cached
    assert len(face.nulltext_losses) == steps
    assert [p["solver"] for p in result.plan] == ["ddim"] * 4 + ["dpm"] * 2
    diag = result.diagnostics()
    assert diag["params"]["steps"] == steps and diag["unet"]["forward_calls"] > 0
    assert face.element_attention is not None and face.element_attention.shape == (SIZE, SIZE)


def test_restore_is_deterministic_for_a_seed(tiny_model):
    a = restore_faces(tiny_model, [_pair()], FAST, cache=InversionCache())
    b = restore_faces(tiny_model, [_pair()], FAST, cache=InversionCache())
    assert np.array_equal(a.faces[0].restored, b.faces[0].restored)


def test_outside_the_masks_the_result_follows_the_edited_crop(tiny_model):
    """Blending keeps the edited branch's latent outside the masks; gating changes inside."""
    pair = _pair()
    gated = restore_faces(tiny_model, [pair], FAST, cache=InversionCache()).faces[0].restored
    plain = restore_faces(tiny_model, [pair], FAST.replace(gating=False), cache=InversionCache())
    assert not np.array_equal(gated, plain.faces[0].restored)


def test_rerun_with_new_masks_reuses_the_cached_inversion(tiny_model):
    cache = InversionCache()
    first = restore_faces(tiny_model, [_pair()], FAST, cache=cache)
    face, element = face_and_element_masks(SIZE)
    element[20:25, 5:25] = 255  # the user painted more of the element
    second = restore_faces(
        tiny_model,
        [
            FacePair(
                face_crop("grace_hopper", SIZE),
                face_crop("astronaut", SIZE),
                face,
                element,
                overlap=(0.7, 0.3),
            )
        ],
        FAST,
        cache=cache,
    )
    assert second.faces[0].cached and not first.faces[0].cached
    # Only the entanglement stage ran: one CFG-batched UNet call per step, no backward.
    assert second.stats.forward_calls == FAST.steps and second.stats.backward_calls == 0
    assert first.stats.forward_calls > 3 * FAST.steps and first.stats.backward_calls > 0


def test_two_faces_in_one_batch_equal_each_face_alone(tiny_model):
    pairs = [_pair(), _pair("astronaut", "grace_hopper")]
    both = restore_faces(tiny_model, pairs, FAST, cache=InversionCache())
    alone_calls = 0
    for index, pair in enumerate(pairs):
        alone = restore_faces(tiny_model, [pair], FAST, cache=InversionCache())
        diff = np.abs(both.faces[index].restored.astype(int) - alone.faces[0].restored.astype(int))
        assert diff.max() <= 2, index
        alone_calls += alone.stats.forward_calls
    # One batch: the UNet is called as often as for one face, not twice as often.
    assert both.stats.forward_calls < alone_calls


def test_cancel_stops_within_a_step_and_the_model_stays_usable(tiny_model):
    cancel = threading.Event()
    seen = []

    def on_step(stage, step, total, preview):
        seen.append((stage, step))
        if stage == "entanglement" and step == 2:
            cancel.set()

    processors_before = dict(tiny_model.unet.attn_processors)
    with pytest.raises(Cancelled):
        restore_faces(
            tiny_model, [_pair()], FAST, on_step=on_step, cancel=cancel, cache=InversionCache()
        )
    assert seen[-1] == ("entanglement", 2)
    assert {k: type(v) for k, v in tiny_model.unet.attn_processors.items()} == {
        k: type(v) for k, v in processors_before.items()
    }
    assert restore_faces(tiny_model, [_pair()], FAST, cache=InversionCache()).faces[
        0
    ].restored.shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p: FacePair(
                p.original, np.zeros((40, 40, 3), np.uint8), p.face_mask, p.element_mask
            ),
            "original crop is 32x32 but the edited crop is 40x40",
        ),
        (
            lambda p: FacePair(
                p.original, p.edited, np.zeros((SIZE, SIZE), np.uint8), p.element_mask
            ),
            "face mask is empty",
        ),
        (
            lambda p: FacePair(
                p.original, p.edited, p.face_mask, np.full((SIZE, SIZE), 255, np.uint8)
            ),
            "element mask covers the whole crop",
        ),
        (
            lambda p: FacePair(p.original, p.edited, p.face_mask[:16], p.element_mask),
            "masks must match the crop size",
        ),
    ],
)
def test_bad_input_gets_a_clear_message(tiny_model, change, message):
    with pytest.raises(InputError, match=message):
        restore_faces(tiny_model, [change(_pair())], FAST, cache=InversionCache())


def test_words_absent_from_the_prompt_are_named(tiny_model):
    with pytest.raises(InputError, match="'portrait' does not appear in the prompt"):
        restore_faces(
            tiny_model, [_pair()], FAST.replace(face_words=("portrait",)), cache=InversionCache()
        )


def test_crop_sizes_that_differ_between_faces(tiny_model):
    small = _pair()
    big = FacePair(
        np.zeros((64, 64, 3), np.uint8),
        np.zeros((64, 64, 3), np.uint8),
        np.pad(small.face_mask, 16),
        np.pad(small.element_mask, 16),
    )
    with pytest.raises(InputError, match="differs from the first face"):
        restore_faces(tiny_model, [small, big], FAST, cache=InversionCache())
