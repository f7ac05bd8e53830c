"""Disentanglement: dual null-text optimisation on the hybrid solver (paper 2.3, eq. 4-5).

From the shared z_T, one unconditional embedding per identity and per step (phi_o^i,
phi_e^i) is optimised so that the guided hybrid-solver step from the current latent lands
on the stored (mixed) trajectory point. The loss of a face is the sum of both MSEs (eq. 4);
both identities of every face share one UNet forward/backward per iteration.

Each face has its own Adam optimiser and its own early stop, so a face gives the same
result whether it runs alone or batched with others (Adam is elementwise; the UNet
treats samples independently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .inversion import AlignedTrajectories, StepCallback
from .latents import UNetStats, latent_preview, predict_noise
from .params import EditedIDParams
from .schedule import StepPlan, reconstruction_step


@dataclass
class NullTextResult:
    """Optimised unconditional embeddings per step, and how the optimisation went."""

    uncond_original: list[torch.Tensor]  # N tensors (F, 77, D)
    uncond_edited: list[torch.Tensor]
    losses: torch.Tensor  # (F, N) final joint loss per step
    iterations: torch.Tensor  # (F, N) Adam iterations used per step
    initial_losses: torch.Tensor  # (F, N) loss before optimising (plain null text)

    def face(self, f: int) -> NullTextResult:
        return NullTextResult(
            [u[f : f + 1] for u in self.uncond_original],
            [u[f : f + 1] for u in self.uncond_edited],
            self.losses[f : f + 1],
            self.iterations[f : f + 1],
            self.initial_losses[f : f + 1],
        )

    @staticmethod
    def stack(parts: list[NullTextResult]) -> NullTextResult:
        n = len(parts[0].uncond_original)
        return NullTextResult(
            [torch.cat([p.uncond_original[i] for p in parts]) for i in range(n)],
            [torch.cat([p.uncond_edited[i] for p in parts]) for i in range(n)],
            torch.cat([p.losses for p in parts]),
            torch.cat([p.iterations for p in parts]),
            torch.cat([p.initial_losses for p in parts]),
        )


def _face_losses(x_next: torch.Tensor, target: torch.Tensor, faces: int) -> torch.Tensor:
    """Joint loss per face: MSE(original) + MSE(edited) (eq. 4). Batch = [o..., e...]."""
    per_sample = F.mse_loss(x_next.float(), target.float(), reduction="none").flatten(1).mean(1)
    return per_sample[:faces] + per_sample[faces:]


def optimise_null_text(
    model,
    trajectories: AlignedTrajectories,
    cond_original: torch.Tensor,
    cond_edited: torch.Tensor,
    uncond_init: torch.Tensor,
    plan: StepPlan,
    params: EditedIDParams,
    stats: UNetStats,
    on_step: StepCallback | None = None,
    check_cancel: Callable[[], None] = lambda: None,
) -> NullTextResult:
    """Optimise phi_o^i, phi_e^i for every step i and face (eq. 4-5).

    uncond_init: (1, 77, D) embedding of the empty prompt, the starting point.
    """
    faces = trajectories.original[0].shape[0]
    n = plan.steps
    cond = torch.cat([cond_original, cond_edited])
    phi_o = [uncond_init.detach().float().clone() for _ in range(faces)]
    phi_e = [uncond_init.detach().float().clone() for _ in range(faces)]
    out_o: list[torch.Tensor] = []
    out_e: list[torch.Tensor] = []
    losses = torch.zeros(faces, n)
    initial = torch.zeros(faces, n)
    iterations = torch.zeros(faces, n, dtype=torch.long)
    x = torch.cat([trajectories.original[0], trajectories.edited[0]]).float()
    prev_x0: torch.Tensor | None = None
    prev_lam: float | None = None
    for i in range(n):
        check_cancel()
        t = plan.timesteps[i]
        target = torch.cat([trajectories.original[i + 1], trajectories.edited[i + 1]]).float()
        with torch.no_grad():
            eps_cond = predict_noise(model, x, t, cond, None, 1.0, stats).float()
        lr = params.nulltext_lr * (1.0 - i / 100.0)
        threshold = params.nulltext_early_stop + i * 2 * params.nulltext_early_stop
        leaves = [
            (phi_o[f].requires_grad_(True), phi_e[f].requires_grad_(True)) for f in range(faces)
        ]
        optimisers = [torch.optim.Adam(list(pair), lr=lr) for pair in leaves]
        active = list(range(faces))
        for it in range(params.nulltext_iters):
            check_cancel()
            idx = torch.tensor(active + [faces + f for f in active])
            uncond = torch.cat([phi_o[f] for f in active] + [phi_e[f] for f in active])
            eps_u = _unconditional(model, x[idx], t, uncond, stats, grad=True)
            eps = eps_u + params.guidance * (eps_cond[idx] - eps_u)
            hist = prev_x0[idx] if prev_x0 is not None else None
            x_next, _ = reconstruction_step(plan, i, x[idx], eps, hist, prev_lam)
            face_loss = _face_losses(x_next, target[idx], len(active))
            for opt in (optimisers[f] for f in active):
                opt.zero_grad(set_to_none=True)
            face_loss.sum().backward()
            stats.backward_calls += 1
            stats.backward_samples += 2 * len(active)
            still_active = []
            for slot, f in enumerate(active):
                value = float(face_loss[slot].detach())
                if it == 0:
                    initial[f, i] = value
                optimisers[f].step()
                iterations[f, i] = it + 1
                if value >= threshold:
                    still_active.append(f)
            active = still_active
            if not active:
                break
        with torch.no_grad():
            for f in range(faces):
                phi_o[f] = phi_o[f].detach()
                phi_e[f] = phi_e[f].detach()
            uncond = torch.cat(phi_o + phi_e)
            eps_u = _unconditional(model, x, t, uncond, stats, grad=False)
            eps = eps_u + params.guidance * (eps_cond - eps_u)
            x_next, x0 = reconstruction_step(plan, i, x, eps, prev_x0, prev_lam)
            losses[:, i] = _face_losses(x_next, target, faces)
            if params.nulltext_iters == 0:
                initial[:, i] = losses[:, i]
        out_o.append(torch.cat(phi_o).to(cond.dtype))
        out_e.append(torch.cat(phi_e).to(cond.dtype))
        x, prev_x0, prev_lam = x_next, x0, plan.lam(i)
        if on_step is not None:
            on_step("nulltext", i + 1, n, latent_preview(x[faces : faces + 1]))
    return NullTextResult(out_o, out_e, losses, iterations, initial)


def _unconditional(model, x, t, uncond, stats: UNetStats, grad: bool) -> torch.Tensor:
    with torch.set_grad_enabled(grad):
        return predict_noise(model, x, t, uncond.to(model.dtype), None, 1.0, stats).float()
