"""The layered photo canvas (see `layered.LayeredCanvas`)."""

from .layered import (
    COMPARE_MODES,
    IMAGE_LAYERS,
    IMAGE_SUFFIXES,
    LAYERS,
    TOOLS,
    LayeredCanvas,
)

__all__ = ["COMPARE_MODES", "IMAGE_LAYERS", "IMAGE_SUFFIXES", "LAYERS", "TOOLS", "LayeredCanvas"]
