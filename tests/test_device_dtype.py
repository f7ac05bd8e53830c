"""The engine on a second device and in half precision, on a CPU-only machine.

The first GPU restore crashed (a CPU mixing weight met CUDA latents) and null-text
gradients underflowed in fp16; neither shows on one device in fp32. Here the whole
diffusion path runs with its weights on a stand-in device that refuses CPU tensors
(tests/standin_device.py), and the tiny-model restore runs in fp16 and bf16 on the CPU.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from engine.diffusion.inversion import AlignedTrajectories
from engine.diffusion.latents import UNetStats, decode_latents, encode_text, predict_noise
from engine.diffusion.nulltext import FP16_LOSS_SCALE, LossScaler, optimise_null_text
from engine.diffusion.restore import FacePair, InversionCache, element_attention_maps, restore_faces
from engine.diffusion.schedule import Solver, make_plan
from engine.errors import NumericalError
from engine.models.fallback import restore_with_fallback
from engine.models.loading import LowMemory, load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_and_element_masks, face_crop
from tests.standin_device import DeviceMismatch, move_to_stand_in, on_stand_in, stand_in_device

SIZE = 32


def _pair(original="grace_hopper", edited="astronaut") -> FacePair:
    face, element = face_and_element_masks(SIZE)
    return FacePair(face_crop(original, SIZE), face_crop(edited, SIZE), face, element)


# -- the stand-in device itself ---------------------------------------------------------
def test_stand_in_device_refuses_what_cuda_refuses():
    with stand_in_device() as device:
        x = torch.ones(3, device=device)
        assert on_stand_in(x) and on_stand_in(x.new_zeros(2)) and on_stand_in(x * 2)
        assert float((x + torch.tensor(1.0)).sum()) == 6.0  # 0-dim CPU tensors are fine
        with pytest.raises(DeviceMismatch, match="shape \\(3,\\)"):
            x + torch.ones(3)
        with pytest.raises(TypeError):
            x.numpy()  # as on CUDA: .cpu() first
        assert not on_stand_in(x.cpu()) and x.cpu().numpy().tolist() == [1.0, 1.0, 1.0]


# -- the whole path on a second device --------------------------------------------------
def test_whole_diffusion_path_runs_on_a_second_device(tiny_sd_dir):
    """restore_faces with both solvers, alignment, null-text, gating, blending, previews,
    the element-mask pre-pass and the out-of-memory ladder (its first rung: VAE and text
    encoder waiting on the CPU, moved in for each use), with every weight on a device that
    refuses CPU tensors; same crops as the plain CPU run."""
    pairs = [_pair(), _pair("astronaut", "grace_hopper")]
    params = EditedIDParams(nulltext_iters=2)
    reference_model = load_sd_model(tiny_sd_dir, device="cpu")
    reference = restore_faces(reference_model, pairs, params, cache=InversionCache())
    reference_maps = element_attention_maps(reference_model, [p.edited for p in pairs], params)

    model = load_sd_model(tiny_sd_dir, device="cpu")
    previews, messages, attempts = [], [], []

    def run(m, plan):
        attempts.append(m.low_memory.offload_encoders)
        if len(attempts) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        maps = element_attention_maps(m, [p.edited for p in pairs], params)
        result = restore_faces(
            m,
            pairs,
            params,
            plan=plan,
            on_step=lambda stage, step, total, info: previews.append((stage, info)),
            cancel=threading.Event(),
            cache=InversionCache(),
        )
        return maps, result

    with stand_in_device():
        move_to_stand_in(model)
        maps, result = restore_with_fallback(run, model, on_message=messages.append)
        assert on_stand_in(next(model.unet.parameters()))  # settings restored, same device

    assert attempts == [False, True] and "VAE and text encoder off the GPU" in messages[0]
    steps = [(stage, info) for stage, info in previews if info.is_step]  # not unit reports
    assert {stage for stage, _ in steps} == {"inversion", "nulltext", "entanglement"}
    shown = [p for _, info in steps for p in info.previews.values()]  # back on the host
    assert shown and all(isinstance(p, np.ndarray) and p.dtype == np.uint8 for p in shown)
    for got, want in zip(result.faces, reference.faces, strict=True):
        assert got.restored.dtype == np.uint8 and got.restored.shape == (SIZE, SIZE, 3)
        diff = np.abs(got.restored.astype(int) - want.restored.astype(int))
        assert diff.max() <= 1, diff.max()  # VAE tiling at 32 px: one tile, rounding only
        assert got.mix_weights == pytest.approx(want.mix_weights, abs=1e-5)
    for got, want in zip(maps, reference_maps, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("place", ["device", "host"])
def test_branch_record_on_a_second_device_or_in_host_memory(tiny_sd_dir, place):
    """The target-only entanglement's record kept on the device or copied to host memory
    and back each step: no CPU tensor meets device tensors, the entanglement runs the
    target alone (2 samples per step), and the crop matches the CPU run."""
    params = EditedIDParams(nulltext_iters=1, steps=4, dpm_range=(3, 4))
    reference = restore_faces(
        load_sd_model(tiny_sd_dir, device="cpu"), [_pair()], params, cache=InversionCache()
    )
    model = load_sd_model(tiny_sd_dir, device="cpu", low_memory=LowMemory(branch_record=place))
    with stand_in_device():
        move_to_stand_in(model)
        result = restore_faces(model, [_pair()], params, cache=InversionCache())
    assert result.stats.by_stage["entanglement"]["forward"] == 2 * params.steps
    diff = np.abs(result.faces[0].restored.astype(int) - reference.faces[0].restored.astype(int))
    assert diff.max() <= 1, diff.max()


# -- half precision on the CPU ----------------------------------------------------------
# How close a half-precision restore must come to the fp32 one: the correlation of their
# pixels, and for fp16 the mean difference in grey levels. Measured on the tiny random
# model (nulltext_iters=4): fp16 0.954 / 9.3 levels, bf16 0.392 (bf16's 8-bit mantissa
# through inversion, null-text and 50 steps of a random UNet drifts far); the fp32 crop
# against itself upside down (a wrong-place or garbage result) correlates 0.13-0.15 and
# differs by 42 levels; against the edited crop (restoration skipped) 0.00.
HALF_VS_FP32 = {"fp16": (0.9, 15.0), "bf16": (0.3, None)}


@pytest.fixture(scope="module")
def fp32_restored(tiny_sd_dir):
    model = load_sd_model(tiny_sd_dir, device="cpu")
    result = restore_faces(
        model, [_pair()], EditedIDParams(nulltext_iters=4), cache=InversionCache()
    )
    return result.faces[0].restored.astype(int)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_restore_on_cpu(tiny_sd_dir, dtype, fp32_restored):
    model = load_sd_model(tiny_sd_dir, device="cpu", dtype=dtype, allow_cpu_half=True)
    want = torch.float16 if dtype == "fp16" else torch.bfloat16
    params = EditedIDParams(nulltext_iters=4)
    result = restore_faces(model, [_pair()], params, cache=InversionCache())
    face = result.faces[0]
    assert next(model.unet.parameters()).dtype == want
    assert face.restored.dtype == np.uint8 and face.restored.shape == fp32_restored.shape
    got = face.restored.astype(int)
    min_corr, max_mean = HALF_VS_FP32[dtype]
    corr = np.corrcoef(got.ravel(), fp32_restored.ravel())[0, 1]
    assert corr > min_corr, corr
    if max_mean is not None:
        assert np.abs(got - fp32_restored).mean() < max_mean
    assert np.isfinite(face.nulltext_losses).all()
    # null-text does its job in half precision: every step ends below where it started
    assert all(
        end < start
        for end, start in zip(face.nulltext_losses, face.nulltext_initial_losses, strict=True)
    )
    # (No pixel comparison with fp32: random tiny nets amplify rounding chaotically.)


def test_fp16_null_text_gradients_survive_small_losses(tiny_sd_dir):
    """At SD's latent size (64 x 64) and a loss near 1e-2, the gradient at the fp16 UNet's
    output sits below fp16's normal range. With loss scaling the first Adam update has
    the fp32 run's direction; without it (the control) a quarter of it underflows to 0."""
    updates = {}
    for name, dtype in (("fp32", "fp32"), ("fp16", "fp16")):
        model = load_sd_model(tiny_sd_dir, device="cpu", dtype=dtype, allow_cpu_half=True)
        updates[name] = _first_null_text_update(model)
    model = load_sd_model(tiny_sd_dir, device="cpu", dtype="fp16", allow_cpu_half=True)
    original = LossScaler.__init__

    def unscaled(self, unet_dtype):
        original(self, unet_dtype)
        self.scale = 1.0

    LossScaler.__init__ = unscaled
    try:
        updates["fp16 unscaled"] = _first_null_text_update(model)
    finally:
        LossScaler.__init__ = original

    def cosine(name):
        return float(torch.nn.functional.cosine_similarity(updates[name], updates["fp32"], dim=0))

    assert cosine("fp16") > 0.98
    assert cosine("fp16 unscaled") < 0.8  # the control: this fixture really underflows
    assert LossScaler(torch.float16).scale == FP16_LOSS_SCALE
    assert LossScaler(torch.bfloat16).scale == 1.0


