"""FLOPs and simulated GPU memory of a restore: the full SD 1.4 architecture on `meta`.

`python bench/engine_cost.py --simulate` runs this. Nothing is computed: every tensor
lives on PyTorch's `meta` device (shapes and dtypes only), so the full-size model runs
on any CPU in seconds. Per distinct UNet call of `engine.diffusion.cost.unet_calls`
(and the VAE and text encoder), the engine's own code path runs once under

- torch.utils.flop_counter.FlopCounterMode: matmul / conv / attention FLOPs (forward and,
  for null-text, the backward w.r.t. the embeddings);
- `MemorySim`: a TorchDispatchMode that adds up the bytes of every tensor storage made
  while it is alive and drops them when the storage is freed (weak references, as
  torch.distributed._tools.MemTracker does; that tool insists on trainable parameters,
  our weights are frozen), rounded to the CUDA caching allocator's 512-byte blocks.

Attention on CUDA runs as a fused kernel (flash / memory-efficient SDPA) that never
holds the QK^T map; on `meta` PyTorch would pick the math path and materialise it, so
`FusedAttention` routes F.scaled_dot_product_attention to the memory-efficient kernel's
meta implementation (output + log-sum-exp; its backward likewise). Explicit maps the
engine itself builds (the old gated processor) are counted as they are.

Stage peak = weights resident on the GPU during the stage + the largest transient of its
calls (inputs and outputs included). Not modelled: allocator fragmentation and the CUDA
context (~0.3-0.5 GB per process), cuDNN workspaces; the long-lived state between calls
(latent trajectories, embeddings: < 10 MB per face) is left out as negligible.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from engine.diffusion import cost
from engine.diffusion.attention import COND, UNCOND, EntanglementAttention
from engine.diffusion.branch_attention import (
    BranchRecord,
    BranchRecorder,
    ReplayAttention,
    record_bytes,
)
from engine.diffusion.cost import PREPASS_SAMPLES_PER_FACE
from engine.diffusion.latents import UNetStats, predict_noise
from engine.diffusion.nulltext import _face_losses, _unconditional
from engine.diffusion.restore import _prompts, _record_spec, gate_config, prepass_maps
from engine.diffusion.schedule import make_plan, reconstruction_step
from engine.params import EditedIDParams

GIB = 2**30
BLOCK = 512  # the CUDA caching allocator's smallest block


class MemorySim(TorchDispatchMode):
    """Live and peak bytes of the storages created while active."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, weakref.ref] = {}
        self.current = 0
        self.peak = 0

    def _freed(self, key: int, nbytes: int) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in self._live:
                continue
            nbytes = -(-storage.nbytes() // BLOCK) * BLOCK
            self._live[key] = weakref.ref(storage, lambda _r, k=key, n=nbytes: self._freed(k, n))
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        return out


class FusedAttention(TorchFunctionMode):
    """F.scaled_dot_product_attention as CUDA runs it: a fused kernel, no QK^T map."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
        if mask is not None:
            mask = mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        out = torch.ops.aten._scaled_dot_product_efficient_attention(
            q, k, v, mask, grad, 0.0, False, scale=kwargs.get("scale")
        )
        return out[0]


@dataclass
class Measured:
    tflop: float  # per call
    peak_gib: float  # transient peak of the call


def measure(fn) -> Measured:
    """Run fn() on meta under the FLOP counter and the memory simulation."""
    flops = FlopCounterMode(display=False)
    memory = MemorySim()
    with FusedAttention(), flops, memory:
        fn()
    return Measured(flops.get_total_flops() / 1e12, memory.peak / GIB)


def weights_gib(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / GIB


# --- one call of each kind, through the engine's code ------------------------------------
def _latents(batch: int, size: int) -> torch.Tensor:
    return torch.zeros(batch, 4, size // 8, size // 8, device="meta")


def _call(model, params: EditedIDParams, call: cost.UNetCall, size: int):
    """A closure running one UNet call of `call`'s kind and batch."""
    prompts = _prompts(model, params)
    plan = make_plan(params.steps, params.effective_dpm_range, cost.sd_alphas_cumprod())
    t = plan.timesteps[0]
    stats = UNetStats()
    if call.kind == "capture":
        per = PREPASS_SAMPLES_PER_FACE

        def run():
            prepass_maps(model, _latents(call.batch // per, size), 500, prompts, params, stats)

        return run
    if call.kind in ("plain", "record"):
        faces = call.batch // 2
        cond = torch.cat([prompts.cond_original.expand(faces, -1, -1)] * 2)

        def run():
            # "record": the conditional half's recording (it also keeps cross-attention
            # columns); what it keeps is counted here once more, on top of the whole
            # record simulate() adds: conservative by 1/(2 x steps) of the record.
            record = _record(model, params, prompts, faces, size) if call.kind == "record" else None
            with BranchRecorder(model.unet, record).recording(0, COND) if record else _nothing():
                predict_noise(model, _latents(call.batch, size), t, cond, None, 1.0, stats)

        return run
    if call.kind == "backward":
        faces = call.batch // 2

        def run():
            x = _latents(call.batch, size)
            phi = prompts.uncond.float().expand(call.batch, -1, -1).clone().requires_grad_(True)
            eps_cond = torch.zeros_like(x)
            eps_u = _unconditional(model, x, t, phi, stats, grad=True)
            eps = eps_u + params.guidance * (eps_cond - eps_u)
            x_next, _ = reconstruction_step(plan, 0, x, eps, None, None)
            _face_losses(x_next, torch.zeros_like(x), faces).sum().backward()

        return run
    if call.kind == "replay":
        faces = call.batch // 2
        config = _gate_config(params, prompts, faces, size)
        record = _record(model, params, prompts, faces, size)
        recorder = BranchRecorder(model.unet, record)
        both = torch.cat([prompts.cond_original.expand(faces, -1, -1)] * 2)
        for half in (COND, UNCOND):  # made before the measurement: simulate() adds it
            with recorder.recording(0, half):
                predict_noise(model, _latents(2 * faces, size), t, both, None, 1.0, stats)
        cond = prompts.cond_edited.expand(faces, -1, -1)

        def run():
            with ReplayAttention(model.unet, config, record, list(range(faces))):
                predict_noise(model, _latents(faces, size), t, cond, cond, params.guidance, stats)

        return run
    if call.kind == "gated":
        faces = call.batch // 6
        config = _gate_config(params, prompts, faces, size)
        cond = torch.cat([prompts.cond_original, prompts.cond_edited, prompts.cond_edited])
        cond = cond.repeat_interleave(faces, 0)

        def run():
            with EntanglementAttention(model.unet, config):
                predict_noise(
                    model, _latents(3 * faces, size), t, cond, cond, params.guidance, stats
                )

        return run
    raise ValueError(f"unknown call kind {call.kind!r}")


def _gate_config(params, prompts, faces: int, size: int):
    face = torch.zeros(faces, 1, size // 8, size // 8, device="meta")
    return gate_config(face, face.clone(), params.overlap, prompts, params)


def _record(model, params, prompts, faces: int, size: int) -> BranchRecord:
    return BranchRecord(_record_spec(model, prompts, params), faces, "meta")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def record_gib(model, params: EditedIDParams, faces: int, size: int) -> float:
    """A whole restore's branch record (engine.diffusion.branch_attention), GiB."""
    spec = _record_spec(model, _prompts(model, params), params)
    steps, hw = params.steps, (size // 8, size // 8)
    return (
        0.0 if spec is None else record_bytes(model.unet, spec, faces, hw, steps, model.dtype) / GIB
    )


# --- a whole configuration -----------------------------------------------------------------
# the weights each stage runs (with offload_encoders the others wait on the CPU)
_STAGE_WEIGHTS = {"text": "text_encoder", "encode": "vae", "decode": "vae"}


def simulate(model, params: EditedIDParams, faces: int, size: int, cache: dict, low=None) -> dict:
    """Stages of one fresh restore of `faces` faces at `size` px: samples, TFLOP, peak.

    low: the model's LowMemory (default: a fresh one); offload_encoders keeps the VAE and
    text encoder off the GPU outside their stages, nulltext_batch_faces sets the faces per
    null-text forward + backward pass, branch_record where the target-only
    entanglement's record lives: unless "host" or "off", on the GPU for the whole of
    null-text and the entanglement (at its largest: conservative). (VAE tiling is not
    modelled: VAE peaks are untiled.)
    """
    from engine.diffusion.latents import encode_text
    from engine.models.loading import LowMemory

    low = low or LowMemory()
    resident = {n: weights_gib(getattr(model, n)) for n in ("unet", "vae", "text_encoder")}

    def weights_for(stage: str) -> float:
        own = _STAGE_WEIGHTS.get(stage, "unet")
        return sum(g for n, g in resident.items() if n in ("unet", own) or not low.offloads(n))

    recording = low.branch_record != "off"
    calls = cost.unet_calls(
        params, faces, nulltext_batch_faces=low.nulltext_batch_faces, branch_record=recording
    )
    on_gpu = (
        record_gib(model, params, faces, size) if low.branch_record in ("auto", "device") else 0.0
    )
    stages: dict[str, dict] = {}
    per_sample: dict[str, float] = {}

    def add(stage: str, m: Measured, count: int, fwd: int = 0, bwd: int = 0) -> None:
        row = stages.setdefault(stage, {"forward": 0, "backward": 0, "tflop": 0.0, "peak_gib": 0.0})
        row["forward"] += fwd
        row["backward"] += bwd
        row["tflop"] += m.tflop * count
        held = on_gpu if stage in (cost.NULLTEXT, cost.ENTANGLEMENT) else 0.0
        row["peak_gib"] = max(row["peak_gib"], weights_for(stage) + m.peak_gib + held)

    add("text", measure(lambda: encode_text(model, ["a", "b", ""])), 1)
    add("encode", _vae(model, "encode", 2 * faces, cache, size), 1)
    for call in calls:
        key = (call.kind, call.batch, size)
        if key not in cache:
            cache[key] = measure(_call(model, params, call, size))
        add(call.stage, cache[key], call.calls, call.samples, call.samples * call.backward)
        per_sample[call.kind] = cache[key].tflop / call.batch
    add("decode", _vae(model, "decode", faces, cache, size), 1)
    total = {
        "forward": sum(r["forward"] for r in stages.values()),
        "backward": sum(r["backward"] for r in stages.values()),
        "tflop": sum(r["tflop"] for r in stages.values()),
        "peak_gib": max(r["peak_gib"] for r in stages.values()),
    }
    return {
        "faces": faces,
        "size": size,
        "stages": stages,
        "total": total,
        "tflop_per_sample": per_sample,
        "nulltext_faces_per_pass": low.nulltext_batch_faces or faces,
        "branch_record": low.branch_record,
        "branch_record_gpu_gib": round(on_gpu, 3),
    }


def _vae(model, which: str, batch: int, cache: dict, size: int) -> Measured:
    """The device part of encode_images / decode_latents (their finiteness checks and
    uint8 conversion read values, which meta tensors do not have)."""
    key = (which, batch, size)
    if key not in cache:

        def run():
            with model.use("vae"):
                if which == "encode":
                    images = torch.zeros(batch, 3, size, size, device="meta", dtype=model.dtype)
                    model.vae.encode(images).latent_dist.mean.float()
                else:
                    latents = _latents(batch, size) / model.vae_scaling_factor
                    model.vae.decode(latents.to(model.dtype)).sample.float()

        cache[key] = measure(run)
    return cache[key]
