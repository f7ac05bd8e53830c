"""Out of GPU memory: retry with lower-memory settings, then on the CPU (DESIGN.md §8).

    result = restore_with_fallback(
        lambda m: restore_faces(m, pairs, params, on_step=..., cancel=...), model,
        on_message=status_bar.showMessage,
    )

`restore_faces` already halves its face batch on out-of-memory and raises
`engine.errors.OutOfMemory` when even one face does not fit; this wrapper is the next
level up. The ladder, each rung tried only when it changes something:

1. `LowMemory(attention_slicing=True, vae_tiling=True)` via `SDModel.set_low_memory`;
2. the same plus `cpu_offload=True` (components live in RAM, each moved to the GPU only
   while it runs: `SDModel.use`);
3. the CPU in fp32: every weight module is moved with `module.to(device="cpu",
   dtype=torch.float32)` and the model's `device` / `dtype` fields are set to match
   (the engine reads them for every tensor it makes), then slicing and tiling are kept
   on to bound RAM. Much slower, but it finishes. Message: "... fell back to CPU ...".

Afterwards (success or final failure) the caller's previous settings come back: memory
savers, device and dtype, so the next photo tries the fast path again. Pass
`keep_fallback=True` to keep the setting that worked (a batch that hit the limit once
will likely hit it again; keeping it avoids a failed attempt per file).

Only out-of-memory errors are caught (torch.OutOfMemoryError, our OutOfMemory, or a
RuntimeError whose text says "out of memory"); anything else, and Cancelled, propagates
at once with the previous settings restored.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

import torch

from engine.errors import OutOfMemory
from engine.models.loading import WEIGHT_COMPONENTS, LowMemory

T = TypeVar("T")

LOW_MEMORY = LowMemory(attention_slicing=True, vae_tiling=True)
OFFLOAD = LowMemory(attention_slicing=True, vae_tiling=True, cpu_offload=True)
CPU = torch.device("cpu")


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's CUDA OOM, our OutOfMemory, and 'out of memory' RuntimeErrors."""
    if isinstance(error, OutOfMemory | torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def move_model(model, device: torch.device | str, dtype: torch.dtype) -> None:
    """Move every weight module of an SDModel and update its device/dtype fields."""
    device = torch.device(device)
    home = CPU if model.low_memory.cpu_offload else device
    for name in WEIGHT_COMPONENTS:
        getattr(model, name).to(device=home, dtype=dtype)
    model.device = device
    model.dtype = dtype


def _same(a: LowMemory, b: LowMemory) -> bool:
    return vars(a) == vars(b)


def restore_with_fallback(
    run: Callable[[object], T],
    model,
    *,
    on_message: Callable[[str], None] | None = print,
    keep_fallback: bool = False,
) -> T:
    """run(model); on out-of-memory retry with less memory, then on the CPU.

    Raises engine.errors.OutOfMemory (chained to the last error) when the CPU run also
    runs out of memory. See the module docstring for the ladder and what is restored.
    """
    say = on_message or (lambda _message: None)
    previous_low = LowMemory(**vars(model.low_memory))
    previous_device, previous_dtype = model.device, model.dtype
    on_gpu = torch.device(previous_device).type != "cpu"

    rungs = _rungs(model, previous_low, previous_device, on_gpu)

    changed = False
    try:
        try:
            return run(model)
        except BaseException as error:  # noqa: BLE001 - filtered just below
            if not is_out_of_memory(error):
                raise
            last: BaseException = error
        for message, apply in rungs:
            _free_memory()
            say(message)
            apply()
            changed = True
            try:
                return run(model)
            except BaseException as error:  # noqa: BLE001 - filtered just below
                if not is_out_of_memory(error):
                    raise
                last = error
        raise OutOfMemory(
            "Out of memory even with every memory saver"
            + (" and on the CPU" if on_gpu else "")
            + ". Lower the resolution, restore fewer faces at once (max_batch_faces) or "
            "close other programs."
        ) from last
    finally:
        if changed and not keep_fallback:
            _restore(model, previous_low, previous_device, previous_dtype, say)
        _free_memory()


def _rungs(model, previous_low: LowMemory, previous_device, on_gpu: bool):
    """The ladder for this model: (message, apply) pairs, each only when it changes
    something (module docstring)."""
    rungs: list[tuple[str, Callable[[], None]]] = []
    if not (previous_low.attention_slicing and previous_low.vae_tiling):
        rungs.append(
            (
                "Out of GPU memory; retrying with attention slicing and VAE tiling "
                "(slower, less memory).",
                lambda: model.set_low_memory(
                    LowMemory(True, True, cpu_offload=previous_low.cpu_offload)
                ),
            )
        )
    if on_gpu and not previous_low.cpu_offload:
        rungs.append(
            (
                "Still out of GPU memory; retrying with CPU offload (model parts wait in RAM).",
                lambda: model.set_low_memory(OFFLOAD),
            )
        )
    if on_gpu:

        def to_cpu() -> None:
            # Move first, then drop offload: set_low_memory sends modules to model.device,
            # which must already be the CPU (never the full model onto the full GPU).
            move_model(model, CPU, torch.float32)
            model.set_low_memory(LOW_MEMORY)

        rungs.append(
            (
                f"Out of GPU memory even with every memory saver: fell back to CPU (fp32). "
                f"This is much slower; close other GPU programs or lower the resolution to "
                f"use the GPU ({previous_device}) again.",
                to_cpu,
            )
        )

    return rungs


def _restore(model, low: LowMemory, device, dtype, say: Callable[[str], None]) -> None:
    """Put the caller's settings back; stay on the CPU if the GPU is still too full."""
    try:
        if model.device != device or model.dtype != dtype:
            model.set_low_memory(low)  # the device is still the CPU: nothing moves to the GPU
            move_model(model, device, dtype)
        elif not _same(model.low_memory, low):
            model.set_low_memory(low)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        _free_memory()
        model.set_low_memory(LOW_MEMORY)
        move_model(model, CPU, torch.float32)
        say("The GPU is still too full to take the model back; it stays on the CPU.")
