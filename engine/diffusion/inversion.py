"""Alignment: adaptive-mixing dual inversion (paper 2.2, eq. 1-3).

Both latents are inverted together along the merged plan (one UNet batch, each with its
own prompt, noise predicted separately). After every inversion step they are mixed

    z_o <- (1 - w) z_o + w z_e,    z_e <- (1 - w) z_e + w z_o          (eq. 2)

with w from `init_mix`, moved by gradient descent on the alignment loss
L(w) = mean((z_o' - z_e')^2) = (1 - 2w)^2 mean((z_o - z_e)^2)          (eq. 1)
so dL/dw = -4 (1 - 2w) mean((z_o - z_e)^2) and w rises towards 0.5. Over the last
`final_align_steps` steps w is driven linearly to exactly 0.5 (eq. 3), so both
trajectories end at ONE shared z_T. One w per face pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.diffusion.latents import UNetStats, face_previews, predict_noise
from engine.diffusion.progress import StepCallback, begin_step, step_info
from engine.diffusion.schedule import Solver, StepPlan
from engine.params import EditedIDParams


@dataclass
class AlignedTrajectories:
    """Mixed inversion trajectories: index = plan level (0 = shared z_T, N = clean)."""

    original: list[torch.Tensor]  # N + 1 tensors (F, 4, h, w)
    edited: list[torch.Tensor]
    mix_weights: torch.Tensor  # (F, N): w applied after inversion steps 1..N (from clean)

    @property
    def shared_noise(self) -> torch.Tensor:
        return self.original[0]

    def face(self, f: int) -> AlignedTrajectories:
        return AlignedTrajectories(
            [z[f : f + 1] for z in self.original],
            [z[f : f + 1] for z in self.edited],
            self.mix_weights[f : f + 1],
        )

    @staticmethod
    def stack(parts: list[AlignedTrajectories]) -> AlignedTrajectories:
        levels = len(parts[0].original)
        return AlignedTrajectories(
            [torch.cat([p.original[j] for p in parts]) for j in range(levels)],
            [torch.cat([p.edited[j] for p in parts]) for j in range(levels)],
            torch.cat([p.mix_weights for p in parts]),
        )


def next_mix_weight(
    w: torch.Tensor, z_o: torch.Tensor, z_e: torch.Tensor, lr: float
) -> torch.Tensor:
    """One gradient step on L(w) (eq. 1), per face; w never passes 0.5 nor decreases."""
    msd = (z_o.float() - z_e.float()).pow(2).flatten(1).mean(1)
    grad = -4.0 * (1.0 - 2.0 * w) * msd
    return torch.minimum((w - lr * grad).clamp_min(0.0).maximum(w), torch.full_like(w, 0.5))


def mix_schedule_step(
    k: int,
    steps: int,
    w_prev: torch.Tensor,
    z_o: torch.Tensor,
    z_e: torch.Tensor,
    params: EditedIDParams,
) -> torch.Tensor:
    """w for inversion step k (0 = first step from the clean latent)."""
    if not params.alignment:
        # Ablation "without alignment": no mixing until one abrupt average at the end.
        return torch.full_like(w_prev, 0.5 if k == steps - 1 else 0.0)
    ramp_start = steps - params.final_align_steps
    if k >= ramp_start:
        # eq. 3: close the remaining gap linearly; exactly 0.5 at the last step.
        base = w_prev if k > 0 else torch.full_like(w_prev, params.init_mix)
        remaining = steps - k
        return base + (0.5 - base) / remaining
    if k == 0:
        return torch.full_like(w_prev, params.init_mix)
    return next_mix_weight(w_prev, z_o, z_e, params.mix_lr)


def _noise(model, z, plan: StepPlan, i: int, context, stats: UNetStats) -> torch.Tensor:
    return predict_noise(model, z, plan.timesteps[i], context, None, 1.0, stats).float()


def _mix(z: torch.Tensor, w: torch.Tensor, faces: int) -> torch.Tensor:
    """z_o <- (1-w) z_o + w z_e and z_e <- (1-w) z_e + w z_o, simultaneously (eq. 2)."""
    z_o, z_e = z[:faces], z[faces:]
    wb = w.view(-1, 1, 1, 1).to(z)
    return torch.cat([(1 - wb) * z_o + wb * z_e, (1 - wb) * z_e + wb * z_o])


@torch.no_grad()
def align_invert(
    model,
    z_original: torch.Tensor,
    z_edited: torch.Tensor,
    cond_original: torch.Tensor,
    cond_edited: torch.Tensor,
    plan: StepPlan,
    params: EditedIDParams,
    stats: UNetStats,
    on_step: StepCallback | None = None,
    check_cancel: Callable[[], None] = lambda: None,
) -> AlignedTrajectories:
    """Invert F original and F edited latents together with adaptive mixing.

    cond_*: (F, 77, D) prompt embeddings. Inversion runs without guidance (as DDIM /
    null-text inversion); null-text optimisation then restores guided reconstruction.
    """
    faces = z_original.shape[0]
    n = plan.steps
    solver = Solver(plan)
    z_o, z_e = z_original.float(), z_edited.float()
    traj_o: list[torch.Tensor | None] = [None] * (n + 1)
    traj_e: list[torch.Tensor | None] = [None] * (n + 1)
    traj_o[n], traj_e[n] = z_o.clone(), z_e.clone()
    # On the latents' device: w meets the latents in eq. 2 at every step (a CPU w crashed
    # the first CUDA run at the second inversion step).
    weights = z_o.new_zeros(faces, n)
    w = z_o.new_full((faces,), params.init_mix)
    context = torch.cat([cond_original, cond_edited])
    pending_eps: torch.Tensor | None = None  # noise already predicted by a look-ahead
    for k in range(n):
        check_cancel()
        i = n - 1 - k
        calls = (pending_eps is None) + solver.needs_lookahead(i)
        begin_step("inversion", k, n, calls)
        z = torch.cat([z_o, z_e])
        eps = pending_eps if pending_eps is not None else _noise(model, z, plan, i, context, stats)
        pending_eps = None
        if solver.needs_lookahead(i):
            # DPM-Solver++ 2M needs the noise at t_{i-1}: predict it at the first-order
            # guess of x_i (mixed, as the next step would see it) and reuse it there.
            guess = solver.first_order_inverse(i, z, eps)
            w_guess = mix_schedule_step(k, n, w, guess[:faces], guess[faces:], params)
            pending_eps = _noise(model, _mix(guess, w_guess, faces), plan, i - 1, context, stats)
        z = solver.inverse_step(i, z, eps, pending_eps)
        z_o, z_e = z[:faces], z[faces:]
        w = mix_schedule_step(k, n, w, z_o, z_e, params)
        mixed = _mix(z, w, faces)  # eq. 2
        z_o, z_e = mixed[:faces], mixed[faces:]
        weights[:, k] = w
        traj_o[i], traj_e[i] = z_o.clone(), z_e.clone()
        if on_step is not None:
            on_step("inversion", k + 1, n, step_info(face_previews(z_e)))
    if params.final_align_steps and params.alignment:
        # Exactly one shared z_T (eq. 3) - guard against rounding in the last mix.
        shared = 0.5 * (traj_o[0] + traj_e[0])
        traj_o[0], traj_e[0] = shared, shared.clone()
    return AlignedTrajectories(traj_o, traj_e, weights)  # type: ignore[arg-type]
