"""Full SD 1.4 architecture (random weights) in fp16 on CUDA: restore 1 and 4 faces at 512.

Deselected by default (pyproject: -m 'not slow and not gpu'); skipped without CUDA.

  python -m pytest -m gpu tests/test_gpu.py -s    # on a machine with an NVIDIA GPU
  python tests/test_gpu.py                        # the same checks without pytest
  bash bench/gpu_bench.sh                         # these tests + the timing table

The model builder (`random_sd14_model`) and the checks (`check_restore`) are the GPU
bench's own (bench/engine_cost.py, bench/gpu_acceptance.py), so the test and the bench
run the same code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "bench", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason=f"needs a CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__})",
    ),
]

SIZE = 512


@pytest.fixture(scope="module")
def sd14_fp16():
    from engine_cost import random_sd14_model

    model = random_sd14_model("cuda", torch.float16)
    yield model
    del model
    torch.cuda.empty_cache()


@pytest.mark.parametrize("faces", [1, 4])
def test_restore_full_size_fp16_cuda(sd14_fp16, faces):
    from gpu_acceptance import check_restore

    from engine.params import EditedIDParams

    checked = check_restore(sd14_fp16, faces, SIZE, EditedIDParams())
    params = list(sd14_fp16.unet.parameters())
    assert all(p.device.type == "cuda" for p in params), "UNet weights left the GPU"
    assert all(p.dtype == torch.float16 for p in params), "UNet weights are not fp16"
    assert checked["stats"]["forward_samples"] > 0
    print(
        f"\n[gpu] {faces} face(s) at {SIZE}px fp16 on {torch.cuda.get_device_name(0)}: "
        f"{checked['wall']:.2f} s ({checked['wall'] / faces:.2f} s/face, not warmed up), "
        f"torch.cuda.max_memory_allocated {checked['peak']:.2f} GB, "
        f"UNet {checked['stats']}"
    )


if __name__ == "__main__":  # the same checks where pytest is missing
    if not torch.cuda.is_available():
        print("SKIPPED: needs a CUDA GPU (torch.cuda.is_available() is False)")
        sys.exit(0)
    from engine_cost import random_sd14_model

    model = random_sd14_model("cuda", torch.float16)
    for count in (1, 4):
        test_restore_full_size_fp16_cuda(model, count)
    print("tests/test_gpu.py: 2 passed")
