"""Cost of EditedID per face vs the null-text inversion + prompt-to-prompt baseline.

Both are run from the same engine code in the same process and printed as one table:
UNet forward / backward passes (samples), wall time per stage and peak memory.

  python bench/engine_cost.py                       # tiny random SD model, CPU (counts, ratios)
  python bench/engine_cost.py --model sd14-random --device cuda --dtype fp16   # full SD 1.4 size
  python bench/engine_cost.py --model /path/to/sd-folder --device cuda
  python bench/engine_cost.py --simulate [--json]   # full SD 1.4 on `meta`: FLOPs, memory

--simulate (bench/cost_sim.py) needs no weights and no GPU: the full SD 1.4 architecture
on PyTorch's meta device, fp16, per stage the UNet samples, TFLOP (FlopCounterMode) and
the simulated peak GPU memory, for 512 / 768 px x 1 / 4 faces, in well under a minute.

Absolute times mean something only on a GPU with the full architecture; on the CPU read
the counts and the ratio between the two methods. Random weights are fine for timing.

The baseline is this engine with alignment and the hybrid solver switched off, 50 DDIM
steps and null-text inversion at every step; its reconstruction keeps the engine's
attention gating (a prompt-to-prompt-style attention control). It stands in for null-text
inversion + P2P at their cost (UNet passes); it is not the reference implementation.

This module is also the library of bench/gpu_acceptance.py and tests/test_gpu.py:
`random_sd14_model`, `tiny_model`, `make_pairs`, `run`, `markdown_table`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.diffusion.restore import FacePair, InversionCache, restore_faces  # noqa: E402
from engine.models.loading import (  # noqa: E402
    SDModel,
    choose_device,
    choose_dtype,
    load_sd_model,
    tune_for_device,
)
from engine.params import EditedIDParams  # noqa: E402

EDITEDID_LABEL = "EditedID (6 steps, hybrid)"


def baseline_label(steps: int) -> str:
    return f"Null-text + P2P-style ({steps} DDIM steps, this engine, no alignment)"


def random_sd14_model(device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> SDModel:
    """The full SD 1.4 architecture from resources/sd15 configs, random weights.

    Built directly on `device` (no CPU copy of the fp32 weights), then cast to `dtype`.
    Needs diffusers, transformers and torch only; no network, no weights files.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from engine.resources import sd15_config_dir

    device = torch.device(device)
    cfg = sd15_config_dir()
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    for module in (unet, vae, text):
        module.to(device, dtype).eval().requires_grad_(False)
    tune_for_device(unet, device)
    sched = DDIMScheduler.from_config(DDIMScheduler.load_config(cfg / "scheduler"))
    return SDModel(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=CLIPTokenizer.from_pretrained(cfg / "tokenizer"),
        alphas_cumprod=sched.alphas_cumprod.double(),
        device=device,
        dtype=dtype,
        model_id="sd14-random",
        fingerprint="random",
        source_kind="random",
        vae_scaling_factor=0.18215,
    )


def tiny_model(device: torch.device | str = "cpu", dtype: str | torch.dtype = "fp32") -> SDModel:
    """engine.models.tiny's random SD 1.x model, written to a temp folder and loaded back."""
    from engine.models.tiny import build_tiny_sd

    folder = build_tiny_sd(Path(tempfile.mkdtemp(prefix="editedid-bench-")) / "tiny-sd")
    return load_sd_model(folder, device=str(device), dtype=dtype, allow_cpu_half=True)


