"""Hybrid DDIM / DPM-Solver++ step plan and the step maths (paper 2.3, eq. 5-6, A.2, A.4).

Notation. The plan has N steps and N + 1 noise *levels*: level j < N sits at timestep
t_j (t_0 > t_1 > ... > t_{N-1}); level N is the clean latent (alpha = 1, sigma = 0).
Reconstruction step i goes from level i to level i + 1 with the noise predicted at
(x_i, t_i). Inversion step i is its mirror: level i + 1 to level i, with the noise
predicted at (x_{i+1}, t_i), as in DDIM / null-text inversion.

alpha_j = sqrt(alpha_bar(t_j)), sigma_j = sqrt(1 - alpha_bar(t_j)), and
lambda_j = log(alpha_j / sigma_j) (half log-SNR; +inf at the clean level).

Every step uses the data (x0) prediction x0 = (x - sigma * eps) / alpha (A.2, eq. 10).
DDIM (eq. 11) is first order; DPM-Solver++ 2M (Lu et al. 2022, "midpoint" form as in
diffusers) adds a second-order term from the x0 of the previous step, whichever solver
made it. Written here rather than called from diffusers because diffusers' schedulers own
their timestep list and cannot walk one merged sequence or run backwards.

There is ONE implementation of each update and of its inverse (`ddim_step`, `dpm_step`,
`dpm_inverse_step`; DDIM's inverse is `ddim_step` between the swapped levels), and
`Solver` - the object inversion, null-text and entanglement run - calls exactly these.
tests/test_schedule.py walks `Solver` against DDIMScheduler and
DPMSolverMultistepScheduler on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.errors import InputError

DDIM = "ddim"
DPM = "dpm"


# --- timestep grids (A.4) -----------------------------------------------------------
def ddim_timesteps(steps: int, num_train_timesteps: int = 1000, steps_offset: int = 1) -> list[int]:
    """DDIM's grid: uniform in t, "leading" spacing with SD's steps_offset (eq. 13).

    Matches diffusers' DDIMScheduler.set_timesteps for SD 1.x's scheduler config.
    """
    ratio = num_train_timesteps // steps
    grid = [i * ratio + steps_offset for i in range(steps)]
    return [min(t, num_train_timesteps - 1) for t in reversed(grid)]


def _lambda_of(alpha_bar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.log(alpha_bar) - torch.log1p(-alpha_bar))


def dpm_timesteps(steps: int, alphas_cumprod: torch.Tensor) -> list[int]:
    """DPM-Solver++'s grid: uniform in lambda (log-SNR) from t = T-1 down to t = 0 (eq. 14).

    N + 1 points are spaced uniformly in lambda; the first N become timesteps (the last
    point is the clean end of the plan). For SD's betas and N = 6:
    [999, 803, 538, 233, 52, 7] - dense near t = 0, as the paper describes.
    """
    ac = alphas_cumprod.double()
    lambdas = _lambda_of(ac)  # decreasing in t
    # The plan is host-side maths in float64 (its outputs are Python floats).
    low, high = float(lambdas[-1]), float(lambdas[0])
    targets = torch.linspace(low, high, steps + 1, dtype=torch.float64, device="cpu")
    # lambda(t) is monotone: invert it by interpolation on the reversed (increasing) table.
    lam_inc = lambdas.flip(0)
    t_inc = torch.arange(len(ac) - 1, -1, -1, dtype=torch.float64, device="cpu")
    out = []
    for lam in targets[:steps]:
        idx = int(torch.searchsorted(lam_inc, lam).clamp(1, len(ac) - 1))
        l0, l1 = lam_inc[idx - 1], lam_inc[idx]
        frac = float((lam - l0) / (l1 - l0)) if l1 != l0 else 0.0
        t = float(t_inc[idx - 1] + frac * (t_inc[idx] - t_inc[idx - 1]))
        out.append(int(round(t)))
    return _strictly_decreasing(out)


def _strictly_decreasing(grid: list[int]) -> list[int]:
    """Dedupe integer timesteps that rounding made equal near t = 0.

    Uniform-in-lambda points crowd below t = 1 for large N (e.g. N = 50 rounds several to
    0 and 1); walking up from the last entry, each timestep is raised to at least one
    above the next, and the last to at least 1 (t = 0 is the clean level, not a step).
    A 6-step grid is unchanged.
    """
    out = list(grid)
    for j in reversed(range(len(out))):
        floor = 1 if j == len(out) - 1 else out[j + 1] + 1
        out[j] = max(out[j], floor)
    return out


# --- the merged plan (eq. 6) --------------------------------------------------------
@dataclass(frozen=True)
class StepPlan:
    """One merged, globally indexed sequence of timesteps with a solver per step."""

    timesteps: tuple[int, ...]
    solvers: tuple[str, ...]
    alpha_bars: tuple[float, ...]  # per level, len N + 1, last = 1.0 (clean)

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def alpha(self, level: int) -> float:
        return math.sqrt(self.alpha_bars[level])

    def sigma(self, level: int) -> float:
        return math.sqrt(max(0.0, 1.0 - self.alpha_bars[level]))

    def lam(self, level: int) -> float:
        sigma = self.sigma(level)
        return math.inf if sigma == 0.0 else math.log(self.alpha(level) / sigma)

    def describe(self) -> list[dict]:
        return [
            {"step": i, "timestep": t, "solver": s, "next_timestep": self.next_timestep(i)}
            for i, (t, s) in enumerate(zip(self.timesteps, self.solvers, strict=True))
        ]

    def next_timestep(self, i: int) -> int:
        return self.timesteps[i + 1] if i + 1 < self.steps else 0


def make_plan(
    steps: int,
    dpm_range: Sequence[int],
    alphas_cumprod: torch.Tensor,
    steps_offset: int = 1,
) -> StepPlan:
    """Merge the DDIM and DPM-Solver++ grids by global timestep pre-setting (eq. 6).

    Step i takes t from the DPM-Solver++ grid when start <= i < end, else from DDIM's.
    Both grids are precomputed for the full length N, so no solver restarts its own
    schedule at the switch (the rejected "fragmented" scheme of Fig. 3(3)).
    """
    start, end = int(dpm_range[0]), int(dpm_range[1])
    if not 0 <= start <= end <= steps:
        raise InputError(f"dpm_range [{start}, {end}) must lie within 0..{steps}.")
    ddim = ddim_timesteps(steps, len(alphas_cumprod), steps_offset)
    dpm = dpm_timesteps(steps, alphas_cumprod)
    timesteps, solvers = [], []
    for i in range(steps):
        use_dpm = start <= i < end
        timesteps.append(dpm[i] if use_dpm else ddim[i])
        solvers.append(DPM if use_dpm else DDIM)
    for i in range(steps - 1):
        if timesteps[i] <= timesteps[i + 1]:
            raise InputError(
                f"The merged timestep sequence is not strictly decreasing at step {i} "
                f"({solvers[i]} t={timesteps[i]} -> {solvers[i + 1]} t={timesteps[i + 1]}) "
                f"with steps={steps} and dpm_range=[{start}, {end}). DPM-Solver++'s grid is "
                "dense near t=0, so use it for the LAST steps (e.g. dpm_range=[4, 6] of 6)."
            )
    if timesteps[-1] <= 0:
        raise InputError("The last timestep must be above 0; use more steps or a later dpm_range.")
    ac = alphas_cumprod.double()
    alpha_bars = tuple(float(ac[t]) for t in timesteps) + (1.0,)
    return StepPlan(tuple(timesteps), tuple(solvers), alpha_bars)


# --- step maths ---------------------------------------------------------------------
def predict_x0(x: torch.Tensor, eps: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """Data prediction from the noise prediction (A.2, eq. 10)."""
    return (x - sigma * eps) / alpha


def ddim_step(
    x: torch.Tensor,
    eps: torch.Tensor,
    alpha_s: float,
    sigma_s: float,
    alpha_t: float,
    sigma_t: float,
) -> torch.Tensor:
    """Deterministic first-order DDIM update from level s to level t (A.2, eq. 11)."""
    return alpha_t * predict_x0(x, eps, alpha_s, sigma_s) + sigma_t * eps


def dpm_coefficients(
    lam_s: float, lam_t: float, lam_prev: float | None
) -> tuple[float, float | None]:
    """exp(-h) and the 2M ratio r0 = (lam_s - lam_prev) / h (None where first order)."""
    h = lam_t - lam_s
    if math.isinf(lam_t):
        return 0.0, None  # landing on clean data: first order (diffusers' lower_order_final)
    r0 = None if lam_prev is None or math.isinf(lam_prev) else (lam_s - lam_prev) / h
    return math.exp(-h), r0


def dpm_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    alpha_t: float,
    sigma_s: float,
    sigma_t: float,
    exp_neg_h: float,
    r0: float | None,
    prev_x0: torch.Tensor | None,
) -> torch.Tensor:
    """DPM-Solver++ (2M, data prediction, midpoint) from level s to level t (A.2).

    x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) [D0 + 0.5 D1], D1 = (D0 - D_prev) / r0.
    Without history (r0 None) it is the first-order update, identical to DDIM.
    """
    phi = alpha_t * (exp_neg_h - 1.0)
    out = (sigma_t / sigma_s) * x - phi * x0
    if r0 is not None and prev_x0 is not None:
        out = out - 0.5 * phi * (x0 - prev_x0) / r0
    return out


def dpm_inverse_step(
    x_next: torch.Tensor,
    eps: torch.Tensor,
    eps_above: torch.Tensor,
    alpha_s: float,
    sigma_s: float,
    alpha_t: float,
    sigma_t: float,
    exp_neg_h: float,
    r0: float,
) -> torch.Tensor:
    """dpm_step solved for x_s given x_t, with the history x0 taken at level s - 1.

    The history of a 2M step is x0_{s-1} = (x_s - sigma_s eps_above) / alpha_s when the
    step above is first order, so the update stays affine in x_s:
    x_t = (sigma_t/sigma_s) x_s + c(1+k)(x_s - sigma_s eps)/alpha_s
          - c k (x_s - sigma_s eps_above)/alpha_s,   c = -alpha_t (e^{-h} - 1), k = 1/(2 r0).
    """
    k = 0.5 / r0
    c = -alpha_t * (exp_neg_h - 1.0)
    num = x_next + (c * sigma_s / alpha_s) * ((1.0 + k) * eps - k * eps_above)
    return num / (sigma_t / sigma_s + c / alpha_s)


def reconstruction_step(
    plan: StepPlan,
    i: int,
    x: torch.Tensor,
    eps: torch.Tensor,
    prev_x0: torch.Tensor | None,
    prev_lam: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step i of the merged plan with the solver the plan assigns (eq. 5).

    Returns (x at level i + 1, x0 prediction at level i). Pure: null-text's inner
    iterations call it many times for one step without touching any history.
    """
    a_s, s_s, a_t, s_t = plan.alpha(i), plan.sigma(i), plan.alpha(i + 1), plan.sigma(i + 1)
    x0 = predict_x0(x, eps, a_s, s_s)
    if plan.solvers[i] == DPM:
        exp_neg_h, r0 = dpm_coefficients(plan.lam(i), plan.lam(i + 1), prev_lam)
        return dpm_step(x, x0, a_t, s_s, s_t, exp_neg_h, r0, prev_x0), x0
    return ddim_step(x, eps, a_s, s_s, a_t, s_t), x0


