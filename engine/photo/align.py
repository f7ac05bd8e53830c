"""Face alignment: similarity transforms from 5 landmarks into a square crop frame.

The crop frame is ArcFace's 112-pixel 5-point template, scaled so that the 112-px box
(eyebrows to chin) fills the middle half of the crop (`DEFAULT_MARGIN` = 0.25 on every
side) and moved down by `DEFAULT_LIFT` of the crop so that there is more room above the
face (hair, hats, headbands) than below it (chin, collar). At 512 px the eyes sit about
80 px apart at 53% of the height, the chin ends near 79%, and the top of the head near
27%: the whole head and most hats fit (about 140 px above the head), and the face is
still large enough for SD 1.x to render detail.

Conventions: coordinates are pixels with integer values at pixel centres (what dlib,
insightface and `cv2.warpAffine` use). `FaceCrop.matrix` maps photo -> crop.

The transform is a least-squares similarity (Umeyama, no reflection) over all 5 points
rather than RANSAC/LMEDS: with only 5 points, robust estimators pick a 2-point subset and
become unstable for profile faces, where the eyes nearly coincide. Least squares uses all
points, so a profile face keeps a sensible scale and roll.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.types import Face, FaceCrop

# ArcFace / insightface 112x112 template (left eye, right eye, nose, left mouth, right mouth).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

CROP_SIZE = 512
DEFAULT_MARGIN = 0.25  # fraction of the crop left free on each side of the 112-px box
DEFAULT_LIFT = 0.05  # fraction of the crop the face moves down: room for hair and hats
MAX_UPSCALE = 4.0  # crop pixels per photo pixel above which a face is "too small"
# bicubic for images: a photo -> crop -> photo round trip keeps ~42 dB (bilinear: ~34)
IMAGE_INTERPOLATION = cv2.INTER_CUBIC
DOWNSCALE_PREFILTER = 0.5  # below this scale the photo is area-resized first (no aliasing)


def crop_template(
    size: int = CROP_SIZE, margin: float = DEFAULT_MARGIN, lift: float = DEFAULT_LIFT
) -> np.ndarray:
    """Canonical 5-point positions (5x2 float, insightface order) in a size x size crop.

    margin: fraction of the crop on each side outside ArcFace's 112-px box, so the box
    takes (1 - 2*margin) of the crop: 0.25 = the middle half (face plus the whole head,
    hats included). lift: fraction of the crop by which the points move down.
    """
    if size < 16:
        raise InputError(f"The crop size must be at least 16 px, got {size}.")
    if not 0.0 <= margin < 0.5:
        raise InputError(f"The crop margin must be in [0, 0.5), got {margin}.")
    inner = size * (1.0 - 2.0 * margin)
    points = ARCFACE_112 / 112.0 * inner + size * margin
    points[:, 1] += size * lift
    # template points are given in continuous coords where the box spans [0, 112];
    # shift by half a pixel to pixel-centre coordinates
    return points - 0.5


def template_eye_distance(size: int = CROP_SIZE, margin: float = DEFAULT_MARGIN) -> float:
    t = crop_template(size, margin)
    return float(np.linalg.norm(t[1] - t[0]))


def min_eye_distance(
    size: int = CROP_SIZE, margin: float = DEFAULT_MARGIN, max_upscale: float = MAX_UPSCALE
) -> float:
    """Eye distance (photo px) below which a frontal face is flagged too small (about 20 px
    for a 512 crop): the crop would upscale it more than `max_upscale` times."""
    return template_eye_distance(size, margin) / max_upscale


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) that
    maps src points onto dst points (Umeyama 1991). Returns a 2x3 float64 matrix."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise InputError("A similarity transform needs at least 2 matching points.")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InputError("Face landmarks contain NaN or infinite values.")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s < 1e-9:
        raise InputError("The face landmarks all coincide: the face cannot be aligned.")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_matrix(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def matrix_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity (crop pixels per photo pixel)."""
    return float(math.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"The {what} must be an HxWx3 uint8 RGB image, got shape {image.shape} "
            f"and dtype {image.dtype}; read it with engine.io.images.read_rgb."
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"The {what} is too small ({image.shape[1]}x{image.shape[0]}).")
    return image


