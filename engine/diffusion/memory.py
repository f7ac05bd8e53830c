"""How a restore fits in memory: faces per null-text pass (nulltext_faces_per_pass),
where a branch record lives (branch_record_home), the GPU memory a run can still use
(free_gpu_gib), and running a batch of faces in chunks that halve on out-of-memory
(in_chunks, is_oom).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import OutOfMemory

# Activations null-text's backward keeps per UNet sample at 64 x 64 latents (512 px) in
# fp16, GiB: bench/engine_cost.py --simulate's null-text peak minus the weights, per sample
# (1.76 GiB for 2 samples). Scales with the latent area and the dtype's size.
NULLTEXT_GIB_PER_SAMPLE_512 = 0.88
# Share of the free GPU memory null-text's passes may plan for (the rest: allocator
# fragmentation, the other stages' transients, other programs).
NULLTEXT_MEMORY_SHARE = 0.8


def nulltext_faces_per_pass(
    model, faces: int, latent_hw: tuple[int, int], reserved_gib: float = 0.0
) -> int | None:
    """Faces per null-text forward + backward pass: LowMemory.nulltext_batch_faces when
    set; else on CUDA as many as NULLTEXT_MEMORY_SHARE of the free memory, less
    `reserved_gib` (a branch record growing on the GPU), holds (one face at least);
    elsewhere all (None)."""
    low = getattr(model, "low_memory", None)
    fixed = getattr(low, "nulltext_batch_faces", None)
    if fixed:
        return fixed
    device = torch.device(model.device)
    if device.type != "cuda":
        return None
    free = free_gpu_gib(device)
    fits = int(
        (NULLTEXT_MEMORY_SHARE * free - reserved_gib) // _nulltext_face_gib(model, latent_hw)
    )
    return None if fits >= faces else max(1, fits)


def free_gpu_gib(device: torch.device) -> float:
    """GiB a restore can still allocate on `device`: what the driver reports free plus
    what PyTorch's caching allocator holds but no tensor uses (after a first restore that
    is most of the memory it needed; mem_get_info alone would plan the next restore as if
    it were gone)."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return (free + max(0, cached)) / 2**30


def _nulltext_face_gib(model, latent_hw: tuple[int, int]) -> float:
    size = torch.finfo(model.dtype).bits / 16
    return 2 * NULLTEXT_GIB_PER_SAMPLE_512 * size * latent_hw[0] * latent_hw[1] / 64**2


def branch_record_home(model, record_gib: float, latent_hw: tuple[int, int]) -> torch.device | None:
    """Where a branch record of `record_gib` lives (LowMemory.branch_record): "off" ->
    None (three-branch entanglement); "host" -> the CPU; "device" -> the model's device;
    "auto" -> the model's device, except on CUDA when the record and one face's null-text
    pass would not fit in NULLTEXT_MEMORY_SHARE of the free memory: then the CPU."""
    mode = getattr(getattr(model, "low_memory", None), "branch_record", "auto")
    device = torch.device(model.device)
    if mode == "off":
        return None
    if mode == "host":
        return torch.device("cpu")
    if mode == "device" or device.type != "cuda":
        return device
    free = free_gpu_gib(device)
    fits = record_gib + _nulltext_face_gib(model, latent_hw) <= NULLTEXT_MEMORY_SHARE * free
    return device if fits else torch.device("cpu")


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def in_chunks(indices: list[int], max_batch: int | None, fn: Callable[[list[int]], None]) -> None:
    """Run fn over batches of indices; halve the batch on out-of-memory and retry."""
    if not indices:
        return
    size = max_batch or len(indices)
    start = 0
    while start < len(indices):
        chunk = indices[start : start + size]
        try:
            fn(chunk)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_oom(error):
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
