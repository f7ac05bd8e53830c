"""Disentanglement: dual null-text optimisation on the hybrid solver (paper 2.3, eq. 4-5).

From the shared z_T, one unconditional embedding per identity and per step (phi_o^i,
phi_e^i) is optimised so that the guided hybrid-solver step from the current latent lands
on the stored (mixed) trajectory point. The loss of a face is the sum of both MSEs (eq. 4);
both identities of every face share one UNet forward/backward per iteration.

Each face has its own Adam optimiser and its own early stop, so a face gives the same
result whether it runs alone or batched with others (Adam is elementwise; the UNet
treats samples independently).

Half precision. The embeddings and Adam stay in fp32; the UNet runs in the model's dtype.
In fp16 the gradient reaching the UNet's output is ~1e-4 x the residual, below fp16's
smallest normal number (6.1e-5) once the loss is <= 1e-2: it underflows and the update
loses its direction (cosine to the fp32 gradient 0.25 at loss 1e-5). So the loss is
scaled before the backward pass and the fp32 gradients unscaled before Adam (dynamic
loss scaling as in torch.amp: a step with non-finite gradients is skipped and the scale
halved). bf16 and fp32 share fp32's exponent range and run unscaled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.diffusion.inversion import AlignedTrajectories, StepCallback
from engine.diffusion.latents import UNetStats, latent_preview, predict_noise
from engine.diffusion.schedule import StepPlan, reconstruction_step
from engine.params import EditedIDParams


@dataclass
class NullTextResult:
    """Optimised unconditional embeddings per step, and how the optimisation went."""

    uncond_original: list[torch.Tensor]  # N tensors (F, 77, D)
    uncond_edited: list[torch.Tensor]
    losses: torch.Tensor  # (F, N) final joint loss per step
    iterations: torch.Tensor  # (F, N) Adam iterations used per step
    initial_losses: torch.Tensor  # (F, N) loss before optimising (plain null text)
    # The guided reconstruction chain the optimised embeddings give, per level (N + 1
    # tensors (F, 4, h, w), level 0 = shared z_T): what the original and edited branches
    # of the entanglement stage reproduce.
    chain_original: list[torch.Tensor]
    chain_edited: list[torch.Tensor]

    def face(self, f: int) -> NullTextResult:
        return NullTextResult(
            [u[f : f + 1] for u in self.uncond_original],
            [u[f : f + 1] for u in self.uncond_edited],
            self.losses[f : f + 1],
            self.iterations[f : f + 1],
            self.initial_losses[f : f + 1],
            [z[f : f + 1] for z in self.chain_original],
            [z[f : f + 1] for z in self.chain_edited],
        )

    def to(self, device: torch.device | str) -> NullTextResult:
        move = [[t.to(device) for t in ts] for ts in (self.uncond_original, self.uncond_edited)]
        chains = [[t.to(device) for t in ts] for ts in (self.chain_original, self.chain_edited)]
        return NullTextResult(
            move[0],
            move[1],
            self.losses.to(device),
            self.iterations.to(device),
            self.initial_losses.to(device),
            chains[0],
            chains[1],
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
            [torch.cat([p.chain_original[j] for p in parts]) for j in range(n + 1)],
            [torch.cat([p.chain_edited[j] for p in parts]) for j in range(n + 1)],
        )


# Initial loss scale for fp16 (2^15: the gradient at the UNet output sits near 1e-4 x the
# residual, so this lifts it well into fp16's normal range while leaving 2 binades of
# headroom below fp16's maximum for the largest activations' gradients).
FP16_LOSS_SCALE = 2.0**15
MIN_LOSS_SCALE = 1.0


class LossScaler:
    """Dynamic loss scale for the null-text backward pass (see module docstring)."""

    def __init__(self, unet_dtype: torch.dtype) -> None:
        self.scale = FP16_LOSS_SCALE if unet_dtype == torch.float16 else 1.0
        self.skipped = 0

    def unscale_and_check(self, leaves: list[torch.Tensor]) -> bool:
        """Divide the gradients of `leaves` by the scale; False (and a lower scale for the
        next try) when any of them is not finite, in which case the caller skips the step."""
        grads = [leaf.grad for leaf in leaves if leaf.grad is not None]
        if self.scale != 1.0:
            torch._foreach_mul_(grads, 1.0 / self.scale)
        finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if not finite:
            self.skipped += 1
            self.scale = max(MIN_LOSS_SCALE, self.scale / 2.0)
        return finite


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
    x = torch.cat([trajectories.original[0], trajectories.edited[0]]).float()
    chain = [x]
    losses = x.new_zeros(faces, n)
    initial = x.new_zeros(faces, n)
    iterations = torch.zeros(faces, n, dtype=torch.long, device=x.device)
    scaler = LossScaler(model.dtype)
    prev_x0: torch.Tensor | None = None
    prev_lam: float | None = None
    for i in range(n):
        check_cancel()
        t = plan.timesteps[i]
        # 1. The targets of step i: the stored (mixed) trajectory points at level i + 1.
        target = torch.cat([trajectories.original[i + 1], trajectories.edited[i + 1]]).float()
        with torch.no_grad():  # the conditional noise does not depend on phi
            eps_cond = predict_noise(model, x, t, cond, None, 1.0, stats).float()
        step = _Step(i, t, x, eps_cond, target, prev_x0, prev_lam)
        # 2. Fit phi_o^i, phi_e^i of every face so the guided step lands on them (eq. 4).
        first, used = _fit_embeddings(model, step, phi_o, phi_e, plan, params, stats, scaler,
                                      check_cancel)  # fmt: skip
        for f in range(faces):
            phi_o[f], phi_e[f] = phi_o[f].detach(), phi_e[f].detach()
        # 3. Take the step with the fitted embeddings: the chain the next step starts from.
        with torch.no_grad():
            eps_u = _unconditional(model, x, t, torch.cat(phi_o + phi_e), stats, grad=False)
            eps = eps_u + params.guidance * (eps_cond - eps_u)
            x_next, x0 = reconstruction_step(plan, i, x, eps, prev_x0, prev_lam)
            losses[:, i] = _face_losses(x_next, target, faces)
        initial[:, i] = (
            losses[:, i]
            if params.nulltext_iters == 0
            else torch.tensor(first, device=x.device, dtype=initial.dtype)
        )
        iterations[:, i] = torch.tensor(used, device=x.device)
        out_o.append(torch.cat(phi_o).to(cond.dtype))
        out_e.append(torch.cat(phi_e).to(cond.dtype))
        x, prev_x0, prev_lam = x_next, x0, plan.lam(i)
        chain.append(x)
        if on_step is not None:
            on_step("nulltext", i + 1, n, latent_preview(x[faces : faces + 1]))
    return NullTextResult(
        out_o,
        out_e,
        losses,
        iterations,
        initial,
        [z[:faces] for z in chain],
        [z[faces:] for z in chain],
    )


@dataclass
class _Step:
    """What step i's optimisation fits to: the current latents [originals..., edited...],
    their conditional noise, the stored targets and the solver's x0 history."""

    i: int
    t: int
    x: torch.Tensor
    eps_cond: torch.Tensor
    target: torch.Tensor
    prev_x0: torch.Tensor | None
    prev_lam: float | None


