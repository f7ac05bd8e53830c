"""Where the files in resources/ live: beside the source tree or inside a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def sd15_config_dir() -> Path:
    """Diffusers config folder of SD 1.x (configs and tokenizer, no weights)."""
    return resources_dir() / "sd15"
