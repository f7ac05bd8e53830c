"""Find, check, download and load Stable Diffusion 1.x models.

Three sources, one result (`SDModel`):
- a local diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/);
- a hub id such as "CompVis/stable-diffusion-v1-4", looked up in the models folder
  (`default_models_dir()/<org>--<name>`) and downloaded only when the caller allows it;
- a single original-format `.safetensors` checkpoint, configured from the SD 1.x configs
  shipped in resources/ so no hub call is needed.

Weights are read as safetensors only; pickle files (.bin, .ckpt, .pt, .pth) can run code
when loaded and are refused unless the caller passes allow_pickle=True.

Nothing here touches the network at import time; diffusers, transformers and
huggingface_hub are imported inside the functions that need them.

The jobs live in sibling modules, imported back here so callers keep using this one:
engine.models.sources (what a source names, where a hub id's copy lives),
engine.models.checks (a model's JSON files, weight formats and single-file layout,
checked before loading), engine.models.downloads (download_sd_model) and
engine.models.devices (choose_device, choose_dtype, tune_for_device). This module builds
the model (load_sd_model -> SDModel) and holds its memory savers (LowMemory).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import (
    Cancelled,
    ModelError,
    ModelNotFoundError,
    UnsafeCheckpointError,
)
from engine.models.checks import (  # noqa: F401 - re-exported
    COMPONENTS,
    MAX_TRAIN_TIMESTEPS,
    PICKLE_SUFFIXES,
    SAFE_SUFFIXES,
    WEIGHT_COMPONENTS,
    check_scheduler_config,
    check_sd1_folder,
    check_sd1_folder_configs_only,
    check_sd1_single_file,
    pickle_shards,
    read_json,
    single_file_keys,
    weight_format,
)
from engine.models.devices import choose_device, choose_dtype, tune_for_device
from engine.models.downloads import CancelFn, ProgressFn, download_sd_model
from engine.models.places import (  # noqa: F401 - re-exported
    DEFAULT_SD_MODEL,
    SD15_DOWNLOAD_SIZE,
    default_models_dir,
)
from engine.models.safety import MIB, check_component_weights
from engine.models.sources import (  # noqa: F401 - re-exported
    hub_folder_name,
    looks_like_hub_id,
    resolve_source,
)
from engine.resources import sd15_config_dir

if TYPE_CHECKING:  # pragma: no cover
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

__all__ = [
    "BRANCH_RECORD_PLACES",
    "COMPONENTS",
    "DEFAULT_SD_MODEL",
    "MAX_TRAIN_TIMESTEPS",
    "PICKLE_SUFFIXES",
    "SAFE_SUFFIXES",
    "SD15_DOWNLOAD_SIZE",
    "WEIGHT_COMPONENTS",
    "CancelFn",
    "LowMemory",
    "ProgressFn",
    "SDModel",
    "alphas_cumprod_from_config",
    "check_sd1_folder",
    "check_sd1_folder_configs_only",
    "choose_device",
    "choose_dtype",
    "default_models_dir",
    "download_sd_model",
    "fingerprint_folder",
    "hub_folder_name",
    "load_sd_model",
    "looks_like_hub_id",
    "resolve_source",
    "tune_for_device",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------------------
# LowMemory.branch_record's values (engine.models.memory_plan.MemoryPlan.record_home)
BRANCH_RECORD_PLACES = ("auto", "device", "host", "off")


@dataclass
class LowMemory:
    """Memory savers; each costs some speed.

    attention_slicing: compute attention in slices (unet.set_attention_slice("auto")).
        It installs diffusers' sliced processors for inversion and null-text; the
        entanglement stage installs its own processors for its duration and puts these
        back afterwards. Switching slicing off installs SDPA (AttnProcessor2_0) again.
    vae_tiling: encode/decode large images tile by tile (vae.enable_tiling()).
    cpu_offload: keep the components on the CPU and move each to the device only while
        it is used (`with model.use("unet"): ...`). What it saves: the VAE and the text
        encoder (~0.4 GB in fp16) are off the GPU while the UNet works. What it cannot
        save: the UNet (1.7 GB in fp16) must stay on the GPU through null-text's forward
        AND backward passes, because autograd keeps its weights for the backward.
    offload_encoders: keep only the VAE and the text encoder on the CPU, each moved to
        the device while it runs; the UNet stays. Saves their ~0.4 GB (fp16) during all
        UNet work at the cost of two small transfers per VAE / text call (the first rung
        of the out-of-memory ladder, engine.models.fallback).

    attention_slicing raises null-text memory (the sliced processor keeps its maps for
    the backward pass, where SDPA keeps none), so the out-of-memory ladder never uses it;
    it stays a user setting for old GPUs whose SDPA falls back to materialised maps.
    """

    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False
    offload_encoders: bool = False
    # Faces per null-text forward + backward pass; None = automatic: on CUDA as many as
    # the free memory holds (engine.models.memory_plan's MemoryPlan.nulltext_faces_per_pass:
    # the backward keeps ~0.9 GiB of activations per sample at 512 px in fp16, so 4 faces
    # need ~7 GiB over the weights and an 8 GB card takes 2 per pass), elsewhere all at
    # once. Results do not depend on it (faces are independent). The ladder's rung 1 sets 1.
    nulltext_batch_faces: int | None = None
    # Where the original and edited branches' attention, recorded during null-text for a
    # target-only entanglement (engine.diffusion.branch_attention: 36 -> 12 UNet samples
    # per face; 0.42 GiB per face at 512 px in fp16), lives: "auto" (on the GPU when it
    # fits beside null-text's passes, else in host memory), "device", "host" (copied
    # back step by step: less GPU memory, a transfer per step), "off" (the three-branch
    # entanglement recomputes them). Results agree within rounding either way.
    branch_record: str = "auto"

    def __post_init__(self) -> None:
        if self.branch_record not in BRANCH_RECORD_PLACES:
            raise ValueError(
                f"branch_record must be one of {BRANCH_RECORD_PLACES}, got {self.branch_record!r}."
            )

    @classmethod
    def low_vram(cls, on: bool, *, cpu_offload: bool = False) -> LowMemory:
        """What "low-VRAM mode" means (the CLI's --low-vram, the app's setting): the
        savers that lower null-text's peak, the first rung of the out-of-memory ladder;
        never attention slicing (see above)."""
        return cls(
            vae_tiling=on,
            cpu_offload=cpu_offload,
            offload_encoders=on,
            nulltext_batch_faces=1 if on else None,
            branch_record="host" if on else "auto",
        )

    def offloads(self, name: str) -> bool:
        """Whether component `name` waits on the CPU between its uses."""
        return self.cpu_offload or (self.offload_encoders and name != "unet")


@dataclass
class SDModel:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    alphas_cumprod: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    model_id: str
    fingerprint: str
    source_kind: str
    vae_scaling_factor: float
    low_memory: LowMemory = field(default_factory=LowMemory)
    local_path: Path | None = None
    _in_use: dict[str, int] = field(default_factory=dict, repr=False)
    _slicing_applied: bool = field(default=False, repr=False)
    # engine.models.compiled.CompiledUNet once compile_unet() was asked for, else None
    compiled_unet: Any = field(default=None, repr=False, compare=False)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def _module(self, name: str) -> torch.nn.Module:
        if name not in WEIGHT_COMPONENTS:
            raise ValueError(f"Unknown component {name!r}: use one of {WEIGHT_COMPONENTS}.")
        return getattr(self, name)

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[torch.nn.Module]:
        """Context in which component `name` ("unet", "vae", "text_encoder") is on the device.

        With cpu_offload it is moved to the device on entry and back to the CPU on exit
        (nested uses of the same component move it once); otherwise nothing moves.
        Yields the module.
        """
        module = self._module(name)
        offload = self.low_memory.offloads(name) and self.device.type != "cpu"
        depth = self._in_use.get(name, 0)
        if offload and depth == 0:
            module.to(self.device)
        self._in_use[name] = depth + 1
        try:
            yield module
        finally:
            self._in_use[name] -= 1
            if offload and self._in_use[name] == 0 and self.low_memory.offloads(name):
                module.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def set_low_memory(self, low: LowMemory) -> None:
        """Apply memory savers now (also used by the out-of-memory retry)."""
        if low.attention_slicing != self._slicing_applied:
            if low.attention_slicing:
                self.unet.set_attention_slice("auto")
            else:
                # Not set_default_attn_processor(): that installs the classic processor,
                # which materialises full attention maps and keeps them for null-text's
                # backward pass. SDPA is what a freshly loaded UNet runs.
                from diffusers.models.attention_processor import AttnProcessor2_0

                self.unet.set_attn_processor(AttnProcessor2_0())
            self._slicing_applied = low.attention_slicing
        if low.vae_tiling:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        for name in WEIGHT_COMPONENTS:
            if self._in_use.get(name, 0) == 0:
                self._module(name).to(torch.device("cpu") if low.offloads(name) else self.device)
        self.low_memory = LowMemory(**vars(low))

    def describe(self) -> dict[str, Any]:
        """What a sidecar records to say which model made a result."""
        return {
            "model_id": self.model_id,
            "fingerprint": self.fingerprint,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "source_kind": self.source_kind,
        }


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------
def load_sd_model(
    source: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    allow_pickle: bool = False,
    allow_download: bool = False,
    models_dir: str | Path | None = None,
    low_memory: LowMemory | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    single_file_config: str | Path | None = None,
    allow_cpu_half: bool = False,
) -> SDModel:
    """Load an SD 1.x model from a folder, a hub id or a single .safetensors file.

    allow_pickle: accept .bin/.ckpt weights (they can run code when loaded).
    allow_download: fetch a hub id that is not in models_dir (progress/cancel apply).
    single_file_config: diffusers config folder for a single-file checkpoint
        (default: the SD 1.x configs shipped in resources/sd15).
    allow_cpu_half: accept fp16 / bf16 on the CPU (tests and dry runs; see choose_dtype).
    """
    dev = choose_device(device)
    dt = choose_dtype(dev, dtype, allow_cpu_half=allow_cpu_half)
    low = low_memory or LowMemory()
    kind, path = resolve_source(source, models_dir=models_dir)
    model_id = str(source)

    if kind == "hub":
        if path is None:
            if not allow_download:
                raise ModelNotFoundError(_not_downloaded_message(model_id, models_dir))
            path = download_sd_model(
                model_id, models_dir=models_dir, progress=progress, cancel=cancel
            )
        parts, alphas, fp = _load_folder(path, dt, allow_pickle)
    elif kind == "folder":
        parts, alphas, fp = _load_folder(path, dt, allow_pickle)
    else:
        config = Path(single_file_config) if single_file_config else sd15_config_dir()
        parts, alphas, fp = _load_single_file(path, config, dt, allow_pickle)

    unet, vae, text_encoder, tokenizer = parts
    _check_loaded(unet, text_encoder, model_id)
    for module in (unet, vae, text_encoder):
        module.eval()
        module.requires_grad_(False)
        home = torch.device("cpu") if low.cpu_offload else dev
        if next(module.parameters()).dtype != dt:
            module.to(device=home, dtype=dt)
        else:
            module.to(home)

    model = SDModel(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        alphas_cumprod=alphas,
        device=dev,
        dtype=dt,
        model_id=model_id,
        fingerprint=fp,
        source_kind=kind,
        vae_scaling_factor=float(getattr(vae.config, "scaling_factor", 0.18215)),
        low_memory=LowMemory(),
        local_path=path,
    )
    model.set_low_memory(low)
    tune_for_device(model.unet, dev)
    log.info("Loaded %s (%s) on %s as %s, fingerprint %s", model_id, kind, dev, dt, fp)
    return model


def _not_downloaded_message(hub_id: str, models_dir: str | Path | None) -> str:
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    target = root / hub_folder_name(hub_id)
    return (
        f"Model {hub_id!r} is not on this machine (looked in {target}). "
        f"Downloading it takes {SD15_DOWNLOAD_SIZE} from huggingface.co and happens only "
        "when you ask for it (allow the download, e.g. --allow-download). "
        "Offline: download the diffusers folder on another machine "
        f"(https://huggingface.co/{hub_id}) and copy it to {target}, or give the path of "
        "the folder (or of a single .safetensors checkpoint) instead of the hub id."
    )


# -- folder ------------------------------------------------------------------------------
def _load_folder(
    folder: Path, dtype: torch.dtype, allow_pickle: bool
) -> tuple[tuple[Any, Any, Any, Any], torch.Tensor, str]:
    check_sd1_folder(folder)
    formats = {}
    for comp in WEIGHT_COMPONENTS:
        fmt, variant = weight_format(folder / comp)
        if fmt == "none":
            raise ModelError(
                f"{folder}: {comp}/ has no weights (expected a .safetensors file). "
                "The download or copy may be incomplete."
            )
        formats[comp] = (fmt, variant)
    pickled = [c for c, (fmt, _) in formats.items() if fmt == "pickle"]
    for comp in WEIGHT_COMPONENTS:
        shards = pickle_shards(folder / comp)
        if shards and not allow_pickle:
            index, shard = shards[0]
            raise UnsafeCheckpointError(
                f"{index} maps {comp} weights to {shard}, a pickle file, which can run code "
                "when loaded. Use a safetensors copy of the model, convert it, or allow "
                "pickle files explicitly (--allow-pickle) if you trust its source."
            )
        if shards and comp not in pickled:
            pickled.append(comp)
    if pickled:
        if not allow_pickle:
            raise UnsafeCheckpointError(
                f"{folder}: {', '.join(pickled)} weights are pickle files (.bin), which can "
                "run code when loaded. Use a safetensors copy of the model, convert it, or "
                "allow pickle files explicitly (--allow-pickle) if you trust its source."
            )
        log.warning("Loading pickle weights of %s from %s (allowed by the caller)", pickled, folder)

    for comp, (fmt, variant) in formats.items():
        if fmt == "safetensors":  # before anything is built from the configs
            check_component_weights(folder, comp, variant)

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    def kwargs(comp: str) -> dict[str, Any]:
        fmt, variant = formats[comp]
        out: dict[str, Any] = {
            "subfolder": comp,
            "local_files_only": True,
            "use_safetensors": fmt == "safetensors",
        }
        if variant:
            out["variant"] = variant
        return out

    try:
        unet = UNet2DConditionModel.from_pretrained(
            str(folder), torch_dtype=dtype, **kwargs("unet")
        )
        vae = AutoencoderKL.from_pretrained(str(folder), torch_dtype=dtype, **kwargs("vae"))
        # No dtype argument: transformers renamed torch_dtype to dtype in 4.56 and each
        # name raises TypeError on some allowed version; load_sd_model casts afterwards.
        text_encoder = CLIPTextModel.from_pretrained(str(folder), **kwargs("text_encoder"))
        tokenizer = CLIPTokenizer.from_pretrained(
            str(folder), subfolder="tokenizer", local_files_only=True
        )
    except (ModelError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - library errors become one clear message
        raise ModelError(f"Cannot load the model in {folder}: {exc}") from exc
    alphas = alphas_cumprod_from_config(folder / "scheduler" / "scheduler_config.json")
    return (unet, vae, text_encoder, tokenizer), alphas, fingerprint_folder(folder)


def alphas_cumprod_from_config(path: Path) -> torch.Tensor:
    """alpha-bar_t, float64 on the CPU, from a scheduler config (DDIM's definition)."""
    from diffusers import DDIMScheduler

    cfg = read_json(path) if path.is_file() else {}
    if cfg:
        check_scheduler_config(cfg, str(path))
    try:
        sched = (
            DDIMScheduler.from_config(cfg)
            if cfg
            else DDIMScheduler.from_pretrained(str(sd15_config_dir()), subfolder="scheduler")
        )
        c = sched.config
        n = int(c.num_train_timesteps)
        # Same formulas as DDIMScheduler, in float64 (diffusers computes them in float32).
        if c.trained_betas is not None:
            betas = torch.tensor(c.trained_betas, dtype=torch.float64, device="cpu")
        elif c.beta_schedule == "linear":
            betas = torch.linspace(c.beta_start, c.beta_end, n, dtype=torch.float64, device="cpu")
        elif c.beta_schedule == "scaled_linear":
            low, high = c.beta_start**0.5, c.beta_end**0.5
            betas = torch.linspace(low, high, n, dtype=torch.float64, device="cpu") ** 2
        else:
            betas = sched.betas.to(torch.float64)
        alphas = torch.cumprod(1.0 - betas, dim=0)
    except (ModelError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001 - odd values: one clear message naming the file
        raise ModelError(f"{path}: not a usable scheduler configuration ({exc}).") from exc
    if (
        alphas.ndim != 1
        or alphas.numel() == 0
        or not bool(torch.isfinite(alphas).all())
        or bool((alphas <= 0).any())
        or bool((alphas > 1).any())
    ):
        raise ModelError(
            f"{path}: the noise schedule it describes is not usable (alpha-bar must lie in "
            "(0, 1] at every step). The model folder looks damaged."
        )
    return alphas


# -- single file -------------------------------------------------------------------------
def _load_single_file(
    path: Path, config: Path, dtype: torch.dtype, allow_pickle: bool
) -> tuple[tuple[Any, Any, Any, Any], torch.Tensor, str]:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UnsafeCheckpointError(
                f"{path} is a pickle checkpoint ({suffix}), which can run code when loaded. "
                "Use a .safetensors version of the model, or allow pickle files explicitly "
                "(--allow-pickle) if you trust its source."
            )
        log.warning("Loading pickle checkpoint %s (allowed by the caller)", path)
    elif suffix not in SAFE_SUFFIXES:
        raise ModelError(
            f"{path} is not a model checkpoint this app reads: expected a .safetensors file "
            "(or a diffusers folder, or a hub id)."
        )
    if not (config / "model_index.json").is_file():
        raise ModelError(f"Single-file config folder {config} has no model_index.json.")
    check_sd1_folder_configs_only(config)
    if suffix in SAFE_SUFFIXES:
        check_sd1_single_file(path, single_file_keys(path))

    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path),
            config=str(config),
            local_files_only=True,
            torch_dtype=dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (ModelError, Cancelled):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"Cannot load {path} as a Stable Diffusion 1.x checkpoint: {exc}") from exc
    alphas = alphas_cumprod_from_config(config / "scheduler" / "scheduler_config.json")
    fp = _fingerprint([(path.name, path)], config_dir=config)
    return (pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer), alphas, fp


