"""Disentanglement: dual null-text optimisation on the hybrid solver (paper 2.3, eq. 4-5).

From the shared z_T, one unconditional embedding per identity and per step (phi_o^i,
phi_e^i) is optimised so that the guided hybrid-solver step from the current latent lands
on the stored (mixed) trajectory point. The loss of a face is the sum of both MSEs (eq. 4);
both identities of every face share one UNet forward/backward per iteration.

All faces share one batch, one embedding tensor and one batched Adam (`BatchedAdam`,
elementwise like torch.optim.Adam, with a step count per face), and each face has its
own early stop, so a face gives the same result whether it runs alone or batched with
others (the UNet treats samples independently). The iteration is a fixed-shape,
sync-free step: early stop is an on-device mask (a stopped face keeps its batch slot,
its embeddings and Adam state frozen), losses, iteration counts and the loss scale stay
on the device, and a skipped fp16 step is a torch.where, not a Python `if` - so the host
never waits for the GPU inside a step and the step could be captured as a CUDA graph.
Only on the CPU, where a host read costs nothing, does the loop read the stop mask to
end a step once every face has stopped (`exit_check`).

Why the step's last forward is not folded into the last iteration. A step runs N
iterations of forward + backward + Adam update, then one no-grad forward with the fitted
embedding that takes the step: N + 1 forwards, N backward passes. That step must follow
the embedding after the last update, which no earlier forward has seen. Taking the last
iteration's forward instead means stopping before the last update, i.e. exactly
nulltext_iters - 1 iterations (N forwards, N - 1 backward passes): the same trade as the
Fast preset's fewer iterations, not a free saving, and a different result. Early stop
does not change this: a face that stopped keeps its batch slot, and the host does not
know (without a sync) that every face has stopped. What the last forward can give for
free it now gives: with the conditional forward it IS the entanglement's original and
edited branches, so it records their attention (`recorder`,
engine.diffusion.branch_attention) and the entanglement runs the target branch alone.

Half precision. The embeddings and Adam stay in fp32; the UNet runs in the model's dtype.
In fp16 the gradient reaching the UNet's output is ~1e-4 x the residual, below fp16's
smallest normal number (6.1e-5) once the loss is <= 1e-2: it underflows and the update
loses its direction (cosine to the fp32 gradient 0.25 at loss 1e-5). So the loss is
scaled before the backward pass and the fp32 gradients unscaled before Adam (dynamic
loss scaling as in torch.amp: a step with non-finite gradients is skipped and the scale
halved; per face here, on the device). bf16 and fp32 share fp32's exponent range and run
unscaled.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.diffusion.attention import COND, UNCOND
from engine.diffusion.branch_attention import BranchRecorder
from engine.diffusion.cost import face_chunks
from engine.diffusion.inversion import AlignedTrajectories
from engine.diffusion.latents import UNetStats, face_previews, predict_noise
from engine.diffusion.progress import StepCallback, begin_step, step_info
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
    """Dynamic loss scale for the null-text backward pass (see module docstring).

    `scale` starts as a float and lives on the device (0-dim tensor) once a step used it;
    `skipped` counts skipped face-steps, on the device too.
    """

    def __init__(self, unet_dtype: torch.dtype) -> None:
        self.scale = FP16_LOSS_SCALE if unet_dtype == torch.float16 else 1.0
        self.skipped: torch.Tensor | int = 0

    def scale_on(self, like: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.scale, torch.Tensor):
            self.scale = torch.tensor(float(self.scale), device=like.device)
        return self.scale

    def unscale_and_check(self, grad: torch.Tensor, faces: int) -> torch.Tensor:
        """Divide `grad` ((2F, ...) rows [originals..., edited...]) by the scale in place;
        return a (F,) bool tensor: which faces' gradients are finite. Any non-finite
        face halves the scale for the next try; that face's step is to be skipped."""
        scale = self.scale_on(grad)
        grad.div_(scale)
        rows = torch.isfinite(grad).flatten(1).all(1)
        finite = rows[:faces] & rows[faces:]
        bad = ~finite
        self.scale = torch.where(bad.any(), (scale / 2.0).clamp_min(MIN_LOSS_SCALE), scale)
        self.skipped = self.skipped + bad.sum()
        return finite


