"""How a restore fits in memory, in one place: the `MemoryPlan` a run follows, the plan a
model's settings give (`plan_for`), the out-of-memory ladder as a sequence of ever smaller
plans (`memory_ladder`), and the one out-of-memory test (`is_out_of_memory`).

A plan has two halves. Its model settings (device, dtype, VAE tiling, the VAE and text
encoder off the GPU, attention slicing, full CPU offload) are applied to the model by
whoever runs the ladder (engine.models.fallback.apply_plan); its run settings (faces per
UNet pass, faces per null-text pass, where the branch record lives) are read by
`engine.diffusion.restore.restore_faces`, which no longer looks at the model's settings to
decide them. Where a number depends on the free GPU memory ("as many as fit"), the plan
says so (None / "auto") and the run measures it when it gets there
(`MemoryPlan.nulltext_faces_per_pass`, `MemoryPlan.record_home`), as the memory free then
is what counts; the result's diagnostics record what it chose.

The ladder (DESIGN.md §8), each step tried only when it changes something:

0. "as set": the model's own settings;
1. "memory savers": VAE tiling, the VAE and text encoder off the GPU while the UNet works,
   null-text one face per pass, the branch record in host memory; the user's other
   settings (slicing, full offload) kept;
2. "cpu": the CPU in fp32 with VAE tiling (bounds RAM); much slower, but it finishes.

Not steps: attention slicing (diffusers' sliced processor keeps its maps for null-text's
backward pass, where SDPA keeps none: it RAISES null-text memory, 1.9 -> 4.2 GiB for one
face at 512 in issue 13's estimate) and full CPU offload (the UNet must stay on the GPU
through each forward and backward pass, so the peak is that of step 1). Inside a step the
faces per UNet pass halve on out-of-memory down to one face before the ladder moves on
(engine.diffusion.memory.in_chunks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import OutOfMemory
from engine.models.loading import LowMemory

# Activations null-text's backward keeps per UNet sample at 64 x 64 latents (512 px) in
# fp16, GiB: bench/engine_cost.py --simulate's null-text peak minus the weights, per sample
# (1.76 GiB for 2 samples). Scales with the latent area and the dtype's size.
NULLTEXT_GIB_PER_SAMPLE_512 = 0.88
# Share of the free GPU memory null-text's passes may plan for (the rest: allocator
# fragmentation, the other stages' transients, other programs).
NULLTEXT_MEMORY_SHARE = 0.8

AS_SET, SAVERS, ON_CPU = "as set", "memory savers", "cpu"
# LowMemory's on/off savers, which a MemoryPlan holds under the same names
SAVER_SWITCHES = ("attention_slicing", "vae_tiling", "cpu_offload", "offload_encoders")
CPU = torch.device("cpu")


def is_out_of_memory(error: BaseException) -> bool:
    """True for torch's CUDA OOM, our OutOfMemory, and 'out of memory' RuntimeErrors;
    not for MemoryError (host RAM: no step of the ladder would help)."""
    if isinstance(error, OutOfMemory | torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_gpu_gib(device: torch.device) -> float:
    """GiB a restore can still allocate on `device`: what the driver reports free plus
    what PyTorch's caching allocator holds but no tensor uses (after a first restore that
    is most of the memory it needed; mem_get_info alone would plan the next restore as if
    it were gone)."""
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return (free + max(0, cached)) / 2**30


@dataclass(frozen=True)
class MemoryPlan:
    """What one attempt at a restore runs with (module docstring)."""

    device: torch.device
    dtype: torch.dtype
    step: int = 0  # place on the ladder: 0 is the model as set
    name: str = AS_SET
    # model settings (LowMemory's), applied to the model before the run
    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False
    offload_encoders: bool = False
    # run settings, read by restore_faces
    unet_faces: int | None = None  # faces per UNet pass (inversion, entanglement); None: all
    nulltext_faces: int | None = None  # fixed faces per null-text pass; None: as many as fit
    branch_record: str = "auto"  # LowMemory.branch_record's places

    def low_memory(self) -> LowMemory:
        """The model settings of this plan, as the model takes them (set_low_memory)."""
        savers = {name: getattr(self, name) for name in SAVER_SWITCHES}
        return LowMemory(
            **savers, nulltext_batch_faces=self.nulltext_faces, branch_record=self.branch_record
        )

    def nulltext_faces_per_pass(
        self, faces: int, latent_hw: tuple[int, int], reserved_gib: float = 0.0
    ) -> int | None:
        """Faces per null-text forward + backward pass: `nulltext_faces` when set; else
        on CUDA as many as NULLTEXT_MEMORY_SHARE of the free memory, less `reserved_gib`
        (a branch record growing on the GPU), holds (one face at least); elsewhere all
        (None)."""
        if self.nulltext_faces:
            return self.nulltext_faces
        if self.device.type != "cuda":
            return None
        free = free_gpu_gib(self.device)
        fits = int(
            (NULLTEXT_MEMORY_SHARE * free - reserved_gib) // self._nulltext_face_gib(latent_hw)
        )
        return None if fits >= faces else max(1, fits)

    def record_home(self, record_gib: float, latent_hw: tuple[int, int]) -> torch.device | None:
        """Where a branch record of `record_gib` lives: "off" -> None (three-branch
        entanglement); "host" -> the CPU; "device" -> the model's device; "auto" -> the
        model's device, except on CUDA when the record and one face's null-text pass would
        not fit in NULLTEXT_MEMORY_SHARE of the free memory: then the CPU."""
        if self.branch_record == "off":
            return None
        if self.branch_record == "host":
            return CPU
        if self.branch_record == "device" or self.device.type != "cuda":
            return self.device
        free = free_gpu_gib(self.device)
        fits = record_gib + self._nulltext_face_gib(latent_hw) <= NULLTEXT_MEMORY_SHARE * free
        return self.device if fits else CPU

    def _nulltext_face_gib(self, latent_hw: tuple[int, int]) -> float:
        size = torch.finfo(self.dtype).bits / 16
        return 2 * NULLTEXT_GIB_PER_SAMPLE_512 * size * latent_hw[0] * latent_hw[1] / 64**2

    def describe(self) -> dict:
        """The plan as a sidecar records it (JSON): every field, faces as "per pass"."""
        described = {**vars(self), "device": str(self.device)}
        described["dtype"] = str(self.dtype).removeprefix("torch.")
        described["unet_faces_per_pass"] = described.pop("unet_faces")
        described["nulltext_faces_per_pass"] = described.pop("nulltext_faces")
        return described


def plan_for(model, *, unet_faces: int | None = None) -> MemoryPlan:
    """The plan the model's device, dtype and memory settings (LowMemory) give: step 0
    of its ladder. `unet_faces`: the run's faces per UNet pass (EditedIDParams.
    max_batch_faces; None: all)."""
    return MemoryPlan(
        device=torch.device(model.device),
        dtype=model.dtype,
        unet_faces=unet_faces,
        **_settings_of(model.low_memory),
    )


def _settings_of(low: LowMemory) -> dict:
    """A MemoryPlan's fields that LowMemory holds (MemoryPlan.low_memory's inverse)."""
    return {
        **{name: getattr(low, name) for name in SAVER_SWITCHES},
        "nulltext_faces": low.nulltext_batch_faces,
        "branch_record": low.branch_record,
    }


def lower_memory(low: LowMemory) -> LowMemory:
    """The savers of step 1 over the settings `low`: VAE tiling, the VAE and text encoder
    off the GPU while the UNet works, null-text one face per pass, the branch record in
    host memory (unless the user turned the record off); the other settings kept."""
    changes = {"vae_tiling": True, "offload_encoders": True, "nulltext_batch_faces": 1}
    if low.branch_record != "off":
        changes["branch_record"] = "host"
    return LowMemory(**(vars(low) | changes))


def with_savers(plan: MemoryPlan) -> MemoryPlan:
    """Step 1 after `plan`: its model and null-text settings lowered (lower_memory)."""
    return _next(plan, SAVERS, **_settings_of(lower_memory(plan.low_memory())))


def on_the_cpu(plan: MemoryPlan) -> MemoryPlan:
    """Step 2: the CPU in fp32, VAE tiling on to bound RAM, no other saver (the record in
    "auto" lives in the same RAM). Faces per UNet pass as before."""
    return _next(
        plan,
        ON_CPU,
        device=CPU,
        dtype=torch.float32,
        attention_slicing=False,
        vae_tiling=True,
        cpu_offload=False,
        offload_encoders=False,
        nulltext_faces=None,
        branch_record="auto",
    )


def _next(plan: MemoryPlan, name: str, **changes) -> MemoryPlan:
    fields = {**vars(plan), **changes, "name": name, "step": plan.step + 1}
    return MemoryPlan(**fields)


def _same_settings(a: MemoryPlan, b: MemoryPlan) -> bool:
    ignore = ("step", "name")
    return {k: v for k, v in vars(a).items() if k not in ignore} == {
        k: v for k, v in vars(b).items() if k not in ignore
    }


def memory_ladder(model, *, unet_faces: int | None = None) -> tuple[MemoryPlan, ...]:
    """The plans an out-of-memory restore goes through, in order: the model as set, the
    memory savers, the CPU (module docstring); a step that would change nothing (the
    user's savers already on; a model already on the CPU) is left out."""
    plans = [plan_for(model, unet_faces=unet_faces)]
    savers = with_savers(plans[-1])
    if not _same_settings(savers, plans[-1]):
        plans.append(savers)
    if plans[0].device.type != "cpu":
        plans.append(on_the_cpu(plans[-1]))
    return tuple(MemoryPlan(**{**vars(p), "step": i}) for i, p in enumerate(plans))
