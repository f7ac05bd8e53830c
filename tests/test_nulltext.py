"""Disentanglement: dual null-text optimisation (eq. 4-5) on known-answer fixtures."""

from __future__ import annotations

import pytest
import torch

from engine.diffusion.inversion import AlignedTrajectories
from engine.diffusion.latents import UNetStats, encode_images, encode_text, predict_noise
from engine.diffusion.nulltext import optimise_null_text
from engine.diffusion.schedule import Solver, make_plan
from engine.models.loading import load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_crop


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def _sample_trajectory(model, z_t, cond, uncond, plan, guidance):
    stats = UNetStats()
    solver, x, points = Solver(plan), z_t, [z_t]
    with torch.no_grad():
        for i in range(plan.steps):
            eps = predict_noise(model, x, plan.timesteps[i], cond, uncond, guidance, stats)
            x = solver.step(i, x, eps.float())
            points.append(x)
    return points


def test_known_trajectory_null_text_cuts_the_error(tiny_model):
    """Trajectories sampled with perturbed null embeddings u*_o, u*_e: starting from the
    plain empty-prompt embedding, the optimisation must find its way back."""
    params = EditedIDParams(nulltext_iters=15, nulltext_lr=2e-2, nulltext_early_stop=1e-9)
    plan = make_plan(params.steps, params.dpm_range, tiny_model.alphas_cumprod)
    cond_o, cond_e, uncond = encode_text(
        tiny_model, [params.original_prompt, params.edited_prompt, ""]
    ).split(1)
    gen = torch.Generator().manual_seed(0)
    z_t = torch.randn(1, 4, 16, 16, generator=gen)
    u_o = uncond + 0.1 * torch.randn(uncond.shape, generator=gen)
    u_e = uncond + 0.1 * torch.randn(uncond.shape, generator=gen)
    traj = AlignedTrajectories(
        _sample_trajectory(tiny_model, z_t, cond_o, u_o, plan, params.guidance),
        _sample_trajectory(tiny_model, z_t, cond_e, u_e, plan, params.guidance),
        torch.zeros(1, params.steps),
    )
    plain = optimise_null_text(
        tiny_model,
        traj,
        cond_o,
        cond_e,
        uncond,
        plan,
        params.replace(nulltext_iters=0),
        UNetStats(),
    )
    stats = UNetStats()
    result = optimise_null_text(tiny_model, traj, cond_o, cond_e, uncond, plan, params, stats)
    before, after = plain.losses[0], result.losses[0]
    assert float(before.min()) > 0
    assert float(after.sum()) * 3 < float(before.sum()), (before, after)
    # Both identities of the face in one batched UNet call per iteration.
    assert stats.backward_calls == int(result.iterations.sum())
    assert stats.backward_samples == int(result.iterations.sum()) * 2


def test_exact_fixture_reaches_the_trajectory(exact_sd_dir):
    """With the latent-independent UNet the guided step can land exactly on the DDIM
    inversion trajectory once the null embedding matches the prompt's prediction."""
    model = load_sd_model(exact_sd_dir, device="cpu")
    params = EditedIDParams(nulltext_iters=10, nulltext_lr=5e-2, nulltext_early_stop=1e-12)
    plan = make_plan(params.steps, params.dpm_range, model.alphas_cumprod)
    z = encode_images(model, [face_crop("grace_hopper", 32)])
    cond_o, cond_e, uncond = encode_text(
        model, [params.original_prompt, params.edited_prompt, ""]
    ).split(1)
    stats = UNetStats()
    solver, x, points = Solver(plan), z[:1].float(), [None] * (plan.steps + 1)
    points[-1] = x
    for i in reversed(range(plan.steps)):
        x = solver.inverse_step(
            i, x, predict_noise(model, x, plan.timesteps[i], cond_o, None, 1.0, stats)
        )
        points[i] = x
    traj = AlignedTrajectories(points, [p.clone() for p in points], torch.zeros(1, plan.steps))
    result = optimise_null_text(model, traj, cond_o, cond_o, uncond, plan, params, stats)
    plain = optimise_null_text(
        model, traj, cond_o, cond_o, uncond, plan, params.replace(nulltext_iters=0), UNetStats()
    )
    assert float(result.losses[0].sum()) * 5 < float(plain.losses[0].sum())


def test_faces_are_independent_in_a_batch(tiny_model):
    params = EditedIDParams(nulltext_iters=3)
    plan = make_plan(params.steps, params.dpm_range, tiny_model.alphas_cumprod)
    cond_o, cond_e, uncond = encode_text(
        tiny_model, [params.original_prompt, params.edited_prompt, ""]
    ).split(1)
    gen = torch.Generator().manual_seed(1)
    trajs = []
    for _ in range(2):
        z_t = torch.randn(1, 4, 16, 16, generator=gen)
        pts = _sample_trajectory(tiny_model, z_t, cond_o, uncond + 0.3, plan, params.guidance)
        trajs.append(AlignedTrajectories(pts, [p.clone() for p in pts], torch.zeros(1, plan.steps)))
    both = optimise_null_text(
        tiny_model,
        AlignedTrajectories.stack(trajs),
        cond_o.expand(2, -1, -1),
        cond_e.expand(2, -1, -1),
        uncond,
        plan,
        params,
        UNetStats(),
    )
    alone = optimise_null_text(
        tiny_model, trajs[1], cond_o, cond_e, uncond, plan, params, UNetStats()
    )
    for i in range(plan.steps):
        torch.testing.assert_close(
            both.uncond_original[i][1:], alone.uncond_original[i], atol=1e-3, rtol=1e-3
        )
