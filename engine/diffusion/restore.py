"""EditedID on aligned face crops: Alignment -> Disentanglement -> Entanglement.

`restore_faces(model, pairs, params)` takes aligned 512x512 crops (the original face
warped into the edited face's frame), a face mask and an element mask per face, and
returns restored crops. Faces run together in one UNet batch (split when memory is
short). Inversion and null-text results are cached per face, so a re-run with new masks
or overlap weights only repeats the entanglement stage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
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
from engine.diffusion.inversion import AlignedTrajectories, align_invert
from engine.diffusion.latents import (
    UNetStats,
    decode_latents,
    encode_images,
    encode_text,
    face_previews,
    predict_noise,
    word_columns,
)
from engine.diffusion.nulltext import NullTextResult, optimise_null_text
from engine.diffusion.progress import (
    StepCallback,
    StepInfo,
    StepMonitor,
    begin_step,
    cancel_checker,
    monitoring,
    remap_faces,
    step_info,
)
from engine.diffusion.schedule import Solver, StepPlan, make_plan
from engine.errors import InputError, NumericalError, OutOfMemory
from engine.params import EditedIDParams

CancelToken = Callable[[], bool] | object | None

STAGES = ("inversion", "nulltext", "entanglement")


@dataclass
class FacePair:
    """One aligned face pair in the edited face's crop frame.

    original / edited: HxWx3 uint8 RGB crops of the same size.
    face_mask / element_mask: HxW, uint8 0..255, bool or float 0..1 (soft edges welcome).
    overlap: this face's (lambda_o, lambda_e); None = params.overlap.
    """

    original: np.ndarray
    edited: np.ndarray
    face_mask: np.ndarray
    element_mask: np.ndarray
    overlap: tuple[float, float] | None = None
    name: str = ""
    require_element: bool = True  # False: an empty element mask means "identity only"


@dataclass
class FaceResult:
    restored: np.ndarray
    mix_weights: list[float]
    nulltext_losses: list[float]
    nulltext_initial_losses: list[float]
    nulltext_iterations: list[int]
    cached: bool
    element_attention: np.ndarray | None = None  # HxW in [0, 1], edited branch, T_e tokens
    # Final latents of the three branches ("original", "edited", "target"), (1, 4, h, w)
    # on the CPU; only with restore_faces(..., keep_latents=True) (tests, diagnostics).
    latents: dict[str, torch.Tensor] | None = None


@dataclass
class RestoreResult:
    faces: list[FaceResult]
    plan: list[dict]
    stats: UNetStats
    timings: dict[str, float]
    params: EditedIDParams
    model: dict = field(default_factory=dict)

    def diagnostics(self) -> dict:
        """Everything a sidecar or a report needs, JSON-serialisable."""
        return {
            "params": self.params.to_dict(),
            "model": self.model,
            "plan": self.plan,
            "unet": self.stats.as_dict(),
            "timings_s": self.timings,
            "faces": [
                {
                    "mix_weights": f.mix_weights,
                    "nulltext_losses": f.nulltext_losses,
                    "nulltext_initial_losses": f.nulltext_initial_losses,
                    "nulltext_iterations": f.nulltext_iterations,
                    "cached_inversion": f.cached,
                }
                for f in self.faces
            ],
        }


# --- cache ------------------------------------------------------------------------
@dataclass
class _CacheEntry:
    trajectories: AlignedTrajectories
    nulltext: NullTextResult


class InversionCache:
    """LRU cache of per-face inversion + null-text results, kept on the CPU; and the
    branch records of the last restore call's faces (where they were recorded: GPU or
    host memory), so a re-run of those faces with new masks or overlap weights - the
    app's loop - replays them instead of running three branches. A call for other faces,
    or with settings the records do not fit, drops them first (their memory freed)."""

    def __init__(self, max_faces: int = 32) -> None:
        self.max_faces = max_faces
        self._items: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._records: dict[str, tuple[BranchRecord, int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> _CacheEntry | None:
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: _CacheEntry) -> None:
        self._items[key] = entry
        self._items.move_to_end(key)
        while len(self._items) > self.max_faces:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
        self._records.clear()

    def records_for(
        self, keys: set[str], spec: RecordSpec | None, place: str
    ) -> dict[str, tuple[BranchRecord, int]]:
        """The kept records of faces `keys` that fit `spec` and the placement setting
        (LowMemory.branch_record: "host" takes only host-memory records); every other
        record is dropped."""
        self._records = {
            key: (record, slot)
            for key, (record, slot) in self._records.items()
            if key in keys
            and spec is not None
            and record.spec == spec
            and record.valid
            and (place != "host" or record.home.type == "cpu")
        }
        return dict(self._records)

    def keep_records(self, records: dict[str, tuple[BranchRecord, int]]) -> None:
        """Keep these faces' records (face key -> record, slot) until the next call."""
        self._records = dict(records)


