"""Finding a model: what a source names (`resolve_source`: a diffusers folder, a single
checkpoint file, or a hub id such as "CompVis/stable-diffusion-v1-4"), where a hub id's
copy lives in the models folder (`hub_folder_name`: `<org>--<name>`) or in the Hugging
Face cache (looked up locally only, never over the network), and which files of a hub
repository make an SD 1.x model (`allow_patterns`, safetensors only).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from engine.errors import ModelError, ModelNotFoundError
from engine.models.checks import COMPONENTS
from engine.models.places import DEFAULT_SD_MODEL, default_models_dir

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
            snapshot_download(hub_id, local_files_only=True, allow_patterns=allow_patterns(None))
        )
        if (cached / "model_index.json").is_file() and all(
            (cached / c).is_dir() for c in COMPONENTS
        ):
            return cached
    except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub: simply absent
        pass
    return None


def allow_patterns(variant: str | None) -> list[str]:
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
