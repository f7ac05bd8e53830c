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
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import (
    Cancelled,
    DownloadError,
    ModelError,
    ModelNotFoundError,
    UnsafeCheckpointError,
)
from engine.models.places import (  # noqa: F401 - re-exported
    DEFAULT_SD_MODEL,
    SD15_DOWNLOAD_SIZE,
    default_models_dir,
)
from engine.resources import sd15_config_dir

if TYPE_CHECKING:  # pragma: no cover
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

log = logging.getLogger(__name__)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
SAFE_SUFFIXES = (".safetensors",)
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MIB = 1 << 20
MAX_CONFIG_BYTES = 64 * _MIB  # a model's JSON files are kilobytes; larger is not one
MAX_TRAIN_TIMESTEPS = 100_000  # SD 1.x uses 1000


# ---------------------------------------------------------------------------------------
# Devices and dtypes
# ---------------------------------------------------------------------------------------
def choose_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to run on: CUDA when available, else CPU.

    preferred: None or "auto" (pick), "cpu", "cuda" or "cuda:N". Asking for CUDA on a
    machine without a usable NVIDIA GPU raises ModelError saying so.
    """
    if isinstance(preferred, torch.device):
        preferred = str(preferred)
    name = (preferred or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "gpu":
        name = "cuda"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (
                f"this PyTorch ({torch.__version__}) is a CPU-only build; reinstall the CUDA "
                "build (packaging/install.sh does it when nvidia-smi works)"
                if built is None
                else "no NVIDIA GPU or driver was found (check that nvidia-smi works)"
            )
            raise ModelError(
                f"Device {preferred!r} was asked for but CUDA is not available: {why}. "
                "Use device 'cpu' (slow) or 'auto'."
            )
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ModelError(f"Unknown device {preferred!r}: {exc}") from exc
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelError(
                f"Device {preferred!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 ...)."
            )
        return device
    raise ModelError(f"Unknown device {preferred!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'.")


_DTYPE_NAMES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
    "full": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def choose_dtype(
    device: torch.device,
    preferred: str | torch.dtype | None = None,
    *,
    allow_cpu_half: bool = False,
) -> torch.dtype:
    """Weights dtype for device: fp16 on CUDA, fp32 on CPU.

    Half precision on the CPU is refused (slow, and pointless for users) unless
    allow_cpu_half: the tests and the GPU bench's dry run use it to run the fp16 / bf16
    code paths on a machine without a GPU.
    """
    device = torch.device(device)
    if preferred is None or (isinstance(preferred, str) and preferred.lower() == "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(preferred, torch.dtype):
        dtype = preferred
    else:
        try:
            dtype = _DTYPE_NAMES[preferred.strip().lower()]
        except KeyError:
            raise ModelError(
                f"Unknown dtype {preferred!r}: use 'fp32', 'fp16' or 'bf16' (or 'auto')."
            ) from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ModelError(f"Unsupported dtype {dtype}: use float32, float16 or bfloat16.")
    if device.type == "cpu" and dtype != torch.float32 and not allow_cpu_half:
        raise ModelError(
            f"{str(dtype).replace('torch.', '')} is not supported on the CPU (PyTorch's CPU "
            "half-precision kernels are missing or very slow): use fp32 on CPU, or run on an "
            "NVIDIA GPU for fp16."
        )
    return dtype


# ---------------------------------------------------------------------------------------
# Where models live
# ---------------------------------------------------------------------------------------
def hub_folder_name(hub_id: str) -> str:
    """ "CompVis/stable-diffusion-v1-4" -> "CompVis--stable-diffusion-v1-4"."""
    return hub_id.strip().replace("/", "--")


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and ".." not in text


def resolve_source(
    source: str | Path, *, models_dir: str | Path | None = None
) -> tuple[str, Path | None]:
    """Say what source is: ("folder", path), ("single_file", path) or ("hub", path or None).

    For a hub id the path is the downloaded copy in the models folder, or None when it
    is not on this machine. A path that does not exist raises ModelNotFoundError.
    """
    if isinstance(source, Path):
        path = source.expanduser()
        text = str(source)
    else:
        text = str(source).strip()
        if not text:
            raise ModelNotFoundError(
                "No model given: name a folder, a .safetensors file or a hub id."
            )
        path = Path(text).expanduser()
    _refuse_symlink_loop(path)
    if path.is_dir():
        return "folder", path.resolve()
    if path.is_file():
        return "single_file", path.resolve()
    if isinstance(source, str) and looks_like_hub_id(text):
        return "hub", _local_hub_copy(text, models_dir)
    raise ModelNotFoundError(
        f"Model not found: {path.absolute()} does not exist. Give an existing diffusers "
        "folder, a .safetensors checkpoint, or a hub id such as "
        f"{DEFAULT_SD_MODEL!r}."
    )


def _refuse_symlink_loop(path: Path) -> None:
    """ModelError for a model path that is (or passes through) a symbolic link loop."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ModelError(
                f"{path}: is a symbolic link loop (a link that points back to itself), not "
                "a model. Give the real folder or .safetensors file."
            ) from None
    except ValueError:  # a NUL byte in the path: not a path of this machine
        raise ModelNotFoundError(f"Model not found: {path!r} is not a valid path.") from None


