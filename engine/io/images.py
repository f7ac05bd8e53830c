"""Reading images safely (clear messages naming the file) and writing them atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import InputError
from engine.io.files import atomic_write, atomic_write_bytes, atomic_write_text

Image.MAX_IMAGE_PIXELS = 200_000_000  # ~14000x14000; larger is refused, not decoded blindly


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found. Check the path and try again.")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes). Export the image again.")
    try:
        image = Image.open(path)
        image.load()
    except UnidentifiedImageError as error:
        raise InputError(
            f"{path}: not a readable image (PNG, JPEG, TIFF, WebP and BMP are supported)."
        ) from error
    except Image.DecompressionBombError as error:
        raise InputError(f"{path}: the image is too large to process safely ({error}).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(
            f"{path}: the image is damaged or truncated ({error}). Export it again."
        ) from error
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB, EXIF orientation applied; alpha composited on white."""
    image = ImageOps.exif_transpose(_open(path))
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def read_mask(path: str | Path) -> np.ndarray:
    """HxW uint8 mask (any image; non-zero = inside), EXIF orientation applied."""
    image = ImageOps.exif_transpose(_open(path))
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
