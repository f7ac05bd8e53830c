"""engine.models.memory_plan: the plan a model's settings give, the out-of-memory ladder as
a sequence of plans, and restore_faces following the plan it is handed (tiny model, CPU)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import engine.diffusion.restore as restore_module
from engine.diffusion.restore import InversionCache, restore_faces
from engine.errors import OutOfMemory
from engine.models.fallback import LadderExhausted, restore_with_fallback
from engine.models.loading import LowMemory, load_sd_model
from engine.models.memory_plan import (
    CPU,
    MemoryPlan,
    is_out_of_memory,
    memory_ladder,
    plan_for,
)
from engine.params import EditedIDParams
from tests.helpers import face_pair

CUDA = torch.device("cuda")
FP16 = torch.float16
FAST = EditedIDParams(steps=3, dpm_range=(2, 3), final_align_steps=1, nulltext_iters=2)


def _gpu(free_gib: float, monkeypatch, low: LowMemory) -> SimpleNamespace:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (free_gib * 2**30, 80 * 2**30))
    for name in ("memory_reserved", "memory_allocated"):  # nothing cached by PyTorch
        monkeypatch.setattr(torch.cuda, name, lambda d: 0)
    return SimpleNamespace(device=CUDA, dtype=FP16, low_memory=low)


def test_plan_for_four_faces_on_a_low_vram_and_a_normal_model(monkeypatch):
    """Same GPU (6 GiB free: 4.8 usable), same four faces at 512 px (1.76 GiB of null-text
    activations per face, a 1.7 GiB branch record)."""
    low = plan_for(_gpu(6.0, monkeypatch, LowMemory.low_vram(True)), unet_faces=4)
    assert low == MemoryPlan(
        device=CUDA, dtype=FP16, step=0, name="as set", vae_tiling=True,
        offload_encoders=True, unet_faces=4, nulltext_faces=1, branch_record="host",
    )  # fmt: skip
    assert low.nulltext_faces_per_pass(4, (64, 64)) == 1
    assert low.record_home(1.7, (64, 64)) == CPU

    normal = plan_for(_gpu(6.0, monkeypatch, LowMemory()), unet_faces=4)
    assert normal == MemoryPlan(device=CUDA, dtype=FP16, unet_faces=4)
    assert normal.record_home(1.7, (64, 64)) == CUDA  # 1.7 + 1.76 <= 4.8
    assert normal.nulltext_faces_per_pass(4, (64, 64)) == 2  # 4.8 // 1.76
    assert normal.nulltext_faces_per_pass(4, (64, 64), reserved_gib=1.7) == 1  # 3.1 // 1.76
    assert normal.nulltext_faces_per_pass(2, (64, 64)) is None  # both in one pass
    assert normal.low_memory() == LowMemory()
    assert low.low_memory() == LowMemory.low_vram(True)


def test_the_ladder_goes_savers_then_cpu_each_a_smaller_plan(monkeypatch):
    ladder = memory_ladder(_gpu(6.0, monkeypatch, LowMemory()), unet_faces=2)
    assert ladder == (
        MemoryPlan(device=CUDA, dtype=FP16, unet_faces=2),
        MemoryPlan(
            device=CUDA, dtype=FP16, step=1, name="memory savers", vae_tiling=True,
            offload_encoders=True, unet_faces=2, nulltext_faces=1, branch_record="host",
        ),
        MemoryPlan(
            device=CPU, dtype=torch.float32, step=2, name="cpu", vae_tiling=True, unet_faces=2
        ),
    )  # fmt: skip
    assert [p.describe()["step"] for p in ladder] == [0, 1, 2]
    assert ladder[1].describe()["nulltext_faces_per_pass"] == 1


def test_the_ladder_leaves_out_steps_that_change_nothing(monkeypatch):
    low_vram = memory_ladder(_gpu(6.0, monkeypatch, LowMemory.low_vram(True)))
    assert [p.name for p in low_vram] == ["as set", "cpu"]  # the savers are on already
    record_off = memory_ladder(_gpu(6.0, monkeypatch, LowMemory(branch_record="off")))
    assert record_off[1].branch_record == "off"  # the user's choice is kept
    cpu = SimpleNamespace(device=CPU, dtype=torch.float32, low_memory=LowMemory())
    assert [p.name for p in memory_ladder(cpu)] == ["as set", "memory savers"]


def test_one_out_of_memory_test():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(OutOfMemory("even one face"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(MemoryError())


def test_an_exhausted_ladder_says_which_plans_it_tried(tiny_sd_dir):
    model = load_sd_model(tiny_sd_dir, device="cpu")

    def run(_model, _plan):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(LadderExhausted) as error:
        restore_with_fallback(run, model, on_message=None)
    assert [p.name for p in error.value.plans] == ["as set", "memory savers"]
    assert isinstance(error.value, OutOfMemory)


def test_out_of_memory_moves_to_the_next_plan_with_the_same_bytes(tiny_sd_dir, monkeypatch):
    """Null-text fits only one face per pass (injected): on the plan "as set" (all the
    faces of a UNet pass in one null-text pass) restore_faces halves its UNet pass down to
    one face and gives up; the ladder then runs the savers plan (one face per null-text
    pass), which gives the bytes that plan gives when run directly."""
    real = restore_module.optimise_null_text
    passes = []

    def fits_one_face(*args, batch_faces=None, **kwargs):
        passes.append(batch_faces)
        if batch_faces != 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, batch_faces=batch_faces, **kwargs)

    monkeypatch.setattr(restore_module, "optimise_null_text", fits_one_face)
    pairs = [face_pair(), face_pair("astronaut", "grace_hopper")]
    model = load_sd_model(tiny_sd_dir, device="cpu")
    ladder = memory_ladder(model)
    messages: list[str] = []
    result = restore_with_fallback(
        lambda m, plan: restore_faces(m, pairs, FAST, plan=plan, cache=InversionCache()),
        model,
        on_message=messages.append,
    )
    assert passes == [None, None, 1]  # two faces, one face (halved), the savers plan
    assert len(messages) == 1 and "one face at a time" in messages[0]
    memory = result.diagnostics()["memory"]
    assert (memory["step"], memory["name"]) == (1, "memory savers")
    assert memory["chosen"]["nulltext_faces_per_pass"] == [1]
    assert memory["chosen"]["inversion_faces_per_pass"] == [2]
    assert memory["chosen"]["branch_record"] == ["cpu"]
    assert model.low_memory == LowMemory()  # the caller's settings back

    # the plan's model settings on the model, its run settings (one face per null-text
    # pass) only in the plan: restore_faces follows the plan, not the model's settings
    direct_model = load_sd_model(tiny_sd_dir, device="cpu")
    direct_model.set_low_memory(LowMemory(vae_tiling=True, offload_encoders=True))
    direct = restore_faces(direct_model, pairs, FAST, plan=ladder[1], cache=InversionCache())
    for got, want in zip(result.faces, direct.faces, strict=True):
        np.testing.assert_array_equal(got.restored, want.restored)
    assert direct.diagnostics()["memory"] == memory
