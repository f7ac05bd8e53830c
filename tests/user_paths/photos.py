"""The photo pairs of the user-path tests, made at test time from photos inside installed
wheels (tests/helpers.sample_photo): real faces, and the hostile pairs of issue 20."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.fixtures.camera_files import dng_of_photo, heic_bytes
from tests.fixtures.faces import dlib_faces, photo, sample_face, swap_face
from tests.ui_fixtures import write_photo_pair


def _rescale_and_crop(image: np.ndarray, scale: float, crop: tuple[int, int, int, int]):
    """The edit resized by `scale`, then (left, top, right, bottom) pixels cut away."""
    h, w = image.shape[:2]
    resized = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    left, top, right, bottom = crop
    return np.ascontiguousarray(
        resized[top : resized.shape[0] - bottom, left : resized.shape[1] - right]
    )


def _save(folder: Path, name: str, image: np.ndarray) -> Path:
    path = folder / name
    Image.fromarray(image).save(path)
    return path


def six_people_swapped(folder: Path) -> tuple[Path, Path]:
    """insightface's t1.jpg (six people) as the original; the edit has every face swapped
    with its neighbour's (left to right, the last with the first), rescaled by 0.8 and
    cropped (issue 20's first crash)."""
    original = photo("t1")
    faces = sorted(dlib_faces(original), key=lambda f: f.box[0])
    assert len(faces) == 6, f"dlib found {len(faces)} faces in t1.jpg, expected 6"
    edited = original.copy()
    for i, face in enumerate(faces):
        neighbour = faces[(i + 1) % len(faces)]
        edited = swap_face(edited, face, original, neighbour)
    edited = _rescale_and_crop(edited, 0.8, (30, 20, 24, 16))
    return _save(folder, "t1-original.png", original), _save(folder, "t1-edited.png", edited)


def portrait_rescaled_mouth_covered(folder: Path) -> tuple[Path, Path]:
    """grace_hopper as the original; the edit rescaled by 1.25, cropped, with a filled
    rectangle drawn over the mouth (issue 20's second crash)."""
    original = photo("grace_hopper")
    face = sample_face("grace_hopper")
    edited = original.copy()
    mouth = np.asarray(face.landmarks)[48:68]  # dlib's 68 points: the mouth's 20
    x0, y0 = mouth.min(axis=0) - 6
    x1, y1 = mouth.max(axis=0) + 6
    cv2.rectangle(edited, (int(x0), int(y0)), (int(x1), int(y1)), (200, 40, 60), thickness=-1)
    edited = _rescale_and_crop(edited, 1.25, (40, 36, 52, 30))
    return (
        _save(folder, "portrait-original.png", original),
        _save(folder, "portrait-edited.png", edited),
    )


def portrait_swapped(folder: Path) -> tuple[Path, Path]:
    """grace_hopper, and the edit with the astronaut's face pasted in (identity changed,
    so the face is restored by default) and a dark 'glasses' band."""
    return write_photo_pair(folder)


def portrait_raw_original(folder: Path) -> tuple[Path, Path]:
    """The swapped portrait with the client's original as a camera RAW (a CFA DNG that
    LibRaw develops) and the edit a PNG (issue 22)."""
    own = folder / "raw"
    own.mkdir()
    original, edited = write_photo_pair(own)
    raw = own / "IMG_0001.DNG"
    raw.write_bytes(dng_of_photo(np.asarray(Image.open(original).convert("RGB"))))
    return raw, edited


def portrait_heic_original(folder: Path) -> tuple[Path, Path]:
    """The swapped portrait with an iPhone-style HEIC original and a WebP edit (issue 22)."""
    own = folder / "heic"
    own.mkdir()
    original, edited = write_photo_pair(own)
    heic = own / "IMG_0002.HEIC"
    heic.write_bytes(heic_bytes(Image.open(original).convert("RGB"), quality=95))
    webp = own / "edited.webp"
    Image.open(edited).convert("RGB").save(webp, quality=95)
    return heic, webp


PAIRS = {
    "portrait": portrait_swapped,
    "portrait-raw": portrait_raw_original,
    "portrait-heic": portrait_heic_original,
    "six-people": six_people_swapped,
    "portrait-mouth": portrait_rescaled_mouth_covered,
}