class BatchedAdam:
    """torch.optim.Adam's update (defaults: betas 0.9 / 0.999, eps 1e-8, no weight
    decay) on one (rows, ...) tensor, with a step count per row and a mask of the rows
    that step. torch.optim.Adam keeps one step count per tensor, so per-face early stop
    in one tensor needs this; the arithmetic mirrors torch's single-tensor Adam."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        shape = (param.shape[0],) + (1,) * (param.ndim - 1)
        self.steps = param.new_zeros(shape)

    @torch.no_grad()
    def step(self, param: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor) -> None:
        """One Adam step for the rows where `rows` (bool, (rows,)) is True."""
        beta1, beta2 = self.betas
        mask = rows.view(self.steps.shape)
        self.steps = self.steps + mask.to(self.steps.dtype)
        grad = torch.where(mask, grad, torch.zeros_like(grad))  # no NaN into the state
        self.exp_avg = torch.where(mask, self.exp_avg.lerp(grad, 1 - beta1), self.exp_avg)
        sq = self.exp_avg_sq.mul(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.exp_avg_sq = torch.where(mask, sq, self.exp_avg_sq)
        step = self.steps.clamp_min(1.0)
        step_size = self.lr / (1 - torch.pow(beta1, step))
        denom = (self.exp_avg_sq.sqrt() / (1 - torch.pow(beta2, step)).sqrt()).add_(self.eps)
        update = self.exp_avg / denom * step_size
        param.sub_(torch.where(mask, update, torch.zeros_like(update)))


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
    exit_check: bool | None = None,
    batch_faces: int | None = None,
    recorder: BranchRecorder | None = None,
) -> NullTextResult:
    """Optimise phi_o^i, phi_e^i for every step i and face (eq. 4-5).

    uncond_init: (1, 77, D) embedding of the empty prompt, the starting point.
    exit_check: read the stop mask on the host after each iteration and end the step
    once every face has stopped (None: only on the CPU, where the read is free). Off,
    a step always runs nulltext_iters iterations with stopped faces frozen: the same
    results, no host-device synchronisation.
    batch_faces: faces per forward + backward pass (None: all; a memory bound, results
    unchanged); the optimiser and the other passes still take every face at once.
    recorder: records the gated layers' attention in the two no-grad forwards of each
    step (the conditional noise; the step with the fitted embeddings), which are the
    entanglement's original and edited branches (engine.diffusion.branch_attention).
    """
    faces = trajectories.original[0].shape[0]
    n = plan.steps
    cond = torch.cat([cond_original, cond_edited])
    x = torch.cat([trajectories.original[0], trajectories.edited[0]]).float()
    # phi: (2F, 77, D) fp32 rows [phi_o of each face..., phi_e of each face...]
    phi = uncond_init.detach().float().expand(2 * faces, -1, -1).clone()
    if exit_check is None:
        exit_check = x.device.type == "cpu"
    out_o: list[torch.Tensor] = []
    out_e: list[torch.Tensor] = []
    chain = [x]
    losses = x.new_zeros(faces, n)
    initial = x.new_zeros(faces, n)
    iterations = torch.zeros(faces, n, dtype=torch.long, device=x.device)
    scaler = LossScaler(model.dtype)
    prev_x0: torch.Tensor | None = None
    prev_lam: float | None = None
    # UNet calls per step: the conditional noise, a forward + backward per chunk of faces
    # and iteration (fewer once every face stopped early), the step itself
    calls = 2 + params.nulltext_iters * len(face_chunks(faces, batch_faces))
    for i in range(n):
        check_cancel()
        begin_step("nulltext", i, n, calls)
        t = plan.timesteps[i]
        # 1. The targets of step i: the stored (mixed) trajectory points at level i + 1.
        target = torch.cat([trajectories.original[i + 1], trajectories.edited[i + 1]]).float()
        with torch.no_grad(), _recording(recorder, i, COND):  # does not depend on phi
            eps_cond = predict_noise(model, x, t, cond, None, 1.0, stats).float()
        step = _Step(i, t, x, eps_cond, target, prev_x0, prev_lam)
        # 2. Fit phi_o^i, phi_e^i of every face so the guided step lands on them (eq. 4).
        first, used = _fit_embeddings(
            model, step, phi, plan, params, stats, scaler, check_cancel, exit_check, batch_faces
        )
        # 3. Take the step with the fitted embeddings: the chain the next step starts from.
        with torch.no_grad():
            with _recording(recorder, i, UNCOND):
                eps_u = _unconditional(model, x, t, phi, stats, grad=False)
            eps = eps_u + params.guidance * (eps_cond - eps_u)
            x_next, x0 = reconstruction_step(plan, i, x, eps, prev_x0, prev_lam)
            losses[:, i] = _face_losses(x_next, target, faces)
        initial[:, i] = losses[:, i] if params.nulltext_iters == 0 else first
        iterations[:, i] = used
        # copies: phi itself goes on changing in place in the next steps
        out_o.append(phi[:faces].to(cond.dtype, copy=True))
        out_e.append(phi[faces:].to(cond.dtype, copy=True))
        x, prev_x0, prev_lam = x_next, x0, plan.lam(i)
        chain.append(x)
        if on_step is not None:
            on_step("nulltext", i + 1, n, step_info(face_previews(x[faces:])))
    return NullTextResult(
        out_o,
        out_e,
        losses,
        iterations,
        initial,
        [z[:faces] for z in chain],
        [z[faces:] for z in chain],
    )


def _recording(recorder: BranchRecorder | None, step: int, half: int):
    return nullcontext() if recorder is None else recorder.recording(step, half)


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


def _rows(t: torch.Tensor, a: int, b: int, faces: int) -> torch.Tensor:
    """Rows of faces [a, b) of a [originals..., edited...] batch, in the same layout."""
    return torch.cat([t[a:b], t[faces + a : faces + b]])


def _fit_embeddings(
    model, step: _Step, phi, plan, params, stats, scaler, check_cancel, exit_check, batch_faces
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on every face's (phi_o^i, phi_e^i) rows of `phi`, in place; a face stops once
    its loss is below eps + i * 2 eps (it still takes the step of that iteration, as
    before). Returns each face's first loss and the iterations it used, on the device."""
    faces = phi.shape[0] // 2
    lr = params.nulltext_lr * (1.0 - step.i / 100.0)
    threshold = params.nulltext_early_stop + step.i * 2 * params.nulltext_early_stop
    adam = BatchedAdam(phi, lr)
    active = torch.ones(faces, dtype=torch.bool, device=phi.device)
    first = phi.new_zeros(faces)
    used = torch.zeros(faces, dtype=torch.long, device=phi.device)
    chunks = face_chunks(faces, batch_faces)
    for it in range(params.nulltext_iters):
        check_cancel()
        grads, losses = [], []
        for a, b in chunks:  # one forward + backward per chunk of faces
            check_cancel()
            grad, loss = _loss_and_grad(model, step, phi, plan, params, stats, scaler, a, b)
            grads.append(grad)
            losses.append(loss)
        grad = _merge(grads, chunks)
        loss = torch.cat(losses)
        finite = scaler.unscale_and_check(grad, faces)
        if it == 0:
            first = loss
        adam.step(phi, grad, torch.cat([active & finite] * 2))
        used = used + active.long()
        active = active & (loss >= threshold)
        if exit_check and not bool(active.any()):
            break
    return first, used


