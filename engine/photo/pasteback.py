"""Paste restored face crops back into the edited photo.

Each restored crop is warped back with the inverse of its crop's similarity and blended
with an alpha made from its region mask (face and element, slightly dilated), feathered
with a Gaussian, multiplied by the crop's `valid` mask and tapered to 0 at the crop's
edges. Optional colour matching (Lab mean/std transfer towards the edited crop inside a
ring around the region's boundary) hides tone differences, and optional Poisson cloning
(`cv2.seamlessClone`) hides the rest.

HARD RULE: every photo pixel where the alpha is 0 stays bit-identical to the edited
photo. Only the bounding box of each face's alpha is read, warped and written, so big
photos cost what their faces cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.types import FaceCrop
from engine.photo.align import IMAGE_INTERPOLATION
from engine.photo.masks import as_mask_u8, dilate, erode, footprint

FEATHER_SIGMA_PX = 6.0  # px at 512: Gaussian sigma of the alpha's edge
REGION_DILATE_PX = 6.0  # px at 512: region grows this much before feathering
COLOR_RING_PX = 16.0  # px at 512: half width of the colour-matching ring
STD_RATIO_LIMITS = (0.5, 2.0)  # colour transfer never scales contrast beyond this


def _px(value: float, size: int) -> float:
    return value * size / 512.0


@dataclass
class PasteItem:
    """One face to paste: a restored crop, its crop frame, the region to paste (crop
    frame) and optionally a keep mask (crop frame) of pixels that must stay exactly as in
    the edited photo (alpha forced to 0 there, after feathering)."""

    restored_crop: np.ndarray
    crop: FaceCrop
    region_mask: np.ndarray
    keep_mask: np.ndarray | None = None


def _rgb_to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def color_transfer(
    source: np.ndarray, reference: np.ndarray, source_region: np.ndarray, ref_region=None
) -> np.ndarray:
    """`source` (RGB uint8) with its Lab mean and std inside `source_region` moved to
    those of `reference` inside `ref_region` (default: the same region); the whole image
    is transformed. Regions are boolean HxW. The std ratio is clipped to
    STD_RATIO_LIMITS so a near-flat region cannot blow up the contrast."""
    ref_region = source_region if ref_region is None else ref_region
    if source_region.sum() < 16 or ref_region.sum() < 16:
        return source.copy()
    src_lab, ref_lab = _rgb_to_lab(source), _rgb_to_lab(reference)
    s_vals, r_vals = src_lab[source_region], ref_lab[ref_region]
    s_mu, s_sd = s_vals.mean(0), s_vals.std(0)
    r_mu, r_sd = r_vals.mean(0), r_vals.std(0)
    ratio = np.clip(r_sd / np.maximum(s_sd, 1e-3), *STD_RATIO_LIMITS)
    return _lab_to_rgb((src_lab - s_mu) * ratio + r_mu)


def color_match_ring(
    restored: np.ndarray, edited: np.ndarray, region: np.ndarray, valid: np.ndarray | None
) -> np.ndarray:
    """Colour-match the restored crop to the edited crop inside a ring around the
    region's boundary (where the two must meet without a seam)."""
    size = restored.shape[0]
    r = _px(COLOR_RING_PX, size)
    binary = (region > 127).astype(np.uint8) * 255
    ring = (dilate(binary, r) > 0) & ~(erode(binary, r) > 0)
    if valid is not None:
        ring &= valid > 127
    if np.array_equal(restored[ring], edited[ring]):
        return restored.copy()
    return color_transfer(restored, edited, ring)


