"""Shared pieces of the desktop tests: a photo pair with one face, fast restore params."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.models.spec import ModelSpec
from engine.params import EditedIDParams
from tests.helpers import sample_photo

# Small and quick on the tiny model: 64 px crops, 3 steps, one null-text iteration.
FAST_PARAMS = EditedIDParams(
    steps=3, dpm_range=(2, 3), final_align_steps=1, nulltext_iters=1, resolution=64
)


def write_photo_pair(folder: Path) -> tuple[Path, Path]:
    """grace_hopper as the original; the edit has the astronaut's face pasted in (so the
    identity changed and the face is restored by default, issue 12 D2) and a dark
    'glasses' band."""
    from tests.fixtures.faces import photo as fixture_photo
    from tests.fixtures.faces import sample_face, swap_face

    image = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original = folder / "hopper-original.png"
    edited = folder / "hopper-edited.png"
    image.save(original)
    array = swap_face(
        np.asarray(image).copy(),
        sample_face("grace_hopper"),
        fixture_photo("astronaut"),
        sample_face("astronaut"),
    )
    array[180:205, 160:360] = (25, 25, 30)
    Image.fromarray(array).save(edited)
    return original, edited


def tiny_model_spec(model_dir: Path, models_dir: Path) -> ModelSpec:
    return ModelSpec(source=str(model_dir), device="cpu", dtype="fp32", models_dir=str(models_dir))
