"""What a restore costs, counted without running it: UNet calls per stage.

`unet_calls(params, faces)` lists every UNet call the engine makes for a fresh restore
(no cached inversion) with early stop off, i.e. the worst case: stage, batch, how many,
and whether a backward pass follows. tests/test_cost.py checks it against the
`UNetStats` of real runs, stage by stage, so it cannot drift from the engine.
bench/engine_cost.py --simulate replays each distinct call on the full SD 1.4
architecture on the `meta` device for FLOPs and memory, and records per-sample TFLOP and
the peaks in COST_TABLE (`--write-table`), from which the quality presets' costs are
printed (`describe_presets`: the CLI's --help, the app's tooltip).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.params import PRESETS, EditedIDParams, with_preset

# torch-free on purpose: the app's Advanced panel prices the presets at startup, before
# torch is imported (bench/startup_time.py).

PREPASS, INVERSION, NULLTEXT, ENTANGLEMENT = (
    "element masks",
    "inversion",
    "nulltext",
    "entanglement",
)
STAGE_ORDER = (PREPASS, INVERSION, NULLTEXT, ENTANGLEMENT)
# UNet samples per face of the element-mask pre-pass: the edited branch's conditional half,
# the only one whose maps are read (the UNet treats samples independently, so the maps
# equal those of the 2 x 3-sample entanglement-shaped batch this once ran).
PREPASS_SAMPLES_PER_FACE = 1
# A Python module (not a data file) so every bundle carries it without packaging rules.
COST_TABLE = Path(__file__).with_name("cost_table.py")


@dataclass(frozen=True)
class UNetCall:
    """`calls` UNet calls of `batch` samples each in `stage`.

    kind: "plain" (SDPA everywhere), "capture" (cross-attention maps of the element
    words read), "record" (null-text's no-grad forwards keeping the gated layers'
    attention, engine.diffusion.branch_attention), "gated" (the three-branch
    entanglement), "replay" (the target-only entanglement reading the record),
    "backward" (forward + backward w.r.t. the null-text embeddings).
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


def unet_calls(
    params: EditedIDParams,
    faces: int,
    *,
    prepass: bool = True,
    nulltext_batch_faces: int | None = None,
    branch_record: bool = True,
) -> list[UNetCall]:
    """Every UNet call of a fresh restore of `faces` faces in one batch (early stop off).

    prepass: include the element-mask pre-pass (run when masks are automatic).
    nulltext_batch_faces: faces per null-text forward + backward pass (None: all).
    branch_record: null-text records the branches and the entanglement runs the target
    alone (LowMemory.branch_record other than "off"; a cached re-run has no record).
    """
    n, it, pair = params.steps, params.nulltext_iters, 2 * faces
    out = []
    if prepass and any(w.strip() for w in params.element_words):
        out.append(UNetCall(PREPASS, "capture", PREPASS_SAMPLES_PER_FACE, faces))
    out.append(UNetCall(INVERSION, "plain", pair, n))  # look-ahead noise is reused
    forward = "record" if branch_record else "plain"
    out.append(UNetCall(NULLTEXT, forward, pair, n))  # conditional noise per step
    if it:
        sizes = [b - a for a, b in face_chunks(faces, nulltext_batch_faces)]
        for size in sorted(set(sizes), reverse=True):
            out.append(UNetCall(NULLTEXT, "backward", 2 * size, n * it * sizes.count(size)))
    out.append(UNetCall(NULLTEXT, forward, pair, n))  # the step with the fitted embeddings
    if branch_record:
        out.append(UNetCall(ENTANGLEMENT, "replay", 2 * faces, n))  # the target branch
    else:
        out.append(UNetCall(ENTANGLEMENT, "gated", 2 * 3 * faces, n))  # CFG x 3 branches
    return [c for c in out if c.calls]


def face_chunks(faces: int, batch_faces: int | None) -> list[tuple[int, int]]:
    """[start, stop) face ranges of at most batch_faces faces (one range for None)."""
    size = batch_faces or faces
    return [(a, min(a + size, faces)) for a in range(0, faces, size)]


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


def sd_alphas_cumprod():
    """SD 1.x's training schedule (scaled_linear betas 0.00085..0.012, 1000 steps)."""
    import torch

    # host-side: make_plan reads it on the CPU to choose timesteps, it never meets latents
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64, device="cpu") ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def cost_table() -> dict:
    """Per-sample TFLOP at 512 px per call kind and simulated peaks, as recorded by
    `python bench/engine_cost.py --simulate --write-table`."""
    from engine.diffusion.cost_table import TABLE

    return TABLE


def write_cost_table(table: dict) -> None:
    """Record `table` (values: numbers, strings, one level of dicts) as
    engine/diffusion/cost_table.py, formatted as ruff formats it."""
    lines = ['"""Recorded by `python bench/engine_cost.py --simulate --write-table`."""', ""]
    lines.append("TABLE = {")
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"    {json.dumps(key)}: {{")
            lines += [f"        {json.dumps(k)}: {json.dumps(v)}," for k, v in value.items()]
            lines.append("    },")
        else:
            lines.append(f"    {json.dumps(key)}: {json.dumps(value)},")
    COST_TABLE.write_text("\n".join(lines + ["}", ""]), encoding="utf-8")


def tflop(calls: list[UNetCall], table: dict | None = None) -> float:
    """TFLOP of `calls` at 512 px from the recorded per-sample figures."""
    per = (table or cost_table())["tflop_per_sample_512"]
    return sum(c.samples * per[c.kind] for c in calls)


def preset_costs(faces: int = 1, table: dict | None = None) -> dict[str, dict[str, float]]:
    """{preset: {"forward", "backward", "tflop", "peak_gib"}} per face at 512 px."""
    table = table or cost_table()
    out = {}
    for name in PRESETS:
        calls = unet_calls(with_preset(EditedIDParams(), name), faces)
        rows = samples_by_stage(calls).values()
        out[name] = {
            "forward": sum(r["forward"] for r in rows) / faces,
            "backward": sum(r["backward"] for r in rows) / faces,
            "tflop": tflop(calls, table) / faces,
            "peak_gib": table["peak_gib_512"][str(faces)],
        }
    return out


def describe_presets() -> dict[str, str]:
    """{preset: one line saying what it sets and costs per face at 512 px}."""
    costs = preset_costs(1)
    out = {}
    for name, values in PRESETS.items():
        c = costs[name]
        knobs = ", ".join(f"{k} {_show(v)}" for k, v in values.items())
        out[name] = (
            f"{knobs}: {c['forward']:.0f} UNet forward + {c['backward']:.0f} backward samples, "
            f"{c['tflop']:.0f} UNet TFLOP per face at 512 px, simulated peak "
            f"{c['peak_gib']:.1f} GiB for one face in fp16"
        )
    return out


def _show(value) -> str:
    return f"{value[0]}-{value[1]}" if isinstance(value, tuple) else str(value)
