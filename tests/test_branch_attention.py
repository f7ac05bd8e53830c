"""The recorded original/edited branches replayed in a target-only entanglement equal the
three-branch entanglement (engine.diffusion.branch_attention), layer by layer on a small
UNet, and the record's size and home are what the memory plan says."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.diffusion.attention import COND, UNCOND, EntanglementAttention, GateConfig
from engine.diffusion.branch_attention import (
    BranchRecord,
    BranchRecorder,
    RecordSpec,
    ReplayAttention,
    layer_scales,
    record_bytes,
)
from engine.models.loading import LowMemory
from engine.models.memory_plan import free_gpu_gib, plan_for
from tests.fixtures.unets import small_attention_unet

FACES, H, W, TOKENS, T = 2, 8, 8, 8, 500
STEPS = 2  # two recorded steps with different inputs: an off-by-one step shows


@pytest.fixture(scope="module")
def unet():
    return small_attention_unet()


def masks(faces: int = FACES):
    """Different masks per face, with all four regions (face, element, overlap, rest)."""
    face = torch.zeros(FACES, 1, H, W)
    element = torch.zeros(FACES, 1, H, W)
    face[0, :, 1:6, 1:6] = 1
    element[0, :, 4:, 3:] = 1
    face[1, :, 2:, :4] = 1
    element[1, :, :4, 2:] = 1
    return face[:faces], element[:faces]


def config(faces: int = FACES, **kw) -> GateConfig:
    face, element = masks(faces)
    base = dict(
        faces=faces,
        face_mask=face,
        element_mask=element,
        overlap=(0.3, 0.6),
        gate_blocks=("down", "mid", "up"),
        original_token_columns=[(1, 2)],  # T_o: target column 1 from the original's 2
        edited_token_columns=[(3, 5)],  # its source is not the first kept column
        capture_tokens=[4, 5],
        query_chunk=24,  # rows in chunks that do not divide 64: chunk edges are exact
    )
    return GateConfig(**(base | kw))


def inputs(step: int):
    """Latents and text of every branch at `step` (different per step, branch and half)."""
    g = torch.Generator().manual_seed(100 + step)

    def latents():
        return torch.randn(FACES, 4, H, W, generator=g)

    def text():
        return torch.randn(FACES, TOKENS, 32, generator=g)

    return {
        "x": {"o": latents(), "e": latents(), "t": latents()},
        "cond": {"o": text(), "e": text(), "t": text()},
        "uncond": {"o": text(), "e": text(), "t": text()},
    }


def three_branch(unet, cfg: GateConfig, step: int, faces: list[int]):
    """The target rows (uncond, cond) of the three-branch entanglement and its maps."""
    d = inputs(step)
    pick = torch.tensor(faces)
    x = torch.cat([d["x"][b][pick] for b in "oet"] * 2)
    text = torch.cat([d[h][b][pick] for h in ("uncond", "cond") for b in "oet"])
    gate = EntanglementAttention(unet, cfg)
    with torch.no_grad(), gate:
        out = unet(x, T, text).sample.view(2, 3, len(faces), 4, H, W)
    return out[:, 2], gate.captured_maps()


def record(unet, spec: RecordSpec, home="cpu") -> BranchRecord:
    """Null-text's two no-grad forwards per step: [originals..., edited...] per half."""
    rec = BranchRecord(spec, FACES, home)
    recorder = BranchRecorder(unet, rec)
    for step in range(STEPS):
        d = inputs(step)
        x = torch.cat([d["x"]["o"], d["x"]["e"]])
        with torch.no_grad():
            for half, name in ((COND, "cond"), (UNCOND, "uncond")):
                with recorder.recording(step, half):
                    unet(x, T, torch.cat([d[name]["o"], d[name]["e"]]))
    return rec


