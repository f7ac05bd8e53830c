"""Test helpers: small real face crops from installed packages, simple masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def sample_photo(name: str) -> Path:
    """Path of a public-domain photo shipped inside an installed package."""
    if name == "grace_hopper":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if name == "astronaut":
        import skimage

        return Path(skimage.__file__).parent / "data" / "astronaut.png"
    if name == "t1":
        import insightface

        return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    raise KeyError(name)


def face_crop(name: str, size: int = 64) -> np.ndarray:
    """A small square RGB crop around the face of a sample photo."""
    boxes = {"grace_hopper": (110, 40, 400, 330), "astronaut": (140, 10, 320, 190)}
    image = Image.open(sample_photo(name)).convert("RGB").crop(boxes[name])
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


def ellipse_mask(size: int, center: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    inside = ((xx - center[0]) / radii[0]) ** 2 + ((yy - center[1]) / radii[1]) ** 2 <= 1.0
    return (inside * 255).astype(np.uint8)


def face_and_element_masks(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A face ellipse and a 'glasses' band across the eyes that overlaps it."""
    face = ellipse_mask(size, (size / 2, size / 2), (size * 0.3, size * 0.4))
    element = np.zeros((size, size), np.uint8)
    element[int(size * 0.35) : int(size * 0.5), int(size * 0.15) : int(size * 0.85)] = 255
    return face, element


def face_pair(original: str = "grace_hopper", edited: str = "astronaut", size: int = 32, **kw):
    """A FacePair of two sample face crops with the face / 'glasses' masks (32 px crops ->
    16 px latents with the tiny VAE: fast and still real)."""
    from engine.diffusion.restore import FacePair

    face, element = face_and_element_masks(size)
    return FacePair(face_crop(original, size), face_crop(edited, size), face, element, **kw)
