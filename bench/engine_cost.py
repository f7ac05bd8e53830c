"""Cost of EditedID per face vs the null-text inversion + prompt-to-prompt baseline.

Both are run from the same engine code in the same process and printed as one table:
UNet forward / backward passes (samples), wall time per stage and peak memory.

  python bench/engine_cost.py                       # tiny random SD model, CPU (counts, ratios)
  python bench/engine_cost.py --model sd14-random --device cuda --dtype fp16   # full SD 1.4 size
  python bench/engine_cost.py --model /path/to/sd-folder --device cuda

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
from engine.models.loading import SDModel, choose_device, choose_dtype, load_sd_model  # noqa: E402
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
    args = parser.parse_args(argv)

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
