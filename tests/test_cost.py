"""engine.diffusion.cost counts exactly the UNet work a real restore does, stage by stage."""

from __future__ import annotations

import pytest

from engine.diffusion.cost import nti_p2p_samples, samples_by_stage, unet_calls
from engine.diffusion.latents import UNetStats
from engine.diffusion.restore import InversionCache, element_attention_maps, restore_faces
from engine.models.loading import load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_pair as _pair


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


@pytest.mark.parametrize(
    ("faces", "changes"),
    [
        (1, {}),
        (2, {"steps": 4, "dpm_range": (2, 4), "nulltext_iters": 1}),
        (1, {"nulltext_iters": 0}),
    ],
)
def test_counts_equal_a_real_run_stage_by_stage(tiny_model, faces, changes):
    params = EditedIDParams(nulltext_iters=2, nulltext_early_stop=0.0).replace(**changes)
    pairs = [_pair(), _pair("astronaut", "grace_hopper")][:faces]
    stats = UNetStats()
    element_attention_maps(tiny_model, [p.edited for p in pairs], params, stats=stats)
    result = restore_faces(tiny_model, pairs, params, cache=InversionCache())
    stats.add(result.stats)
    assert samples_by_stage(unet_calls(params, faces)) == stats.by_stage


def test_published_baseline_count():
    # NTI: 50 inversion + 50 x (1 + 10 + 1) null-text; P2P: 50 x 2 prompts x 2 CFG halves
    assert nti_p2p_samples(50, 10) == {"forward": 50 + 600 + 200, "backward": 500}


# -- the meta-device simulation (bench/cost_sim.py) ----------------------------------------
def _cost_sim():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import cost_sim

    return cost_sim


def test_memory_simulation_counts_live_bytes_and_fused_attention_holds_no_map():
    import torch

    sim = _cost_sim()

    def explicit():
        q = torch.zeros(1, 8, 1024, 40, device="meta", dtype=torch.float16)
        maps = (q @ q.transpose(-1, -2)).softmax(-1)  # 8 x 1024 x 1024 x 2 B = 16 MiB
        return maps @ q

    def fused():
        q = torch.zeros(1, 8, 1024, 40, device="meta", dtype=torch.float16)
        return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    a, b = sim.measure(explicit), sim.measure(fused)
    assert a.peak_gib * 2**30 >= 2 * 16 * 2**20  # scores and softmax alive together
    assert b.peak_gib * 2**30 < 2 * 2**20  # q and the output (640 KiB each), no map
    assert a.tflop == pytest.approx(b.tflop, rel=1e-6)  # same FLOPs: 2 x 2 x 8 x 1024^2 x 40
    assert b.tflop == pytest.approx(4 * 8 * 1024 * 1024 * 40 / 1e12)

    def freed():
        for _ in range(10):
            torch.zeros(2**20, device="meta")  # 4 MiB each, freed at once

    assert sim.measure(freed).peak_gib * 2**30 == 4 * 2**20


@pytest.mark.slow
def test_simulate_cli_last_line_and_json():
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "bench/engine_cost.py", "--simulate", "--json"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    data = json.loads("\n".join(lines[:-1]))
    one = next(r for r in data["runs"] if r["size"] == 512 and r["faces"] == 1)
    four = next(r for r in data["runs"] if r["size"] == 512 and r["faces"] == 4)
    assert lines[-1] == (
        f"simulated peak GiB at 512: 1 face {one['total']['peak_gib']:.2f}, "
        f"4 faces {four['total']['peak_gib']:.2f}"
    )
    assert one["stages"]["nulltext"]["backward"] == 120
    assert 0.7 < one["stages"]["inversion"]["tflop"] / 12 < 0.9  # ~0.8 TFLOP per sample


def test_null_text_faces_per_pass_follow_the_free_gpu_memory(monkeypatch):
    from types import SimpleNamespace

    import torch

    from engine.models.loading import LowMemory
    from engine.models.memory_plan import plan_for

    gpu = SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16, low_memory=LowMemory())
    free = {"gib": 5.0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (free["gib"] * 2**30, 80 * 2**30))
    for name in ("memory_reserved", "memory_allocated"):  # nothing cached by PyTorch
        monkeypatch.setattr(torch.cuda, name, lambda d: 0)
    assert (
        plan_for(gpu).nulltext_faces_per_pass(4, (64, 64)) == 2
    )  # 0.8 x 5 GiB / 1.76 GiB per face
    free["gib"] = 100.0
    assert plan_for(gpu).nulltext_faces_per_pass(4, (64, 64)) is None  # all four in one pass
    free["gib"] = 0.5
    assert plan_for(gpu).nulltext_faces_per_pass(4, (96, 96)) == 1  # never fewer than one
    gpu.low_memory = LowMemory(nulltext_batch_faces=3)
    assert plan_for(gpu).nulltext_faces_per_pass(4, (64, 64)) == 3  # a fixed setting wins
    cpu = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32, low_memory=LowMemory())
    assert plan_for(cpu).nulltext_faces_per_pass(4, (64, 64)) is None
