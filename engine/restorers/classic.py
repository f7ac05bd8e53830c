"""Classic mode: identity restore without a diffusion model (instant, CPU only).

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

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.types import FaceCrop
from engine.photo.masks import as_mask_u8, dilate, erode
from engine.photo.pasteback import color_transfer

CLASSIC_FEATHER_PX = 6.0  # px at 512: Gaussian sigma of the blend weight's edge
CLASSIC_ERODE_PX = 4.0  # px at 512: face region shrinks this much before feathering
PYRAMID_LEVELS = 5
METHODS = ("laplacian", "poisson", "alpha")


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
) -> np.ndarray:
    """The edited crop with the aligned original face blended in (uint8 crop).

    The face comes from `original_crop` inside face_mask minus element_mask, with
    feathered edges (`feather`, px of a 512 crop); element pixels are copied from
    `edited_crop` exactly, as is everything outside the blend's reach. Where the original
    crop was padding (its `valid` mask is 0) the edited crop is kept. color_match: Lab
    mean/std transfer of the original face towards the edited face over the blend region.
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
    size = edit.shape[0]
    face = as_mask_u8(face_mask, "face mask")
    element = (
        np.zeros_like(face) if element_mask is None else as_mask_u8(element_mask, "element mask")
    )
    if face.shape != edit.shape[:2] or element.shape != edit.shape[:2]:
        raise InputError("The face and element masks must have the crop's size.")
    elem = element > 0
    region = (face > 127) & ~elem
    if isinstance(original_crop, FaceCrop) and original_crop.valid is not None:
        region &= original_crop.valid > 127
    if region.sum() < 16:
        return edit.copy()
    if color_match:
        orig = color_transfer(orig, edit, region)

    sigma = _px(feather, size)
    region_u8 = region.astype(np.uint8) * 255
    weight = erode(region_u8, _px(CLASSIC_ERODE_PX, size)).astype(np.float32) / 255.0
    if sigma > 0:
        weight = cv2.GaussianBlur(weight, (0, 0), sigma)
    weight[elem] = 0.0

    if method == "laplacian":
        blended = laplacian_blend(
            orig.astype(np.float32), edit.astype(np.float32), weight, PYRAMID_LEVELS
        )
        # the coarse bands spread a little beyond the weight: confine them to a
        # feathered neighbourhood of the region so the far crop stays the edited one
        reach = dilate(region_u8, 3.0 * sigma).astype(np.float32) / 255.0
        reach = cv2.GaussianBlur(reach, (0, 0), max(sigma, 1.0))
        reach[elem] = 0.0
        reach = np.maximum(reach, weight)[..., None]
        out = edit.astype(np.float32) * (1.0 - reach) + blended * reach
    elif method == "poisson":
        mask = (weight > 0.5).astype(np.uint8) * 255
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or x == 0 or y == 0 or x + w >= size or y + h >= size:
            mask[[0, -1], :] = 0
            mask[:, [0, -1]] = 0
            x, y, w, h = cv2.boundingRect(mask)
        cloned = cv2.seamlessClone(orig, edit, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
        a = weight[..., None]
        out = edit.astype(np.float32) * (1.0 - a) + cloned.astype(np.float32) * a
    else:
        a = weight[..., None]
        out = edit.astype(np.float32) * (1.0 - a) + orig.astype(np.float32) * a
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    result[elem] = edit[elem]
    return result
