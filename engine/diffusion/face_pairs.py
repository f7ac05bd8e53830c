"""What a restore takes and gives: FacePair (one aligned face pair and its masks) and
its checks (validate_pairs, with clear messages for crops and masks that cannot work),
FaceResult and RestoreResult (the restored crops and what a sidecar records), and the
CancelToken a run accepts. engine.diffusion.restore re-exports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.diffusion.latents import UNetStats
from engine.errors import InputError
from engine.params import EditedIDParams

CancelToken = Callable[[], bool] | object | None


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
    # the MemoryPlan that ran (engine.models.memory_plan), with what the run chose
    memory: dict = field(default_factory=dict)

    def diagnostics(self) -> dict:
        """Everything a sidecar or a report needs, JSON-serialisable."""
        return {
            "params": self.params.to_dict(),
            "model": self.model,
            "memory": self.memory,
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
