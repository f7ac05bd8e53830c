"""Table 11 solver-stability figures: known answers and the fragmented scheme's jump."""

from __future__ import annotations

import pytest

from engine.diffusion.latents import encode_images, encode_text
from engine.evaluation.stability import scheme_plan, solver_stability
from engine.models.loading import load_sd_model
from tests.helpers import face_crop


def _run(folder, schemes):
    model = load_sd_model(folder, device="cpu")
    latents = encode_images(model, [face_crop("grace_hopper", 32)])
    cond = encode_text(model, ["a photo of a face"])
    return {r.scheme: r for r in solver_stability(model, latents, cond, schemes=schemes)}


def test_exact_fixture_reconstructs_ddim_and_the_global_hybrid(exact_sd_dir):
    rows = _run(exact_sd_dir, ("ddim", "hybrid-global", "dpm"))
    for scheme in ("ddim", "hybrid-global"):
        assert rows[scheme].final_l2 < 1e-4 and rows[scheme].cumulative_mse < 1e-8, rows[scheme]
    # Consecutive 2M steps invert only approximately (the history of the step above is
    # itself second order), so DPM-only drifts a little even here.
    assert rows["dpm"].final_l2 > rows["hybrid-global"].final_l2


def test_fragmented_schedule_jumps_at_the_switch(tiny_sd_dir):
    rows = _run(tiny_sd_dir, ("hybrid-fragmented", "hybrid-global"))
    assert rows["hybrid-fragmented"].max_jump > 2 * rows["hybrid-global"].max_jump
    assert rows["hybrid-fragmented"].cumulative_mse > rows["hybrid-global"].cumulative_mse


def test_scheme_plans(tiny_sd_dir):
    import torch

    from engine.diffusion.schedule import ddim_timesteps

    ac = torch.linspace(0.9991, 0.0047, 1000, dtype=torch.float64)
    fragmented = scheme_plan("hybrid-fragmented", 6, (4, 6), ac)
    assert fragmented.timesteps[:4] == tuple(ddim_timesteps(6)[:4])
    assert fragmented.timesteps[4] == 999  # DPM-Solver++ restarts its own schedule
    with pytest.raises(ValueError, match="Unknown scheme"):
        scheme_plan("euler", 6, (4, 6), ac)
