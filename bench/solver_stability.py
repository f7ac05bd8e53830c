"""Table 11 (A.13): solver stability of DDIM, DPM-Solver++, fragmented and global hybrid.

  python bench/solver_stability.py                    # tiny random model (CPU), real photo
  python bench/solver_stability.py --model PATH --device cuda   # a real SD 1.x model

Random tiny models do not reconstruct well, so on them read the ORDER of the schemes
(the fragmented plan's jump at the switch), not the values.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.diffusion.latents import encode_images, encode_text  # noqa: E402
from engine.evaluation.stability import format_table, solver_stability  # noqa: E402
from engine.models.loading import load_sd_model  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image", default=None, help="an RGB photo (default: grace_hopper)")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    if args.model == "tiny":
        from engine.models.tiny import build_tiny_sd

        model = load_sd_model(build_tiny_sd(Path(tempfile.mkdtemp()) / "tiny"), device=args.device)
        size = args.size or 64
    else:
        model = load_sd_model(args.model, device=args.device)
        size = args.size or 512
    if args.image:
        path = Path(args.image)
    else:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = np.asarray(Image.open(path).convert("RGB").resize((size, size)))
    latents = encode_images(model, [image])
    cond = encode_text(model, ["a photo of a face"])
    rows = solver_stability(
        model, latents, cond, steps=args.steps, dpm_range=(args.steps - 2, args.steps)
    )
    print(
        f"\nmodel={model.model_id} device={model.device} image={path.name} {size}px "
        f"steps={args.steps}"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
