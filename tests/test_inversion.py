"""Alignment: adaptive-mixing dual inversion (eq. 1-3) on a tiny SD model."""

from __future__ import annotations

import pytest
import torch

from engine.diffusion.inversion import align_invert, next_mix_weight
from engine.diffusion.latents import UNetStats, encode_images, encode_text, predict_noise
from engine.diffusion.schedule import Solver, make_plan
from engine.models.loading import load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_crop


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def _invert(model, params: EditedIDParams):
    z = encode_images(model, [face_crop("grace_hopper"), face_crop("astronaut")])
    cond_o, cond_e = encode_text(model, [params.original_prompt, params.edited_prompt]).split(1)
    plan = make_plan(params.steps, params.effective_dpm_range, model.alphas_cumprod)
    stats = UNetStats()
    calls = []
    traj = align_invert(
        model, z[:1], z[1:], cond_o, cond_e, plan, params, stats, on_step=lambda *a: calls.append(a)
    )
    return traj, stats, calls, z


def test_mixing_weight_schedule_and_shared_noise(tiny_model):
    params = EditedIDParams()
    traj, stats, calls, z = _invert(tiny_model, params)
    w = traj.mix_weights[0].tolist()
    assert w[0] == pytest.approx(params.init_mix)
    assert all(b >= a for a, b in zip(w, w[1:], strict=False)), w
    assert w[-1] == 0.5 and w[-2] < 0.5
    assert torch.equal(traj.original[0], traj.edited[0])  # one shared z_T
    # The clean ends are the inputs, untouched.
    assert torch.equal(traj.original[-1], z[:1].float()) and torch.equal(
        traj.edited[-1], z[1:].float()
    )
    # Both images in one batched UNet call per step.
    assert stats.forward_calls == params.steps and stats.forward_samples == 2 * params.steps
    assert [c[:3] for c in calls] == [
        ("inversion", k + 1, params.steps) for k in range(params.steps)
    ]


def test_mixing_pulls_the_trajectories_together(tiny_model):
    mixed, *_ = _invert(tiny_model, EditedIDParams())
    unmixed, *_ = _invert(tiny_model, EditedIDParams(alignment=False))

    def gaps(traj):
        return [
            float((o - e).pow(2).mean()) for o, e in zip(traj.original, traj.edited, strict=True)
        ]

    with_mix, without = gaps(mixed), gaps(unmixed)
    assert with_mix[0] == without[0] == 0.0  # both end at one z_T
    assert with_mix[-1] == without[-1] > 0.0  # same inputs
    assert all(a < b for a, b in zip(with_mix[1:-1], without[1:-1], strict=True))


def test_gradient_step_matches_autograd_of_the_alignment_loss():
    gen = torch.Generator().manual_seed(0)
    z_o, z_e = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    w = torch.tensor([0.04, 0.2], requires_grad=True)
    wb = w.view(-1, 1, 1, 1)
    mixed_o, mixed_e = (1 - wb) * z_o + wb * z_e, (1 - wb) * z_e + wb * z_o
    loss = (mixed_o - mixed_e).pow(2).flatten(1).mean(1).sum()
    loss.backward()
    lr = 0.01
    expected = (w - lr * w.grad).detach()
    torch.testing.assert_close(next_mix_weight(w.detach(), z_o, z_e, lr), expected)
    # Never past 0.5, never downwards.
    assert float(next_mix_weight(torch.tensor([0.45]), z_o[:1], z_e[:1], 10.0)[0]) == 0.5


def test_without_alignment_the_average_is_abrupt(tiny_model):
    traj, *_ = _invert(tiny_model, EditedIDParams(alignment=False))
    assert traj.mix_weights[0].tolist() == [0.0] * 5 + [0.5]
    assert torch.equal(traj.original[0], traj.edited[0])


def test_exact_fixture_inversion_then_reconstruction_returns_the_input(exact_sd_dir):
    """Hybrid plan (DDIM + DPM-Solver++ 2M) through the real inversion code: with a noise
    prediction that does not depend on the latent, reconstruction returns the input."""
    model = load_sd_model(exact_sd_dir, device="cpu")
    params = EditedIDParams()
    z = encode_images(model, [face_crop("grace_hopper")])
    cond = encode_text(model, [params.edited_prompt])
    plan = make_plan(params.steps, params.dpm_range, model.alphas_cumprod)
    stats = UNetStats()
    # Same image on both sides, so mixing leaves the trajectory alone.
    traj = align_invert(model, z, z.clone(), cond, cond, plan, params, stats)
    assert stats.forward_calls == plan.steps  # the 2M look-ahead costs no extra UNet call
    rec, x = Solver(plan), traj.shared_noise
    for i in range(plan.steps):
        x = rec.step(
            i, x, predict_noise(model, x, plan.timesteps[i], cond, None, 1.0, stats).float()
        )
        torch.testing.assert_close(x, traj.original[i + 1], atol=1e-5, rtol=1e-5)
    assert float((x - z).abs().max()) < 1e-5