def replay(unet, cfg: GateConfig, rec: BranchRecord, step: int, faces: list[int]):
    d = inputs(step)
    pick = torch.tensor(faces)
    x = torch.cat([d["x"]["t"][pick]] * 2)
    text = torch.cat([d["uncond"]["t"][pick], d["cond"]["t"][pick]])
    gate = ReplayAttention(unet, cfg, rec, faces)
    gate.step = step
    with torch.no_grad(), gate:
        out = unet(x, T, text).sample.view(2, len(faces), 4, H, W)
    return out, gate.captured_maps()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"mode": "output"},
        {"cross_attention_halves": "both"},
        {"gate_blocks": ("down",), "capture_tokens": []},
        {"self_attention": False},
        {"edited_token_columns": [], "capture_tokens": []},
        {"original_token_columns": [], "cross_attention_halves": "both"},
    ],
    ids=[
        "map",
        "output",
        "cross-both-halves",
        "down-no-capture",
        "cross-only",
        "no-element-words",
        "no-face-words",
    ],  # fmt: skip
)
def test_replayed_target_equals_the_three_branch_target(unet, changes):
    """Same inputs, same arithmetic: the target rows of the three-branch batch and of
    the replay agree to rounding at every recorded step; so do the captured maps. A
    swapped CFG half, a swapped branch, an off-by-one step or a wrong column would move
    them far (each differs in its inputs here)."""
    cfg = config(**changes)
    rec = record(unet, RecordSpec.for_config(unet, cfg))
    assert rec.complete(STEPS)
    for step in range(STEPS):
        want, want_maps = three_branch(unet, cfg, step, [0, 1])
        got, got_maps = replay(unet, cfg, rec, step, [0, 1])
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
        if cfg.capture_tokens:
            torch.testing.assert_close(got_maps, want_maps, rtol=0, atol=1e-6)
        else:
            assert got_maps is None and want_maps is None
    # the control: the gating changes the target, so equality above is not trivial
    plain, _ = three_branch(unet, config(self_attention=False, cross_attention=False), 0, [0, 1])
    assert float((three_branch(unet, cfg, 0, [0, 1])[0] - plain).abs().max()) > 1e-3


def test_a_subset_of_the_recorded_faces_replays_alone(unet):
    """Faces recorded together, entangled apart (another overlap weight, an OOM split):
    face 1 of the record alone equals face 1 alone in the three-branch run."""
    rec = record(unet, RecordSpec.for_config(unet, config()))
    cfg = config(faces=1)
    face_mask, element_mask = masks()
    cfg.face_mask, cfg.element_mask = face_mask[1:], element_mask[1:]
    want, want_maps = three_branch(unet, cfg, 1, [1])
    got, got_maps = replay(unet, cfg, rec, 1, [1])
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    torch.testing.assert_close(got_maps, want_maps, rtol=0, atol=1e-6)


def test_recording_leaves_the_forward_and_the_processors_unchanged(unet):
    """Null-text's chain must not move because it is recorded: the recording forward
    returns what the default processors return, and puts them back afterwards."""
    d = inputs(0)
    x = torch.cat([d["x"]["o"], d["x"]["e"]])
    text = torch.cat([d["cond"]["o"], d["cond"]["e"]])
    before = dict(unet.attn_processors)
    rec = BranchRecord(RecordSpec.for_config(unet, config()), FACES, "cpu")
    with torch.no_grad():
        plain = unet(x, T, text).sample
        with BranchRecorder(unet, rec).recording(0, COND):
            recorded = unet(x, T, text).sample
    torch.testing.assert_close(recorded, plain, rtol=0, atol=1e-5)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == {
        k: type(v) for k, v in before.items()
    }


def test_the_map_reference_and_masks_are_not_replayed(unet):
    assert RecordSpec.for_config(unet, config(self_attention_impl="maps")) is None
    rec = BranchRecord(RecordSpec.for_config(unet, config()), FACES, "cpu")
    with pytest.raises(ValueError, match="other gated layers"):
        ReplayAttention(unet, config(gate_blocks=("down",)), rec, [0, 1])


@pytest.mark.parametrize("mode", ["map", "output"])
@pytest.mark.parametrize("halves", ["cond", "both"])
def test_record_bytes_are_what_is_recorded(unet, mode, halves):
    spec = RecordSpec.for_config(unet, config(mode=mode, cross_attention_halves=halves))
    rec = record(unet, spec)
    assert rec.nbytes() == record_bytes(unet, spec, FACES, (H, W), STEPS, torch.float32)


