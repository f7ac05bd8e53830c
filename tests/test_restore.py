"""End to end on a tiny SD model loaded from a folder through engine.models.loading."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.diffusion.latents import UNetStats, encode_text, predict_noise
from engine.diffusion.restore import FacePair, InversionCache, face_cache_key, restore_faces
from engine.diffusion.schedule import Solver, make_plan
from engine.errors import Cancelled, InputError
from engine.models.loading import LowMemory, load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_and_element_masks, face_crop, face_pair

FAST = EditedIDParams(nulltext_iters=2)
SIZE = 32  # 32 px crops -> 16 px latents with the tiny VAE: fast and still real


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def _pair(original="grace_hopper", edited="astronaut", **kw) -> FacePair:
    return face_pair(original, edited, SIZE, **kw)


def test_restore_output_progress_and_diagnostics(tiny_model):
    calls = []
    result = restore_faces(
        tiny_model, [_pair()], FAST, on_step=lambda *a: calls.append(a), cache=InversionCache()
    )
    crop = result.faces[0].restored
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    steps = FAST.steps
    for stage in ("inversion", "nulltext", "entanglement"):
        seen = [c for c in calls if c[0] == stage and c[3].is_step]
        assert [c[1] for c in seen] == list(range(1, steps + 1)) and all(
            c[2] == steps for c in seen
        )
        assert all(
            list(c[3].previews) == [0] and c[3].previews[0].ndim == 3 for c in seen
        )  # the preview of each face, by its index in the pairs
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


def _latent_union(pair: FacePair, size: int) -> torch.Tensor:
    """The blend region at latent resolution, computed as the engine does (area resize)."""
    masks = [
        torch.from_numpy(m.astype(np.float32) / 255.0)[None, None]
        for m in (pair.face_mask, pair.element_mask)
    ]
    small = [F.interpolate(m, size=(size, size), mode="area") for m in masks]
    return torch.maximum(*small)


@pytest.mark.parametrize(("record", "atol"), [("off", 1e-5), ("auto", 5e-4)])
def test_without_gating_the_target_branch_is_the_edited_branch(
    tiny_model, monkeypatch, record, atol
):
    """Gating and blending off, the target branch gets exactly the edited branch's inputs
    (z_T, phi_e, P_t = P_e), so its latent equals the edited one. A target that used
    phi_o or P_o would land elsewhere (the original branch does). In one three-branch
    batch the two agree to 1e-5; the target-only entanglement is compared with
    null-text's chain, which a recomputation reproduces to ~1e-4 here (guidance 7.5
    amplifies rounding; see test_entanglement_replays_the_stored_null_text_chain)."""
    monkeypatch.setattr(tiny_model, "low_memory", LowMemory(branch_record=record))
    result = restore_faces(
        tiny_model,
        [_pair()],
        FAST.replace(gating=False, blend=False),
        cache=InversionCache(),
        keep_latents=True,
    )
    latents = result.faces[0].latents
    torch.testing.assert_close(latents["target"], latents["edited"], atol=atol, rtol=0)
    assert float((latents["original"] - latents["edited"]).abs().max()) > 1e-2


def test_outside_the_masks_the_target_is_the_edited_branch(tiny_model):
    """Blending (Blended Diffusion): outside the union of the masks the target latent is
    the EDITED branch's, exactly; inside, gating makes it differ."""
    pair = _pair()
    result = restore_faces(tiny_model, [pair], FAST, cache=InversionCache(), keep_latents=True)
    latents = result.faces[0].latents
    union = _latent_union(pair, latents["target"].shape[-1]).expand_as(latents["target"])
    outside, inside = union == 0, union == 1
    assert int(outside.sum()) > 0 and int(inside.sum()) > 0
    assert torch.equal(latents["target"][outside], latents["edited"][outside])
    assert float((latents["target"] - latents["edited"])[inside].abs().max()) > 1e-3


