"""Where and in what precision a model runs: `choose_device` (CUDA when available, else
the CPU; a clear ModelError for a CUDA device this machine lacks), `choose_dtype` (fp16
on CUDA, fp32 on the CPU) and `tune_for_device` (channels_last and cudnn.benchmark for a
UNet on CUDA). engine.models.loading imports them back for its callers.
"""

from __future__ import annotations

import torch

from engine.errors import ModelError


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
