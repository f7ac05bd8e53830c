"""The self-test's "photo formats" check: one camera RAW and one HEIC, made here, read
back through the engine's own opener (`engine.io.images`), so an installation missing
LibRaw (rawpy) or libheif (pillow-heif) says so before a client's file does.

The RAW is a DNG written by hand (a plain TIFF with the DNG tags; the bundle has no TIFF
writer to lean on): a Bayer mosaic of three colour patches as a camera with uneven
channel sensitivities records them, to be developed back to the patches' sRGB colours.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# Linear sRGB patches, left to right, and what the camera's channels see of each unit of
# red, green and blue light (its as-shot neutral).
PATCHES = ((0.60, 0.10, 0.10), (0.10, 0.50, 0.20), (0.20, 0.20, 0.80))
NEUTRAL = (0.5, 1.0, 0.7)
PATCH = 24  # LibRaw reads nothing under 22 pixels a side
BLACK, WHITE = 256, 4095
# sRGB (D65) -> XYZ as LibRaw has it; the DNG's ColorMatrix1 is XYZ -> camera
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))  # fmt: skip
_SHORT, _LONG, _ASCII, _BYTE, _RATIONAL, _SRATIONAL = 3, 4, 2, 1, 5, 10
_SIZES = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}


def _encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB curve."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def dng_bytes(orientation: int = 6) -> bytes:
    """A 3-patch RGGB DNG (PATCH x 3*PATCH pixels, 12-bit) as a camera would write it."""
    height, width = PATCH, 3 * PATCH
    scene = np.repeat(np.asarray(PATCHES, dtype=np.float64), PATCH, axis=0)[None]
    camera = np.repeat(scene, height, axis=0) * np.asarray(NEUTRAL)
    mosaic = np.empty((height, width), np.uint16)
    for dy, dx, channel in ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)):
        mosaic[dy::2, dx::2] = np.round(BLACK + camera[dy::2, dx::2, channel] * (WHITE - BLACK))
    matrix = np.diag(NEUTRAL) @ np.linalg.inv(np.asarray(_RGB_TO_XYZ))

    def fractions(values) -> list[int]:
        return [v for x in np.ravel(values) for v in (int(round(x * 10000)), 10000)]

    pixels = mosaic.astype("<u2").tobytes()
    entries = [
        (256, _LONG, [width]), (257, _LONG, [height]), (258, _SHORT, [16]),
        (259, _SHORT, [1]), (262, _SHORT, [32803]), (271, _ASCII, b"EditedID\0"),
        (272, _ASCII, b"Self-test\0"), (273, _LONG, [0]), (274, _SHORT, [orientation]),
        (277, _SHORT, [1]), (278, _LONG, [height]), (279, _LONG, [len(pixels)]),
        (33421, _SHORT, [2, 2]), (33422, _BYTE, [0, 1, 1, 2]), (50706, _BYTE, [1, 4, 0, 0]),
        (50708, _ASCII, b"EditedID Self-test\0"), (50714, _LONG, [BLACK]),
        (50717, _LONG, [WHITE]), (50721, _SRATIONAL, fractions(matrix)),
        (50728, _RATIONAL, fractions(NEUTRAL)), (50778, _SHORT, [21]),
    ]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    data_at = 8 + ifd_size
    table, extra = b"", b""
    for tag, kind, values in entries:
        raw = values if kind == _ASCII else _pack(kind, values)
        count = len(values) // (2 if kind in (_RATIONAL, _SRATIONAL) else 1)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_at + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        table += struct.pack("<HHI", tag, kind, count) + field
    strip_at = data_at + len(extra)
    table = table.replace(  # StripOffsets, now that the data's size is known
        struct.pack("<HHI", 273, _LONG, 1) + b"\0" * 4,
        struct.pack("<HHI", 273, _LONG, 1) + struct.pack("<I", strip_at),
    )
    ifd = struct.pack("<H", len(entries)) + table + b"\0" * 4
    return b"II*\0" + struct.pack("<I", 8) + ifd + extra + pixels


def _pack(kind: int, values) -> bytes:
    code = {_BYTE: "B", _SHORT: "H", _LONG: "I", _RATIONAL: "I", _SRATIONAL: "i"}[kind]
    return struct.pack(f"<{len(values)}{code}", *values)


def check_raw(folder: Path) -> str:
    """A DNG developed through the opener: upright (Orientation 6 turns it), 16 bits, the
    patches' colours within 2 % (quantisation only: measured well under 0.5 %)."""
    from engine.io.images import read_deep_rgb

    path = Path(folder) / "self-test.dng"
    path.write_bytes(dng_bytes(orientation=6))
    pixels = read_deep_rgb(path)
    if pixels is None or pixels.dtype != np.uint16 or pixels.shape != (3 * PATCH, PATCH, 3):
        shape = None if pixels is None else (pixels.shape, pixels.dtype)
        raise RuntimeError(f"the DNG developed to {shape}, not {3 * PATCH}x{PATCH} 16-bit")
    upright = np.rot90(pixels, k=1)  # undo the clockwise turn Orientation 6 asks for
    for index, colour in enumerate(PATCHES):
        middle = upright[PATCH // 2, index * PATCH + PATCH // 2].astype(np.float64) / 65535
        if np.abs(middle - _encode(np.asarray(colour))).max() > 0.02:
            raise RuntimeError(f"patch {index + 1} developed to {middle}, not {colour} (sRGB)")
    _expect_model(path, "Self-test")
    import rawpy

    return f"DNG developed by LibRaw {'.'.join(map(str, rawpy.libraw_version))}, 16-bit, upright"


def check_heic(folder: Path) -> str:
    """A HEIC written by pillow-heif, read through the opener: pixels within the codec's
    loss, EXIF carried."""
    import pillow_heif
    from PIL import Image

    from engine.io.images import read_rgb

    yy, xx = np.mgrid[0:48, 0:64]
    known = np.stack([xx * 3 + 30, yy * 4 + 20, 0 * xx + 140], axis=-1).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0110] = "Self-test phone"
    path = Path(folder) / "self-test.heic"
    heif = pillow_heif.from_pillow(Image.fromarray(known))
    heif.save(path, quality=90, exif=exif.tobytes())
    decoded = read_rgb(path)
    error = (
        np.abs(decoded.astype(int) - known.astype(int)).mean()
        if decoded.shape == known.shape
        else None
    )
    if error is None or error > 3:
        raise RuntimeError(f"the HEIC read back as {decoded.shape} with mean error {error}")
    _expect_model(path, "Self-test phone")
    return f"HEIC by libheif {pillow_heif.libheif_version()}, EXIF read"


def _expect_model(path: Path, model: str) -> None:
    """The camera model of the file's EXIF, as the opener reads it, must be `model`."""
    from engine.io.images import open_image

    with open_image(path) as image:
        found = image.getexif().get(0x0110)
    if found != model:
        raise RuntimeError(f"{path.name}: the EXIF camera model was not read ({found!r})")
