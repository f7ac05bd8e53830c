"""Face and element masks: 8-bit editable images (0 = outside, 255 = inside).

Auto masks are made in the crop frame (`FaceCrop`), moved to photo coordinates with
`to_photo` for display and brush editing, and brought back with `to_crop`. Whatever the
user painted replaces the automatic mask (`resolve_masks`).

Face mask: the convex hull of the dense landmarks (dlib 68 / insightface 106), extended
upwards over the forehead, which dlib's points do not cover (they stop at the eyebrows):
every point below the eye line is mirrored above it and squashed so the chin lands
`FOREHEAD_FRACTION` of the eye-chin distance above the eyes (about the hairline). With
only 5 points, a rotated ellipse sized from the eye distance and eye-mouth distance.

Element mask: from the edited branch's cross-attention maps for the element words
(`element_mask_from_attention`, prompt-to-prompt style local blending) and/or the
difference between the aligned original and edited crops
(`element_mask_from_difference`). The identity change itself also makes differences
inside the face; see that function for how they are kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.types import Face, FaceCrop
from engine.photo.align import invert_matrix, transform_points

FOREHEAD_FRACTION = 0.6  # forehead height above the eyes, as a fraction of eye-chin
ELLIPSE_HALF_WIDTH = 1.05  # 5-point ellipse: half width in eye distances
ELLIPSE_ABOVE_EYES = 0.95  # 5-point ellipse: top above the eyes, in eye-mouth distances
ELLIPSE_BELOW_EYES = 1.6  # 5-point ellipse: chin below the eyes, in eye-mouth distances

DIFF_BLUR_SIGMA = 1.0  # px at 512: Gaussian blur of both crops (noise, JPEG)
DIFF_SHIFT_PX = 3.0  # px at 512: misalignment the difference tolerates
FAR_SHIFT_PX = 8.0  # px at 512: ... farther than FAR_FROM_FACE_PX from the face mask
FAR_FROM_FACE_PX = 16.0  # px at 512
NEAR_FACE_PX = 48.0  # px at 512: element blobs must come this close to the face mask
DIFF_MIN_DELTA_E = 18.0  # difference never counts below this CIE76 delta E
FACE_DIFF_MAD_K = 2.5  # inside the face: threshold >= median + k * MAD of the difference
MIN_BLOB_FRACTION = 0.0005  # blobs under this fraction of the crop area are dropped
ELEMENT_DILATE_PX = 2.0  # px at 512: final dilation of the element mask
# Tightening (issue 12 D12), chosen on tests/test_masks.py's synthetic pair and drawn glasses:
ELEMENT_CORE_FACTOR = 2.0  # a blob is an element only with a core differing this many
#   times the threshold: slight differences (hair rim, neck, an arm) have no such core
RIM_OPEN_FRACTION = 0.03  # of the face diameter: weak (non-core) parts thinner than twice
#   this are misalignment rims and are opened away
ELEMENT_REACH_FRACTION = 0.5  # of the face diameter: the mask ends this far from the face
CROP_FACE_DIAMETER = 0.47  # of the crop: the face's diameter in a canonical crop (no mask)

ATTENTION_THRESHOLD = 0.5
ATTENTION_DILATE_PX = 6.0  # px at 512


def _px(value: float, size: int) -> float:
    """A length given for a 512 crop, scaled to this crop size."""
    return value * size / 512.0


def as_mask_u8(mask: np.ndarray, what: str) -> np.ndarray:
    """bool / float 0..1 / uint8 0..255 (HxW or HxWx1) -> HxW uint8 0..255."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise InputError(f"The {what} must be a single-channel image, got shape {mask.shape}.")
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8) * 255
    if mask.dtype == np.uint8:
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        return (np.clip(mask, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.integer):
        return np.clip(mask, 0, 255).astype(np.uint8)
    raise InputError(f"The {what} has an unsupported dtype {mask.dtype}.")


def _disk(radius: float) -> np.ndarray:
    r = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    if radius <= 0:
        return mask
    return cv2.dilate(mask, _disk(radius))


def erode(mask: np.ndarray, radius: float) -> np.ndarray:
    if radius <= 0:
        return mask
    return cv2.erode(mask, _disk(radius))


# --------------------------------------------------------------------------- face mask


def _forehead_points(points: np.ndarray, eye_l: np.ndarray, eye_r: np.ndarray, up: np.ndarray):
    """Mirror every point below the eye line above it, squashed by FOREHEAD_FRACTION."""
    eye_mid = (eye_l + eye_r) / 2.0
    below = (eye_mid - points) @ up  # distance below the eye line (>0 = below)
    sel = below > 0
    return points[sel] + ((1.0 + FOREHEAD_FRACTION) * below[sel])[:, None] * up


def face_polygon(crop_points5: np.ndarray, crop_dense: np.ndarray | None) -> np.ndarray:
    """Outline (Nx2 float, crop coordinates) of the face region incl. forehead."""
    p5 = np.asarray(crop_points5, np.float64)
    eye_l, eye_r = p5[0], p5[1]
    eye_mid = (eye_l + eye_r) / 2.0
    mouth_mid = (p5[3] + p5[4]) / 2.0
    down = mouth_mid - eye_mid
    em = float(np.linalg.norm(down))
    if em < 1e-6:
        raise InputError("The face landmarks are degenerate (eyes on the mouth).")
    down /= em
    up = -down
    if crop_dense is not None and len(crop_dense) >= 10:
        dense = np.asarray(crop_dense, np.float64)
        pts = np.vstack([dense, p5, _forehead_points(dense, eye_l, eye_r, up)])
        return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    ed = float(np.linalg.norm(eye_r - eye_l))
    half_w = max(ELLIPSE_HALF_WIDTH * ed, 0.75 * em)  # profile faces: eyes nearly coincide
    top, bottom = ELLIPSE_ABOVE_EYES * em, ELLIPSE_BELOW_EYES * em
    centre = eye_mid + down * (bottom - top) / 2.0
    half_h = (bottom + top) / 2.0
    right = np.array([-down[1], down[0]])  # perpendicular to `down`
    theta = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    ellipse = (
        centre + np.cos(theta)[:, None] * half_w * right + np.sin(theta)[:, None] * half_h * down
    )
    pts = np.vstack([ellipse, p5])
    return cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def face_mask_from_landmarks(crop: FaceCrop, face: Face) -> np.ndarray:
    """size x size uint8 face mask in the crop: hull of the dense landmarks + forehead,
    or a 5-point ellipse when the backend gave no dense landmarks. `face` must be the
    face that `crop` was made from (its landmarks are in that photo's coordinates)."""
    p5 = transform_points(crop.matrix, face.landmarks5)
    dense = None if face.landmarks is None else transform_points(crop.matrix, face.landmarks)
    poly = face_polygon(p5, dense)
    mask = np.zeros((crop.size, crop.size), np.uint8)
    shift = 4  # sub-pixel polygon precision
    cv2.fillPoly(mask, [np.round(poly * (1 << shift)).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return mask


# ------------------------------------------------------------------------ element masks


def _crop_image(crop: FaceCrop | np.ndarray, what: str) -> np.ndarray:
    image = crop.image if isinstance(crop, FaceCrop) else np.asarray(crop)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"The {what} must be an HxWx3 uint8 RGB image, got {image.shape}.")
    return image


def _lab(image: np.ndarray, blur_sigma: float = 0.0) -> np.ndarray:
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    if blur_sigma > 0:
        lab = cv2.GaussianBlur(lab, (0, 0), blur_sigma)
    return lab


def new_content_difference(
    original: np.ndarray, edited: np.ndarray, shift_px: float, blur_sigma: float = 0.0
) -> np.ndarray:
    """How far each edited pixel is (Lab delta E) from every colour the original has
    within `shift_px` of it (float32 HxW).

    Per Lab channel the original's local min and max (erosion / dilation) bound what a
    slightly shifted original could show; only the part of the edited value outside that
    range counts. Edges that moved by a few pixels (the alignment is a similarity fitted
    to the faces, so hair, background and features never line up exactly) give ~0,
    while content the original has nowhere nearby - a black frame on skin - counts in
    full. One-sided on purpose: an element the edit ADDED shows; one it removed does not.
    """
    lo_, ed = _lab(original, blur_sigma), _lab(edited, blur_sigma)
    k = _disk(shift_px)
    hi = cv2.dilate(lo_, k)
    lo = cv2.erode(lo_, k)
    out = np.maximum(ed - hi, 0.0) + np.maximum(lo - ed, 0.0)
    return np.sqrt((out**2).sum(axis=2))


def remove_small_blobs(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), 8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return (keep[labels] * 255).astype(np.uint8)


def _otsu(values: np.ndarray) -> float:
    """Otsu threshold of positive float values (0 when there are too few)."""
    if values.size < 16 or float(values.max()) <= 0:
        return 0.0
    hi = float(np.percentile(values, 99.5)) or float(values.max())
    v = np.clip(values / hi * 255.0, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(v, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t) / 255.0 * hi


def _face_diameter(face_mask: np.ndarray) -> float:
    """The diameter of the disk with the face mask's area (pixels)."""
    return 2.0 * float(np.sqrt((face_mask > 127).sum() / np.pi))


def element_mask_from_difference(
    original_crop: FaceCrop | np.ndarray,
    edited_crop: FaceCrop | np.ndarray,
    face_mask: np.ndarray | None = None,
    attention_mask: np.ndarray | None = None,
    *,
    min_delta_e: float = DIFF_MIN_DELTA_E,
) -> np.ndarray:
    """Element mask (uint8) from where the aligned original and edited crops differ.

    1. Shift-tolerant Lab delta E (`new_content_difference`): how far each edited pixel
       lies outside the colours the original shows within DIFF_SHIFT_PX of it, both
       crops lightly blurred (noise, JPEG). Moved edges (the similarity fitted to two
       different faces never lines hair and background up exactly) drop out; farther
       than FAR_FROM_FACE_PX from the face, where that fit drifts more (collar,
       shoulders), edges moved by up to FAR_SHIFT_PX do.
    2. Threshold: the largest of `min_delta_e`, Otsu's threshold over the pixels that
       differ at all, and - inside the face mask - median + FACE_DIFF_MAD_K * MAD of the
       difference over the face.
    3. Tightening, sized to the face (its diameter from the face mask, else
       CROP_FACE_DIAMETER): parts that pass the threshold only weakly are opened with a
       disk of RIM_OPEN_FRACTION of the face (thin rims that misalignment leaves along
       hair, jaw and shoulders go), and a blob is kept only when it has a core differing
       ELEMENT_CORE_FACTOR times the threshold (hysteresis: a neck or a neighbour's arm
       a shade lighter has none; glasses, a hat, a scarf do).
    4. Opening (specks), closing (gaps in thin frames), blobs under MIN_BLOB_FRACTION of
       the crop dropped; with a face mask, only blobs within NEAR_FACE_PX of the face are
       kept (an element belongs to this face) and only their part within
       ELEMENT_REACH_FRACTION of the face's diameter of it; slight dilation.

    Separating the element from the identity change: a new identity changes the whole
    face a little (skin tone, shading, features shifted by a few pixels) - a broad,
    moderate difference that lifts the median inside the face - while an added element
    (glasses, jewellery, a hat brim) is a strong, structured difference over a small part
    of it. The per-face robust threshold keeps the second and drops the first. When an
    attention mask for the element words is given (`element_mask_from_attention`), only
    the difference blobs that touch it are kept, so a changed nose or a new
    beard-shadow does not count as the element; see `combine_element_masks`.
    """
    orig = _crop_image(original_crop, "original crop")
    edit = _crop_image(edited_crop, "edited crop")
    if orig.shape != edit.shape:
        raise InputError(
            f"The original crop {orig.shape[:2]} and the edited crop {edit.shape[:2]} "
            "differ in size; align the original into the edited crop first."
        )
    size = edit.shape[0]
    blur = _px(DIFF_BLUR_SIGMA, size)
    diff = new_content_difference(orig, edit, _px(DIFF_SHIFT_PX, size), blur)
    face = None if face_mask is None else as_mask_u8(face_mask, "face mask")
    if face is not None and (face > 127).any():
        # Away from the face the alignment (fitted to the faces) drifts further: there,
        # content counts as new only beyond FAR_SHIFT_PX (collar and shoulder edges).
        far = dilate(face, _px(FAR_FROM_FACE_PX, size)) <= 127
        diff[far] = new_content_difference(orig, edit, _px(FAR_SHIFT_PX, size), blur)[far]
    thresh = np.full(diff.shape, min_delta_e, np.float32)
    changed = diff[diff > 2.0]
    thresh = np.maximum(thresh, _otsu(changed))
    if face is not None:
        inside = face > 127
        if inside.any():
            values = diff[inside]
            med = float(np.median(values))
            mad = float(np.median(np.abs(values - med))) * 1.4826
            thresh[inside] = np.maximum(thresh[inside], med + FACE_DIFF_MAD_K * mad)
    has_face = face is not None and bool((face > 127).any())
    diameter = _face_diameter(face) if has_face else CROP_FACE_DIAMETER * size
    min_blob = max(4, int(MIN_BLOB_FRACTION * size * size))
    # The core is measured against `min_delta_e`, not the adaptive threshold: when an
    # element dominates the difference, Otsu's split already sits high, and inside a
    # face whose identity changed the robust threshold does; the element is its core.
    core = (diff > np.maximum(thresh, ELEMENT_CORE_FACTOR * min_delta_e)).astype(np.uint8) * 255
    weak = (diff > thresh).astype(np.uint8) * 255
    weak = cv2.morphologyEx(weak, cv2.MORPH_OPEN, _disk(RIM_OPEN_FRACTION * diameter))
    mask = np.maximum(weak, core)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(_px(1.0, size)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(_px(2.0, size)))
    mask = remove_small_blobs(mask, min_blob)
    core = remove_small_blobs(np.minimum(mask, core), max(4, min_blob // 4))
    mask = combine_element_masks(difference=mask, attention=core, fallback=False)
    if has_face:
        near = dilate(face, _px(NEAR_FACE_PX, size))
        mask = combine_element_masks(difference=mask, attention=near, fallback=False)
        mask = np.minimum(mask, dilate(face, ELEMENT_REACH_FRACTION * diameter))
    mask = dilate(mask, _px(ELEMENT_DILATE_PX, size))
    if attention_mask is not None:
        mask = combine_element_masks(difference=mask, attention=attention_mask)
    return mask


def element_mask_from_attention(
    attention_map: np.ndarray,
    threshold: float = ATTENTION_THRESHOLD,
    *,
    size: int | None = None,
    dilate_px: float = ATTENTION_DILATE_PX,
) -> np.ndarray:
    """Element mask from a cross-attention map of the element words (float HxW, any
    resolution, e.g. the edited branch's maps averaged over layers and words).

    As prompt-to-prompt's local blending: resize (bilinear) to the crop size, normalise to
    [0, 1] by min and max, threshold, dilate by `dilate_px` (given for a 512 crop)."""
    amap = np.asarray(attention_map, np.float32)
    if amap.ndim == 3 and amap.shape[2] == 1:
        amap = amap[..., 0]
    if amap.ndim != 2 or amap.size == 0:
        raise InputError(f"The attention map must be a 2-D array, got shape {amap.shape}.")
    if not np.isfinite(amap).all():
        raise InputError("The attention map contains NaN or infinite values.")
    if size is None:
        size = amap.shape[0]
    if amap.shape != (size, size):
        amap = cv2.resize(amap, (size, size), interpolation=cv2.INTER_LINEAR)
    lo, hi = float(amap.min()), float(amap.max())
    if hi - lo < 1e-12:
        return np.zeros((size, size), np.uint8)
    amap = (amap - lo) / (hi - lo)
    mask = (amap >= threshold).astype(np.uint8) * 255
    return dilate(mask, _px(dilate_px, size))


def combine_element_masks(
    difference: np.ndarray | None = None,
    attention: np.ndarray | None = None,
    *,
    fallback: bool = True,
) -> np.ndarray:
    """One element mask from the difference-based and attention-based ones.

    Both: the difference blobs that touch the attention mask (the difference has sharp,
    pixel-accurate edges; attention says which blobs belong to the element words). If no
    difference blob touches it, the attention mask alone (`fallback`, else empty). One:
    that one."""
    if difference is None and attention is None:
        raise InputError("combine_element_masks needs at least one mask.")
    if difference is None:
        return as_mask_u8(attention, "attention mask").copy()
    diff = as_mask_u8(difference, "difference mask")
    if attention is None:
        return diff.copy()
    att = as_mask_u8(attention, "attention mask")
    if att.shape != diff.shape:
        raise InputError(f"Mask sizes differ: {diff.shape} and {att.shape}.")
    n, labels = cv2.connectedComponents((diff > 127).astype(np.uint8), connectivity=8)
    touching = np.unique(labels[(att > 127) & (labels > 0)])
    if touching.size == 0:
        return att.copy() if fallback else np.zeros_like(diff)
    keep = np.zeros(n, bool)
    keep[touching] = True
    return (keep[labels] * 255).astype(np.uint8)


def overlap(face_mask: np.ndarray, element_mask: np.ndarray) -> np.ndarray:
    """Where face and element masks are both set (uint8, soft edges kept: minimum)."""
    face = as_mask_u8(face_mask, "face mask")
    element = as_mask_u8(element_mask, "element mask")
    if face.shape != element.shape:
        raise InputError(f"Mask sizes differ: {face.shape} and {element.shape}.")
    return np.minimum(face, element)


# ----------------------------------------------------------------------- frame changes


def to_photo(mask_crop: np.ndarray, crop: FaceCrop, photo_shape: tuple[int, ...]) -> np.ndarray:
    """A crop mask in photo coordinates (HxW uint8, 0 outside the crop's footprint).

    Only the footprint's bounding box is warped, so big photos stay fast."""
    mask = as_mask_u8(mask_crop, "crop mask")
    if mask.shape != (crop.size, crop.size):
        raise InputError(f"The mask is {mask.shape} but the crop is {crop.size}x{crop.size}.")
    h, w = photo_shape[:2]
    out = np.zeros((h, w), np.uint8)
    roi = footprint(crop, (h, w), mask)
    if roi is None:
        return out
    x0, y0, x1, y1 = roi
    out[y0:y1, x0:x1] = _warp_into(mask, crop, roi)
    return out


def _warp_into(image: np.ndarray, crop: FaceCrop, roi: tuple[int, int, int, int]) -> np.ndarray:
    """A crop-frame image (crop.size square, any channels) warped into the photo box
    `roi` (x0, y0, x1, y1); 0 outside the crop."""
    x0, y0, x1, y1 = roi
    m = np.asarray(crop.matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(
        image,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def crop_patch_to_photo(
    image: np.ndarray, alpha_crop: np.ndarray, crop: FaceCrop, photo_shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """An RGB image of the crop (any size: scaled to the crop first, e.g. a small step
    preview) as an RGBA patch of the photo, its alpha `alpha_crop` (crop-sized mask),
    with the patch's box (x0, y0, x1, y1; end exclusive) - only the box of the mask's
    footprint, never the whole crop. None when the mask is empty or off the photo."""
    alpha = as_mask_u8(alpha_crop, "preview mask")
    roi = footprint(crop, photo_shape, alpha)
    if roi is None:
        return None
    rgb = np.ascontiguousarray(image[..., :3])
    if rgb.shape[:2] != (crop.size, crop.size):
        rgb = cv2.resize(rgb, (crop.size, crop.size), interpolation=cv2.INTER_LINEAR)
    rgba = np.ascontiguousarray(np.dstack([rgb, alpha]))
    return _warp_into(rgba, crop, roi), roi


def to_crop(mask_photo: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """A photo mask (e.g. painted by the user) in the crop frame (size x size uint8)."""
    mask = as_mask_u8(mask_photo, "photo mask")
    return cv2.warpAffine(
        mask,
        np.asarray(crop.matrix, np.float64),
        (crop.size, crop.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def footprint(
    crop: FaceCrop, photo_shape: tuple[int, ...], mask_crop: np.ndarray | None = None
) -> tuple[int, int, int, int] | None:
    """Photo bounding box (x0, y0, x1, y1; end exclusive) of the crop - or of the
    non-zero part of `mask_crop` - clipped to the photo; None when it is empty."""
    h, w = photo_shape[:2]
    s = crop.size
    if mask_crop is not None:
        ys, xs = np.nonzero(mask_crop)
        if xs.size == 0:
            return None
        cx0, cx1, cy0, cy1 = xs.min() - 1, xs.max() + 1, ys.min() - 1, ys.max() + 1
    else:
        cx0, cy0, cx1, cy1 = -1, -1, s, s
    corners = np.array([[cx0, cy0], [cx1, cy0], [cx0, cy1], [cx1, cy1]], np.float64)
    pts = transform_points(invert_matrix(crop.matrix), corners)
    x0 = max(0, int(np.floor(pts[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


# ------------------------------------------------------------------------ user masks


@dataclass
class ResolvedMasks:
    face: np.ndarray  # uint8 0..255
    element: np.ndarray  # uint8 0..255
    overlap: np.ndarray  # uint8 0..255, face and element both set
    face_source: str  # "user" | "auto"
    element_source: str  # "user" | "auto"


def resolve_masks(
    auto_face: np.ndarray,
    auto_element: np.ndarray,
    user_face: np.ndarray | None = None,
    user_element: np.ndarray | None = None,
) -> ResolvedMasks:
    """The masks a restore uses. User-provided masks ALWAYS win: a user mask replaces the
    automatic one entirely (no union, no intersection), even where it is empty - an empty
    user element mask means "no element". All four must be in the same frame (crop or
    photo; use `to_crop` for painted photo masks) and the same size. bool, float 0..1 and
    uint8 masks are accepted; the result is uint8."""
    face = as_mask_u8(user_face if user_face is not None else auto_face, "face mask")
    element = as_mask_u8(user_element if user_element is not None else auto_element, "element mask")
    if face.shape != element.shape:
        raise InputError(
            f"The face mask is {face.shape[1]}x{face.shape[0]} but the element mask is "
            f"{element.shape[1]}x{element.shape[0]}; masks must have the same size."
        )
    for name, user in (("face", user_face), ("element", user_element)):
        if user is not None and as_mask_u8(user, f"{name} mask").shape != face.shape:
            raise InputError(f"The user {name} mask size does not match the other masks.")
    return ResolvedMasks(
        face=face,
        element=element,
        overlap=overlap(face, element),
        face_source="user" if user_face is not None else "auto",
        element_source="user" if user_element is not None else "auto",
    )
