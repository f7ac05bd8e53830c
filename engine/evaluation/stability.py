"""Solver stability figures of the paper's Table 11 (A.13).

Each scheme inverts a clean latent along its step plan and reconstructs it (guidance 1,
no null-text, so the figures show the solver alone). Figures:

- cumulative MSE: sum over levels of MSE(reconstruction, inversion trajectory);
- max transition jump: the largest step-to-step increase of the RMS gap between the two
  trajectories (a discontinuity at a solver switch shows here);
- final latent L2: RMS distance of the reconstructed clean latent to the input latent;
- PSNR (dB) of the decoded reconstruction against the decoded input latent.

Schemes: "ddim" (DDIM only), "dpm" (DPM-Solver++ only, its own grid), "hybrid-global"
(ours: global timestep pre-setting, eq. 6) and "hybrid-fragmented" (DPM-Solver++ restarts
its own schedule at the switch, Fig. 3(3) - the scheme the paper rejects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.diffusion.latents import UNetStats, decode_latents, predict_noise
from engine.diffusion.schedule import (
    DDIM,
    DPM,
    Solver,
    StepPlan,
    ddim_timesteps,
    dpm_timesteps,
    make_plan,
)

SCHEMES = ("ddim", "dpm", "hybrid-fragmented", "hybrid-global")


@dataclass
class StabilityFigures:
    scheme: str
    timesteps: tuple[int, ...]
    cumulative_mse: float
    max_jump: float
    final_l2: float
    psnr_db: float


def scheme_plan(scheme: str, steps: int, dpm_range: tuple[int, int], alphas_cumprod) -> StepPlan:
    start, end = dpm_range
    ac = alphas_cumprod.double()
    if scheme == "ddim":
        return make_plan(steps, (steps, steps), ac)
    if scheme == "hybrid-global":
        return make_plan(steps, dpm_range, ac)
    if scheme == "dpm":
        timesteps = dpm_timesteps(steps, ac)
        solvers = (DPM,) * steps
    elif scheme == "hybrid-fragmented":
        # DDIM on its grid for [0, start), then DPM-Solver++ on a grid of its own
        # (end - start) steps that starts again from t = T - 1: the discontinuity.
        timesteps = ddim_timesteps(steps, len(ac))[:start] + dpm_timesteps(end - start, ac)
        timesteps += ddim_timesteps(steps, len(ac))[end:]
        solvers = (DDIM,) * start + (DPM,) * (end - start) + (DDIM,) * (steps - end)
    else:
        raise ValueError(f"Unknown scheme {scheme!r}; use one of {SCHEMES}.")
    alpha_bars = tuple(float(ac[t]) for t in timesteps) + (1.0,)
    return StepPlan(tuple(timesteps), tuple(solvers), alpha_bars)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@torch.no_grad()
def solver_stability(
    model,
    latents: torch.Tensor,
    cond: torch.Tensor,
    *,
    steps: int = 6,
    dpm_range: tuple[int, int] = (4, 6),
    schemes: tuple[str, ...] = SCHEMES,
) -> list[StabilityFigures]:
    """Invert + reconstruct `latents` (1, 4, h, w) under each scheme; Table 11's figures."""
    stats = UNetStats()
    reference = decode_latents(model, latents)[0]
    rows = []
    for scheme in schemes:
        plan = scheme_plan(scheme, steps, dpm_range, model.alphas_cumprod)
        inverse, x = Solver(plan), latents.float()
        levels = [None] * (plan.steps + 1)
        levels[-1] = x
        pending = None
        for i in reversed(range(plan.steps)):
            eps = pending if pending is not None else _eps(model, x, plan, i, cond, stats)
            pending = None
            if inverse.needs_lookahead(i):
                guess = inverse.first_order_inverse(i, x, eps)
                pending = _eps(model, guess, plan, i - 1, cond, stats)
            x = inverse.inverse_step(i, x, eps, pending)
            levels[i] = x
        forward, y = Solver(plan), levels[0]
        gaps = [0.0]
        cumulative = 0.0
        for i in range(plan.steps):
            y = forward.step(i, y, _eps(model, y, plan, i, cond, stats))
            mse = float((y - levels[i + 1]).pow(2).mean())
            cumulative += mse
            gaps.append(math.sqrt(mse))
        jumps = [b - a for a, b in zip(gaps, gaps[1:], strict=False)]
        final_l2 = float((y - latents.float()).pow(2).mean().sqrt())
        decoded = decode_latents(model, y)[0]
        rows.append(
            StabilityFigures(
                scheme, plan.timesteps, cumulative, max(jumps), final_l2, _psnr(decoded, reference)
            )
        )
    return rows


def _eps(model, x, plan: StepPlan, i: int, cond, stats) -> torch.Tensor:
    return predict_noise(model, x, plan.timesteps[i], cond, None, 1.0, stats).float()


def format_table(rows: list[StabilityFigures]) -> str:
    lines = [
        "| scheme | timesteps | cumulative MSE | max jump | final latent L2 | PSNR (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scheme} | {list(r.timesteps)} | {r.cumulative_mse:.4g} | {r.max_jump:.4g} | "
            f"{r.final_l2:.4g} | {r.psnr_db:.2f} |"
        )
    return "\n".join(lines)