def test_face_gating_pulls_the_target_towards_the_original_branch(tiny_model):
    """Face mask over (nearly) the whole crop, every block gated: the target's
    self-attention rows come from the ORIGINAL branch, so the target moves from the
    edited branch (where it sits ungated) towards the original; an element mask over
    the crop instead keeps it with the edited branch."""
    base = _pair()
    almost_all = np.full((SIZE, SIZE), 255, np.uint8)
    almost_all[0, 0] = 0
    corner = np.zeros((SIZE, SIZE), np.uint8)
    corner[:4, :4] = 255
    params = FAST.replace(gate_blocks=("down", "mid", "up"), blend=False, cross_attention=False)

    def target_to_original(face_mask, element_mask) -> float:
        pair = FacePair(base.original, base.edited, face_mask, element_mask)
        latents = (
            restore_faces(tiny_model, [pair], params, cache=InversionCache(), keep_latents=True)
            .faces[0]
            .latents
        )
        return float((latents["target"] - latents["original"]).norm())

    ungated = (
        restore_faces(
            tiny_model,
            [base],
            params.replace(gating=False),
            cache=InversionCache(),
            keep_latents=True,
        )
        .faces[0]
        .latents
    )
    edited_to_original = float((ungated["edited"] - ungated["original"]).norm())
    face_gated = target_to_original(almost_all, corner)
    element_gated = target_to_original(corner, almost_all)
    # Random tiny weights make attention maps flat, so the pull is small (~0.5 %) but
    # clear: face gating moves the target towards the original far more than element
    # gating does (swapping the sources in eq. 7 reverses this).
    pull_face = edited_to_original - face_gated
    pull_element = edited_to_original - element_gated
    assert pull_face > 1e-2 and pull_face > 10 * abs(pull_element), (pull_face, pull_element)


def test_entanglement_replays_the_stored_null_text_chain(tiny_model, monkeypatch):
    """The stored null-text chain is the reconstruction_step chain of the stored
    embeddings, and the three-branch entanglement's original and edited branches follow
    it to its end (an off-by-one embedding, a swapped prompt or a lost solver history
    breaks this). This is why the target-only entanglement may read them from null-text."""
    monkeypatch.setattr(tiny_model, "low_memory", LowMemory(branch_record="off"))
    pair = _pair()
    cache = InversionCache()
    result = restore_faces(tiny_model, [pair], FAST, cache=cache, keep_latents=True)
    entry = cache.get(face_cache_key(tiny_model, pair, FAST))
    null, traj = entry.nulltext, entry.trajectories
    plan = make_plan(FAST.steps, FAST.dpm_range, tiny_model.alphas_cumprod)
    cond_o, cond_e = encode_text(tiny_model, [FAST.original_prompt, FAST.edited_prompt]).split(1)
    for cond, phis, chain in (
        (cond_o, null.uncond_original, null.chain_original),
        (cond_e, null.uncond_edited, null.chain_edited),
    ):
        solver, x = Solver(plan), traj.shared_noise.float()
        torch.testing.assert_close(x, chain[0])
        with torch.no_grad():
            for i in range(plan.steps):
                eps = predict_noise(
                    tiny_model, x, plan.timesteps[i], cond, phis[i], FAST.guidance, UNetStats()
                )
                x = solver.step(i, x, eps.float())
                torch.testing.assert_close(x, chain[i + 1], atol=1e-4, rtol=1e-4)
    latents = result.faces[0].latents
    torch.testing.assert_close(latents["original"], null.chain_original[-1], atol=1e-3, rtol=0)
    torch.testing.assert_close(latents["edited"], null.chain_edited[-1], atol=1e-3, rtol=0)