def _check_loaded(unet: Any, text_encoder: Any, model_id: str) -> None:
    cross = unet.config.cross_attention_dim
    hidden = text_encoder.config.hidden_size
    if cross != hidden:
        raise ModelError(
            f"{model_id}: the UNet's cross_attention_dim ({cross}) does not match the text "
            f"encoder's hidden_size ({hidden}); the components come from different models."
        )


# -- fingerprint -------------------------------------------------------------------------
def _hash_file_cheap(h: Any, path: Path) -> None:
    size = path.stat().st_size
    h.update(f"{size}\0".encode())
    with path.open("rb") as f:
        if size <= 2 * MIB:
            h.update(f.read())
        else:
            h.update(f.read(MIB))
            f.seek(size - MIB)
            h.update(f.read(MIB))


def _fingerprint(weights: list[tuple[str, Path]], *, config_dir: Path | None) -> str:
    h = hashlib.sha256()
    if config_dir is not None:
        for p in sorted(config_dir.rglob("*.json")):
            if any(part.startswith(".") for part in p.relative_to(config_dir).parts):
                continue
            h.update(str(p.relative_to(config_dir).as_posix()).encode() + b"\0")
            h.update(p.read_bytes())
    for name, path in sorted(weights):
        h.update(name.encode() + b"\0")
        _hash_file_cheap(h, path)
    return h.hexdigest()[:16]


def fingerprint_folder(folder: Path) -> str:
    """Short sha256 over configs, weight file sizes and their first/last MiB."""
    weights = []
    for comp in WEIGHT_COMPONENTS:
        for p in sorted((folder / comp).iterdir()):
            if p.is_file() and (p.suffix in SAFE_SUFFIXES or p.suffix in PICKLE_SUFFIXES):
                weights.append((f"{comp}/{p.name}", p))
    return _fingerprint(weights, config_dir=folder)
