"""engine.models.fallback: out-of-memory retries with lower memory, then the CPU (simulated).

This machine has no GPU, so a tiny model loaded on the CPU is dressed up as a CUDA fp16
model: its modules' `.to()` records every move and drops the CUDA device (dtype changes
are real). The fake `run` raises OOM the first N times and records the model's settings
at each call; the CPU rung runs a real text-encoder/UNet/VAE pass to show the model that
came down to the CPU really works.
"""

from __future__ import annotations

import pytest
import torch

from engine.errors import Cancelled, OutOfMemory
from engine.models.fallback import restore_with_fallback
from engine.models.loading import WEIGHT_COMPONENTS, LowMemory, load_sd_model
from engine.models.memory_plan import is_out_of_memory

# (attention_slicing, vae_tiling, cpu_offload, offload_encoders)
NONE, LOW, ON_CPU = (
    (False, False, False, False),
    (False, True, False, True),
    (False, True, False, False),
)
CUDA = torch.device("cuda")


def _fake_cuda(model, dtype=torch.float16):
    """Make a CPU SDModel look like a CUDA model; returns the list of recorded moves."""
    moves = []
    for name in WEIGHT_COMPONENTS:
        module = getattr(model, name)
        real_to = module.to

        def fake_to(*args, _real=real_to, _name=name, **kwargs):
            device, to_dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
            moves.append((_name, str(device) if device else None, to_dtype))
            if device is not None and device.type == "cuda":
                return _real(dtype=to_dtype) if to_dtype is not None else _real()
            return _real(*args, **kwargs)

        module.to = fake_to
        module.to(dtype=dtype)
    model.device, model.dtype = CUDA, dtype
    moves.clear()
    model._moves = moves
    return moves


@pytest.fixture
def model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def _state(model) -> tuple:
    low = model.low_memory
    weights = next(model.unet.parameters())
    return (
        (low.attention_slicing, low.vae_tiling, low.cpu_offload, low.offload_encoders),
        model.device.type,
        (
            model.dtype,
            weights.dtype,
        ),
    )


class FlakyRun:
    """Raises `error` the first `failures` calls, then really restores one face."""

    def __init__(self, failures: int, error: type[BaseException] = torch.OutOfMemoryError):
        self.failures, self.error, self.states, self.moves_seen = failures, error, [], []
        self.plans = []

    def __call__(self, model, plan):
        self.states.append(_state(model))
        self.plans.append(plan)
        self.moves_seen.append(len(getattr(model, "_moves", ())))
        if len(self.states) <= self.failures:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        if model.device.type != "cpu":
            return "pretend GPU result"
        return _real_forward(model)


@torch.no_grad()
def _real_forward(model) -> torch.Tensor:
    """One real text-encoder + UNet + VAE pass: the model works where it now is."""
    tokens = model.tokenizer(["a photo of a face"], padding="max_length",
                             max_length=model.tokenizer.model_max_length,
                             return_tensors="pt").input_ids  # fmt: skip
    with model.use("text_encoder") as text_encoder:
        context = text_encoder(tokens.to(model.device))[0]
    latents = torch.randn(1, 4, 8, 8, device=model.device, dtype=model.dtype)
    with model.use("unet") as unet:
        noise = unet(latents, 10, encoder_hidden_states=context).sample
    with model.use("vae") as vae:
        image = vae.decode(latents - noise).sample
    assert torch.isfinite(image).all()
    return image


def test_full_ladder_down_to_cpu_then_settings_come_back(model):
    moves = _fake_cuda(model)
    messages: list[str] = []
    run = FlakyRun(2)
    result = restore_with_fallback(run, model, on_message=messages.append)
    assert result.dtype == torch.float32 and result.device.type == "cpu"  # a real CPU run
    fp16, fp32 = (torch.float16, torch.float16), (torch.float32, torch.float32)
    assert run.states == [
        (NONE, "cuda", fp16),
        (LOW, "cuda", fp16),
        (ON_CPU, "cpu", fp32),
    ]
    assert len(messages) == 2
    assert "VAE and text encoder off the GPU" in messages[0]
    assert "fell back to CPU" in messages[1]
    # restored afterwards: no savers, the GPU, fp16 (moves recorded through .to())
    assert _state(model) == (NONE, "cuda", fp16)
    assert all(p.dtype == torch.float16 for p in model.vae.parameters())
    placed = [m for m in moves if m[1:] != (None, None)]  # not channels_last-only moves
    assert ("unet", "cpu", torch.float32) in placed and placed[-1][1:] == ("cuda", torch.float16)
    # Between the GPU attempts and the CPU attempt nothing may go to the (full) GPU.
    to_cpu = moves[run.moves_seen[1] : run.moves_seen[2]]
    assert to_cpu and all(device == "cpu" for _, device, _ in to_cpu), to_cpu


