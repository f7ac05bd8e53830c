"""The photo check every face backend, the pairing and the identity score run first:
`as_rgb_uint8` turns gray, RGBA or one-channel 8-bit arrays into a C-contiguous HxWx3 uint8
RGB array and refuses anything else (other dtypes, shapes, photos under 8 px) with InputError.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InputError


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
def as_rgb_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A C-contiguous HxWx3 uint8 RGB copy-or-view of `image` (gray and RGBA accepted)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise InputError(f"The {what} must be 8-bit (uint8), got {array.dtype}.")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"The {what} must be an HxWx3 RGB array, got shape {array.shape}.")
    if array.shape[0] < 8 or array.shape[1] < 8:
        raise InputError(f"The {what} is too small ({array.shape[1]}x{array.shape[0]} px).")
    return np.ascontiguousarray(array)
