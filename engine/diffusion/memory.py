"""Running a batch of faces in chunks that halve on out-of-memory (in_chunks): how one
MemoryPlan's faces per UNet pass (engine.models.memory_plan) shrink inside a run before
the out-of-memory ladder moves to its next plan.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import OutOfMemory
from engine.models.memory_plan import is_out_of_memory


def in_chunks(indices: list[int], max_batch: int | None, fn: Callable[[list[int]], None]) -> None:
    """Run fn over batches of indices; halve the batch on out-of-memory and retry; at one
    face raise OutOfMemory (the ladder's cue for its next plan)."""
    if not indices:
        return
    size = max_batch or len(indices)
    start = 0
    while start < len(indices):
        chunk = indices[start : start + size]
        try:
            fn(chunk)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if size == 1:
                raise OutOfMemory(
                    "Out of GPU memory even for a single face. Turn on low-VRAM mode in "
                    "Settings (attention slicing, VAE tiling, CPU offload) or run on the CPU."
                ) from error
            size = max(1, size // 2)
            continue
        start += len(chunk)