def _first_null_text_update(model) -> torch.Tensor:
    """phi_o^0 - phi_init after one Adam step (elementwise ~ lr * sign(gradient))."""
    params = EditedIDParams(steps=4, dpm_range=(2, 4), nulltext_iters=1, nulltext_early_stop=0.0)
    plan = make_plan(params.steps, params.dpm_range, model.alphas_cumprod)
    cond_o, cond_e, uncond = encode_text(
        model, [params.original_prompt, params.edited_prompt, ""]
    ).split(1)
    gen = torch.Generator().manual_seed(3)
    z_t = torch.randn(1, 4, 64, 64, generator=gen).to(model.device)
    with torch.no_grad():  # the plain step null-text starts from (iteration 0 of step 0)
        t = plan.timesteps[0]
        eps = predict_noise(model, z_t, t, cond_o, uncond, params.guidance, UNetStats())
        plain = Solver(plan).step(0, z_t, eps.float())
    nudge = 3e-3 * torch.randn(z_t.shape, generator=gen)
    points = [z_t, plain + nudge] + [plain] * (plan.steps - 1)
    traj = AlignedTrajectories(points, [p.clone() for p in points], torch.zeros(1, plan.steps))
    result = optimise_null_text(model, traj, cond_o, cond_e, uncond, plan, params, UNetStats())
    return (result.uncond_original[0].float() - uncond.float()).flatten()