class Solver:
    """Walks a StepPlan forwards (reconstruction) or backwards (inversion).

    Holds the x0 history that DPM-Solver++ 2M needs; the history is fed by every step
    whatever solver made it, so the second-order term is continuous across the switch.
    """

    def __init__(self, plan: StepPlan) -> None:
        self.plan = plan
        self._prev_x0: torch.Tensor | None = None
        self._prev_lam: float | None = None

    def reset(self) -> None:
        self._prev_x0, self._prev_lam = None, None

    @property
    def history(self) -> tuple[torch.Tensor | None, float | None]:
        return self._prev_x0, self._prev_lam

    # reconstruction ---------------------------------------------------------------
    def step(self, i: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Reconstruction step i: level i -> level i + 1 (eq. 5); records the x0 history."""
        out, x0 = reconstruction_step(self.plan, i, x, eps, self._prev_x0, self._prev_lam)
        self._prev_x0, self._prev_lam = x0, self.plan.lam(i)
        return out

    # inversion ------------------------------------------------------------------------
    def needs_lookahead(self, i: int) -> bool:
        """Whether inverse_step(i) wants the noise of the step above (2M history)."""
        p = self.plan
        return p.solvers[i] == DPM and i > 0 and not math.isinf(p.lam(i + 1))

    def inverse_step(
        self,
        i: int,
        x_next: torch.Tensor,
        eps: torch.Tensor,
        eps_above: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inversion step i: level i + 1 -> level i, the algebraic mirror of step(i).

        Solves step(i)'s update for x_i given x_{i+1} (the symmetry constraint: the same
        solver on the same interval). For a DPM-Solver++ 2M step the history is the x0 of
        level i - 1, which the forward pass gets from the step above. When that step is
        first order, x0_{i-1} = (x_i - sigma_i eps_above) / alpha_i with eps_above the noise
        at t_{i-1} - the very UNet call the next inversion step makes anyway - so the
        update stays affine in x_i and is solved exactly, at no extra UNet cost.
        """
        p = self.plan
        a_s, s_s, a_t, s_t = p.alpha(i), p.sigma(i), p.alpha(i + 1), p.sigma(i + 1)
        if eps_above is not None and self.needs_lookahead(i):
            exp_neg_h, r0 = dpm_coefficients(p.lam(i), p.lam(i + 1), p.lam(i - 1))
            return dpm_inverse_step(x_next, eps, eps_above, a_s, s_s, a_t, s_t, exp_neg_h, r0)
        return self.first_order_inverse(i, x_next, eps)

    def first_order_inverse(self, i: int, x_next: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """DDIM (or history-free DPM-Solver++) inversion: ddim_step between swapped levels."""
        p = self.plan
        return ddim_step(x_next, eps, p.alpha(i + 1), p.sigma(i + 1), p.alpha(i), p.sigma(i))
