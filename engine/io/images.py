"""Reading images safely (clear messages naming the file) and writing them atomically.

Every image a user or a client hands us is opened here (`open_image`, `read_rgb`,
`read_mask`), and only with the decoders we support (`SUPPORTED_FORMATS`, and LibRaw for
camera RAW names, `engine.io.camera`): a PostScript, PDF or any other file named `.jpg`
is refused before a decoder (or Ghostscript) sees it, and a file named `.cr2` or `.heic`
must be what its name says. Before any pixel is decoded, the size its header declares
is checked against `MAX_IMAGE_PIXELS` and `MAX_ASPECT_RATIO`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import InputError
from engine.io.camera import (
    RawImageFile,
    formats_for_name,
    heif_pixels16,
    is_raw_name,
    open_raw,
    register_decoders,
)
from engine.io.files import atomic_write, atomic_write_bytes, atomic_write_text

# Pillow's decoders we use (a phone's multi-picture JPEG opens through JPEG, as MPO; HEIF
# is pillow-heif's plugin). Nothing else is ever tried: no EPS/PS (it starts
# Ghostscript), PDF, PSD, ... Camera RAW goes to LibRaw by its name, never to Pillow.
SUPPORTED_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "HEIF", "AVIF")
SUPPORTED_NAMES = (
    "PNG, JPEG, TIFF, WebP, BMP, HEIC/HEIF, AVIF and camera RAW (CR2, CR3, NEF, ARW, RAF, DNG, ...)"
)
register_decoders()

# ~14000x14000. Refused by the size the file's header declares, before anything is
# decoded (Pillow itself only warns below twice its own limit, so we check it ourselves).
MAX_IMAGE_PIXELS = 200_000_000
# Longest side / shortest side: panoramas pass, strips (100000x8) are refused by name.
MAX_ASPECT_RATIO = 50
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow's own bomb check: a second line only
# Pillow warns between its limit and twice it; `_check_size` refuses those images with a
# message naming the file, so the warning is only noise (a filter, not catch_warnings,
# which is not thread-safe).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ORIENTATION_TAG = 0x0112


def exif_orientation(exif) -> int:
    """The EXIF Orientation (1-8) as Pillow's `exif_transpose` applies it, else 1.

    A value stored with the wrong type (ASCII "6", UNDEFINED b"\\x06") or out of range is
    ignored, as reading ignores it, so reading and saving always agree.
    """
    try:
        value = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF: no orientation
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        return 1
    return value


def _check_path(path: Path) -> None:
    """InputError unless `path` is an existing, regular, non-empty file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(
                f"{path}: file not found (a symbolic link whose target is missing)."
            ) from None
        raise InputError(f"{path}: file not found. Check the path and try again.") from None
    except PermissionError:
        raise InputError(
            f"{path}: cannot be read (permission denied). Check the file's permissions."
        ) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError(f"{path}: is a symbolic link loop, not an image file.") from None
        raise InputError(f"{path}: cannot be read ({error.strerror or error}).") from error
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a folder, not an image file.")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{path}: is not a regular file (a pipe, device or socket); give an image file."
        )
    if info.st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes). Export the image again.")


def _check_size(path: Path, image: Image.Image) -> None:
    """Refuse by the header's declared size, before any pixel is decoded."""
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: the image declares no pixels ({width}x{height}).")
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{path}: the image is too large to process safely ({width}x{height} = "
            f"{width * height / 1e6:.0f} megapixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f}). "
            "Reduce it and try again."
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InputError(
            f"{path}: the image is too narrow ({width}x{height}: an extreme aspect ratio, "
            f"more than {MAX_ASPECT_RATIO}:1). Crop it to the people and try again."
        )


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """The image at `path`, opened lazily (header only) with our decoders and size-checked.

    Use it for metadata (EXIF, ICC, size); `read_rgb` / `read_mask` for pixels. Every
    problem is an InputError naming the file; the file is closed on exit.
    """
    path = Path(path)
    _check_path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after Pillow is done
    except PermissionError:
        raise InputError(
            f"{path}: cannot be read (permission denied). Check the file's permissions."
        ) from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error}).") from error
    with handle:
        if is_raw_name(path):
            image = open_raw(path, handle)
            _check_sensor_size(path, image)
            _check_size(path, image)
            yield image
            return
        formats, promised = formats_for_name(path, SUPPORTED_FORMATS)
        try:
            image = Image.open(handle, formats=formats)
        except UnidentifiedImageError as error:
            if promised:
                raise InputError(_misnamed(path, handle, promised)) from error
            raise InputError(
                f"{path}: not a readable image ({SUPPORTED_NAMES} are supported)."
            ) from error
        except Image.DecompressionBombError as error:
            raise InputError(
                f"{path}: the image is too large to process safely ({error})."
            ) from error
        except PermissionError as error:
            raise InputError(f"{path}: cannot be read (permission denied).") from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InputError(
                f"{path}: the image is damaged or truncated ({error}). Export it again."
            ) from error
        _check_size(path, image)
        _refuse_camera_raw_in_tiff(path, image)
        yield image


def _misnamed(path: Path, handle, promised: str) -> str:
    """What to say of a file whose content is not the HEIF/AVIF its name promises."""
    handle.seek(0)
    try:
        with Image.open(handle, formats=SUPPORTED_FORMATS) as actual:
            kind = f"it is a {actual.format} file"
    except Exception:  # noqa: BLE001 - not any image we read
        kind = "it is not an image EditedID reads"
    return (
        f"{path}: not a {promised}, although its name says so ({kind}). "
        "Use the file as it came from the camera or phone, or give it its right extension."
    )


