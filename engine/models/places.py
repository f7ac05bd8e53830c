"""Where models live and which one is the default: names only, no torch.

Kept apart from engine.models.loading (which imports torch, diffusers and transformers,
seconds at start-up) so the app's settings and Model Manager can name the default model
and the models folder before the engine has loaded (the window paints first).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_SD_MODEL = "CompVis/stable-diffusion-v1-4"

# fp32 and fp16 sizes of the weights download_sd_model fetches for SD 1.x
# (UNet 859.5M + VAE 83.7M + text encoder 123.1M parameters).
SD15_DOWNLOAD_SIZE = "about 2.1 GB (fp16) or 4.3 GB (fp32)"


def default_models_dir() -> Path:
    """Per-user folder of downloaded models; EDITEDID_MODELS_DIR overrides it.

    Linux: $XDG_DATA_HOME/EditedID/models (~/.local/share/EditedID/models),
    Windows: %LOCALAPPDATA%\\EditedID\\models,
    macOS: ~/Library/Application Support/EditedID/models.
    """
    env = os.environ.get("EDITEDID_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "EditedID" / "models"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "EditedID" / "models"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "EditedID" / "models"
