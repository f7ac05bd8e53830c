"""What recording the branches costs a null-text forward, and what the replay saves.

    python bench/record_overhead.py                         # tiny random SD model, CPU
    python bench/record_overhead.py --model sd14-random --device cuda --dtype fp16

Per UNet call of null-text's batch ([originals..., edited...], 2 x faces samples): a plain
forward, a forward recording the conditional half (gated self-attention q/k and the
cross-attention columns) and one recording the unconditional half; then one step of the
entanglement: three branches x 2 CFG halves vs the target branch alone replaying the
record. Fastest of --repeats after a warm-up, synchronised on CUDA. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_cost import random_sd14_model, tiny_model  # noqa: E402

from engine.diffusion.attention import COND, UNCOND, EntanglementAttention  # noqa: E402
from engine.diffusion.branch_attention import (  # noqa: E402
    BranchRecord,
    BranchRecorder,
    ReplayAttention,
)
from engine.diffusion.latents import UNetStats, predict_noise  # noqa: E402
from engine.diffusion.restore import _prompts, _record_spec, gate_config  # noqa: E402
from engine.models.loading import choose_dtype  # noqa: E402
from engine.params import EditedIDParams  # noqa: E402


def best_ms(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (kernels, allocator)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("tiny", "sd14-random"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    if args.model == "tiny":
        model = tiny_model(device, args.dtype)
        latent = 16
    else:
        model = random_sd14_model(device, choose_dtype(device, args.dtype, allow_cpu_half=True))
        latent = 64
    params = EditedIDParams()
    prompts = _prompts(model, params)
    spec = _record_spec(model, prompts, params)
    faces, t = args.faces, 500
    x = torch.randn(2 * faces, 4, latent, latent, device=device)
    cond = torch.cat([prompts.cond_original, prompts.cond_edited]).repeat_interleave(faces, 0)
    stats = UNetStats()

    @torch.no_grad()
    def plain():
        predict_noise(model, x, t, cond, None, 1.0, stats)

    def recording(half: int):
        @torch.no_grad()
        def run():
            record = BranchRecord(spec, faces, device)
            with BranchRecorder(model.unet, record).recording(0, half):
                predict_noise(model, x, t, cond, None, 1.0, stats)

        return run

    record = BranchRecord(spec, faces, device)
    recorder = BranchRecorder(model.unet, record)
    with torch.no_grad():
        for half in (COND, UNCOND):
            with recorder.recording(0, half):
                predict_noise(model, x, t, cond, None, 1.0, stats)
    mask = torch.zeros(faces, 1, latent, latent, device=device)
    mask[..., latent // 4 : 3 * latent // 4, latent // 4 : 3 * latent // 4] = 1
    config = gate_config(mask, mask.flip(-1), params.overlap, prompts, params)
    three_cond = torch.cat([prompts.cond_original, prompts.cond_edited, prompts.cond_edited])
    three_cond = three_cond.repeat_interleave(faces, 0)
    x3 = torch.cat([x[:faces]] * 3)
    edited = prompts.cond_edited.expand(faces, -1, -1)

    @torch.no_grad()
    def three_branch():
        with EntanglementAttention(model.unet, config):
            predict_noise(model, x3, t, three_cond, three_cond, params.guidance, stats)

    @torch.no_grad()
    def target_only():
        with ReplayAttention(model.unet, config, record, list(range(faces))):
            predict_noise(model, x[:faces], t, edited, edited, params.guidance, stats)

    rows = [
        ("null-text forward, plain", 2 * faces, plain),
        ("null-text forward, recording the conditional half", 2 * faces, recording(COND)),
        ("null-text forward, recording the unconditional half", 2 * faces, recording(UNCOND)),
        ("entanglement step, three branches", 6 * faces, three_branch),
        ("entanglement step, target branch replaying the record", 2 * faces, target_only),
    ]
    print(
        f"{args.model}, {device}, {model.dtype}, {faces} faces, latent {latent}x{latent}, "
        f"record {record.nbytes() / 2**20:.1f} MiB per step"
    )
    print(f"| UNet call | samples | ms (best of {args.repeats}) |")
    print("|---|---|---|")
    for label, samples, fn in rows:
        print(f"| {label} | {samples} | {best_ms(fn, device, args.repeats):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