def default_cache(model) -> InversionCache:
    cache = getattr(model, "_editedid_cache", None)
    if cache is None:
        cache = InversionCache()
        model._editedid_cache = cache
    return cache


def face_cache_key(model, pair: FacePair, params: EditedIDParams) -> str:
    digest = hashlib.sha256()
    for image in (pair.original, pair.edited):
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    digest.update(str(getattr(model, "fingerprint", id(model))).encode())
    digest.update(str(model.dtype).encode())
    digest.update(json.dumps(params.inversion_key(), sort_keys=True).encode())
    return digest.hexdigest()


# --- input checks -------------------------------------------------------------------
def _mask_to_float(mask: np.ndarray, what: str, shape: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"The {what} must be a single-channel image, got shape {mask.shape}.")
    if mask.shape != shape:
        raise InputError(
            f"The {what} is {mask.shape[1]}x{mask.shape[0]} but the face crop is "
            f"{shape[1]}x{shape[0]}: masks must match the crop size."
        )
    if mask.dtype == np.bool_:
        out = mask.astype(np.float32)
    elif np.issubdtype(mask.dtype, np.integer):
        out = mask.astype(np.float32) / 255.0
    else:
        out = mask.astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def validate_pairs(pairs: list[FacePair]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check crops and masks; return float masks (face, element) per pair."""
    if not pairs:
        raise InputError("No faces to restore: select at least one face.")
    masks = []
    first_shape = None
    for index, pair in enumerate(pairs):
        label = pair.name or f"face {index + 1}"
        for what, image in (("original crop", pair.original), ("edited crop", pair.edited)):
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise InputError(
                    f"{label}: the {what} must be an RGB uint8 image, got shape "
                    f"{image.shape} and type {image.dtype}."
                )
        if pair.original.shape != pair.edited.shape:
            raise InputError(
                f"{label}: the original crop is {pair.original.shape[1]}x{pair.original.shape[0]} "
                f"but the edited crop is {pair.edited.shape[1]}x{pair.edited.shape[0]}; align the "
                "original face into the edited face's crop frame first (same size)."
            )
        h, w = pair.original.shape[:2]
        if h % 8 or w % 8:
            raise InputError(
                f"{label}: crop size {w}x{h} must be a multiple of 8 (512x512 is best)."
            )
        if first_shape is None:
            first_shape = pair.original.shape
        elif pair.original.shape != first_shape:
            raise InputError(
                f"{label}: crop size {w}x{h} differs from the first face's "
                f"{first_shape[1]}x{first_shape[0]}; all faces of one run share one crop size."
            )
        face = _mask_to_float(pair.face_mask, f"face mask of {label}", (h, w))
        element = _mask_to_float(pair.element_mask, f"element mask of {label}", (h, w))
        for what, mask in (("face mask", face), ("element mask", element)):
            if what == "element mask" and not pair.require_element and mask.max() < 0.5:
                continue
            if mask.max() < 0.5:
                raise InputError(
                    f"{label}: the {what} is empty. Paint the region with the brush or reset "
                    "it to the automatic mask."
                )
            if mask.min() > 0.5:
                raise InputError(
                    f"{label}: the {what} covers the whole crop, so nothing would be taken from "
                    "the other photo. Erase the parts that do not belong to it."
                )
        if pair.overlap is not None and (
            len(pair.overlap) != 2 or any(not 0.0 <= v <= 1.0 for v in pair.overlap)
        ):
            raise InputError(f"{label}: overlap weights must be two numbers in [0, 1].")
        masks.append((face, element))
    return masks


# --- the three stages -------------------------------------------------------------
@dataclass
class _Prompts:
    cond_original: torch.Tensor  # (1, 77, D)
    cond_edited: torch.Tensor
    uncond: torch.Tensor
    original_columns: list[tuple[int, int]]
    edited_columns: list[tuple[int, int]]
    capture: list[int]


def _prompts(model, params: EditedIDParams) -> _Prompts:
    tok = model.tokenizer
    p_o, p_e = params.original_prompt, params.edited_prompt
    face_in_o = word_columns(tok, p_o, params.face_words)
    face_in_t = word_columns(tok, p_e, params.face_words)
    words = tuple(w for w in params.element_words if w.strip())
    element_cols = word_columns(tok, p_e, words) if words else []
    cond_o, cond_e, uncond = _encoded(model, (p_o, p_e, "")).split(1)
    return _Prompts(
        cond_o,
        cond_e,
        uncond,
        list(zip(face_in_t, face_in_o, strict=True)),
        [(c, c) for c in element_cols],  # P_t = P_e: same columns
        element_cols,
    )


# Prompt embeddings kept per model (the pre-pass and the restore of one photo ask for the
# same three prompts); a few entries, keyed by the texts and the model's device and dtype.
_TEXT_CACHE_SIZE = 8


def _encoded(model, texts: tuple[str, ...]) -> torch.Tensor:
    cache = getattr(model, "_editedid_text_cache", None)
    if cache is None:
        cache = OrderedDict()
        model._editedid_text_cache = cache
    key = (texts, str(model.device), str(model.dtype), str(getattr(model, "fingerprint", "")))
    if key not in cache:
        cache[key] = encode_text(model, list(texts))
        while len(cache) > _TEXT_CACHE_SIZE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


def _invert_faces(
    model,
    pairs,
    prompts: _Prompts,
    plan,
    params,
    stats,
    on_step,
    check_cancel,
    timings,
    spec: RecordSpec | None = None,
) -> tuple[list[_CacheEntry], BranchRecord | None]:
    """Alignment and null-text for `pairs` in one batch; also the original and edited
    branches' attention for a target-only entanglement when `spec` is given and the
    memory plan keeps a record (None otherwise, or when it came out incomplete)."""
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
        home = branch_record_home(model, need, latent_hw)
        if home is not None:
            record = BranchRecord(spec, faces, home)
            reserved = need if home == torch.device(model.device) else 0.0
    null = optimise_null_text(
        model, traj, cond_o, cond_e, prompts.uncond, plan, params, stats, on_step, check_cancel,
        batch_faces=nulltext_faces_per_pass(model, faces, latent_hw, reserved_gib=reserved),
        recorder=None if record is None else BranchRecorder(model.unet, record),
    )  # fmt: skip
    timings["nulltext"] += _clock(model) - middle
    entries = [
        _CacheEntry(_to_cpu_traj(traj.face(f)), _to_cpu_null(null.face(f))) for f in range(faces)
    ]
    return entries, record if record is not None and record.complete(plan.steps) else None


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
    entries: list[_CacheEntry],
    masks: list[tuple[np.ndarray, np.ndarray]],
    overlap: tuple[float, float],
    prompts: _Prompts,
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


def gate_config(face_mask, element_mask, overlap, prompts: _Prompts, params) -> GateConfig:
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
    Raises NumericalError instead of returning a non-finite or black crop.
    """
    # 1. Prepare: the inputs checked, the merged step plan (eq. 6), the prompts.
    run = _prepare(model, pairs, params or EditedIDParams(), on_step, cancel, cache)
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
    prompts: _Prompts
    cache: InversionCache
    on_step: StepCallback | None
    check_cancel: Callable[[], None]
    stats: UNetStats = field(default_factory=UNetStats)
    timings: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys((*STAGES, "decode"), 0.0)
    )
    # what a target-only entanglement reads (None: not replayable), and per face freshly
    # inverted in this call its branch record and its index in it
    record_spec: RecordSpec | None = None
    records: dict[int, tuple[BranchRecord, int]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # each face's cache key


@dataclass
class _FaceOutput:
    restored: np.ndarray
    element_attention: np.ndarray | None
    latents: dict[str, torch.Tensor] | None


def _prepare(model, pairs, params, on_step, cancel, cache) -> _Run:
    masks = validate_pairs(pairs)
    torch.manual_seed(params.seed)
    prompts = _prompts(model, params)
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
        record_spec=_record_spec(model, prompts, params),
    )