def valid_mask(matrix: np.ndarray, photo_shape: tuple[int, ...], size: int) -> np.ndarray:
    """size x size uint8: 255 where the crop pixel maps inside the photo, 0 where the crop
    fell outside it (those pixels are reflected padding, not real content)."""
    h, w = photo_shape[:2]
    inv = invert_matrix(matrix)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    py = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (px >= -0.5) & (px <= w - 0.5) & (py >= -0.5) & (py <= h - 0.5)
    return inside.astype(np.uint8) * 255


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a photo into the crop frame; reflected padding where the crop leaves the photo.

    Strong downscales first area-resize the photo (plain bilinear warping would alias).
    """
    matrix = np.asarray(matrix, np.float64)
    scale = matrix_scale(matrix)
    if scale < DOWNSCALE_PREFILTER:
        f = scale / DOWNSCALE_PREFILTER
        h, w = image.shape[:2]
        sw, sh = max(2, round(w * f)), max(2, round(h * f))
        fx, fy = sw / w, sh / h
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        # photo -> small, pixel centres: x' = fx * (x + 0.5) - 0.5
        to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        matrix = matrix @ np.linalg.inv(to_small)
        image = small
    return cv2.warpAffine(
        image, matrix, (size, size), flags=IMAGE_INTERPOLATION, borderMode=cv2.BORDER_REFLECT
    )


def _make_crop(image: np.ndarray, matrix: np.ndarray, size: int, max_upscale: float) -> FaceCrop:
    scale = matrix_scale(matrix)
    return FaceCrop(
        image=warp_to_crop(image, matrix, size),
        matrix=matrix,
        size=size,
        scale=scale,
        too_small=bool(scale > max_upscale),
        valid=valid_mask(matrix, image.shape, size),
    )


def _landmarks5(face: Face, what: str) -> np.ndarray:
    points = np.asarray(face.landmarks5, np.float64)
    if points.shape != (5, 2):
        raise InputError(f"The {what} needs 5 landmarks (5x2), got shape {points.shape}.")
    return points


def align_edited(
    image: np.ndarray,
    face: Face,
    size: int = CROP_SIZE,
    *,
    margin: float = DEFAULT_MARGIN,
    lift: float = DEFAULT_LIFT,
    max_upscale: float = MAX_UPSCALE,
) -> FaceCrop:
    """The edited face warped into its canonical size x size crop.

    `too_small` is set when the crop upscales the face more than `max_upscale` times; for
    a frontal face that is an eye distance under `min_eye_distance(size)` (~20 px at 512).
    The scale comes from all 5 points, so a profile face (eyes close together) is not
    flagged just because its eye distance is short.
    """
    image = _check_image(image, "edited photo")
    matrix = similarity_transform(
        _landmarks5(face, "edited face"), crop_template(size, margin, lift)
    )
    return _make_crop(image, matrix, size, max_upscale)


def align_original_to_edited(
    original_image: np.ndarray,
    original_face: Face,
    edited_crop: FaceCrop,
    edited_face: Face,
    *,
    max_upscale: float = MAX_UPSCALE,
) -> FaceCrop:
    """The ORIGINAL face warped into the EDITED face's crop frame.

    The similarity maps the original's 5 landmarks onto the edited face's 5 landmarks as
    they sit in the edited crop (not onto the template), so eyes, nose and mouth of both
    crops coincide as well as a similarity allows, whatever the two photos' sizes,
    crops and rotations.
    """
    original_image = _check_image(original_image, "original photo")
    target = transform_points(edited_crop.matrix, _landmarks5(edited_face, "edited face"))
    matrix = similarity_transform(_landmarks5(original_face, "original face"), target)
    return _make_crop(original_image, matrix, edited_crop.size, max_upscale)


def crop_landmarks(crop: FaceCrop, points: np.ndarray) -> np.ndarray:
    """Photo points (Nx2) in the crop's coordinates."""
    return transform_points(crop.matrix, points)


def too_small_message(crop: FaceCrop | Face, label: str = "The face") -> str | None:
    """A human sentence when the face is too small to restore well, else None.

    Takes the face's crop (its `too_small` flag and scale) or, for convenience, the Face
    itself (judged by its eye distance against `min_eye_distance()`)."""
    if isinstance(crop, Face):
        eye = float(np.linalg.norm(np.asarray(crop.landmarks5)[1] - crop.landmarks5[0]))
        if eye >= min_eye_distance():
            return None
        return (
            f"{label} is small in the photo (eyes about {eye:.0f} px apart, under "
            f"{min_eye_distance():.0f} px), so the restored face will look soft. "
            "Use a larger or higher-resolution photo for a sharper result."
        )
    if not crop.too_small:
        return None
    eye = template_eye_distance(crop.size) / crop.scale
    return (
        f"{label} is small in the photo (eyes about {eye:.0f} px apart; the {crop.size} px "
        f"crop enlarges it {crop.scale:.1f}x), so the restored face will look soft. "
        "Use a larger or higher-resolution photo for a sharper result."
    )