def _edge_taper(size: int, width: float) -> np.ndarray:
    """1 inside the crop, falling linearly to 0 at its edges over `width` px."""
    idx = np.arange(size, dtype=np.float32)
    d = np.minimum(idx, size - 1 - idx)
    ramp = np.clip(d / max(width, 1.0), 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


def crop_alpha(
    region_mask: np.ndarray,
    crop: FaceCrop,
    *,
    feather: float = FEATHER_SIGMA_PX,
    dilate_px: float = REGION_DILATE_PX,
) -> np.ndarray:
    """Blending alpha (float32 0..1) in the crop frame: region dilated by `dilate_px`,
    Gaussian-feathered with sigma `feather` (both in px of a 512 crop), times the crop's
    valid mask, tapered to 0 at the crop's edges."""
    size = crop.size
    region = as_mask_u8(region_mask, "region mask")
    if region.shape != (size, size):
        raise InputError(
            f"The region mask is {region.shape[1]}x{region.shape[0]} but the crop is {size}x{size}."
        )
    alpha = dilate(region, _px(dilate_px, size)).astype(np.float32) / 255.0
    sigma = _px(feather, size)
    if sigma > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
    if crop.valid is not None:
        alpha *= crop.valid.astype(np.float32) / 255.0
    alpha *= _edge_taper(size, 2.0 * sigma)
    alpha[alpha < 1.0 / 512.0] = 0.0  # no invisible far tails: keeps the touched area small
    return alpha


def _seamless(src: np.ndarray, dst: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Poisson-clone src into dst over alpha > 0 (same-size ROIs); src where it fails."""
    pad = 4
    mask = (alpha > 0.0).astype(np.uint8) * 255
    if not mask.any():
        return src
    srcp = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dstp = cv2.copyMakeBorder(dst, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    maskp = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(maskp)
    center = (x + w // 2, y + h // 2)
    try:
        out = cv2.seamlessClone(srcp, dstp, maskp, center, cv2.NORMAL_CLONE)
    except cv2.error:
        return src
    return out[pad:-pad, pad:-pad]


def _prepare(
    photo: np.ndarray,
    item: PasteItem,
    feather: float,
    dilate_px: float,
    color_match: bool,
    seamless: bool,
):
    """(roi, alpha float32, restored float32 RGB) of one item in photo coordinates."""
    crop = item.crop
    restored = np.asarray(item.restored_crop)
    if restored.shape != (crop.size, crop.size, 3) or restored.dtype != np.uint8:
        raise InputError(
            f"The restored crop must be {crop.size}x{crop.size}x3 uint8, got "
            f"{restored.shape} {restored.dtype}."
        )
    region = as_mask_u8(item.region_mask, "region mask")
    alpha_c = crop_alpha(region, crop, feather=feather, dilate_px=dilate_px)
    if color_match:
        restored = color_match_ring(restored, crop.image, region, crop.valid)
    roi = footprint(crop, photo.shape, alpha_c > 0)
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    m = np.asarray(crop.matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    dsize = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    alpha = cv2.warpAffine(alpha_c, m, dsize, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    alpha = np.clip(alpha, 0.0, 1.0)
    if item.keep_mask is not None:
        keep_c = as_mask_u8(item.keep_mask, "keep mask")
        if keep_c.shape != (crop.size, crop.size):
            raise InputError("The keep mask must have the crop's size.")
        keep = cv2.warpAffine(keep_c, m, dsize, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        alpha[keep > 0] = 0.0
    if not (alpha > 0).any():
        return None
    src = cv2.warpAffine(
        restored,
        m,
        dsize,
        flags=IMAGE_INTERPOLATION | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if seamless:
        src = _seamless(src, photo[y0:y1, x0:x1], alpha)
    return roi, alpha, src.astype(np.float32)


def _items(items: Iterable) -> list[PasteItem]:
    out = []
    for i, item in enumerate(items):
        if isinstance(item, PasteItem):
            out.append(item)
        elif (
            isinstance(item, Sequence)
            and not isinstance(item, str)
            and len(item) in (3, 4)
            and isinstance(item[1], FaceCrop)
        ):
            out.append(PasteItem(*item))
        else:
            raise InputError(
                f"Paste item {i} must be a PasteItem or (restored_crop, crop, region_mask"
                "[, keep_mask])."
            )
    return out


@dataclass(frozen=True)
class Composition:
    """One paste-back composition: the photo, the blend that made it, and the restoration
    it blended in at full strength (what a layered file needs to redo the blend).

    image = edited * (1 - alpha) + restored * alpha, rounded to 8 bit, pixel by pixel.
    restored: RGB uint8 of `box` (x0, y0, x1, y1; end exclusive), the union of the faces'
    footprints; None when no face touched the photo."""

    image: np.ndarray
    alpha: np.ndarray  # HxW float32: the covered fraction A, 0 exactly where untouched
    restored: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None


def compose(
    edited_photo: np.ndarray,
    items: Iterable,
    *,
    feather: float = FEATHER_SIGMA_PX,
    dilate_px: float = REGION_DILATE_PX,
    color_match: bool = True,
    seamless: bool = False,
) -> Composition:
    """Paste several restored faces into (a copy of) the edited photo, in one composition.

    Faces are composed together, not one over the other: where alphas a_i overlap, the
    covered fraction is A = 1 - prod(1 - a_i) and each face gets a_i / sum(a) of it, so
    no face re-blends another's pasted pixels (and the result does not depend on the
    order). Pixels no face touches are bit-identical to the edited photo."""
    photo = np.asarray(edited_photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise InputError(
            f"The edited photo must be HxWx3 uint8 RGB, got {photo.shape} {photo.dtype}."
        )
    prepared = []
    for item in _items(items):
        p = _prepare(photo, item, feather, dilate_px, color_match, seamless)
        if p is not None:
            prepared.append(p)
    result = photo.copy()
    alpha_photo = np.zeros(photo.shape[:2], np.float32)
    if not prepared:
        return Composition(result, alpha_photo)
    ux0 = min(p[0][0] for p in prepared)
    uy0 = min(p[0][1] for p in prepared)
    ux1 = max(p[0][2] for p in prepared)
    uy1 = max(p[0][3] for p in prepared)
    shape = (uy1 - uy0, ux1 - ux0)
    sum_a = np.zeros(shape, np.float32)
    keep_all = np.ones(shape, np.float32)  # prod(1 - a_i)
    sum_ar = np.zeros((*shape, 3), np.float32)
    for (x0, y0, x1, y1), alpha, src in prepared:
        sl = (slice(y0 - uy0, y1 - uy0), slice(x0 - ux0, x1 - ux0))
        sum_a[sl] += alpha
        keep_all[sl] *= 1.0 - alpha
        sum_ar[sl] += alpha[..., None] * src
    touched = sum_a > 0
    base = photo[uy0:uy1, ux0:ux1].astype(np.float32)
    cover = (1.0 - keep_all)[touched][:, None]
    mixed = sum_ar[touched] / sum_a[touched][:, None]
    blended = base[touched] * (1.0 - cover) + mixed * cover
    out_roi = result[uy0:uy1, ux0:ux1]
    out_roi[touched] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    alpha_photo[uy0:uy1, ux0:ux1] = np.where(touched, 1.0 - keep_all, 0.0)
    restored = photo[uy0:uy1, ux0:ux1].copy()
    restored[touched] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return Composition(result, alpha_photo, restored, (ux0, uy0, ux1, uy1))


def paste_many(
    edited_photo: np.ndarray,
    items: Iterable,
    *,
    feather: float = FEATHER_SIGMA_PX,
    dilate_px: float = REGION_DILATE_PX,
    color_match: bool = True,
    seamless: bool = False,
    return_alpha: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """`compose`'s photo (and, with return_alpha, its covered fraction A: HxW float32,
    photo coordinates, 0 exactly where the photo is untouched, e.g. to display what
    changed)."""
    done = compose(
        edited_photo,
        items,
        feather=feather,
        dilate_px=dilate_px,
        color_match=color_match,
        seamless=seamless,
    )
    return (done.image, done.alpha) if return_alpha else done.image


def paste_back(
    edited_photo: np.ndarray,
    restored_crop: np.ndarray,
    crop: FaceCrop,
    region_mask_crop: np.ndarray,
    *,
    feather: float = FEATHER_SIGMA_PX,
    dilate_px: float = REGION_DILATE_PX,
    color_match: bool = True,
    seamless: bool = False,
    keep_mask_crop: np.ndarray | None = None,
    return_alpha: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The edited photo with one restored crop pasted back (a new array).

    region_mask_crop: where the restored crop replaces the edited photo (normally face
    union element), crop frame, uint8/bool/float. feather / dilate_px: alpha edge, px of
    a 512 crop. color_match: Lab mean/std transfer of the restored crop towards the
    edited crop (`crop.image`) in a ring around the region. seamless: Poisson-clone
    (`cv2.seamlessClone`, NORMAL_CLONE) before alpha blending. keep_mask_crop: pixels
    that must stay exactly the edited photo's. Pixels with alpha 0 are untouched.
    return_alpha: also return the alpha in photo coordinates (HxW float32). For several
    faces use `paste_many` (one composition) rather than chained paste_back calls."""
    return paste_many(
        edited_photo,
        [PasteItem(restored_crop, crop, region_mask_crop, keep_mask_crop)],
        feather=feather,
        dilate_px=dilate_px,
        color_match=color_match,
        seamless=seamless,
        return_alpha=return_alpha,
    )