def test_target_only_entanglement_equals_the_three_branch_run(tiny_model, monkeypatch):
    """Fresh faces replay null-text's recorded branches: 2 instead of 6 UNet samples per
    face and step, the same restore to rounding (latents ~1e-4 here, as a recomputed
    null-text chain; crops within one level; element maps to 1e-5)."""
    pairs = [_pair(), _pair("astronaut", "grace_hopper")]
    runs = {}
    for record in ("off", "auto"):
        monkeypatch.setattr(tiny_model, "low_memory", LowMemory(branch_record=record))
        runs[record] = restore_faces(
            tiny_model, pairs, FAST, cache=InversionCache(), keep_latents=True
        )
    per_step = {"off": 6 * len(pairs), "auto": 2 * len(pairs)}
    for name, result in runs.items():
        assert result.stats.by_stage["entanglement"]["forward"] == per_step[name] * FAST.steps
    for g, w in zip(runs["auto"].faces, runs["off"].faces, strict=True):
        torch.testing.assert_close(g.latents["target"], w.latents["target"], atol=5e-4, rtol=0)
        assert np.abs(g.restored.astype(int) - w.restored.astype(int)).max() <= 1
        np.testing.assert_allclose(g.element_attention, w.element_attention, atol=1e-5)
    gated = runs["auto"].faces[0].latents
    assert float((gated["target"] - gated["edited"]).abs().max()) > 1e-2  # gating acted


def test_identity_only_restore_replays_without_element_words(tiny_model, monkeypatch):
    """No element words (identity only): eq. 9 has face-word sources alone and nothing is
    captured; the target-only entanglement still equals the three branches."""
    params = FAST.replace(element_words=())
    pair = _pair(require_element=False)
    latents = {}
    for record in ("off", "auto"):
        monkeypatch.setattr(tiny_model, "low_memory", LowMemory(branch_record=record))
        result = restore_faces(
            tiny_model, [pair], params, cache=InversionCache(), keep_latents=True
        )
        assert result.faces[0].element_attention is None
        latents[record] = result.faces[0].latents["target"]
    torch.testing.assert_close(latents["auto"], latents["off"], atol=5e-4, rtol=0)


def test_reruns_replay_the_kept_records_until_other_faces_come(tiny_model):
    """The app's loop: re-running the same faces with new overlap weights replays the
    records the first run kept (2 samples per face and step) and equals a fresh
    three-branch run of those weights; new gate blocks, or a call for another face, drop
    them and run three branches."""
    pairs = [_pair()]
    cache = InversionCache()

    def entangled(result) -> int:
        return result.stats.by_stage["entanglement"]["forward"] // FAST.steps

    first = restore_faces(tiny_model, pairs, FAST, cache=cache)
    assert entangled(first) == 2 * len(pairs) and len(cache._records) == len(pairs)
    moved = FAST.replace(overlap=(0.9, 0.1))
    rerun = restore_faces(tiny_model, pairs, moved, cache=cache, keep_latents=True)
    assert all(f.cached for f in rerun.faces) and entangled(rerun) == 2 * len(pairs)
    fresh = restore_faces(tiny_model, pairs, moved, cache=InversionCache(), keep_latents=True)
    for g, w in zip(rerun.faces, fresh.faces, strict=True):
        torch.testing.assert_close(g.latents["target"], w.latents["target"], atol=1e-6, rtol=0)
    other_blocks = restore_faces(
        tiny_model, pairs, moved.replace(gate_blocks=("down",)), cache=cache
    )
    assert entangled(other_blocks) == 6 * len(pairs)  # the records do not fit: three branches
    # dropped records do not come back for faces whose inversion is cached
    assert entangled(restore_faces(tiny_model, pairs, FAST, cache=cache)) == 6 * len(pairs)
    other = _pair("grace_hopper", "grace_hopper")
    restore_faces(tiny_model, [other], FAST, cache=cache)
    assert set(cache._records) == {face_cache_key(tiny_model, other, FAST)}


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

    def on_step(stage, step, total, info):
        if not info.is_step:
            return
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


def test_fifty_steps_restore_end_to_end(tiny_model):
    """Step counts beyond ~20 used to be refused (duplicate DPM timesteps near t = 0)."""
    params = FAST.replace(steps=50, dpm_range=(48, 50), final_align_steps=2, nulltext_iters=1)
    result = restore_faces(tiny_model, [_pair()], params, cache=InversionCache())
    assert len(result.plan) == 50 and [p["solver"] for p in result.plan][-3:] == [
        "ddim",
        "dpm",
        "dpm",
    ]
    assert result.faces[0].restored.max() > 16


