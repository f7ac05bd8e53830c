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
from engine.models.fallback import is_out_of_memory, restore_with_fallback
from engine.models.loading import WEIGHT_COMPONENTS, LowMemory, load_sd_model

NONE, SAVERS, OFFLOAD = (False, False, False), (True, True, False), (True, True, True)
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
        (low.attention_slicing, low.vae_tiling, low.cpu_offload),
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

    def __call__(self, model):
        self.states.append(_state(model))
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
    run = FlakyRun(3)
    result = restore_with_fallback(run, model, on_message=messages.append)
    assert result.dtype == torch.float32 and result.device.type == "cpu"  # a real CPU run
    fp16, fp32 = (torch.float16, torch.float16), (torch.float32, torch.float32)
    assert run.states == [
        (NONE, "cuda", fp16),
        (SAVERS, "cuda", fp16),
        (OFFLOAD, "cuda", fp16),
        (SAVERS, "cpu", fp32),
    ]
    assert len(messages) == 3
    assert "attention slicing" in messages[0] and "CPU offload" in messages[1]
    assert "fell back to CPU" in messages[2]
    # restored afterwards: no savers, the GPU, fp16 (moves recorded through .to())
    assert _state(model) == (NONE, "cuda", fp16)
    assert all(p.dtype == torch.float16 for p in model.vae.parameters())
    assert ("unet", "cpu", torch.float32) in moves and moves[-1][1:] == ("cuda", torch.float16)
    # Between the offload attempt and the CPU attempt nothing may go to the (full) GPU.
    to_cpu = moves[run.moves_seen[2] : run.moves_seen[3]]
    assert to_cpu and all(device == "cpu" for _, device, _ in to_cpu), to_cpu


@pytest.mark.parametrize("error", [OutOfMemory, RuntimeError])
def test_first_rung_that_works_stops_the_ladder(model, error):
    _fake_cuda(model)
    messages: list[str] = []
    run = FlakyRun(1, error)
    restore_with_fallback(run, model, on_message=messages.append)
    assert [s[0] for s in run.states] == [NONE, SAVERS] and len(messages) == 1
    assert _state(model)[0] == NONE


def test_keep_fallback_keeps_what_worked(model):
    _fake_cuda(model)
    run = FlakyRun(2)
    restore_with_fallback(run, model, on_message=None, keep_fallback=True)
    assert _state(model)[0] == OFFLOAD and model.device == CUDA


def test_user_savers_are_not_retried_and_come_back(model):
    _fake_cuda(model)
    model.set_low_memory(LowMemory(attention_slicing=True, vae_tiling=True))
    messages: list[str] = []
    run = FlakyRun(1)
    restore_with_fallback(run, model, on_message=messages.append)
    assert [s[0] for s in run.states] == [SAVERS, OFFLOAD]  # rung 1 would change nothing
    assert "CPU offload" in messages[0] and _state(model)[0] == SAVERS


def test_user_offload_is_kept_on_the_first_rung(model):
    _fake_cuda(model)
    model.set_low_memory(LowMemory(cpu_offload=True))
    run = FlakyRun(2)
    restore_with_fallback(run, model, on_message=None)
    assert [(s[0], s[1]) for s in run.states] == [
        ((False, False, True), "cuda"),
        (OFFLOAD, "cuda"),  # savers added, offload kept (never the whole model on the GPU)
        (SAVERS, "cpu"),
    ]
    assert _state(model)[:2] == ((False, False, True), "cuda")


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
