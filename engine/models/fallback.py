"""Out of GPU memory: the ladder of engine.models.memory_plan, run (DESIGN.md §8).

    result = restore_with_fallback(
        lambda m, plan: restore_faces(m, pairs, params, plan=plan, on_step=...), model,
        on_message=status_bar.showMessage,
    )

`memory_ladder(model)` gives the plans, in order (the model as set; the memory savers; the
CPU in fp32), each only when it changes something; this module runs them: it applies a
plan's model settings (`apply_plan`: savers, device, dtype) and calls run(model, plan),
which follows the plan's run settings (faces per pass, where the branch record lives).
`restore_faces` already halves its faces per UNet pass on out-of-memory down to one face
and raises `engine.errors.OutOfMemory` when even one face does not fit; that is the cue
for the next plan. For the CPU step every weight module is moved with
`module.to(device="cpu", dtype=torch.float32)` and the model's `device` / `dtype` fields
are set to match (the engine reads them for every tensor it makes). Message: "... fell
back to CPU ...".

Afterwards (success or final failure) the caller's previous settings come back: memory
savers, device and dtype, so the next photo tries the fast path again. Pass
`keep_fallback=True` to keep the setting that worked (a batch that hit the limit once
will likely hit it again; keeping it avoids a failed attempt per file).

Only out-of-memory errors are caught (memory_plan.is_out_of_memory); anything else, and
Cancelled, propagates at once with the previous settings restored. When every plan ran
out of memory, `LadderExhausted` (an OutOfMemory) says so: a caller's own retry with
lower settings would repeat the ladder.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from engine.errors import OutOfMemory
from engine.models.loading import WEIGHT_COMPONENTS, LowMemory, tune_for_device
from engine.models.memory_plan import (
    ON_CPU,
    SAVERS,
    MemoryPlan,
    is_out_of_memory,
    lower_memory,
    memory_ladder,
)

__all__ = [
    "LadderExhausted",
    "apply_plan",
    "is_out_of_memory",
    "lower_memory",
    "move_model",
    "restore_with_fallback",
]

T = TypeVar("T")

CPU = torch.device("cpu")


class LadderExhausted(OutOfMemory):
    """Every plan of the out-of-memory ladder ran out of memory (`plans`: the ones tried)."""

    def __init__(self, message: str, plans: Sequence[MemoryPlan]) -> None:
        super().__init__(message)
        self.plans = tuple(plans)


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


def apply_plan(model, plan: MemoryPlan) -> None:
    """Give the model the plan's settings: its savers, and its device and dtype."""
    low = plan.low_memory()
    if torch.device(model.device) != plan.device or model.dtype != plan.dtype:
        # Drop offload first (nothing moves: the GPU may be full), then move everything.
        model.low_memory = LowMemory(**vars(low))
        move_model(model, plan.device, plan.dtype)
    model.set_low_memory(low)


def _message(plan: MemoryPlan, first: MemoryPlan) -> str:
    if plan.name == SAVERS:
        return (
            "Out of GPU memory; retrying with the VAE and text encoder off the GPU while "
            "the UNet works, VAE tiling and null-text one face at a time (a little "
            "slower, less memory)."
        )
    if plan.name == ON_CPU:
        return (
            f"Out of GPU memory even with every memory saver: fell back to CPU (fp32). "
            f"This is much slower; close other GPU programs or lower the resolution to "
            f"use the GPU ({first.device}) again."
        )
    return f"Out of memory; retrying with the memory plan {plan.name!r}."


def restore_with_fallback(
    run: Callable[[object, MemoryPlan], T],
    model,
    *,
    on_message: Callable[[str], None] | None = print,
    keep_fallback: bool = False,
    plans: Sequence[MemoryPlan] | None = None,
) -> T:
    """run(model, plan) for each plan of the ladder (default memory_ladder(model)) until
    one does not run out of memory.

    Raises LadderExhausted (an engine.errors.OutOfMemory, chained to the last error)
    when the last plan also runs out of memory. See the module docstring for what is
    restored afterwards.
    """
    say = on_message or (lambda _message: None)
    ladder = tuple(plans) if plans is not None else memory_ladder(model)
    previous_low = LowMemory(**vars(model.low_memory))
    previous_device, previous_dtype = model.device, model.dtype

    changed = False
    last: BaseException | None = None
    try:
        for index, plan in enumerate(ladder):
            if index:
                _free_memory()
                say(_message(plan, ladder[0]))
                apply_plan(model, plan)
                changed = True
            try:
                return run(model, plan)
            except BaseException as error:  # noqa: BLE001 - filtered just below
                if not is_out_of_memory(error):
                    raise
                last = error
        on_gpu = any(p.device.type != "cpu" for p in ladder)
        raise LadderExhausted(
            "Out of memory even with every memory saver"
            + (" and on the CPU" if on_gpu else "")
            + ". Lower the resolution, restore fewer faces at once (max_batch_faces) or "
            "close other programs.",
            ladder,
        ) from last
    finally:
        if changed and not keep_fallback:
            _restore(model, previous_low, previous_device, previous_dtype, say)
        _free_memory()


def _restore(model, low: LowMemory, device, dtype, say: Callable[[str], None]) -> None:
    """Put the caller's settings back; stay on the CPU if the GPU is still too full."""
    try:
        if model.device != device or model.dtype != dtype:
            model.set_low_memory(low)  # the device is still the CPU: nothing moves to the GPU
            move_model(model, device, dtype)
        elif vars(model.low_memory) != vars(low):
            model.set_low_memory(low)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        _free_memory()
        on_cpu = LowMemory(vae_tiling=True)
        model.low_memory = LowMemory(**vars(on_cpu))
        move_model(model, CPU, torch.float32)
        model.set_low_memory(on_cpu)
        say("The GPU is still too full to take the model back; it stays on the CPU.")
