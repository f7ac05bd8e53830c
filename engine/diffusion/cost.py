"""What a restore costs, counted without running it: UNet calls per stage.

`unet_calls(params, faces)` lists every UNet call the engine makes for a fresh restore
(no cached inversion) with early stop off, i.e. the worst case: stage, batch, how many,
and whether a backward pass follows. tests/test_cost.py checks it against the
`UNetStats` of real runs, stage by stage, so it cannot drift from the engine.
bench/engine_cost.py --simulate replays each distinct call on the full SD 1.4
architecture on the `meta` device for FLOPs and memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.params import EditedIDParams

PREPASS, INVERSION, NULLTEXT, ENTANGLEMENT = (
    "element masks",
    "inversion",
    "nulltext",
    "entanglement",
)
STAGE_ORDER = (PREPASS, INVERSION, NULLTEXT, ENTANGLEMENT)


@dataclass(frozen=True)
class UNetCall:
    """`calls` UNet calls of `batch` samples each in `stage`.

    kind: "plain" (SDPA everywhere), "capture" (cross-attention maps of the element
    words read), "gated" (entanglement's processors), "backward" (forward + backward
    w.r.t. the null-text embeddings).
    """

    stage: str
    kind: str
    batch: int
    calls: int

    @property
    def samples(self) -> int:
        return self.batch * self.calls

    @property
    def backward(self) -> bool:
        return self.kind == "backward"


def unet_calls(params: EditedIDParams, faces: int, *, prepass: bool = True) -> list[UNetCall]:
    """Every UNet call of a fresh restore of `faces` faces in one batch (early stop off).

    prepass: include the element-mask pre-pass (run when masks are automatic).
    """
    from engine.diffusion.restore import PREPASS_SAMPLES_PER_FACE

    n, it, pair = params.steps, params.nulltext_iters, 2 * faces
    out = []
    if prepass and any(w.strip() for w in params.element_words):
        out.append(UNetCall(PREPASS, "capture", PREPASS_SAMPLES_PER_FACE, faces))
    out.append(UNetCall(INVERSION, "plain", pair, n))  # look-ahead noise is reused
    out.append(UNetCall(NULLTEXT, "plain", pair, n))  # conditional noise per step
    if it:
        out.append(UNetCall(NULLTEXT, "backward", pair, n * it))
    out.append(UNetCall(NULLTEXT, "plain", pair, n))  # the step with the fitted embeddings
    out.append(UNetCall(ENTANGLEMENT, "gated", 2 * 3 * faces, n))
    return [c for c in out if c.calls]


def samples_by_stage(calls: list[UNetCall]) -> dict[str, dict[str, int]]:
    """{stage: {"forward": samples, "backward": samples, "calls": calls}}."""
    out: dict[str, dict[str, int]] = {}
    for c in calls:
        row = out.setdefault(c.stage, {"forward": 0, "backward": 0, "calls": 0})
        row["forward"] += c.samples
        row["backward"] += c.samples if c.backward else 0
        row["calls"] += c.calls
    return out


def nti_p2p_samples(steps: int = 50, iters: int = 10) -> dict[str, int]:
    """UNet samples of the published single-image baseline per image: null-text inversion
    (Mokady et al.: DDIM inversion with the prompt, then per step one conditional forward,
    `iters` Adam iterations and one forward with the fitted embedding) and a
    prompt-to-prompt edit (two prompts, CFG: 4 samples per step)."""
    return {
        "forward": steps + steps * (1 + iters + 1) + steps * 4,
        "backward": steps * iters,
    }


def sd_alphas_cumprod() -> torch.Tensor:
    """SD 1.x's training schedule (scaled_linear betas 0.00085..0.012, 1000 steps)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)