def _check_sensor_size(path: Path, image: RawImageFile) -> None:
    """The sensor data LibRaw would unpack, by the header, against the pixel cap."""
    width, height = image.sensor_size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{path}: the camera RAW file declares {width}x{height} sensor pixels "
            f"({width * height / 1e6:.0f} megapixels; the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f}); not decoded."
        )


def _refuse_camera_raw_in_tiff(path: Path, image: Image.Image) -> None:
    """A DNG or CR2 under a TIFF (or other) name: Pillow would show its small embedded
    preview as the photo, so it is refused, asking for its RAW name."""
    if image.format != "TIFF":
        return
    tags = getattr(image, "tag_v2", {})
    if 50706 in tags:  # DNGVersion
        kind = "DNG"
    elif getattr(image, "fp", None) is not None and _head(image.fp)[8:10] == b"CR":
        kind = "Canon CR2"
    else:
        return
    raise InputError(
        f"{path}: a {kind} camera RAW file under a {path.suffix or 'TIFF'} name; read as a "
        f"TIFF it would give only its small preview. Give it its .{kind[-3:].lower()} name."
    )


def _head(handle) -> bytes:
    where = handle.tell()
    try:
        handle.seek(0)
        return handle.read(16)
    finally:
        handle.seek(where)


def _open(path: str | Path) -> Image.Image:
    """The decoded image at `path` (see `open_image`)."""
    path = Path(path)
    with open_image(path) as image:
        try:
            image.load()
            return image
        except InputError:
            raise
        except PermissionError as error:
            raise InputError(f"{path}: cannot be read (permission denied).") from error
        except Image.DecompressionBombError as error:
            raise InputError(
                f"{path}: the image is too large to process safely ({error})."
            ) from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InputError(
                f"{path}: the image is damaged or truncated ({error}). Export it again."
            ) from error
        except MemoryError as error:
            raise InputError(
                f"{path}: not enough memory to decode this image. Reduce it and try again."
            ) from error


def _upright(image: Image.Image) -> Image.Image:
    """EXIF orientation applied (a malformed EXIF block is ignored, as at save)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - unreadable EXIF: the pixels as stored
        return image


def read_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB, EXIF orientation applied; alpha composited on white.

    16-bit images are scaled by 1/257 (a dark 16-bit grey stays dark, whatever its values).
    """
    image = _upright(_open(path))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif image.mode.startswith("I;16"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(array / 257.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode in ("I", "F"):
        image = Image.fromarray(_deep_grey_to_8bit(path, image))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def read_deep_rgb(path: str | Path) -> np.ndarray | None:
    """HxWx3 uint16 RGB, upright, of the inputs whose decoders give more than Pillow's
    8 bits: a camera RAW (LibRaw's 16-bit development) and a 10/12-bit HEIF (scaled to
    16 bits). None for any other file (16-bit PNG and TIFF: engine.io.export reads them).
    """
    path = Path(path)
    with open_image(path) as image:
        if isinstance(image, RawImageFile):
            return image.pixels16()
        if image.format != "HEIF":
            return None
    return heif_pixels16(path)


def _deep_grey_to_8bit(path: str | Path, image: Image.Image) -> np.ndarray:
    """A 32-bit integer ("I") or floating-point ("F") grey image as uint8.

    Neither says its range, and Pillow's own conversion clips (a 0..1 float image or a
    16-bit range in "I" came out all black or all white). The range is taken from the
    values: floats up to 1 are the 0..1 convention (scientific and HDR tools), otherwise,
    like integers, the smallest of the 8-, 16- and 32-bit ranges that holds them. NaN or
    infinite pixels have no grey to show: refused, naming the file."""
    array = np.asarray(image, dtype=np.float64)
    if not np.isfinite(array).all():
        raise InputError(
            f"{Path(path).name}: a floating-point image with NaN or infinite pixels; "
            "export it as an 8- or 16-bit PNG or TIFF."
        )
    top = float(array.max()) if array.size else 0.0
    if image.mode == "F" and top <= 1.0:
        scale = 1.0
    else:
        scale = next(
            limit for limit in (255.0, 65535.0, 2.0**31 - 1) if top <= limit or limit > 1e9
        )
    return np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """HxW uint8 mask (any image; non-zero = inside), EXIF orientation applied."""
    image = _upright(_open(path))
    if image.mode in ("RGBA", "LA"):
        image = image.getchannel("A") if image.getextrema()[-1][0] < 255 else image.convert("L")
    return np.ascontiguousarray(np.asarray(image.convert("L")))


def write_image_atomic(path: str | Path, image: np.ndarray | Image.Image, **save_kwargs) -> Path:
    """Encode by the file's extension and write atomically: never a half-written file."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"{path.parent}: the output folder does not exist.")
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    suffix = path.suffix or ".png"
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image type {suffix!r}; use .png, .jpg or .tif.")
    return atomic_write(path, lambda handle: pil.save(handle, format=fmt, **save_kwargs))


# The app (project files, saved sidecars) imports the text writer by these names.
write_bytes_atomic = atomic_write_bytes
write_text_atomic = atomic_write_text
