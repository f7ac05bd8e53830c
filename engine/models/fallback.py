"""Out of GPU memory: retry with lower-memory settings, then on the CPU (DESIGN.md §8).

    result = restore_with_fallback(
        lambda m: restore_faces(m, pairs, params, on_step=..., cancel=...), model,
        on_message=status_bar.showMessage,
    )

`restore_faces` already micro-batches on out-of-memory: it halves its face batch (for
inversion + null-text and for entanglement apart) down to one face, and raises
`engine.errors.OutOfMemory` when even one face does not fit; this wrapper is the next
level up. Every rung lowers peak memory (bench/engine_cost.py --simulate measures it);
each is tried only when it changes something:

1. `lower_memory(settings)` = `LowMemory(vae_tiling=True, offload_encoders=True,
   nulltext_batch_faces=1, branch_record="host")` over the user's other settings: the VAE
   and the text encoder wait on the CPU while the UNet works (their ~0.4 GB in fp16), the
   VAE encodes and decodes tile by tile, null-text's forward + backward passes take
   one face at a time (the rest of the batch stays together), and the branch record of
   the target-only entanglement waits in host memory;
2. the CPU in fp32: every weight module is moved with `module.to(device="cpu",
   dtype=torch.float32)` and the model's `device` / `dtype` fields are set to match
   (the engine reads them for every tensor it makes), VAE tiling kept on to bound RAM.
   Much slower, but it finishes. Message: "... fell back to CPU ...".

Not rungs: attention slicing (diffusers' sliced processor keeps its maps for null-text's
backward pass, where SDPA keeps none: it RAISES null-text memory, 1.9 -> 4.2 GiB for one
face at 512 in issue 13's estimate) and full CPU offload (the UNet must stay on the GPU
through each forward and backward pass, so the peak is that of rung 1; it only adds
transfers). User settings with either are kept on rung 1.

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
from engine.models.loading import WEIGHT_COMPONENTS, LowMemory, tune_for_device

T = TypeVar("T")

ON_CPU = LowMemory(vae_tiling=True)
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
    for name in WEIGHT_COMPONENTS:
        home = CPU if model.low_memory.offloads(name) else device
        getattr(model, name).to(device=home, dtype=dtype)
    model.device = device
    model.dtype = dtype
    tune_for_device(model.unet, device)


def lower_memory(low: LowMemory) -> LowMemory:
    """Rung 1 of the ladder from the settings `low`: the savers that lower the peak (VAE
    tiling, VAE and text encoder off the GPU while the UNet works, null-text one face per
    pass, the branch record in host memory), the user's other settings kept. For callers
    with their own retry (the app)."""
    changes = {"vae_tiling": True, "offload_encoders": True, "nulltext_batch_faces": 1}
    if low.branch_record != "off":
        changes["branch_record"] = "host"
    return LowMemory(**(vars(low) | changes))


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
    lower = lower_memory(previous_low)
    if not _same(lower, previous_low):
        rungs.append(
            (
                "Out of GPU memory; retrying with the VAE and text encoder off the GPU while "
                "the UNet works, VAE tiling and null-text one face at a time (a little "
                "slower, less memory).",
                lambda: model.set_low_memory(lower),
            )
        )
    if on_gpu:

        def to_cpu() -> None:
            # Drop offload first (nothing moves: the GPU is full), then move everything.
            model.low_memory = LowMemory(**vars(ON_CPU))
            move_model(model, CPU, torch.float32)
            model.set_low_memory(ON_CPU)

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
        model.low_memory = LowMemory(**vars(ON_CPU))
        move_model(model, CPU, torch.float32)
        model.set_low_memory(ON_CPU)
        say("The GPU is still too full to take the model back; it stays on the CPU.")
