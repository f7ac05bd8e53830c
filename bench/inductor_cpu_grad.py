"""torch.compile (inductor, CPU) against eager: the gradient through one UNet up block.

    python bench/inductor_cpu_grad.py

Why this exists: with torch 2.13 on this project's machine, inductor's CPU code returned a
wrong gradient for group_norm -> silu -> conv -> conv -> nearest upsample -> conv (the last
resnet and the upsampler of the tiny UNet's first up block; relative error ~1, while the
forward matched), so `engine.models.compiled` keeps compiled gradients off on the CPU. It
was a test (a strict xfail) until it became clear that whether the bug shows depends on
the CPU's instruction set and the torch build, which a CI machine may not share; a bench
script reports it instead. Run it after a torch upgrade: a relative error near 0 means
compiled gradients could be allowed on the CPU (CompileOptions.grad).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.models.loading import load_sd_model  # noqa: E402
from engine.models.tiny import build_tiny_sd  # noqa: E402


def main() -> int:
    torch.set_num_threads(1)
    model = load_sd_model(build_tiny_sd(Path(tempfile.mkdtemp()) / "tiny"), device="cpu")
    block = model.unet.up_blocks[0]
    resnet, upsampler = block.resnets[-1], block.upsamplers[0]
    g = torch.Generator().manual_seed(0)
    hidden0 = torch.randn(2, resnet.in_channels, 8, 8, generator=g)
    temb = torch.randn(2, resnet.time_emb_proj.in_features, generator=g)

    def run(h):
        return upsampler(resnet(h, temb))

    outs, grads = [], []
    for fn in (run, torch.compile(run, fullgraph=True)):
        hidden = hidden0.clone().requires_grad_(True)
        out = fn(hidden)
        (out**2).sum().backward()
        outs.append(out.detach())
        grads.append(hidden.grad)

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    print(f"torch {torch.__version__}")
    print("| compared with eager | relative error |")
    print("|---|---|")
    print(f"| forward | {rel(outs[1], outs[0]):.2e} |")
    print(f"| gradient w.r.t. the input | {rel(grads[1], grads[0]):.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