def test_every_rung_lowers_gpu_memory_and_none_slices_attention(model):
    """Issue 13: sliced attention keeps its maps for null-text's backward (more memory,
    not less), so no rung switches it on; the weights on the GPU shrink at every rung."""
    _fake_cuda(model)
    on_gpu, records = [], []

    def run(m, _plan):
        assert not m.low_memory.attention_slicing
        records.append(m.low_memory.branch_record)
        gpu = m.device.type == "cuda"
        on_gpu.append(
            sum(
                sum(p.numel() for p in getattr(m, name).parameters())
                for name in WEIGHT_COMPONENTS
                if gpu and not m.low_memory.offloads(name)
            )
        )
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(OutOfMemory):
        restore_with_fallback(run, model, on_message=None)
    assert len(on_gpu) == 3 and on_gpu[0] > on_gpu[1] > on_gpu[2] == 0
    assert on_gpu[1] == sum(p.numel() for p in model.unet.parameters())  # the UNet stays
    assert records == ["auto", "host", "auto"]  # rung 1: the branch record off the GPU (on
    # the CPU rung "auto" keeps it in the same RAM)


@pytest.mark.parametrize("error", [OutOfMemory, RuntimeError])
def test_first_rung_that_works_stops_the_ladder(model, error):
    _fake_cuda(model)
    messages: list[str] = []
    run = FlakyRun(1, error)
    restore_with_fallback(run, model, on_message=messages.append)
    assert [s[0] for s in run.states] == [NONE, LOW] and len(messages) == 1
    assert _state(model)[0] == NONE


def test_keep_fallback_keeps_what_worked(model):
    _fake_cuda(model)
    run = FlakyRun(1)
    restore_with_fallback(run, model, on_message=None, keep_fallback=True)
    assert _state(model)[0] == LOW and model.device == CUDA


def test_user_savers_are_not_retried_and_come_back(model):
    _fake_cuda(model)
    model.set_low_memory(LowMemory.low_vram(True))  # the savers rung 1 would set
    messages: list[str] = []
    run = FlakyRun(1)
    restore_with_fallback(run, model, on_message=messages.append)
    assert [s[0] for s in run.states] == [LOW, ON_CPU]  # rung 1 would change nothing
    assert "fell back to CPU" in messages[0] and _state(model)[0] == LOW


def test_user_offload_and_slicing_are_kept_on_the_first_rung(model):
    _fake_cuda(model)
    model.set_low_memory(LowMemory(attention_slicing=True, cpu_offload=True))
    run = FlakyRun(2)
    restore_with_fallback(run, model, on_message=None)
    assert [(s[0], s[1]) for s in run.states] == [
        ((True, False, True, False), "cuda"),
        ((True, True, True, True), "cuda"),  # tiling added, the user's settings kept
        (ON_CPU, "cpu"),
    ]
    assert _state(model)[:2] == ((True, False, True, False), "cuda")


def test_cpu_model_tries_savers_then_gives_a_clear_error(model):
    messages: list[str] = []
    run = FlakyRun(99)
    with pytest.raises(OutOfMemory, match="Lower the resolution") as err:
        restore_with_fallback(run, model, on_message=messages.append)
    assert isinstance(err.value.__cause__, torch.OutOfMemoryError)
    assert len(run.states) == 2 and len(messages) == 1  # no offload or CPU rung on a CPU
    assert _state(model) == (NONE, "cpu", (torch.float32, torch.float32))


def test_gpu_model_that_fails_everywhere_is_restored(model):
    _fake_cuda(model)
    with pytest.raises(OutOfMemory, match="on the CPU"):
        restore_with_fallback(FlakyRun(99), model, on_message=None)
    assert _state(model) == (NONE, "cuda", (torch.float16, torch.float16))


@pytest.mark.parametrize("error", [ValueError, Cancelled])
def test_other_errors_propagate_at_once(model, error):
    _fake_cuda(model)
    run = FlakyRun(5, error)
    with pytest.raises(error):
        restore_with_fallback(run, model, on_message=None)
    assert len(run.states) == 1 and _state(model)[0] == NONE


def test_is_out_of_memory():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(MemoryError())  # host RAM: the CPU rung would not help


def test_low_vram_option_uses_only_savers_that_lower_memory(tiny_sd_dir):
    from engine.models.spec import ModelSpec

    low = ModelSpec(source=str(tiny_sd_dir), device="cpu", low_vram=True).load().low_memory
    assert not low.attention_slicing  # it raises null-text memory (module docstring)
    assert low.vae_tiling and low.offload_encoders and low.nulltext_batch_faces == 1