def _fit_embeddings(
    model, step: _Step, phi_o, phi_e, plan, params, stats, scaler, check_cancel
) -> tuple[list[float], list[int]]:
    """Adam on each face's (phi_o^i, phi_e^i), in place; a face stops once its loss is
    below eps + i * 2 eps. Returns each face's first loss and the iterations it used."""
    faces = len(phi_o)
    lr = params.nulltext_lr * (1.0 - step.i / 100.0)
    threshold = params.nulltext_early_stop + step.i * 2 * params.nulltext_early_stop
    leaves = [(phi_o[f].requires_grad_(True), phi_e[f].requires_grad_(True)) for f in range(faces)]
    optimisers = [torch.optim.Adam(list(pair), lr=lr) for pair in leaves]
    first, used = [0.0] * faces, [0] * faces
    active = list(range(faces))
    for it in range(params.nulltext_iters):
        check_cancel()
        idx = torch.tensor(active + [faces + f for f in active], device=step.x.device)
        uncond = torch.cat([phi_o[f] for f in active] + [phi_e[f] for f in active])
        eps_u = _unconditional(model, step.x[idx], step.t, uncond, stats, grad=True)
        eps = eps_u + params.guidance * (step.eps_cond[idx] - eps_u)
        hist = step.prev_x0[idx] if step.prev_x0 is not None else None
        x_next, _ = reconstruction_step(plan, step.i, step.x[idx], eps, hist, step.prev_lam)
        face_loss = _face_losses(x_next, step.target[idx], len(active))
        for f in active:
            optimisers[f].zero_grad(set_to_none=True)
        (face_loss.sum() * scaler.scale).backward()
        stats.count_backward(2 * len(active))
        finite = scaler.unscale_and_check([leaf for f in active for leaf in leaves[f]])
        still_active = []
        for slot, f in enumerate(active):
            value = float(face_loss[slot].detach())
            if it == 0:
                first[f] = value
            if finite:
                optimisers[f].step()
            used[f] = it + 1
            if value >= threshold:
                still_active.append(f)
        active = still_active
        if not active:
            break
    return first, used


def _unconditional(model, x, t, uncond, stats: UNetStats, grad: bool) -> torch.Tensor:
    with torch.set_grad_enabled(grad):
        return predict_noise(model, x, t, uncond.to(model.dtype), None, 1.0, stats).float()