def test_record_size_of_sd14_at_512_in_fp16():
    """The figure the docs quote: q and k of the original and edited branches, both CFG
    halves, 6 steps, at down + mid's 7 self-attention layers (4096 x 320 twice, 1024 x
    640 twice, 256 x 1280 twice, 64 x 1280) = 448,266,240 bytes (0.42 GiB) per face."""
    from diffusers import UNet2DConditionModel

    from engine.resources import sd15_config_dir

    with torch.device("meta"):
        sd = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(sd15_config_dir() / "unet")
        )
    assert layer_scales(sd) == {
        "down_blocks.0": 0, "down_blocks.1": 1, "down_blocks.2": 2, "down_blocks.3": 3,
        "mid_block": 3, "up_blocks.0": 3, "up_blocks.1": 2, "up_blocks.2": 1, "up_blocks.3": 0,
    }  # fmt: skip
    face = torch.zeros(1, 1, 64, 64)
    spec = RecordSpec.for_config(sd, GateConfig(1, face, face, cross_attention=False))
    elements = 4 * (2 * 4096 * 320 + 2 * 1024 * 640 + 2 * 256 * 1280 + 64 * 1280)
    assert record_bytes(sd, spec, 1, (64, 64), 6, torch.float16) == elements * 2 * 6 * 2


# -- where the record lives ------------------------------------------------------------------
def _gpu(free_gib: float, monkeypatch, **low):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (free_gib * 2**30, 80 * 2**30))
    for name in ("memory_reserved", "memory_allocated"):  # nothing cached by PyTorch
        monkeypatch.setattr(torch.cuda, name, lambda d: 0)
    return SimpleNamespace(
        device=torch.device("cuda"), dtype=torch.float16, low_memory=LowMemory(**low)
    )


def test_the_record_stays_on_the_gpu_only_beside_a_null_text_pass(monkeypatch):
    # one face's null-text pass at 512 px fp16: 1.76 GiB; 0.8 of the free memory is usable
    assert plan_for(_gpu(10.0, monkeypatch)).record_home(1.7, (64, 64)) == torch.device("cuda")
    assert plan_for(_gpu(4.0, monkeypatch)).record_home(1.7, (64, 64)) == torch.device("cpu")
    gpu = _gpu(100.0, monkeypatch, branch_record="host")
    assert plan_for(gpu).record_home(0.4, (64, 64)) == torch.device("cpu")
    assert (
        plan_for(_gpu(1.0, monkeypatch, branch_record="device")).record_home(9, (64, 64)).type
        == "cuda"
    )
    assert (
        plan_for(_gpu(100.0, monkeypatch, branch_record="off")).record_home(0.4, (64, 64)) is None
    )
    cpu = SimpleNamespace(device=torch.device("cpu"), dtype=torch.float32, low_memory=LowMemory())
    assert plan_for(cpu).record_home(100.0, (64, 64)) == torch.device("cpu")


def test_a_record_on_the_gpu_leaves_null_text_less_room(monkeypatch):
    gpu = _gpu(10.0, monkeypatch)
    assert plan_for(gpu).nulltext_faces_per_pass(4, (64, 64)) is None  # 8 GiB usable: all four
    assert plan_for(gpu).nulltext_faces_per_pass(4, (64, 64), reserved_gib=3.0) == 2  # 5 / 1.76


def test_free_gpu_memory_counts_what_the_allocator_caches(monkeypatch):
    """After a restore PyTorch keeps most of what it used cached (reserved, unallocated):
    free for the next restore, though the driver does not count it."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (2 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 5 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 2 * 2**30)
    assert free_gpu_gib(torch.device("cuda")) == 5.0
    gpu = SimpleNamespace(device=torch.device("cuda"), dtype=torch.float16, low_memory=LowMemory())
    assert plan_for(gpu).nulltext_faces_per_pass(4, (64, 64)) == 2  # 0.8 x 5 GiB / 1.76 GiB


def test_low_vram_and_the_ladder_keep_the_record_in_host_memory():
    from engine.models.memory_plan import lower_memory

    assert LowMemory.low_vram(True).branch_record == "host"
    assert LowMemory.low_vram(False).branch_record == "auto"
    assert lower_memory(LowMemory()).branch_record == "host"
    assert lower_memory(LowMemory(branch_record="off")).branch_record == "off"
    with pytest.raises(ValueError, match="branch_record"):
        LowMemory(branch_record="gpu")


def test_record_overhead_bench_prints_its_table():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "bench/record_overhead.py", "--faces", "1", "--repeats", "1"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    assert [row.split(" | ")[1] for row in rows] == ["2", "2", "2", "6", "2"]  # samples