def _record_spec(model, prompts: _Prompts, params: EditedIDParams) -> RecordSpec | None:
    """The branch record this run's entanglement reads; None when LowMemory says "off"
    or the settings cannot be replayed. Masks and overlap weights do not change it."""
    if getattr(getattr(model, "low_memory", None), "branch_record", "auto") == "off":
        return None
    # host-side: the spec reads layer names and token columns, never the mask values
    blank = torch.zeros(1, 1, 8, 8, device="cpu")
    return RecordSpec.for_config(model.unet, gate_config(blank, blank, (0.5, 0.5), prompts, params))


def _align_and_disentangle(run: _Run) -> tuple[dict[int, _CacheEntry], list[bool]]:
    """Stages 1-2 for the faces the cache does not hold (re-runs with new masks or
    overlap weights skip them); returns every face's entry and whether it was cached."""
    keys = run.keys = [face_cache_key(run.model, p, run.params) for p in run.pairs]
    entries = {i: hit for i, key in enumerate(keys) if (hit := run.cache.get(key)) is not None}
    cached = [i in entries for i in range(len(run.pairs))]
    place = getattr(getattr(run.model, "low_memory", None), "branch_record", "auto")
    kept = run.cache.records_for(set(keys), run.record_spec, place)
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
        )
        for slot, (i, entry) in enumerate(zip(indices, new, strict=True)):
            entries[i] = entry
            run.cache.put(keys[i], entry)
            if record is not None:
                run.records[i] = (record, slot)

    _in_chunks(missing, run.params.max_batch_faces, invert)
    return entries, cached