def test_element_mask_prepass_reports_its_stage_and_cancels_within_one_unet_call(
    tiny_model,
):
    """D4: the pre-pass is its own stage, one UNet call per face, cancel checked
    between the calls (4 faces, cancel while the first call runs: no second call)."""
    from engine.diffusion.restore import ELEMENT_MASKS_STAGE, element_attention_maps

    crops = [face_crop(name, SIZE) for name in ("astronaut", "grace_hopper") * 2]
    cancel = threading.Event()
    unet_calls, seen = [], []

    def count_and_cancel(module, args):
        unet_calls.append(1)
        cancel.set()  # the user presses Esc while this UNet call runs

    hook = tiny_model.unet.register_forward_pre_hook(count_and_cancel)
    try:
        with pytest.raises(Cancelled):
            element_attention_maps(
                tiny_model,
                crops,
                FAST,
                on_step=lambda *a: seen.append(a),
                cancel=cancel,
            )
    finally:
        hook.remove()
    assert len(unet_calls) == 1
    # the cancel stopped that very call (checked before each of its blocks, issue 20):
    # no face was done
    faces_done = [s for s in seen if s[3].is_step]  # a face's end (not a unit inside it)
    assert [s[:3] for s in faces_done] == [(ELEMENT_MASKS_STAGE, 0, 4)]

    seen.clear()
    maps = element_attention_maps(tiny_model, crops, FAST, on_step=lambda *a: seen.append(a))
    assert [s[1] for s in seen if s[3].is_step] == [0, 1, 2, 3, 4]
    assert len(maps) == 4 and all(m.shape == (SIZE, SIZE) for m in maps)
    alone = element_attention_maps(tiny_model, crops[:1], FAST)[0]
    np.testing.assert_allclose(maps[0], alone, atol=1e-4)  # one face alone: the same map


def test_element_mask_prepass_one_sample_equals_the_six_sample_batch(tiny_model):
    """The pre-pass runs the one sample it reads (edited branch, conditional half); its
    maps equal those of the 2 CFG halves x 3 branches batch it used to run."""
    from engine.diffusion.attention import EntanglementAttention, GateConfig
    from engine.diffusion.restore import _prompts, element_attention_maps, prepass_maps

    crops = [face_crop(name, SIZE) for name in ("astronaut", "grace_hopper")]
    stats = UNetStats()
    maps = element_attention_maps(tiny_model, crops, FAST, stats=stats)
    assert stats.forward_samples == len(crops) and stats.forward_calls == len(crops)
    prompts = _prompts(tiny_model, FAST)
    gen = torch.Generator().manual_seed(0)
    noisy = torch.randn(1, 4, SIZE // 2, SIZE // 2, generator=gen)
    new = prepass_maps(tiny_model, noisy, 500, prompts, FAST, UNetStats())
    empty = torch.zeros(1, 1, SIZE // 2, SIZE // 2)
    old_config = GateConfig(1, empty, empty, self_attention=False, cross_attention=False,
                            capture_tokens=prompts.capture)  # fmt: skip
    gate = EntanglementAttention(tiny_model.unet, old_config)
    with gate, torch.no_grad():
        predict_noise(
            tiny_model,
            torch.cat([noisy] * 3),
            500,
            torch.cat([prompts.cond_edited] * 3),
            torch.cat([prompts.uncond] * 3),
            FAST.guidance,
            UNetStats(),
        )
    torch.testing.assert_close(new, gate.captured_maps(), rtol=0, atol=1e-5)
    assert len(maps) == 2 and float(np.abs(maps[0] - maps[1]).max()) > 1e-3


def test_prompts_are_encoded_once_for_the_prepass_and_the_restore(tiny_model):
    from engine.diffusion.restore import element_attention_maps

    params = FAST.replace(base_prompt="a photo of a face seen once", nulltext_iters=0)
    calls = []
    hook = tiny_model.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        element_attention_maps(tiny_model, [face_crop("astronaut", SIZE)], params)
        restore_faces(tiny_model, [_pair()], params, cache=InversionCache())
        restore_faces(tiny_model, [_pair()], params, cache=InversionCache())
    finally:
        hook.remove()
    assert len(calls) == 1
