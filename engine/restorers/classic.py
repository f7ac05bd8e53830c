"""Classic mode: identity restore without a diffusion model (instant, CPU only).

`ClassicRestorer` is the plugin (engine.restorers.base); `classic_restore_crop` the blend.

The original face, already aligned into the edited face's crop frame, is colour-matched
to the edited crop and blended into it over the face mask MINUS the element mask, so the
element's pixels (glasses frames, jewellery, ...) stay exactly the edited crop's. It is
the preview before a diffusion run, the fallback where no SD model is installed, and a
baseline in evaluations.

Blending: a Laplacian-pyramid blend (Burt & Adelson) of the colour-matched original and
the edited crop, by default. It was chosen over Poisson cloning (`cv2.seamlessClone`,
available as method="poisson") because the blend region's boundary runs along the
element: Poisson cloning takes the boundary's colours from the edited crop, so dark
glasses frames, hair or a hat brim bleed a dark haze into the cheeks and forehead, and it
also drags the whole face's tone towards whatever crosses the boundary. The pyramid
blend mixes low frequencies over a wide band and fine detail over a narrow one, so the
seam disappears without that bleeding, and the Lab mean/std transfer handles the overall
tone. method="alpha" is a plain feathered alpha blend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.types import FaceCrop
from engine.params import EditedIDParams
from engine.photo.contract import CropJob, RestoredCrops
from engine.photo.masks import as_mask_u8, dilate, erode
from engine.photo.pasteback import color_transfer
from engine.restorers.base import Restorer, register

CLASSIC_FEATHER_PX = 6.0  # px at 512: Gaussian sigma of the blend weight's edge
CLASSIC_ERODE_PX = 4.0  # px at 512: face region shrinks this much before feathering
PYRAMID_LEVELS = 5


def _px(value: float, size: int) -> float:
    return value * size / 512.0


def _image(crop: FaceCrop | np.ndarray, what: str) -> np.ndarray:
    image = crop.image if isinstance(crop, FaceCrop) else np.asarray(crop)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"The {what} must be an HxWx3 uint8 RGB image, got {image.shape}.")
    return image


def _gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [image]
    for _ in range(levels - 1):
        pyr.append(cv2.pyrDown(pyr[-1]))
    return pyr


def _laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    gauss = _gaussian_pyramid(image, levels)
    lap = []
    for i in range(levels - 1):
        h, w = gauss[i].shape[:2]
        lap.append(gauss[i] - cv2.pyrUp(gauss[i + 1], dstsize=(w, h)))
    lap.append(gauss[-1])
    return lap


def laplacian_blend(
    foreground: np.ndarray, background: np.ndarray, weight: np.ndarray, levels: int
) -> np.ndarray:
    """Multi-band blend of two float32 HxWx3 images with a float32 HxW weight (1 = fg)."""
    levels = max(1, min(levels, int(np.log2(min(weight.shape))) - 2))
    lf = _laplacian_pyramid(foreground, levels)
    lb = _laplacian_pyramid(background, levels)
    gw = _gaussian_pyramid(weight, levels)
    bands = [
        f * w[..., None] + b * (1.0 - w[..., None]) for f, b, w in zip(lf, lb, gw, strict=True)
    ]
    out = bands[-1]
    for band in reversed(bands[:-1]):
        h, w = band.shape[:2]
        out = cv2.pyrUp(out, dstsize=(w, h)) + band
    return out


def classic_restore_crop(
    original_crop: FaceCrop | np.ndarray,
    edited_crop: FaceCrop | np.ndarray,
    face_mask: np.ndarray,
    element_mask: np.ndarray | None,
    *,
    color_match: bool = True,
    method: str = "laplacian",
    feather: float = CLASSIC_FEATHER_PX,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """The edited crop with the aligned original face blended in (uint8 crop).

    The face comes from `original_crop` inside face_mask minus element_mask, with
    feathered edges (`feather`, px of a 512 crop); element pixels are copied from
    `edited_crop` exactly, as is everything outside the blend's reach. Where the original
    crop was padding (`valid` is 0; by default the FaceCrop's own `valid` mask) the
    edited crop is kept. color_match: Lab mean/std transfer of the original face towards
    the edited face over the blend region.
    """
    if method not in METHODS:
        raise InputError(f"Unknown classic blend method {method!r}; use one of {METHODS}.")
    orig = _image(original_crop, "original crop")
    edit = _image(edited_crop, "edited crop")
    if orig.shape != edit.shape:
        raise InputError(
            f"The original crop {orig.shape[:2]} and edited crop {edit.shape[:2]} differ in "
            "size; align the original into the edited crop first."
        )
    if valid is None and isinstance(original_crop, FaceCrop):
        valid = original_crop.valid
    region, element = _blend_region(edit.shape[:2], face_mask, element_mask, valid)
    if region.sum() < 16:
        return edit.copy()
    if color_match:
        orig = color_transfer(orig, edit, region)
    sigma = _px(feather, edit.shape[0])
    weight = _blend_weight(region, element, sigma)
    out = _COMPOSITES[method](orig, edit, region, element, weight, sigma)
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    result[element] = edit[element]
    return result


def _blend_region(
    shape: tuple[int, int],
    face_mask: np.ndarray,
    element_mask: np.ndarray | None,
    valid: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(region, element) as HxW bool: face minus element, where the original has pixels."""
    face = as_mask_u8(face_mask, "face mask")
    element = (
        np.zeros_like(face) if element_mask is None else as_mask_u8(element_mask, "element mask")
    )
    if face.shape != shape or element.shape != shape:
        raise InputError("The face and element masks must have the crop's size.")
    elem = element > 0
    region = (face > 127) & ~elem
    if valid is not None:
        region &= valid > 127
    return region, elem


def _blend_weight(region: np.ndarray, element: np.ndarray, sigma: float) -> np.ndarray:
    """float32 HxW: the region shrunk, then feathered by `sigma`; 0 on the element."""
    region_u8 = region.astype(np.uint8) * 255
    size = region.shape[0]
    weight = erode(region_u8, _px(CLASSIC_ERODE_PX, size)).astype(np.float32) / 255.0
    if sigma > 0:
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    weight[element] = 0.0
    return weight


def _laplacian_composite(orig, edit, region, element, weight, sigma) -> np.ndarray:
    blended = laplacian_blend(
        orig.astype(np.float32), edit.astype(np.float32), weight, PYRAMID_LEVELS
    )
    # the coarse bands spread a little beyond the weight: confine them to a
    # feathered neighbourhood of the region so the far crop stays the edited one
    reach = dilate(region.astype(np.uint8) * 255, 3.0 * sigma).astype(np.float32) / 255.0
    reach = cv2.GaussianBlur(reach, (0, 0), max(sigma, 1.0))
    reach[element] = 0.0
    reach = np.maximum(reach, weight)[..., None]
    return edit.astype(np.float32) * (1.0 - reach) + blended * reach


def _poisson_composite(orig, edit, region, element, weight, sigma) -> np.ndarray:
    size = edit.shape[0]
    mask = (weight > 0.5).astype(np.uint8) * 255
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or x == 0 or y == 0 or x + w >= size or y + h >= size:
        mask[[0, -1], :] = 0
        mask[:, [0, -1]] = 0
        x, y, w, h = cv2.boundingRect(mask)
    cloned = cv2.seamlessClone(orig, edit, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    a = weight[..., None]
    return edit.astype(np.float32) * (1.0 - a) + cloned.astype(np.float32) * a


def _alpha_composite(orig, edit, region, element, weight, sigma) -> np.ndarray:
    a = weight[..., None]
    return edit.astype(np.float32) * (1.0 - a) + orig.astype(np.float32) * a


# method -> composite(orig, edit, region, element, weight, sigma) -> float32 HxWx3
_COMPOSITES = {
    "laplacian": _laplacian_composite,
    "poisson": _poisson_composite,
    "alpha": _alpha_composite,
}
METHODS = tuple(_COMPOSITES)


@register
class ClassicRestorer(Restorer):
    """The classic blend as a restorer plugin: no model, any crop size."""

    name = "classic"
    summary = "instant blend of the aligned original face, no SD model"

    def __init__(self, *, method: str = "laplacian", color_match: bool = True) -> None:
        self.method = method
        self.color_match = color_match

    def check(self) -> None:
        """Nothing to check: classic mode needs no model."""

    def crop_size(self, params: EditedIDParams) -> int | None:
        return None

    def element_maps(self, edited_crops, params: EditedIDParams, **_progress) -> None:
        return None

    def restore(
        self,
        jobs: Sequence[CropJob],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
        on_message: Callable[[str], None] | None = None,
    ) -> RestoredCrops:
        """The face blended in over face minus element; the element's pixels stay the
        edited crop's (kept at paste-back too). Instant: on_step and cancel go unused."""
        crops = [
            classic_restore_crop(
                job.original,
                job.edited,
                job.face_mask,
                job.element_mask,
                color_match=self.color_match,
                method=self.method,
                valid=job.original_valid,
            )
            for job in jobs
        ]
        return RestoredCrops(
            crops=crops,
            regions=[job.face_mask for job in jobs],
            keeps=[job.element_mask for job in jobs],
        )