def _entangle_all(
    run: _Run, entries: dict[int, _CacheEntry], keep_latents: bool
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

        _in_chunks(members, run.params.max_batch_faces, entangle)
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
            attention = _attention_to_crop(maps[slot], pair.original.shape[:2])
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
    return RestoreResult(faces, run.plan.describe(), run.stats, run.timings, run.params, describe)


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


def _attention_to_crop(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    merged = maps.float().amax(0, keepdim=True)[None]
    up = F.interpolate(merged, size=size, mode="bilinear", align_corners=False)[0, 0]
    up = up / up.max().clamp_min(1e-8)
    return up.clamp(0, 1).cpu().numpy()


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _in_chunks(indices: list[int], max_batch: int | None, fn: Callable[[list[int]], None]) -> None:
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
            if not _is_oom(error):
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


ELEMENT_MASKS_STAGE = "element masks"


@torch.no_grad()
def element_attention_maps(
    model,
    edited_crops: list[np.ndarray],
    params: EditedIDParams | None = None,
    *,
    timestep: int = 500,
    on_step: StepCallback | None = None,
    cancel: CancelToken = None,
    stats: UNetStats | None = None,
) -> list[np.ndarray] | None:
    """Cross-attention of the element words on each edited crop, before any restore.

    Prompt-to-prompt style mask extraction, one UNet call per face: the edited latent,
    noised deterministically to `timestep`, with the edited prompt; the maps of the
    element tokens are read from the edited branch. Reports itself as the
    ELEMENT_MASKS_STAGE stage (`on_step(stage, face, faces, StepInfo())` before the first
    face and after each, a unit report before each face's VAE encode and UNet call) and
    checks `cancel` before each call and its blocks, so a cancel ends within one call. Returns
    crop-sized float maps in [0, 1], or None when there are no element words. `stats`
    counts the UNet work (stage ELEMENT_MASKS_STAGE).
    """
    params = params or EditedIDParams()
    words = tuple(w for w in params.element_words if w.strip())
    if not words or not edited_crops:
        return None
    check_cancel = cancel_checker(cancel)
    stats = stats if stats is not None else UNetStats()
    stats.stage = ELEMENT_MASKS_STAGE
    faces = len(edited_crops)
    if on_step is not None:
        on_step(ELEMENT_MASKS_STAGE, 0, faces, StepInfo())
    check_cancel()
    prompts = _prompts(model, params)
    generator = torch.Generator().manual_seed(params.seed)
    a = float(model.alphas_cumprod[timestep])
    result: list[np.ndarray] = []
    with monitoring(StepMonitor(on_step, check_cancel)):
        for f in range(faces):
            begin_step(ELEMENT_MASKS_STAGE, f, faces, 2)  # its VAE encode and UNet call
            latent = encode_images(model, [edited_crops[f]]).float()
            # CPU generator on purpose: the same noise on every device, then moved over
            noise = torch.randn(latent.shape, generator=generator, device="cpu").to(latent)
            noisy = (a**0.5) * latent + ((1 - a) ** 0.5) * noise
            maps = prepass_maps(model, noisy, timestep, prompts, params, stats)
            if maps is None:
                return None
            result.append(_attention_to_crop(maps[0], edited_crops[f].shape[:2]))
            if on_step is not None:
                on_step(ELEMENT_MASKS_STAGE, f + 1, faces, StepInfo())
    return result


def prepass_maps(
    model, noisy, timestep: int, prompts: _Prompts, params, stats
) -> torch.Tensor | None:
    """One face's pre-pass UNet call: (1, n, h, w) maps of the element tokens at the
    latent resolution, from the edited branch's conditional half (None: nothing captured)."""
    size = tuple(noisy.shape[-2:])
    empty = torch.zeros(noisy.shape[0], 1, *size, device=noisy.device)
    config = GateConfig(
        faces=noisy.shape[0],
        face_mask=empty,
        element_mask=empty,
        self_attention=False,
        cross_attention=False,
        capture_tokens=prompts.capture,
        capture_only=True,
    )
    cond = prompts.cond_edited[:1].expand(noisy.shape[0], -1, -1)
    gate = EntanglementAttention(model.unet, config)
    with gate:
        predict_noise(model, noisy, timestep, cond, None, 1.0, stats)
    return gate.captured_maps()
