"""Camera RAW (LibRaw, through rawpy) and HEIF/AVIF originals: the decoders beyond
Pillow's own, for `engine.io.images`.

- **RAW** (`RAW_EXTENSIONS`): a file with a RAW name goes to LibRaw and to nothing else.
  Pillow's TIFF decoder would happily open a DNG, NEF or CR2 and hand back the small
  embedded preview of its first IFD as if it were the photo; LibRaw develops the sensor
  data itself: the camera's white balance, sRGB primaries and the sRGB tone curve, 16 bits
  per channel, the camera's orientation (LibRaw's flip) applied, no auto-brightening (two
  frames of one shoot keep the exposure the photographer chose). `RawImageFile` is a
  Pillow image whose header comes from LibRaw's parse (sizes before any pixel is
  unpacked) and whose pixels are developed on `load()`; `pixels16` keeps the 16-bit
  development. Its EXIF is rebuilt from what can be read without decoding (`raw_exif`),
  its ICC profile is sRGB, which is what the development produces.
- **HEIF/HEIC** through pillow-heif's Pillow plugin, **AVIF** through Pillow's own AVIF
  plugin (pillow-heif 1.x no longer decodes AV1). Both read the size from the header
  before decoding; `heif_pixels16` gives a 10/12-bit HEIF's pixels at 16 bits.
- A file whose name says RAW, HEIF or AVIF must be that (`formats_for_name`): a PNG named
  `.heic` is refused with a message saying what it is, so a renamed or converted copy is
  never taken silently for the client's original.
"""

from __future__ import annotations

import io
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, TiffImagePlugin

from engine.errors import InputError

# What LibRaw 0.21+ reads, by the names cameras give their files (X3F left out: LibRaw
# dropped Sigma's format; GPR needs an SDK the wheels do not carry).
RAW_EXTENSIONS = (
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".iiq", ".k25",
    ".kdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2",
    ".rwl", ".sr2", ".srf", ".srw",
)  # fmt: skip
HEIF_EXTENSIONS = (".heic", ".heif", ".hif")
AVIF_EXTENSIONS = (".avif",)
# A RAW file is handed to LibRaw as bytes; the largest medium-format frames are ~400 MB.
MAX_RAW_FILE_BYTES = 1 << 30

_EXIF_IFD = 0x8769
# IFD0 tags describing the photo (not the file's layout) that a rebuilt EXIF keeps.
_DESCRIPTIVE_TAGS = (0x010F, 0x0110, 0x0132, 0x013B, 0x8298, 0x0131, 0x010E)
# Exif-IFD tags that are offsets into the RAW file or the camera's private notes.
_DROPPED_EXIF_TAGS = frozenset({0x927C, 0xA005, 0x9286})

_lock = threading.Lock()
_registered = False


def register_decoders() -> None:
    """Register pillow-heif's HEIF plugin with Pillow once (thumbnails, depth maps and
    auxiliary images are not read: the primary image is the photo)."""
    global _registered
    with _lock:
        if _registered:
            return
        import pillow_heif

        pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        Image.init()  # AVIF and the others, so `formats=` finds them
        _registered = True


def is_raw_name(path: Path) -> bool:
    return path.suffix.lower() in RAW_EXTENSIONS