def _loss_and_grad(model, step: _Step, phi, plan, params, stats, scaler, a: int, b: int):
    """Faces [a, b): their joint losses and the (scaled) gradient w.r.t. their phi rows."""
    faces, n = phi.shape[0] // 2, b - a
    whole = n == faces  # no copies when one pass takes every face

    def rows(t):
        return t if whole or t is None else _rows(t, a, b, faces)

    leaf = rows(phi).detach().requires_grad_(True)
    x = rows(step.x)
    eps_u = _unconditional(model, x, step.t, leaf, stats, grad=True)
    with torch.enable_grad():
        eps = eps_u + params.guidance * (rows(step.eps_cond) - eps_u)
        x_next, _ = reconstruction_step(plan, step.i, x, eps, rows(step.prev_x0), step.prev_lam)
        face_loss = _face_losses(x_next, rows(step.target), n)
        (face_loss.sum() * scaler.scale_on(face_loss)).backward()
    stats.count_backward(2 * n)
    return leaf.grad, face_loss.detach()


def _merge(grads: list[torch.Tensor], chunks: list[tuple[int, int]]) -> torch.Tensor:
    """Chunk gradients ([o_a..o_b, e_a..e_b] each) back into one [o..., e...] tensor."""
    if len(grads) == 1:
        return grads[0]
    halves = [g.chunk(2) for g in grads]
    return torch.cat([h[0] for h in halves] + [h[1] for h in halves])


def _unconditional(model, x, t, uncond, stats: UNetStats, grad: bool) -> torch.Tensor:
    with torch.set_grad_enabled(grad):
        return predict_noise(model, x, t, uncond.to(model.dtype), None, 1.0, stats).float()
