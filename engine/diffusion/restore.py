"""EditedID on aligned face crops: Alignment -> Disentanglement -> Entanglement.

`restore_faces(model, pairs, params)` takes aligned 512x512 crops (the original face
warped into the edited face's frame), a face mask and an element mask per face, and
returns restored crops. Faces run together in one UNet batch (split when memory is
short). Inversion and null-text results are cached per face, so a re-run with new masks
or overlap weights only repeats the entanglement stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.diffusion.attention import EntanglementAttention, GateConfig
from engine.diffusion.branch_attention import (
    BranchRecord,
    BranchRecorder,
    RecordSpec,
    ReplayAttention,
    record_bytes,
)
from engine.diffusion.element_maps import (
    ELEMENT_MASKS_STAGE,
    attention_to_crop,
    element_attention_maps,
    prepass_maps,
)
from engine.diffusion.face_pairs import (
    CancelToken,
    FacePair,
    FaceResult,
    RestoreResult,
    validate_pairs,
)
from engine.diffusion.inversion import AlignedTrajectories, align_invert
from engine.diffusion.inversion_cache import (
    CacheEntry,
    InversionCache,
    default_cache,
    face_cache_key,
)
from engine.diffusion.latents import (
    UNetStats,
    decode_latents,
    encode_images,
    face_previews,
    predict_noise,
)
from engine.diffusion.memory import in_chunks
from engine.diffusion.nulltext import NullTextResult, optimise_null_text
from engine.diffusion.progress import (
    StepCallback,
    StepMonitor,
    begin_step,
    cancel_checker,
    monitoring,
    remap_faces,
    step_info,
)
from engine.diffusion.prompts import Prompts, encode_prompts
from engine.diffusion.schedule import Solver, StepPlan, make_plan
from engine.errors import NumericalError
from engine.models.memory_plan import (
    NULLTEXT_GIB_PER_SAMPLE_512,
    NULLTEXT_MEMORY_SHARE,
    MemoryPlan,
    plan_for,
)
from engine.params import EditedIDParams

__all__ = [
    "ELEMENT_MASKS_STAGE",
    "NULLTEXT_GIB_PER_SAMPLE_512",
    "NULLTEXT_MEMORY_SHARE",
    "STAGES",
    "CancelToken",
    "FacePair",
    "FaceResult",
    "InversionCache",
    "MemoryPlan",
    "RestoreResult",
    "default_cache",
    "element_attention_maps",
    "face_cache_key",
    "gate_config",
    "prepass_maps",
    "restore_faces",
    "validate_pairs",
]

# the old private name of encode_prompts: tests/test_restore.py and bench/ import it
_prompts = encode_prompts

STAGES = ("inversion", "nulltext", "entanglement")


# --- the three stages -------------------------------------------------------------
def _invert_faces(
    model,
    pairs,
    prompts: Prompts,
    plan,
    params,
    stats,
    on_step,
    check_cancel,
    timings,
    spec: RecordSpec | None = None,
    memory: MemoryPlan | None = None,
    chosen: dict[str, list] | None = None,
) -> tuple[list[CacheEntry], BranchRecord | None]:
    """Alignment and null-text for `pairs` in one batch; also the original and edited
    branches' attention for a target-only entanglement when `spec` is given and the
    memory plan keeps a record (None otherwise, or when it came out incomplete).
    `chosen`: where what the plan left to the free memory is noted (faces per null-text
    pass, the record's home)."""
    memory = memory or plan_for(model)
    faces = len(pairs)
    start = _clock(model)
    begin_step("inversion", 0, plan.steps, 2 * faces)  # the VAE encodes come first
    latents = encode_images(model, [p.original for p in pairs] + [p.edited for p in pairs])
    z_o, z_e = latents[:faces], latents[faces:]
    cond_o = prompts.cond_original.expand(faces, -1, -1)
    cond_e = prompts.cond_edited.expand(faces, -1, -1)
    stats.stage = "inversion"
    traj = align_invert(model, z_o, z_e, cond_o, cond_e, plan, params, stats, on_step, check_cancel)
    middle = _clock(model)
    stats.stage = "nulltext"
    timings["inversion"] += middle - start
    latent_hw = tuple(z_o.shape[-2:])
    record, reserved = None, 0.0
    if spec is not None:
        need = record_bytes(model.unet, spec, faces, latent_hw, plan.steps, model.dtype) / 2**30
        home = memory.record_home(need, latent_hw)
        if home is not None:
            record = BranchRecord(spec, faces, home)
            reserved = need if home == torch.device(model.device) else 0.0
    per_pass = memory.nulltext_faces_per_pass(faces, latent_hw, reserved_gib=reserved)
    null = optimise_null_text(
        model, traj, cond_o, cond_e, prompts.uncond, plan, params, stats, on_step, check_cancel,
        batch_faces=per_pass,
        recorder=None if record is None else BranchRecorder(model.unet, record),
    )  # fmt: skip
    if chosen is not None:  # noted once the pass went through (not for a halved retry)
        chosen["inversion_faces_per_pass"].append(faces)
        chosen["nulltext_faces_per_pass"].append(per_pass or faces)
        chosen["branch_record"].append("off" if record is None else str(record.home))
    timings["nulltext"] += _clock(model) - middle
    entries = [
        CacheEntry(_to_cpu_traj(traj.face(f)), _to_cpu_null(null.face(f))) for f in range(faces)
    ]
    return entries, record if record is not None and record.complete(plan.steps) else None


def _to_cpu_traj(t: AlignedTrajectories) -> AlignedTrajectories:
    return AlignedTrajectories(
        [z.cpu() for z in t.original], [z.cpu() for z in t.edited], t.mix_weights.cpu()
    )


def _to_cpu_null(n: NullTextResult) -> NullTextResult:
    return n.to("cpu")


def _masks_to_latent(masks: list[np.ndarray], size: tuple[int, int], device) -> torch.Tensor:
    stacked = torch.from_numpy(np.stack(masks))[:, None].float()
    return F.interpolate(stacked, size=size, mode="area").to(device)


@torch.no_grad()
def _entangle(
    model,
    entries: list[CacheEntry],
    masks: list[tuple[np.ndarray, np.ndarray]],
    overlap: tuple[float, float],
    prompts: Prompts,
    plan: StepPlan,
    params: EditedIDParams,
    stats: UNetStats,
    on_step: StepCallback | None,
    check_cancel: Callable[[], None],
    record: tuple[BranchRecord, list[int]] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Three branches (original, edited, target) from z_T with attentional gating; with
    `record` (the faces' recorded branches and their indices in it) the target branch
    alone, the other two read from null-text (engine.diffusion.branch_attention).

    Returns the captured element-token maps and the final latents of all branches,
    (3F, 4, h, w) in the order original, edited, target.
    """
    faces = len(entries)
    device = model.device
    traj = AlignedTrajectories.stack([e.trajectories for e in entries])
    null = NullTextResult.stack([e.nulltext for e in entries])
    z_t = traj.shared_noise.to(device).float()
    latent_size = tuple(z_t.shape[-2:])
    face_mask = _masks_to_latent([m[0] for m in masks], latent_size, device)
    element_mask = _masks_to_latent([m[1] for m in masks], latent_size, device)
    union = torch.maximum(face_mask, element_mask)
    config = gate_config(face_mask, element_mask, overlap, prompts, params)
    if record is not None:
        gate = ReplayAttention(model.unet, config, *record)
        return _target_branch(model, gate, z_t, union, null, prompts, plan, params, stats,
                              on_step, check_cancel)  # fmt: skip
    cond = torch.cat(
        [
            prompts.cond_original.expand(faces, -1, -1),
            prompts.cond_edited.expand(faces, -1, -1),
            prompts.cond_edited.expand(faces, -1, -1),  # P_t = P_e
        ]
    )
    x = torch.cat([z_t, z_t, z_t])
    solver = Solver(plan)
    gate = EntanglementAttention(model.unet, config)
    with gate:
        for i in range(plan.steps):
            check_cancel()
            begin_step("entanglement", i, plan.steps, 1)
            phi_o = null.uncond_original[i].to(device)
            phi_e = null.uncond_edited[i].to(device)
            uncond = torch.cat([phi_o, phi_e, phi_e]).to(cond.dtype)
            eps = predict_noise(model, x, plan.timesteps[i], cond, uncond, params.guidance, stats)
            x = solver.step(i, x, eps.float())
            if params.blend:
                # Blended Diffusion: outside the masks the target follows the edited branch.
                edited, target = x[faces : 2 * faces], x[2 * faces :]
                x[2 * faces :] = union * target + (1.0 - union) * edited
            if on_step is not None:
                on_step("entanglement", i + 1, plan.steps, step_info(face_previews(x[2 * faces :])))
    return gate.captured_maps(), x


def _target_branch(
    model, gate: ReplayAttention, z_t, union, null: NullTextResult, prompts, plan, params,
    stats, on_step, check_cancel,
) -> tuple[torch.Tensor | None, torch.Tensor]:  # fmt: skip
    """_entangle's target-only loop: 2 x F samples per step; the original and edited
    branches are null-text's chain (which they reproduce, tests/test_restore.py)."""
    faces, device = z_t.shape[0], model.device
    cond = prompts.cond_edited.expand(faces, -1, -1)  # P_t = P_e
    x = z_t
    solver = Solver(plan)
    with gate:
        for i in range(plan.steps):
            check_cancel()
            begin_step("entanglement", i, plan.steps, 1)
            gate.step = i
            uncond = null.uncond_edited[i].to(device).to(cond.dtype)
            eps = predict_noise(model, x, plan.timesteps[i], cond, uncond, params.guidance, stats)
            x = solver.step(i, x, eps.float())
            if params.blend:
                edited = null.chain_edited[i + 1].to(device).float()
                x = union * x + (1.0 - union) * edited
            if on_step is not None:
                on_step("entanglement", i + 1, plan.steps, step_info(face_previews(x)))
    ends = [null.chain_original[-1].to(device).float(), null.chain_edited[-1].to(device).float()]
    return gate.captured_maps(), torch.cat([*ends, x])


def gate_config(face_mask, element_mask, overlap, prompts: Prompts, params) -> GateConfig:
    """The entanglement stage's attention settings for (F, 1, h, w) latent masks."""
    return GateConfig(
        faces=face_mask.shape[0],
        face_mask=face_mask,
        element_mask=element_mask,
        overlap=overlap,
        mode=params.gate_mode,
        gate_blocks=params.gate_blocks,
        self_attention=params.gating,
        cross_attention=params.gating and params.cross_attention,
        cross_attention_halves=params.cross_attention_halves,
        original_token_columns=prompts.original_columns,
        edited_token_columns=prompts.edited_columns,
        capture_tokens=prompts.capture,
    )


# --- public entry point -------------------------------------------------------------
def restore_faces(
    model,
    pairs: list[FacePair],
    params: EditedIDParams | None = None,
    on_step: StepCallback | None = None,
    cancel: CancelToken = None,
    cache: InversionCache | None = None,
    keep_latents: bool = False,
    *,
    plan: MemoryPlan | None = None,
) -> RestoreResult:
    """Restore the original identity in each aligned face pair (paper 2.2-2.4).

    on_step(stage, step, total, info): called after every diffusion step of every
    stage ("inversion", "nulltext", "entanglement") with an
    `engine.diffusion.progress.StepInfo` holding each face's small RGB preview (by index
    in `pairs`), and before every UNet or VAE call inside a step (info.substep; see
    engine.diffusion.progress).
    cancel: a callable returning True, or an object with is_set() (threading.Event);
    checked before every UNet and VAE call (and, on an eager model, before each of its
    blocks), so a run stops within one UNet call in every stage (raises Cancelled).
    keep_latents: also return each face's final branch latents (FaceResult.latents).
    plan: how the run fits in memory (engine.models.memory_plan: faces per UNet and
    null-text pass, where the branch record lives); default: what the model's settings
    and params.max_batch_faces give (plan_for). Its model settings (device, VAE tiling,
    offload) must already be the model's: the out-of-memory ladder applies them
    (engine.models.fallback). The result's diagnostics say which plan ran ("memory").
    Raises NumericalError instead of returning a non-finite or black crop.
    """
    params = params or EditedIDParams()
    memory = plan or plan_for(model, unet_faces=params.max_batch_faces)
    # 1. Prepare: the inputs checked, the merged step plan (eq. 6), the prompts.
    run = _prepare(model, pairs, params, on_step, cancel, cache, memory)
    with monitoring(StepMonitor(on_step, run.check_cancel)):
        return _restore_stages(run, keep_latents)


def _restore_stages(run: _Run, keep_latents: bool) -> RestoreResult:
    """restore_faces' stages 2-4, under the run's step monitor."""
    # 2. Alignment (sec. 2.2, eq. 1-3) and Disentanglement (sec. 2.3, eq. 4-5), per face:
    #    from the cache, or computed for all missing faces in one batch.
    entries, cached = _align_and_disentangle(run)
    # 3. Entanglement (sec. 2.4, eq. 7-9): the gated three-branch reconstruction, one
    #    batch per overlap setting, and the decoded target branch.
    outputs = _entangle_all(run, entries, keep_latents)
    run.cache.keep_records({run.keys[i]: record for i, record in run.records.items()})
    # 4. What each face got, with what a sidecar records.
    return _result(run, entries, cached, outputs)


@dataclass
class _Run:
    """What every stage of one restore_faces call reads."""

    model: object
    pairs: list[FacePair]
    params: EditedIDParams
    masks: list[tuple[np.ndarray, np.ndarray]]
    plan: StepPlan
    prompts: Prompts
    cache: InversionCache
    on_step: StepCallback | None
    check_cancel: Callable[[], None]
    memory: MemoryPlan
    stats: UNetStats = field(default_factory=UNetStats)
    timings: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys((*STAGES, "decode"), 0.0)
    )
    # what a target-only entanglement reads (None: not replayable), and per face freshly
    # inverted in this call its branch record and its index in it
    record_spec: RecordSpec | None = None
    records: dict[int, tuple[BranchRecord, int]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # each face's cache key
    # what the run chose where the plan leaves it to the free memory, per UNet pass
    chosen: dict[str, list] = field(
        default_factory=lambda: {
            "inversion_faces_per_pass": [],
            "nulltext_faces_per_pass": [],
            "branch_record": [],
            "entanglement_faces_per_pass": [],
        }
    )


@dataclass
class _FaceOutput:
    restored: np.ndarray
    element_attention: np.ndarray | None
    latents: dict[str, torch.Tensor] | None


def _prepare(model, pairs, params, on_step, cancel, cache, memory: MemoryPlan) -> _Run:
    masks = validate_pairs(pairs)
    torch.manual_seed(params.seed)
    prompts = encode_prompts(model, params)
    return _Run(
        model=model,
        pairs=pairs,
        params=params,
        masks=masks,
        plan=make_plan(params.steps, params.effective_dpm_range, model.alphas_cumprod),
        prompts=prompts,
        cache=cache if cache is not None else default_cache(model),
        on_step=on_step,
        check_cancel=cancel_checker(cancel),
        memory=memory,
        record_spec=_record_spec(model, prompts, params, memory),
    )


def _record_spec(
    model, prompts: Prompts, params: EditedIDParams, memory: MemoryPlan | None = None
) -> RecordSpec | None:
    """The branch record this run's entanglement reads; None when the memory plan (by
    default the model's settings) says "off" or the settings cannot be replayed. Masks
    and overlap weights do not change it."""
    if (memory or plan_for(model)).branch_record == "off":
        return None
    # host-side: the spec reads layer names and token columns, never the mask values
    blank = torch.zeros(1, 1, 8, 8, device="cpu")
    return RecordSpec.for_config(model.unet, gate_config(blank, blank, (0.5, 0.5), prompts, params))


def _align_and_disentangle(run: _Run) -> tuple[dict[int, CacheEntry], list[bool]]:
    """Stages 1-2 for the faces the cache does not hold (re-runs with new masks or
    overlap weights skip them); returns every face's entry and whether it was cached."""
    keys = run.keys = [face_cache_key(run.model, p, run.params) for p in run.pairs]
    entries = {i: hit for i, key in enumerate(keys) if (hit := run.cache.get(key)) is not None}
    cached = [i in entries for i in range(len(run.pairs))]
    kept = run.cache.records_for(set(keys), run.record_spec, run.memory.branch_record)
    run.records.update({i: kept[keys[i]] for i in entries if keys[i] in kept})
    missing = [i for i in range(len(run.pairs)) if i not in entries]

    def invert(indices: list[int]) -> None:
        new, record = _invert_faces(
            run.model,
            [run.pairs[i] for i in indices],
            run.prompts,
            run.plan,
            run.params,
            run.stats,
            remap_faces(run.on_step, indices),
            run.check_cancel,
            run.timings,
            run.record_spec,
            run.memory,
            run.chosen,
        )
        for slot, (i, entry) in enumerate(zip(indices, new, strict=True)):
            entries[i] = entry
            run.cache.put(keys[i], entry)
            if record is not None:
                run.records[i] = (record, slot)

    in_chunks(missing, run.memory.unet_faces, invert)
    return entries, cached


def _entangle_all(
    run: _Run, entries: dict[int, CacheEntry], keep_latents: bool
) -> dict[int, _FaceOutput]:
    """Stage 3, one batch per overlap setting (faces with other weights run apart) and
    branch record (faces inverted together replay their record; cached faces run the
    three branches)."""
    groups: dict[tuple, list[int]] = {}
    for i, pair in enumerate(run.pairs):
        record = run.records.get(i)
        key = (tuple(pair.overlap or run.params.overlap), id(record[0]) if record else None)
        groups.setdefault(key, []).append(i)
    outputs: dict[int, _FaceOutput] = {}
    for (overlap, _record), members in groups.items():

        def entangle(indices: list[int], overlap=overlap) -> None:
            outputs.update(_entangle_batch(run, entries, indices, overlap, keep_latents))
            run.chosen["entanglement_faces_per_pass"].append(len(indices))

        in_chunks(members, run.memory.unet_faces, entangle)
    return outputs


def _entangle_batch(run: _Run, entries, indices, overlap, keep_latents) -> dict[int, _FaceOutput]:
    start = _clock(run.model)
    run.stats.stage = "entanglement"
    record = None
    if indices[0] in run.records:  # a batch shares one record (_entangle_all)
        record = (run.records[indices[0]][0], [run.records[i][1] for i in indices])
    maps, latents = _entangle(
        run.model,
        [entries[i] for i in indices],
        [run.masks[i] for i in indices],
        overlap,
        run.prompts,
        run.plan,
        run.params,
        run.stats,
        remap_faces(run.on_step, indices),
        run.check_cancel,
        record,
    )
    middle = _clock(run.model)
    run.timings["entanglement"] += middle - start
    n = len(indices)
    begin_step("entanglement", run.plan.steps, run.plan.steps, n)  # the VAE decodes
    crops = decode_latents(run.model, latents[2 * n :])  # the target branch
    run.timings["decode"] += _clock(run.model) - middle
    out = {}
    for slot, i in enumerate(indices):
        pair = run.pairs[i]
        _check_not_black(crops[slot], pair)
        kept = None
        if keep_latents:
            kept = {
                name: latents[b * n + slot : b * n + slot + 1].cpu()
                for b, name in enumerate(("original", "edited", "target"))
            }
        attention = None
        if maps is not None and maps.shape[1] > 0:
            attention = attention_to_crop(maps[slot], pair.original.shape[:2])
        out[i] = _FaceOutput(crops[slot], attention, kept)
    return out


def _result(run: _Run, entries, cached: list[bool], outputs) -> RestoreResult:
    faces = []
    for i in range(len(run.pairs)):
        entry, output = entries[i], outputs[i]
        faces.append(
            FaceResult(
                restored=output.restored,
                mix_weights=[round(float(w), 6) for w in entry.trajectories.mix_weights[0]],
                nulltext_losses=[float(v) for v in entry.nulltext.losses[0]],
                nulltext_initial_losses=[float(v) for v in entry.nulltext.initial_losses[0]],
                nulltext_iterations=[int(v) for v in entry.nulltext.iterations[0]],
                cached=cached[i],
                element_attention=output.element_attention,
                latents=output.latents,
            )
        )
    describe = run.model.describe() if hasattr(run.model, "describe") else {}
    memory = {**run.memory.describe(), "chosen": run.chosen}
    return RestoreResult(
        faces, run.plan.describe(), run.stats, run.timings, run.params, describe, memory
    )


def _clock(model) -> float:
    """perf_counter after the device has finished its queued work, so stage timings on
    CUDA (asynchronous) measure the stage, not the launch."""
    device = torch.device(model.device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _check_not_black(crop: np.ndarray, pair: FacePair) -> None:
    """A black crop from a crop that is not black is a numerical failure, not a result."""
    if int(crop.max()) <= 2 and int(pair.edited.max()) > 16:
        label = pair.name or "a face"
        raise NumericalError(
            f"The restored crop of {label} came out black, so it was not used. This "
            "happens when half precision overflows: lower the guidance, or run in fp32 "
            "(editedid-cli --dtype fp32)."
        )