def formats_for_name(path: Path, general: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """(the Pillow decoders a file of this name may use, what the name promises or "")."""
    suffix = path.suffix.lower()
    if suffix in HEIF_EXTENSIONS:
        return ("HEIF",), "HEIC/HEIF image"
    if suffix in AVIF_EXTENSIONS:
        return ("AVIF",), "AVIF image"
    return general, ""


# --- RAW ---------------------------------------------------------------------------------
class RawImageFile(ImageFile.ImageFile):
    """A camera RAW opened by LibRaw: header on open, the developed photo on `load()`.

    `size` is the developed, upright size; `sensor_size` what LibRaw will unpack.
    """

    format = "RAW"
    format_description = "camera RAW (LibRaw)"

    def _open(self) -> None:
        import rawpy

        path = Path(self.filename)
        data = self.fp.read()
        raw = rawpy.RawPy()
        try:
            raw.open_buffer(io.BytesIO(data))  # identify: the header, no pixel unpacked
            sizes = raw.sizes
        except (rawpy.LibRawFileUnsupportedError, rawpy.LibRawIOError) as error:
            raise InputError(
                f"{path}: not a camera RAW file, although its name says so "
                f"({_what_it_is(data)}). Use the file as it came from the camera."
            ) from error
        except (rawpy.LibRawError, rawpy.NotSupportedError) as error:
            raise InputError(
                f"{path}: the camera RAW file is damaged or cannot be read ({error})."
            ) from error
        self._raw = raw
        self._pixels16: np.ndarray | None = None
        quarter_turn = sizes.flip in (5, 6)
        width, height = sizes.width, sizes.height
        if sizes.pixel_aspect > 1:  # LibRaw stretches non-square pixels to square ones
            width = round(width * sizes.pixel_aspect)
        elif 0 < sizes.pixel_aspect < 1:
            height = round(height / sizes.pixel_aspect)
        self._size = (height, width) if quarter_turn else (width, height)
        self._mode = "RGB"
        self.tile = []
        self.sensor_size = (sizes.raw_width, sizes.raw_height)
        self.flip = sizes.flip
        if srgb_profile() is not None:
            self.info["icc_profile"] = srgb_profile()
        try:
            exif = raw_exif(data, raw)
        except Exception:  # noqa: BLE001 - odd metadata never stops the photo opening
            exif = None
        if exif is not None:
            self.info["exif"] = exif

    def pixels16(self) -> np.ndarray:
        """HxWx3 uint16 sRGB, upright: LibRaw's development of the sensor data."""
        if self._pixels16 is None:
            try:
                self._pixels16 = _develop(Path(self.filename), self._raw)
            finally:
                # LibRaw's own copies (the file, the sensor data, its 4-channel image:
                # ~10 bytes a pixel) are not needed once the photo is developed
                self._raw.close()
            height, width = self._pixels16.shape[:2]
            self._size = (width, height)  # as developed (rounding of a stretch)
        return self._pixels16

    def load(self):
        if self._im is None:
            # round(x / 257) in integers, as read_rgb scales a 16-bit TIFF
            eight = ((self.pixels16().astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)
            self.im = Image.fromarray(eight, "RGB").im
        return Image.Image.load(self)


def _what_it_is(data: bytes) -> str:
    """A few words on what a file LibRaw refused holds."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG", "TIFF", "WEBP", "BMP")) as im:
            return f"it is a {im.format} image; LibRaw does not read it"
    except Exception:  # noqa: BLE001 - none of those
        pass
    head = data[:256]
    if head.strip() and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "it is text"
    return "LibRaw does not recognise its content, or it is damaged"


def open_raw(path: Path, handle) -> RawImageFile:
    """The RAW at `path` (open `handle`), header parsed, nothing decoded."""
    size = Path(path).stat().st_size
    if size > MAX_RAW_FILE_BYTES:
        raise InputError(
            f"{path}: {size / 2**20:.0f} MiB is larger than any camera RAW file "
            f"(at most {MAX_RAW_FILE_BYTES / 2**20:.0f} MiB are read)."
        )
    try:
        return RawImageFile(handle, str(path))
    except InputError:
        raise
    except MemoryError as error:
        raise InputError(f"{path}: not enough memory to read this camera RAW file.") from error
    except (OSError, SyntaxError, ValueError) as error:  # Pillow wraps parse errors
        raise InputError(f"{path}: the camera RAW file cannot be read ({error}).") from error


def _develop(path: Path, raw) -> np.ndarray:
    import rawpy

    try:
        return raw.postprocess(
            use_camera_wb=True,
            output_color=rawpy.ColorSpace.sRGB,
            output_bps=16,
            gamma=(2.4, 12.92),  # the sRGB curve the profile we attach describes
            no_auto_bright=True,
        )
    except (MemoryError, rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawTooBigError) as e:
        raise InputError(f"{path}: not enough memory to develop this camera RAW file ({e}).") from e
    except (rawpy.LibRawError, rawpy.NotSupportedError) as error:
        raise InputError(
            f"{path}: the camera RAW file is damaged or cannot be developed ({error})."
        ) from error


_SRGB: bytes | None = None


def srgb_profile() -> bytes | None:
    """An sRGB ICC profile (LittleCMS's), or None where Pillow was built without it."""
    global _SRGB
    if _SRGB is None:
        try:
            from PIL import ImageCms

            _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        except (ImportError, OSError):
            _SRGB = b""
    return _SRGB or None


# --- RAW metadata ------------------------------------------------------------------------
def raw_exif(data: bytes, raw) -> bytes | None:
    """EXIF for a RAW's developed photo: camera, date, artist, copyright and the Exif IFD
    (lens, exposure, dates) read from the file's own TIFF structure where it has one
    (DNG, NEF, CR2, ARW, ORF, RW2, PEF, SRW, ...; CR3's CMT boxes; RAF's embedded JPEG),
    completed from LibRaw (lens, ISO, shutter, aperture, focal length, time, artist).
    No Orientation (the pixels are upright), no maker notes, no offsets into the RAW."""
    exif = Image.Exif()
    ifd0, exif_ifd = _tiff_metadata(data)
    for tag in _DESCRIPTIVE_TAGS:
        if tag in ifd0:
            exif[tag] = ifd0[tag]
    sub = {tag: value for tag, value in exif_ifd.items() if tag not in _DROPPED_EXIF_TAGS}
    _complete_from_libraw(exif, sub, raw)
    try:
        return _exif_bytes(exif, sub)
    except Exception:  # noqa: BLE001 - an odd vendor value: keep what LibRaw says
        exif, sub = Image.Exif(), {}
        _complete_from_libraw(exif, sub, raw)
        try:
            return _exif_bytes(exif, sub)
        except Exception:  # noqa: BLE001
            return None


def _exif_bytes(exif: Image.Exif, sub: dict) -> bytes | None:
    if sub:
        exif.get_ifd(_EXIF_IFD).update(sub)
    if not len(exif):
        return None
    return b"Exif\x00\x00" + exif.tobytes()


def _tiff_metadata(data: bytes) -> tuple[dict, dict]:
    """(IFD0, Exif IFD) of a RAW file's TIFF structure, or empty dicts."""
    for tiff in _tiff_blocks(data):
        try:
            parsed = Image.Exif()
            parsed.load(tiff)
            ifd0 = dict(parsed)
            exif_ifd = dict(parsed.get_ifd(_EXIF_IFD))
        except Exception:  # noqa: BLE001 - a malformed block is no metadata
            continue
        if data[4:8] == b"ftyp" and b"CMT2" in data[: 1 << 20]:  # CR3: the Exif IFD apart
            exif_ifd = _cr3_exif_ifd(data) or exif_ifd
        if ifd0 or exif_ifd:
            return ifd0, exif_ifd
    return {}, {}


def _tiff_blocks(data: bytes):
    """Candidate TIFF byte blocks holding a RAW's IFD0 (by container kind)."""
    head = data[:4]
    if head in (b"II*\x00", b"MM\x00*"):
        yield data
    elif head[:2] in (b"II", b"MM"):  # ORF (IIRO/IIRS/MMOR), RW2 (IIU\0): TIFF inside
        magic = b"II*\x00" if head[:2] == b"II" else b"MM\x00*"
        yield magic + data[4 : 1 << 24]
    elif data[4:8] == b"ftyp":  # CR3: CMT1 holds IFD0 as a TIFF
        yield from _box_payload(data, b"CMT1")
    elif data[:16] == b"FUJIFILMCCD-RAW ":  # RAF: the EXIF of the embedded JPEG
        offset = int.from_bytes(data[84:88], "big")
        jpeg = data[offset : offset + (1 << 16)]
        start = jpeg.find(b"Exif\x00\x00")
        if start >= 0:
            yield jpeg[start + 6 :] + data[offset + (1 << 16) : offset + (1 << 20)]


def _box_payload(data: bytes, kind: bytes):
    where = data.find(kind, 0, 1 << 20)
    if where >= 4:
        size = int.from_bytes(data[where - 4 : where], "big")
        if 8 < size < (1 << 20):
            yield data[where + 4 : where - 4 + size]


def _cr3_exif_ifd(data: bytes) -> dict:
    for tiff in _box_payload(data, b"CMT2"):
        try:
            parsed = Image.Exif()
            parsed.load(tiff)
            return dict(parsed)
        except Exception:  # noqa: BLE001
            return {}
    return {}


def _complete_from_libraw(exif: Image.Exif, sub: dict, raw) -> None:
    """Fill what the file's own tags did not give from LibRaw's parse."""
    try:
        other, lens = raw.other, raw.lens
    except Exception:  # noqa: BLE001 - older rawpy: nothing more to add
        return
    when = other.timestamp  # a datetime (rawpy 0.22+) or seconds since 1970; 0: none
    if not isinstance(when, datetime) and when:
        when = datetime.fromtimestamp(when)
    if isinstance(when, datetime) and when.year > 1970 and 0x9003 not in sub:
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        sub[0x9003] = stamp
        if 0x0132 not in exif:
            exif[0x0132] = stamp
    if other.artist and 0x013B not in exif:
        exif[0x013B] = other.artist.strip()
    rational = TiffImagePlugin.IFDRational
    for tag, value in (
        (0x829A, other.shutter_speed),
        (0x829D, other.aperture),
        (0x920A, other.focal_length),
    ):
        if value and value > 0 and tag not in sub:
            sub[tag] = rational(*rational(float(value)).limit_rational(100000))
    if other.iso_speed and other.iso_speed > 0 and 0x8827 not in sub:
        sub[0x8827] = int(other.iso_speed)
    if lens.model and 0xA434 not in sub:
        sub[0xA434] = lens.model.strip()
    if lens.make and 0xA433 not in sub:
        sub[0xA433] = lens.make.strip()


# --- HEIF at 16 bits ---------------------------------------------------------------------
def heif_pixels16(path: Path) -> np.ndarray | None:
    """HxWx3 uint16 of a 10- or 12-bit HEIF (values scaled to the 16-bit range), upright
    as libheif presents it; None for an 8-bit one."""
    import pillow_heif

    with open(path, "rb") as handle:
        data = handle.read()
    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        if heif.info.get("bit_depth", 8) <= 8:
            return None
        array = np.asarray(heif)
    except (OSError, ValueError, RuntimeError) as error:
        raise InputError(f"{path}: the HEIF image is damaged or truncated ({error}).") from error
    if array.dtype != np.uint16:
        return None
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:  # composited on white, as read_rgb does
        alpha = array[:, :, 3:].astype(np.float64) / 65535.0
        rgb = array[:, :, :3].astype(np.float64) * alpha + 65535.0 * (1.0 - alpha)
        return np.clip(rgb + 0.5, 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(array[:, :, :3])