def make_pairs(faces: int, size: int) -> list[FacePair]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    face = ((((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2) <= 1).astype(np.uint8) * 255
    element = np.zeros((size, size), np.uint8)
    element[int(size * 0.35) : int(size * 0.5), int(size * 0.15) : int(size * 0.85)] = 255
    pairs = []
    for _ in range(faces):
        base = rng.integers(0, 255, (8, 8, 3)).astype(np.float32)
        big = np.kron(base, np.ones((size // 8, size // 8, 1)))
        pairs.append(FacePair(big.astype(np.uint8), (255 - big).astype(np.uint8), face, element))
    return pairs


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB (process peak)


def run(model: SDModel, params: EditedIDParams, pairs: list[FacePair]) -> dict:
    """One timed restore (fresh inversion cache); synchronised wall time and peak memory."""
    device = model.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = restore_faces(model, pairs, params, cache=InversionCache())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    stats = result.stats
    return {
        "faces": len(pairs),
        "wall": wall,
        "per_face": wall / len(pairs),
        "fwd": stats.forward_samples / len(pairs),
        "bwd": stats.backward_samples / len(pairs),
        "calls": stats.forward_calls,
        "timings": dict(result.timings),
        "peak": peak_memory_gb(device),
        "result": result,
    }


TABLE_HEAD = (
    "method",
    "faces",
    "UNet fwd/face",
    "UNet bwd/face",
    "calls",
    "inversion s",
    "null-text s",
    "entangle+decode s",
    "total s",
    "total s/face",
    "peak GB",
)


def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """rows: (method label, run() dict). Stage times are totals of the batch."""
    lines = ["| " + " | ".join(TABLE_HEAD) + " |", "|" + "---|" * len(TABLE_HEAD)]
    for name, r in rows:
        t = r["timings"]
        lines.append(
            f"| {name} | {r['faces']} | {r['fwd']:.0f} | {r['bwd']:.0f} | {r['calls']} | "
            f"{t['inversion']:.2f} | {t['nulltext']:.2f} | "
            f"{t['entanglement'] + t.get('decode', 0.0):.2f} | {r['wall']:.2f} | "
            f"{r['per_face']:.2f} | {r['peak']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="tiny | sd14-random | a model folder/file")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--faces", type=int, default=1)
    parser.add_argument("--size", type=int, default=None, help="crop side (default 512, tiny 64)")
    parser.add_argument("--baseline-steps", type=int, default=50)
    parser.add_argument("--nulltext-iters", type=int, default=10)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--warmup", action="store_true", help="one untimed EditedID run first")
    parser.add_argument("--simulate", action="store_true", help="meta device: FLOPs, memory")
    parser.add_argument("--json", action="store_true", help="with --simulate: JSON output")
    parser.add_argument(
        "--write-table",
        action="store_true",
        help="with --simulate: record the per-sample figures the presets' costs use",
    )
    args = parser.parse_args(argv)
    if args.simulate:
        return simulate_main(args.json, args.nulltext_iters, args.write_table)

    device = choose_device(args.device)
    dtype = choose_dtype(device, args.dtype, allow_cpu_half=True)
    if args.model == "tiny":
        model = tiny_model(device, dtype)
        size = args.size or 64
    elif args.model == "sd14-random":
        model = random_sd14_model(device, dtype)
        size = args.size or 512
    else:
        model = load_sd_model(args.model, device=str(device), dtype=dtype, allow_cpu_half=True)
        size = args.size or 512
    pairs = make_pairs(args.faces, size)
    editedid = EditedIDParams(nulltext_iters=args.nulltext_iters, nulltext_early_stop=0.0)
    baseline = baseline_params(args.baseline_steps, args.nulltext_iters)
    if args.warmup:
        run(model, editedid.replace(nulltext_iters=1), pairs)
    rows = [(EDITEDID_LABEL, run(model, editedid, pairs))]
    if not args.skip_baseline:
        rows.append((baseline_label(args.baseline_steps), run(model, baseline, pairs)))

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\nmodel={model.model_id} device={device} ({gpu}) dtype={str(dtype)[6:]} "
        f"faces={args.faces} crop={size}px nulltext_iters={args.nulltext_iters} (no early stop)"
    )
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(markdown_table(rows))
    if len(rows) == 2:
        print(
            f"\nbaseline / EditedID wall-time ratio: {rows[1][1]['wall'] / rows[0][1]['wall']:.1f}x"
        )
    return 0


SIM_SIZES = (512, 768)
SIM_FACES = (1, 4)


def simulate_all(nulltext_iters: int = 10, params: EditedIDParams | None = None) -> dict:
    """Every configuration of the simulation (see bench/cost_sim.py)."""
    from cost_sim import record_gib, simulate

    from engine.diffusion.cost import nti_p2p_samples, samples_by_stage, unet_calls

    params = params or EditedIDParams(nulltext_iters=nulltext_iters, nulltext_early_stop=0.0)
    from engine.diffusion.restore import NULLTEXT_GIB_PER_SAMPLE_512, NULLTEXT_MEMORY_SHARE
    from engine.models.loading import LowMemory
    from engine.models.memory_plan import lower_memory

    model = random_sd14_model("meta", torch.float16)
    cache: dict = {}
    # null-text faces per pass as nulltext_faces_per_pass picks them on an 8 GB card
    # (~4.9 GiB free after the CUDA context and the weights), the target card
    card = 8e9 / 2**30 - 0.4 - 2.15
    # and the branch record placed as branch_record_home places it there
    usable = NULLTEXT_MEMORY_SHARE * card
    runs = []
    for s in SIM_SIZES:
        for f in SIM_FACES:
            per_face = 2 * NULLTEXT_GIB_PER_SAMPLE_512 * (s / 512) ** 2
            record = record_gib(model, params, f, s)
            place = "device" if record + per_face <= usable else "host"
            reserved = record if place == "device" else 0.0
            fits = max(1, int((usable - reserved) // per_face))
            low = LowMemory(nulltext_batch_faces=min(f, fits), branch_record=place)
            runs.append(simulate(model, params, f, s, cache, low))
    # the out-of-memory ladder's first rung (engine.models.fallback), at 512 px
    rung = lower_memory(LowMemory())
    low_runs = [simulate(model, params, f, 512, cache, rung) for f in SIM_FACES]
    # before the target-only entanglement: the three branches, no record
    three = [simulate(model, params, f, 512, cache, LowMemory(nulltext_batch_faces=min(f, 2),
                                                              branch_record="off"))
             for f in SIM_FACES]  # fmt: skip
    base = baseline_params(50, nulltext_iters)
    base_counts = samples_by_stage(unet_calls(base, 1, prepass=False, branch_record=False))
    return {
        "params": params.to_dict(),
        "dtype": "float16",
        "runs": runs,
        "low_memory_rung_512": low_runs,
        "three_branch_entanglement_512": three,
        "baselines": {
            "engine_dual_image_3_branch_50_steps": {
                "forward": sum(r["forward"] for r in base_counts.values()),
                "backward": sum(r["backward"] for r in base_counts.values()),
            },
            "single_image_nti_p2p_50_steps": nti_p2p_samples(50, nulltext_iters),
        },
    }


def simulate_table(data: dict) -> str:
    head = ("size", "faces", "stage", "UNet fwd", "UNet bwd", "TFLOP", "peak GiB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run_ in data["runs"]:
        rows = list(run_["stages"].items()) + [("**total**", run_["total"])]
        for stage, r in rows:
            if stage == "nulltext":
                stage = f"nulltext ({run_['nulltext_faces_per_pass']} face(s) per pass)"
            lines.append(
                f"| {run_['size']} | {run_['faces']} | {stage} | {r['forward']} | "
                f"{r['backward']} | {r['tflop']:.1f} | {r['peak_gib']:.2f} |"
            )
    return "\n".join(lines)


def cost_table_of(data: dict) -> dict:
    """engine/diffusion/cost_table.json's content from a simulation."""
    at512 = {r["faces"]: r for r in data["runs"] if r["size"] == 512}
    three = {r["faces"]: r for r in data["three_branch_entanglement_512"]}  # its "gated" calls
    return {
        "source": "python bench/engine_cost.py --simulate --write-table (full SD 1.4, fp16, meta)",
        "tflop_per_sample_512": {
            k: round(v, 4)
            for k, v in (three[1]["tflop_per_sample"] | at512[1]["tflop_per_sample"]).items()
        },
        "peak_gib_512": {str(f): round(r["total"]["peak_gib"], 2) for f, r in at512.items()},
    }


def simulate_main(as_json: bool, nulltext_iters: int, write_table: bool = False) -> int:
    import json

    from engine.diffusion.cost import write_cost_table

    start = time.perf_counter()
    data = simulate_all(nulltext_iters)
    data["seconds"] = round(time.perf_counter() - start, 1)
    if write_table:
        write_cost_table(cost_table_of(data))
    peaks = {r["faces"]: r["total"]["peak_gib"] for r in data["runs"] if r["size"] == 512}
    last = f"simulated peak GiB at 512: 1 face {peaks[1]:.2f}, 4 faces {peaks[4]:.2f}"
    if as_json:
        print(json.dumps(data, indent=1))
    else:
        b = data["baselines"]
        one = next(r for r in data["runs"] if r["size"] == 512 and r["faces"] == 1)["total"]
        print(f"full SD 1.4 on meta, fp16, nulltext_iters={nulltext_iters}, early stop off")
        print(simulate_table(data))
        print(
            f"\nper face at 512: {one['forward']} forward + {one['backward']} backward UNet "
            f"samples, {one['tflop']:.0f} TFLOP"
        )
        e, n = b["engine_dual_image_3_branch_50_steps"], b["single_image_nti_p2p_50_steps"]
        print(
            f"baselines (UNet samples fwd + bwd per face): this engine at 50 DDIM steps "
            f"(dual-image, 3-branch null-text + P2P) {e['forward']} + {e['backward']}; "
            f"single-image NTI + P2P (50 steps) {n['forward']} + {n['backward']}"
        )
        low = {r["faces"]: r["total"]["peak_gib"] for r in data["low_memory_rung_512"]}
        print(
            f"with the out-of-memory ladder's first rung (VAE + text encoder off the GPU, "
            f"null-text one face per pass) at 512: 1 face {low[1]:.2f}, 4 faces {low[4]:.2f} GiB"
        )
        three = {r["faces"]: r["total"] for r in data["three_branch_entanglement_512"]}
        print(
            "without the branch record (three-branch entanglement) at 512: "
            + ", ".join(
                f"{f} face(s) {t['forward']} fwd samples, {t['tflop']:.0f} TFLOP, peak "
                f"{t['peak_gib']:.2f} GiB"
                for f, t in three.items()
            )
        )
        print(f"({data['seconds']} s)")
    print(last)
    return 0


def baseline_params(steps: int = 50, nulltext_iters: int = 10) -> EditedIDParams:
    """The baseline's parameters: 50 DDIM steps, null-text at each, no EditedID additions."""
    return EditedIDParams(
        steps=steps,
        hybrid_solver=False,
        alignment=False,
        final_align_steps=1,
        nulltext_iters=nulltext_iters,
        nulltext_early_stop=0.0,
    )


if __name__ == "__main__":
    sys.exit(main())
