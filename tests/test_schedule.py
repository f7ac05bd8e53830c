"""The hybrid step plan and step maths against diffusers' own schedulers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from engine.diffusion.schedule import (
    DDIM,
    DPM,
    Solver,
    StepPlan,
    ddim_timesteps,
    dpm_timesteps,
    make_plan,
)
from engine.errors import InputError

SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@pytest.fixture(scope="module")
def alphas_cumprod() -> torch.Tensor:
    return DDIMScheduler(**SD_BETAS).alphas_cumprod.double()


def _ddim_scheduler(steps: int) -> DDIMScheduler:
    sched = DDIMScheduler(**SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    sched.set_timesteps(steps)
    return sched


@pytest.mark.parametrize("steps", [6, 10, 50])
def test_ddim_grid_equals_diffusers(steps):
    assert ddim_timesteps(steps) == _ddim_scheduler(steps).timesteps.tolist()


def test_dpm_grid_is_uniform_in_log_snr(alphas_cumprod):
    grid = dpm_timesteps(6, alphas_cumprod)
    assert grid == [999, 803, 538, 233, 52, 7]
    lam = 0.5 * torch.log(alphas_cumprod / (1 - alphas_cumprod))
    gaps = [float(lam[b] - lam[a]) for a, b in zip(grid, grid[1:], strict=False)]
    # Uniform in lambda up to the rounding of t to integers.
    assert max(gaps) - min(gaps) < 0.05 * max(gaps)


def test_solver_ddim_steps_equal_diffusers(alphas_cumprod):
    """The live path: Solver.step on a DDIM-only merged plan, against DDIMScheduler."""
    sched = _ddim_scheduler(6)
    plan = make_plan(6, (6, 6), alphas_cumprod)
    assert list(plan.timesteps) == sched.timesteps.tolist()
    solver = Solver(plan)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    for i, t in enumerate(sched.timesteps.tolist()[:-1]):
        eps = torch.randn(x.shape, generator=gen)
        expected = sched.step(eps, t, x).prev_sample
        got = solver.step(i, x, eps)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)
        x = expected


@pytest.mark.parametrize("steps", range(4, 51))
def test_every_step_count_from_4_to_50_gives_a_valid_plan(alphas_cumprod, steps):
    """Uniform-in-lambda points crowd below t = 1 for large N; the grid is deduped so the
    paper's "DPM-Solver++ for the last two steps" works at any step count."""
    dpm = dpm_timesteps(steps, alphas_cumprod)
    assert all(a > b for a, b in zip(dpm, dpm[1:], strict=False)) and dpm[-1] >= 1
    for dpm_range in ((steps - 2, steps), (steps, steps), (steps - steps // 3, steps)):
        plan = make_plan(steps, dpm_range, alphas_cumprod)
        assert plan.steps == steps
        assert all(a > b for a, b in zip(plan.timesteps, plan.timesteps[1:], strict=False))


def test_fifty_step_grid_dedupes_only_the_crowded_end(alphas_cumprod):
    grid = dpm_timesteps(50, alphas_cumprod)
    assert grid[:40] == _raw_dpm(50, alphas_cumprod)[:40]  # untouched where not crowded
    assert grid[-4:] == [4, 3, 2, 1]


def _raw_dpm(steps, alphas_cumprod):
    lam = 0.5 * (torch.log(alphas_cumprod) - torch.log1p(-alphas_cumprod))
    targets = torch.linspace(float(lam[-1]), float(lam[0]), steps + 1, dtype=torch.float64)
    t = torch.arange(len(lam), dtype=torch.float64)
    out = []
    for target in targets[:steps]:
        out.append(
            int(round(float(np.interp(float(target), lam.flip(0).numpy(), t.flip(0).numpy()))))
        )
    return out


def test_dpm_solver_steps_equal_diffusers(alphas_cumprod):
    """First-order start, second-order 2M middle, first-order landing on clean data."""
    timesteps = [831, 665, 499, 333, 52, 7]
    sched = DPMSolverMultistepScheduler(**SD_BETAS, solver_order=2)
    sched.set_timesteps(timesteps=timesteps)
    plan = StepPlan(
        tuple(timesteps), (DPM,) * 6, tuple(float(alphas_cumprod[t]) for t in timesteps) + (1.0,)
    )
    ours = Solver(plan)
    gen = torch.Generator().manual_seed(1)
    x_ref = torch.randn(1, 4, 8, 8, generator=gen) * 5
    x = x_ref.clone()
    for i, t in enumerate(timesteps):
        eps = torch.randn(x.shape, generator=gen)
        x_ref = sched.step(eps, t, x_ref).prev_sample
        x = ours.step(i, x, eps)
        torch.testing.assert_close(x, x_ref, atol=1e-4, rtol=1e-4, msg=f"step {i}")


def test_merged_plan_is_global_and_monotone(alphas_cumprod):
    plan = make_plan(6, (4, 6), alphas_cumprod)
    ddim, dpm = ddim_timesteps(6), dpm_timesteps(6, alphas_cumprod)
    assert plan.timesteps == tuple(ddim[:4] + dpm[4:])  # global indices, no restart
    assert plan.solvers == (DDIM,) * 4 + (DPM,) * 2
    assert all(a > b for a, b in zip(plan.timesteps, plan.timesteps[1:], strict=False))
    assert plan.alpha_bars[-1] == 1.0 and plan.next_timestep(5) == 0
    # No jump at the switch: the noise level keeps falling smoothly (sigma ratios < 1).
    sigmas = [plan.sigma(j) for j in range(7)]
    assert all(b < a for a, b in zip(sigmas, sigmas[1:], strict=False))


def test_merged_plan_names_settings_that_break_it(alphas_cumprod):
    with pytest.raises(
        InputError, match=r"not strictly decreasing at step 9 .*dpm_range=\[0, 10\)"
    ):
        make_plan(20, (0, 10), alphas_cumprod)
    with pytest.raises(InputError, match="dpm_range"):
        make_plan(6, (5, 9), alphas_cumprod)


@pytest.mark.parametrize("dpm_range", [(4, 6), (6, 6), (0, 2), (2, 5)])
def test_inversion_mirrors_reconstruction_exactly_when_noise_is_constant(alphas_cumprod, dpm_range):
    """With a latent-independent noise prediction the ODE is solved exactly, so the full
    hybrid inversion followed by reconstruction returns the input (symmetry, eq. 5)."""
    plan = make_plan(6, dpm_range, alphas_cumprod)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    eps = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    inv = Solver(plan)
    x = x0
    for i in reversed(range(plan.steps)):
        x = inv.inverse_step(i, x, eps, eps_above=eps)
    rec = Solver(plan)
    for i in range(plan.steps):
        x = rec.step(i, x, eps)
    assert float((x - x0).abs().max()) < 1e-10


@pytest.mark.parametrize("with_history", [False, True])
def test_dpm_inverse_step_is_the_algebraic_mirror(alphas_cumprod, with_history):
    """inverse_step(step(x)) == x for a DPM-Solver++ step, first order and 2M, when the
    step above is first order (its x0 follows from x_i and the noise at t_{i-1})."""
    plan = make_plan(6, (4, 6), alphas_cumprod)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    eps = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    eps_above = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    fwd = Solver(plan)
    if with_history:
        # the history a first-order step 3 leaves when it lands on x with eps_above
        x_above = fwd.first_order_inverse(3, x, eps_above)
        torch.testing.assert_close(fwd.step(3, x_above, eps_above), x)
    x_next = fwd.step(4, x, eps)
    back = Solver(plan).inverse_step(4, x_next, eps, eps_above if with_history else None)
    torch.testing.assert_close(back, x)