def _local_hub_copy(hub_id: str, models_dir: str | Path | None) -> Path | None:
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    candidate = root / hub_folder_name(hub_id)
    if (candidate / "model_index.json").is_file():
        return candidate.resolve()
    # A copy that diffusers already put in the Hugging Face cache (no network: local only).
    try:
        from huggingface_hub import snapshot_download

        cached = Path(
            snapshot_download(hub_id, local_files_only=True, allow_patterns=_allow_patterns(None))
        )
        if (cached / "model_index.json").is_file() and all(
            (cached / c).is_dir() for c in COMPONENTS
        ):
            return cached
    except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub: simply absent
        pass
    return None


# ---------------------------------------------------------------------------------------
# The loaded model
# ---------------------------------------------------------------------------------------
# LowMemory.branch_record's values (engine.diffusion.restore.branch_record_home)
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
    # the free memory holds (engine.diffusion.restore.nulltext_faces_per_pass: the backward
    # keeps ~0.9 GiB of activations per sample at 512 px in fp16, so 4 faces need ~7 GiB
    # over the weights and an 8 GB card takes 2 per pass), elsewhere all at once. Results
    # do not depend on it (faces are independent). The ladder's rung 1 sets 1.
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


def tune_for_device(unet: torch.nn.Module, device: torch.device | str) -> bool:
    """CUDA only: UNet weights in channels_last (NHWC; tensor-core convolutions without
    layout transposes) and cudnn.benchmark (the fastest convolution algorithm per shape;
    a restore repeats a handful of shapes hundreds of times). Elsewhere nothing changes
    (on the CPU both are slower or meaningless). Returns whether it tuned."""
    if torch.device(device).type != "cuda":
        return False
    unet.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    return True


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
def _read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON file, which must hold a JSON object; else ModelError naming it."""
    damaged = "The model folder looks damaged"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelError(
                f"Cannot read {path}: {path.stat().st_size / _MIB:.0f} MiB is far too large "
                f"for a model's JSON file. {damaged}."
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise ModelError(f"Cannot read {path}: {why}. {damaged}.") from exc
    if not isinstance(data, dict):
        raise ModelError(
            f"Cannot read {path}: it holds a JSON {type(data).__name__}, not an object "
            f"({{...}}). {damaged}."
        )
    return data


def check_sd1_folder(folder: Path) -> dict[str, Any]:
    """Check from its JSON files that folder holds an SD 1.x diffusers model.

    Returns the unet config. Raises ModelError saying why not.
    """
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        hint = ""
        nested = sorted(p.parent for p in folder.glob("*/model_index.json"))
        if len(nested) == 1:
            hint = f" (one was found in {nested[0]}: point to that folder)"
        raise ModelError(
            f"{folder} is not a diffusers model folder: expected model_index.json in it{hint}. "
            "Point to the folder that contains unet/ vae/ text_encoder/ tokenizer/ and "
            "model_index.json, or give a single .safetensors checkpoint file."
        )
    index = _read_json(index_path)
    class_name = str(index.get("_class_name", ""))
    if "text_encoder_2" in index or "XL" in class_name:
        raise ModelError(
            f"{folder} is a Stable Diffusion XL model ({class_name or 'has text_encoder_2'}); "
            "EditedID needs a Stable Diffusion 1.x model (e.g. CompVis/stable-diffusion-v1-4)."
        )
    missing = [c for c in COMPONENTS if c not in index or not (folder / c).is_dir()]
    if missing:
        raise ModelError(
            f"{folder} is incomplete: missing {', '.join(missing)} "
            "(a Stable Diffusion 1.x folder has unet/ vae/ text_encoder/ tokenizer/ scheduler/)."
        )
    unet_cfg_path = folder / "unet" / "config.json"
    if not unet_cfg_path.is_file():
        raise ModelError(f"{folder} is incomplete: unet/config.json is missing.")
    unet_cfg = _read_json(unet_cfg_path)
    _check_sd1_configs(
        unet_cfg,
        _read_json_opt(folder / "scheduler" / "scheduler_config.json"),
        _read_json_opt(folder / "text_encoder" / "config.json"),
        where=str(folder),
    )
    return unet_cfg


def _read_json_opt(path: Path) -> dict[str, Any] | None:
    return _read_json(path) if path.is_file() else None


def _check_sd1_configs(
    unet_cfg: dict[str, Any],
    sched_cfg: dict[str, Any] | None,
    text_cfg: dict[str, Any] | None,
    *,
    where: str,
) -> None:
    sd1 = "EditedID needs a Stable Diffusion 1.x model (e.g. CompVis/stable-diffusion-v1-4)"
    if unet_cfg.get("addition_embed_type") == "text_time":
        raise ModelError(f"{where} is a Stable Diffusion XL model; {sd1}.")
    cross = unet_cfg.get("cross_attention_dim")
    if cross == 1024:
        raise ModelError(
            f"{where} is a Stable Diffusion 2.x model (cross_attention_dim 1024, OpenCLIP "
            f"text encoder); {sd1}."
        )
    if sched_cfg is not None:
        _check_scheduler_config(sched_cfg, f"{where}/scheduler/scheduler_config.json")
    if sched_cfg and sched_cfg.get("prediction_type") == "v_prediction":
        raise ModelError(
            f"{where} is a v-prediction model (Stable Diffusion 2.x style, prediction_type "
            f"v_prediction); EditedID's inversion assumes epsilon prediction. {sd1}."
        )
    in_ch = unet_cfg.get("in_channels", 4)
    if in_ch != 4:
        kind = {9: "an inpainting model", 8: "an InstructPix2Pix-style model", 5: "a depth model"}
        raise ModelError(
            f"{where} is {kind.get(in_ch, 'not a text-to-image model')} (UNet in_channels "
            f"{in_ch}, expected 4); {sd1} text-to-image checkpoint, not an inpainting one."
        )
    if text_cfg is not None:
        hidden = text_cfg.get("hidden_size")
        if hidden is not None and cross is not None and hidden != cross:
            raise ModelError(
                f"{where}: the UNet's cross_attention_dim ({cross}) does not match the text "
                f"encoder's hidden_size ({hidden}); the components come from different models."
            )


def _check_scheduler_config(cfg: dict[str, Any], where: str) -> None:
    """ModelError unless the numbers alpha-bar is computed from are usable."""
    n = cfg.get("num_train_timesteps", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TRAIN_TIMESTEPS:
        raise ModelError(
            f"{where}: num_train_timesteps must be a whole number from 1 to "
            f"{MAX_TRAIN_TIMESTEPS} (SD 1.x uses 1000), got {n!r}. The model folder looks "
            "damaged."
        )
    for key in ("beta_start", "beta_end"):
        if key not in cfg:
            continue
        value = cfg[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise ModelError(
                f"{where}: {key} must be a number between 0 and 1, got {value!r}. The model "
                "folder looks damaged."
            )


def _weight_format(component_dir: Path) -> tuple[str, str | None]:
    """("safetensors" | "pickle" | "none", variant) of the weights in a component folder.

    variant is None when plain files exist (model.safetensors), else the variant of the
    files found (e.g. "fp16" for diffusion_pytorch_model.fp16.safetensors only).
    """
    stems: dict[str, list[str]] = {"safetensors": [], "pickle": []}
    for p in component_dir.iterdir():
        if not p.is_file():
            continue
        name = p.name.removesuffix(".index.json")
        if name.endswith(".safetensors"):
            stems["safetensors"].append(name.removesuffix(".safetensors"))
        elif name.endswith(PICKLE_SUFFIXES):
            stems["pickle"].append(name.rsplit(".", 1)[0])
    for fmt in ("safetensors", "pickle"):
        found = stems[fmt]
        if not found:
            continue
        if any("." not in s for s in found):
            return fmt, None
        return fmt, sorted(found)[0].rsplit(".", 1)[1]
    return "none", None


def _weight_indexes(component_dir: Path) -> list[Path]:
    """The shard index files of a component folder (`*.index.json`, `*.index.<variant>.json`)."""
    return sorted(
        p
        for p in component_dir.iterdir()
        if p.name.endswith(".json") and ".index." in p.name and not p.is_dir()
    )


def _pickle_shards(component_dir: Path) -> list[tuple[Path, str]]:
    """(index file, shard) for every shard an index names that is not a .safetensors file.

    diffusers and transformers load the shards an index names whatever the index's own
    name says (a `*.safetensors.index.json` may name `.bin` shards), and a `.bin` shard
    is read with pickle. An index that is not a weights index, or names a file outside its
    folder, is refused here (ModelError).
    """
    found = []
    for index in _weight_indexes(component_dir):
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(
                f"Cannot read {index}: it has no weight_map (the shard file of each "
                "weight). The model folder looks damaged."
            )
        for shard in sorted({str(v) for v in weight_map.values()}):
            if not shard or shard in (".", "..") or "/" in shard or "\\" in shard:
                raise ModelError(
                    f"{index} names the shard {shard!r}, which is not a file in "
                    f"{component_dir}. The model folder looks damaged or tampered with."
                )
            if not shard.endswith(SAFE_SUFFIXES):
                found.append((index, shard))
    return found


def _load_folder(
    folder: Path, dtype: torch.dtype, allow_pickle: bool
) -> tuple[tuple[Any, Any, Any, Any], torch.Tensor, str]:
    check_sd1_folder(folder)
    formats = {}
    for comp in WEIGHT_COMPONENTS:
        fmt, variant = _weight_format(folder / comp)
        if fmt == "none":
            raise ModelError(
                f"{folder}: {comp}/ has no weights (expected a .safetensors file). "
                "The download or copy may be incomplete."
            )
        formats[comp] = (fmt, variant)
    pickled = [c for c, (fmt, _) in formats.items() if fmt == "pickle"]
    for comp in WEIGHT_COMPONENTS:
        shards = _pickle_shards(folder / comp)
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

    cfg = _read_json(path) if path.is_file() else {}
    if cfg:
        _check_scheduler_config(cfg, str(path))
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
def _single_file_keys(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path} is not a readable .safetensors file: {exc}") from exc


def _check_sd1_single_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    sd1 = "EditedID needs a Stable Diffusion 1.x checkpoint"
    if any(k.startswith("conditioner.embedders.1.") for k in shapes):
        raise ModelError(f"{path} is a Stable Diffusion XL checkpoint; {sd1}.")
    if any(k.startswith("cond_stage_model.model.") for k in shapes):
        raise ModelError(
            f"{path} is a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder); {sd1}."
        )
    conv_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is None:
        if any(k.startswith(("down_blocks.", "unet.", "lora")) for k in shapes) or any(
            "lora" in k for k in list(shapes)[:50]
        ):
            what = "a diffusers-format or LoRA/partial weights file"
        else:
            what = "not a full Stable Diffusion checkpoint (no UNet weights)"
        raise ModelError(
            f"{path} is {what}; a single-file model must be an original-format SD 1.x "
            "checkpoint with UNet, VAE and text encoder (model.diffusion_model.*, "
            "first_stage_model.*, cond_stage_model.*). For a diffusers folder give the folder."
        )
    if len(conv_in) == 4 and conv_in[1] != 4:
        raise ModelError(
            f"{path} is an inpainting or other non text-to-image checkpoint (UNet takes "
            f"{conv_in[1]} input channels, expected 4); {sd1} text-to-image checkpoint."
        )
    if not any(k.startswith("first_stage_model.") for k in shapes):
        raise ModelError(f"{path} has no VAE weights (first_stage_model.*); {sd1} with its VAE.")
    if "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" not in shapes:
        raise ModelError(
            f"{path} has no CLIP text encoder (cond_stage_model.transformer.*); {sd1} "
            "with its text encoder."
        )


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
        _check_sd1_single_file(path, _single_file_keys(path))

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


def check_sd1_folder_configs_only(config: Path) -> None:
    unet_cfg = _read_json(config / "unet" / "config.json")
    _check_sd1_configs(
        unet_cfg,
        _read_json_opt(config / "scheduler" / "scheduler_config.json"),
        _read_json_opt(config / "text_encoder" / "config.json"),
        where=str(config),
    )


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
        if size <= 2 * _MIB:
            h.update(f.read())
        else:
            h.update(f.read(_MIB))
            f.seek(size - _MIB)
            h.update(f.read(_MIB))


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


# ---------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------
def _allow_patterns(variant: str | None) -> list[str]:
    weight = "*.fp16.safetensors" if variant == "fp16" else None
    unet = f"unet/diffusion_pytorch_model.{'fp16.' if weight else ''}safetensors"
    vae = f"vae/diffusion_pytorch_model.{'fp16.' if weight else ''}safetensors"
    text = f"text_encoder/model.{'fp16.' if weight else ''}safetensors"
    return [
        "model_index.json",
        "scheduler/*.json",
        "tokenizer/*",
        "unet/config.json",
        "vae/config.json",
        "text_encoder/config.json",
        unet,
        vae,
        text,
    ]


def _progress_tqdm(progress: ProgressFn | None, cancel: CancelFn | None, label: str) -> type:
    """A tqdm class for huggingface_hub that forwards byte progress and honours cancel."""
    import io

    from tqdm.auto import tqdm as base

    state = {"files_done": 0, "files_total": 0}

    class _Null(io.StringIO):
        def write(self, s: str) -> int:  # noqa: D401 - swallow the bar's drawing
            return len(s)

    class ProgressTqdm(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = _Null()
            kwargs["disable"] = False
            kwargs["mininterval"] = 0
            super().__init__(*args, **kwargs)
            desc = str(kwargs.get("desc") or "")
            self._role = (
                "files"
                if desc.startswith("Fetching")
                else "transfer"
                if desc.startswith("Downloading bytes")
                else "bytes"
                if kwargs.get("unit") == "B"
                else "other"
            )
            if self._role == "files":
                state["files_total"] = int(self.total or 0)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel():
                raise Cancelled(f"Download of {label} cancelled.")
            out = super().update(n)
            if self._role == "files":
                state["files_done"] = int(self.n)
            if progress is not None and self._role == "bytes":
                name = f"{label} ({state['files_done']}/{state['files_total']} files)"
                progress(int(self.n), int(self.total or 0), name)
            return out

    return ProgressTqdm


def download_sd_model(
    hub_id: str,
    *,
    models_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    variant: str | None = None,
) -> Path:
    """Download hub_id's SD 1.x diffusers weights (safetensors only) into models_dir.

    Target: models_dir/<org>--<name>. Interrupted downloads resume. progress(done_bytes,
    total_bytes, label) is called as bytes arrive; cancel() returning True stops the
    download with Cancelled. variant="fp16" fetches the half-size fp16 weights.
    Network problems raise DownloadError.
    """
    if not looks_like_hub_id(hub_id):
        raise DownloadError(f"{hub_id!r} is not a hub id (expected 'organisation/name').")
    if variant not in (None, "fp16"):
        raise DownloadError(f"Unknown weights variant {variant!r}: use None or 'fp16'.")
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    target = root / hub_folder_name(hub_id)
    if cancel is not None and cancel():
        raise Cancelled(f"Download of {hub_id} cancelled.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the models folder {target}: {exc}") from exc

    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    offline_hint = (
        f"Check the internet connection (huggingface.co must be reachable). Offline: "
        f"download https://huggingface.co/{hub_id} on another machine and copy the folder "
        f"to {target}."
    )
    try:
        huggingface_hub.snapshot_download(
            hub_id,
            local_dir=str(target),
            allow_patterns=_allow_patterns(variant),
            tqdm_class=_progress_tqdm(progress, cancel, hub_id),
        )
    except Cancelled:
        raise
    except hf_errors.GatedRepoError as exc:
        raise DownloadError(
            f"{hub_id} needs you to accept its licence on huggingface.co and log in "
            f"(huggingface-cli login) before downloading: {exc}"
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise DownloadError(f"{hub_id} does not exist on huggingface.co (check the id).") from exc
    except hf_errors.OfflineModeIsEnabled as exc:
        raise DownloadError(
            f"Cannot download {hub_id}: offline mode is on (HF_HUB_OFFLINE). {offline_hint}"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - connection, HTTP, disk errors
        raise DownloadError(f"Download of {hub_id} failed: {exc}. {offline_hint}") from exc

    if not (target / "model_index.json").is_file():
        raise DownloadError(
            f"Download of {hub_id} finished but {target} has no model_index.json: "
            "it is not a diffusers model repository."
        )
    for comp in WEIGHT_COMPONENTS:
        if (target / comp).is_dir() and _weight_format(target / comp)[0] == "safetensors":
            continue
        raise DownloadError(
            f"{hub_id} has no safetensors weights for {comp}"
            f"{' in the fp16 variant' if variant else ''}; this app does not download pickle "
            "weights. Convert the model elsewhere and point to the converted folder."
        )
    return target