# -- attention processors after the memory savers ---------------------------------------
def test_switching_slicing_off_restores_sdpa(tiny_sd_dir):
    from diffusers.models.attention_processor import AttnProcessor2_0

    model = load_sd_model(tiny_sd_dir, device="cpu")
    model.set_low_memory(LowMemory(attention_slicing=True))
    assert not any(isinstance(p, AttnProcessor2_0) for p in model.unet.attn_processors.values())
    model.set_low_memory(LowMemory())
    kinds = {type(p) for p in model.unet.attn_processors.values()}
    assert kinds == {AttnProcessor2_0}


def test_entanglement_runs_with_guidance_one(tiny_sd_dir):
    """Guidance 1 still sends both CFG halves: the gated processors need them."""
    model = load_sd_model(tiny_sd_dir, device="cpu")
    result = restore_faces(
        model, [_pair()], EditedIDParams(nulltext_iters=0, guidance=1.0), cache=InversionCache()
    )
    assert result.faces[0].restored.max() > 16


# -- never a NaN or black image ---------------------------------------------------------
def test_half_precision_vae_nan_is_retried_in_fp32(tiny_sd_dir, monkeypatch):
    model = load_sd_model(tiny_sd_dir, device="cpu", dtype="bf16", allow_cpu_half=True)
    real_decode = type(model.vae).decode
    dtypes = []

    def decode(self, z, *args, **kwargs):
        dtypes.append(next(self.parameters()).dtype)
        out = real_decode(self, z, *args, **kwargs)
        if z.dtype != torch.float32:
            out.sample.fill_(float("nan"))
        return out

    monkeypatch.setattr(type(model.vae), "decode", decode)
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    image = decode_latents(model, latents)[0]
    assert dtypes == [torch.bfloat16, torch.float32]
    assert image.max() > 16
    assert next(model.vae.parameters()).dtype == torch.bfloat16  # put back afterwards


def test_non_finite_results_raise_instead_of_saving_black(tiny_sd_dir, monkeypatch):
    model = load_sd_model(tiny_sd_dir, device="cpu")
    with pytest.raises(NumericalError, match="not finite"):
        decode_latents(model, torch.full((1, 4, 16, 16), float("nan")))

    real_decode = type(model.vae).decode

    def black(self, z, *args, **kwargs):
        out = real_decode(self, z, *args, **kwargs)
        out.sample.fill_(-1.0)
        return out

    monkeypatch.setattr(type(model.vae), "decode", black)
    with pytest.raises(NumericalError, match="black"):
        restore_faces(model, [_pair()], EditedIDParams(nulltext_iters=0), cache=InversionCache())
