"""numpy <-> Qt image conversion and the mask overlay colouring.

Every conversion copies: a QImage never points into a numpy buffer that may be freed or
changed later, and an array never points into a QImage's bits.

Conventions: photos are RGB ``uint8`` arrays of shape ``(H, W, 3)`` (``(H, W, 4)`` RGBA is
accepted too); masks are ``uint8`` arrays of shape ``(H, W)`` with 0 = outside and
255 = fully inside (soft edges in between).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage

from .model.masks import MASK_KINDS

#: Overlay colours (R, G, B): face mask, element mask, and where both are set.
FACE_COLOR: tuple[int, int, int] = (0, 200, 255)  # cyan
ELEMENT_COLOR: tuple[int, int, int] = (255, 0, 200)  # magenta
OVERLAP_COLOR: tuple[int, int, int] = (255, 210, 0)  # amber


def mask_color(kind: str) -> QColor:
    """The overlay colour of a mask kind ("face" or "element") as a QColor."""
    if kind not in MASK_KINDS:
        raise ValueError(f"Unknown mask kind {kind!r}; expected 'face' or 'element'.")
    return QColor(*(FACE_COLOR if kind == "face" else ELEMENT_COLOR))


def _qimage_from_buffer(array: np.ndarray, fmt: QImage.Format) -> QImage:
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    bytes_per_line = array.strides[0]
    # .copy() detaches the QImage from the numpy buffer before `array` can go away.
    return QImage(array.data, width, height, bytes_per_line, fmt).copy()


def numpy_to_qimage(image: np.ndarray) -> QImage:
    """A QImage copy of an RGB (HxWx3), RGBA (HxWx4) or grey (HxW) ``uint8`` array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image, got {image.dtype}.")
    if image.ndim == 2:
        return _qimage_from_buffer(image, QImage.Format.Format_Grayscale8)
    if image.ndim == 3 and image.shape[2] == 3:
        return _qimage_from_buffer(image, QImage.Format.Format_RGB888)
    if image.ndim == 3 and image.shape[2] == 4:
        return _qimage_from_buffer(image, QImage.Format.Format_RGBA8888)
    raise ValueError(f"Expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}.")


def rgba_premultiplied_to_qimage(rgba: np.ndarray) -> QImage:
    """A QImage copy of a premultiplied RGBA ``uint8`` array (as made by `mask_overlay`)."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"Expected an HxWx4 uint8 array, got {rgba.dtype} {rgba.shape}.")
    return _qimage_from_buffer(rgba, QImage.Format.Format_RGBA8888_Premultiplied)


def _array_from_qimage(image: QImage, channels: int) -> np.ndarray:
    height, width = image.height(), image.width()
    row = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    row = row.reshape(height, image.bytesPerLine())[:, : width * channels]
    array = row.reshape(height, width, channels) if channels > 1 else row
    return array.copy()


def qimage_to_numpy(image: QImage) -> np.ndarray:
    """An RGB ``uint8`` (HxWx3) copy of any QImage (alpha is dropped)."""
    if image.isNull():
        raise ValueError("The image is empty.")
    return _array_from_qimage(image.convertToFormat(QImage.Format.Format_RGB888), 3)


def qimage_to_mask(image: QImage) -> np.ndarray:
    """An HxW ``uint8`` mask from a QImage (its grey level)."""
    if image.isNull():
        raise ValueError("The image is empty.")
    return _array_from_qimage(image.convertToFormat(QImage.Format.Format_Grayscale8), 1)


def mask_overlay(
    face_mask: np.ndarray | None,
    element_mask: np.ndarray | None,
    *,
    face_opacity: float = 1.0,
    element_opacity: float = 1.0,
    face_color: tuple[int, int, int] = FACE_COLOR,
    element_color: tuple[int, int, int] = ELEMENT_COLOR,
    overlap_color: tuple[int, int, int] = OVERLAP_COLOR,
) -> np.ndarray:
    """Colour the two masks of a face into a premultiplied RGBA ``uint8`` overlay.

    Where only the face mask is set the overlay is ``face_color``, where only the element
    mask is set ``element_color``, where both are set ``overlap_color`` (the region whose
    attention rows are a weighted mix). Alpha follows the mask values, scaled by each
    kind's opacity (the canvas dims the mask that is not being painted). Works on any
    region: pass the same crop of both masks. Either mask may be None (treated as empty);
    at least one must be given.
    """
    if face_mask is None and element_mask is None:
        raise ValueError("mask_overlay needs at least one mask.")
    shape = (face_mask if face_mask is not None else element_mask).shape
    zeros = None
    if face_mask is None or element_mask is None:
        zeros = np.zeros(shape, np.float32)
    face = zeros if face_mask is None else face_mask.astype(np.float32) * (face_opacity / 255)
    if element_mask is None:
        element = zeros
    else:
        if element_mask.shape != shape:
            raise ValueError(f"Mask shapes differ: {shape} and {element_mask.shape}.")
        element = element_mask.astype(np.float32) * (element_opacity / 255)
    overlap = np.minimum(face, element)
    face_only = face - overlap
    element_only = element - overlap
    out = np.empty((*shape, 4), np.float32)
    for channel in range(3):
        out[..., channel] = (
            face_only * face_color[channel]
            + element_only * element_color[channel]
            + overlap * overlap_color[channel]
        )
    # face_only + element_only + overlap == max(face, element): premultiplied alpha.
    out[..., 3] = np.maximum(face, element) * 255
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
