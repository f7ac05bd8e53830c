"""Saving results: PNG / JPEG / TIFF / layered PSD (engine.io.psd), with the edited
photo's metadata, safely.

`save_result` keeps the reference (edited input) file's EXIF, with Orientation reset to 1
because the pixels handed to it are already upright, and its ICC profile. A 16-bit
reference (PNG or TIFF) gives a 16-bit result where the output format allows it: outside
`changed_alpha` the reference's own 16-bit pixels are kept bit-exact, inside they are
blended with the 8-bit result scaled to 16 bit. Every write is atomic
(`engine.io.files.atomic_write`), never replaces an input, and never replaces an
existing file unless asked. `check_output_folder` tells a read-only or full output folder
before any heavy work starts.

A result and its sidecar JSON (`result.png.json`: inputs with the sha256 of the bytes
used, parameters, scores) are one unit: `check_result_target` refuses, before any work,
an output or sidecar that is an input, a folder, or an existing file (unless
overwriting); `write_with_sidecar` stages the sidecar first, writes the output, then
renames the sidecar into place, so an output never stands without its sidecar, and the
sidecar carries our marker (`SIDECAR_MARKER`) by which resume knows it is ours. Those
live in engine.io.targets (what may be written where) and engine.io.sidecars (the
sidecar itself); this module imports them back, so callers keep importing them from here.

Location: by default (`strip_location=True`) a result carries no location. The GPS IFD
of the reference's EXIF (latitude, longitude, altitude, GPS time, ...) is dropped; XMP
and IPTC, where location may also be written, are never copied at all. Why stripping is
the default: results are what a studio hands to a client, who posts them online, and a
photo's coordinates are often the client's home; the originals keep their GPS for the
studio's own records, and nothing about the restoration needs it. Keeping it is a
deliberate choice (`strip_location=False`, the CLI's `--keep-location`, the app's
"Remove location" setting unticked). Everything else of the EXIF (camera, lens, dates,
artist, copyright; Orientation reset to 1) is kept either way.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import InputError
from engine.io.files import OutputFolderError, atomic_write, make_temp_file
from engine.io.images import exif_orientation, open_image
from engine.io.psd import ResultLayers
from engine.io.sidecars import (  # noqa: F401 - re-exported
    MAX_SIDECAR_BYTES,
    SIDECAR_MARKER,
    SIDECAR_VERSION,
    read_sidecar,
    sidecar_inputs,
    sidecar_matches_inputs,
    write_with_sidecar,
)
from engine.io.targets import (  # noqa: F401 - re-exported
    FORMAT_WORDS,
    FORMATS,
    check_result_target,
    same_file,
    sidecar_path,
)

__all__ = [
    "FORMATS",
    "FREE_SPACE_MARGIN",
    "GPS_IFD_TAG",
    "ICC_TIFF_TAG",
    "MAX_SIDECAR_BYTES",
    "ORIENTATION_TAG",
    "SIDECAR_MARKER",
    "SIDECAR_VERSION",
    "OutputFolderError",
    "apply_orientation",
    "check_output_folder",
    "check_result_target",
    "estimate_output_bytes",
    "read_sidecar",
    "save_result",
    "sidecar_inputs",
    "sidecar_matches_inputs",
    "sidecar_path",
    "write_with_sidecar",
]

ORIENTATION_TAG = 0x0112
GPS_IFD_TAG = 0x8825  # the GPSInfo pointer: the whole GPS IFD hangs from it
_SUB_IFD_TAGS = (0x8769, GPS_IFD_TAG, 0xA005)  # Exif, GPS, Interop
ICC_TIFF_TAG = 34675
# TIFF structure tags that describe the reference file's own layout; copying them into
# another file's EXIF would be wrong (strip offsets, sizes, compression, ...).
_STRUCTURAL_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 290,
     291, 317, 320, 321, 322, 323, 324, 325, 338, 339, 340, 341, 347, 513, 514, 530, 531,
     532, 700, 33723, 34377, ICC_TIFF_TAG, 37724, 42112, 42113}
)  # fmt: skip
# Descriptive IFD0 tags carried into a 16-bit TIFF written by tifffile (ASCII only).
_TIFF_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)
FREE_SPACE_MARGIN = 16 * 1024 * 1024  # keep this much free beyond the estimate


# --- folder checks -------------------------------------------------------------------
def check_output_folder(folder: str | Path, needed_bytes: int = 0) -> Path:
    """Raise OutputFolderError unless `folder` exists, is writable and has the space.

    Call it before heavy work so a read-only or full disk is reported before anything is
    computed (and lost). `needed_bytes` is an estimate (see `estimate_output_bytes`).
    """
    folder = Path(folder)
    if not folder.exists():
        raise OutputFolderError(f"{folder}: the output folder does not exist. Create it first.")
    if not folder.is_dir():
        raise OutputFolderError(f"{folder}: is a file, not a folder. Choose an output folder.")
    try:
        fd, probe = make_temp_file(folder, "editedid-write-test")
        os.close(fd)
        probe.unlink()
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise OutputFolderError(
                f"{folder}: the output folder is read-only (no permission to write). "
                "Choose another folder or change its permissions."
            ) from error
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputFolderError(
                f"{folder}: the disk is full. Free some space or choose another folder."
            ) from error
        raise OutputFolderError(
            f"{folder}: cannot write to the output folder ({error.strerror or error})."
        ) from error
    free = shutil.disk_usage(folder).free
    if free < int(needed_bytes) + FREE_SPACE_MARGIN:
        raise OutputFolderError(
            f"{folder}: not enough free disk space ({_mb(free)} free, about "
            f"{_mb(int(needed_bytes) + FREE_SPACE_MARGIN)} needed). Free some space or "
            "choose another folder."
        )
    return folder


def estimate_output_bytes(reference_path: str | Path | None, size: tuple[int, int] | None = None):
    """Upper-bound size of a result (uncompressed RGB, 16-bit if the reference is)."""
    width, height, depth = 0, 0, 8
    if reference_path is not None:
        try:
            with open_image(reference_path) as image:
                width, height = image.size
            depth = _reference_bit_depth(Path(reference_path))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            pass
    if size is not None:
        width, height = size
    return width * height * 3 * (2 if depth == 16 else 1) + 256 * 1024


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


# --- metadata ----------------------------------------------------------------------------
def _reference_metadata(reference_path: Path | None, *, strip_location: bool = True) -> dict:
    """EXIF bytes (orientation 1, structure tags removed, the GPS IFD too when
    `strip_location`), ICC bytes, dpi, orientation."""
    meta: dict = {"exif": None, "icc": None, "dpi": None, "orientation": 1, "exif_obj": None}
    if reference_path is None:
        return meta
    try:
        with open_image(reference_path) as image:
            exif = image.getexif()
            meta["icc"] = image.info.get("icc_profile") or None
            dpi = image.info.get("dpi")
            if dpi and all(float(v) > 0 for v in dpi):
                meta["dpi"] = tuple(float(v) for v in dpi)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise InputError(
            f"{reference_path}: cannot read its metadata to copy into the result ({error})."
        ) from error
    meta["orientation"] = exif_orientation(exif)  # as reading applied it
    for tag in list(exif.keys()):
        if tag in _STRUCTURAL_TAGS or (strip_location and tag == GPS_IFD_TAG):
            del exif[tag]
    if len(exif):
        if ORIENTATION_TAG in exif:
            exif[ORIENTATION_TAG] = 1
        try:
            meta["exif"] = exif.tobytes()
            meta["exif_obj"] = exif
        except Exception:  # noqa: BLE001 - malformed maker notes: drop EXIF, keep the image
            meta["exif"] = None
    return meta


def _reference_bit_depth(path: Path) -> int:
    """16 for a 16-bit-per-channel PNG or TIFF, else 8."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            with open(path, "rb") as handle:
                head = handle.read(26)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                return 16 if head[24] == 16 else 8
        elif suffix in (".tif", ".tiff"):
            with open_image(path) as image:
                bits = image.tag_v2.get(258) if hasattr(image, "tag_v2") else None
            if bits is not None:
                bits = bits if isinstance(bits, tuple) else (bits,)
                return 16 if max(int(b) for b in bits) == 16 else 8
    except (OSError, ValueError, SyntaxError, IndexError, Image.DecompressionBombError):
        return 8
    return 8


def _read_16bit_upright(path: Path, orientation: int) -> np.ndarray | None:
    """HxWx3 uint16 RGB of a 16-bit reference with EXIF orientation applied, or None."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)  # also works for non-ASCII paths
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        return None
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 4:  # composited on white, as read_rgb does for 8-bit
        alpha = array[:, :, 3:].astype(np.float64) / 65535.0
        rgb = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB).astype(np.float64)
        array = np.clip(rgb * alpha + 65535.0 * (1.0 - alpha) + 0.5, 0, 65535).astype(np.uint16)
    elif array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    else:
        return None
    return np.ascontiguousarray(apply_orientation(array, orientation))


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Make an HxW[xC] array upright for an EXIF orientation (as ImageOps.exif_transpose)."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return np.swapaxes(array, 0, 1)
    if orientation == 6:
        return np.rot90(array, k=-1)
    if orientation == 7:
        return np.swapaxes(array[::-1, ::-1], 0, 1)
    if orientation == 8:
        return np.rot90(array, k=1)
    return array


def _blend_16bit(reference16: np.ndarray, result8: np.ndarray, alpha) -> np.ndarray:
    """Reference pixels exactly where alpha == 0, result*257 blended in elsewhere."""
    result16 = result8.astype(np.float64) * 257.0
    if alpha is None:
        return np.clip(result16 + 0.5, 0, 65535).astype(np.uint16)
    a = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)[:, :, None]
    blended = reference16.astype(np.float64) * (1.0 - a) + result16 * a
    blended = np.clip(blended + 0.5, 0, 65535).astype(np.uint16)
    return np.where(a > 0, blended, reference16)


def deep_blend(reference16: np.ndarray, image8: np.ndarray, alpha, layers: ResultLayers):
    """The 16-bit result of a restore whose 8-bit result `image8` is the blend of the
    8-bit edit and the restoration (layers): the same blend done at 16 bit, so the edit's
    own 16-bit pixels are kept exactly where alpha is 0 and weigh (1 - alpha) elsewhere.

    Why not `_blend_16bit(reference16, image8, alpha)`: image8 is already blended, so
    blending it again gave the restoration alpha² at the blend's edges (a softer,
    narrower restoration in 16-bit files than in 8-bit ones of the same run). A merged
    result (no restoration of its own) adds the edit's detail below 8 bits to it:
    image8 * 257 + (edit16 - edit8 * 257) * (1 - alpha), where it differs from the edit.
    """
    edited8 = np.asarray(layers.edited)
    a = np.zeros(image8.shape[:2]) if alpha is None else np.asarray(alpha, np.float64)
    a = np.clip(a, 0.0, 1.0)
    ref = reference16.astype(np.float64)
    if layers.restored is not None:
        restored = edited8.copy()
        x0, y0, x1, y1 = layers.restored.box
        restored[y0:y1, x0:x1] = layers.restored.pixels
        blended = ref * (1.0 - a[..., None]) + restored.astype(np.float64) * 257.0 * a[..., None]
    else:
        a = np.where(np.any(image8 != edited8, axis=2), np.maximum(a, 1e-9), a)
        detail = ref - edited8.astype(np.float64) * 257.0
        blended = image8.astype(np.float64) * 257.0 + detail * (1.0 - a[..., None])
    blended = np.clip(np.rint(blended), 0, 65535).astype(np.uint16)
    return np.where((a > 0)[..., None], blended, reference16)


# --- PNG chunks for the 16-bit path (cv2 writes the pixels, we add the metadata) ----------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_add_chunks(png: bytes, icc: bytes | None, exif: bytes | None, dpi) -> bytes:
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if dpi:
        ppm = [max(1, round(v / 0.0254)) for v in dpi]
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    if exif:
        raw = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        chunks += _png_chunk(b"eXIf", raw)
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature + IHDR chunk
    return png[:ihdr_end] + chunks + png[ihdr_end:]


# --- writing -----------------------------------------------------------------------------
def save_result(
    out_path: str | Path,
    image_rgb8: np.ndarray,
    *,
    reference_path: str | Path | None = None,
    changed_alpha: np.ndarray | None = None,
    quality: int = 95,
    overwrite: bool = False,
    protected_paths=(),
    warnings: list[str] | None = None,
    strip_location: bool = True,
    layers: ResultLayers | None = None,
) -> Path:
    """Write the result image; returns the path written.

    out_path: .png, .jpg/.jpeg, .tif/.tiff or .psd/.psb (anything else: InputError).
    image_rgb8: HxWx3 uint8, already upright.
    reference_path: the edited input; its EXIF (Orientation set to 1), ICC profile and dpi
        are copied; a 16-bit PNG/TIFF reference gives a 16-bit PNG/TIFF result.
    changed_alpha: HxW in [0, 1], where the photo was changed; for a 16-bit result the
        reference's pixels are kept exactly where it is 0.
    protected_paths: files that must never be replaced (the inputs).
    warnings: if a list is given, notes (e.g. "saved as 8-bit because ...") are appended.
    strip_location: drop the reference's GPS data (see the module docstring for why this
        is the default); False keeps it with the rest of the EXIF.
    layers: what a layered .psd holds besides the image (engine.io.psd); required there.
    """
    out = Path(out_path)
    image = np.asarray(image_rgb8)
    # 1. refuse what must never be written: wrong array, unknown format, an input file
    fmt = _check_target(out, image, reference_path, protected_paths, overwrite)
    # 2. the reference's metadata, less what the output format cannot carry
    reference = Path(reference_path) if reference_path is not None else None
    meta = _reference_metadata(reference, strip_location=strip_location)
    notes = _drop_unfit_metadata(out, fmt, meta)
    # 3. a 16-bit reference gives 16-bit pixels where the format allows it
    pixels16 = None
    if reference is not None and _reference_bit_depth(reference) == 16:
        pixels16 = _pixels_16bit(out, fmt, reference, meta, image, changed_alpha, notes, layers)
    # 4. space for it, then the write itself
    layered = 4 + 2 * len(layers.faces) if fmt == "PSD" and layers is not None else 1
    check_output_folder(out.parent, image.size * (2 if pixels16 is not None else 1) * layered)
    if fmt == "PSD":
        _write_psd(out, image, changed_alpha, layers, meta, pixels16, reference, notes)
    elif pixels16 is not None and fmt == "PNG":
        _write_png16(out, pixels16, meta)
    elif pixels16 is not None and fmt == "TIFF" and _tifffile() is not None:
        atomic_write(out, lambda handle: _write_tiff16(handle, pixels16, meta))
        if meta["exif"]:
            notes.append(
                f"{out.name}: 16-bit TIFF keeps the ICC profile and the main text tags "
                "(artist, date, camera, copyright); other EXIF fields are not copied."
            )
    else:
        if pixels16 is not None:
            notes.append(f"{out.name}: saved as 8-bit (tifffile is not installed).")
        if fmt == "TIFF" and _has_sub_ifds(meta):
            notes.append(
                f"{out.name}: saved as an uncompressed TIFF, the only kind that keeps the "
                "input's EXIF details (camera settings, dates, location)."
            )
        _write_8bit(out, fmt, image, meta, quality)
    if warnings is not None:
        warnings.extend(notes)
    return out


def _check_target(out: Path, image: np.ndarray, reference_path, protected_paths, overwrite) -> str:
    """The PIL format name for `out`; InputError for anything that must not be written."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"{out}: the result must be an HxWx3 8-bit RGB image, got {image.dtype} {image.shape}."
        )
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{out}: cannot save as {out.suffix or 'a file without extension'!r}; {FORMAT_WORDS}."
        )
    for protected in protected_paths or ():
        if protected is not None and same_file(out, Path(protected)):
            raise InputError(
                f"{out}: this is one of the input files; it is never overwritten. "
                "Choose another name or folder."
            )
    if reference_path is not None and same_file(out, Path(reference_path)):
        raise InputError(f"{out}: this is the edited input file; it is never overwritten.")
    if out.is_dir():
        raise InputError(f"{out}: is a folder; choose a file name.")
    if out.exists() and not overwrite:
        raise InputError(
            f"{out}: already exists. Allow overwriting or choose another name or folder."
        )
    return fmt


def _drop_unfit_metadata(out: Path, fmt: str, meta: dict) -> list[str]:
    """Remove from `meta` what the output cannot carry; one note per removal."""
    notes: list[str] = []
    if meta["icc"] and meta["icc"][16:20] != b"RGB ":
        # A CMYK or grey profile does not describe RGB pixels: leave it out (sRGB assumed).
        space = meta["icc"][16:20].decode("latin-1", "replace").strip()
        notes.append(f"{out.name}: the input's {space} colour profile was not copied (RGB out).")
        meta["icc"] = None
    if fmt == "JPEG" and meta["exif"] and len(meta["exif"]) > 65000:
        notes.append(f"{out.name}: the input's EXIF is too large for JPEG and was not copied.")
        meta["exif"] = None
    return notes


def _pixels_16bit(
    out: Path,
    fmt: str,
    reference: Path,
    meta: dict,
    image,
    changed_alpha,
    notes: list[str],
    layers: ResultLayers | None = None,
) -> np.ndarray | None:
    """The 16-bit result for a 16-bit reference, or None (8-bit, with a note why)."""
    if fmt == "JPEG":
        notes.append(f"{out.name}: the 16-bit input was saved as 8-bit (JPEG is 8-bit).")
        return None
    reference16 = _read_16bit_upright(reference, meta["orientation"])
    if reference16 is None or reference16.shape != image.shape:
        notes.append(
            f"{out.name}: saved as 8-bit (the 16-bit input could not be matched to the result)."
        )
        return None
    if changed_alpha is not None and np.asarray(changed_alpha).shape != image.shape[:2]:
        raise InputError(
            f"{out}: changed_alpha has shape {np.asarray(changed_alpha).shape}, "
            f"the image {image.shape[:2]}."
        )
    if layers is not None and np.asarray(layers.edited).shape == image.shape:
        return deep_blend(reference16, image, changed_alpha, layers)
    return _blend_16bit(reference16, image, changed_alpha)


def _write_png16(out: Path, pixels16: np.ndarray, meta: dict) -> None:
    """cv2 encodes the 16-bit pixels; the metadata chunks are added by hand."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels16, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"{out}: could not encode the 16-bit PNG.")
    data = _png_add_chunks(encoded.tobytes(), meta["icc"], meta["exif"], meta["dpi"])
    atomic_write(out, lambda handle: handle.write(data))


def _write_psd(
    out: Path, image, changed_alpha, layers, meta: dict, pixels16, reference, notes: list[str]
) -> None:
    """The layered document: its composite is the PNG's pixels (16-bit where the PNG's
    are), the edited photo's 16-bit pixels its bottom layer for a 16-bit reference."""
    from engine.io.psd import encode_psd, large_note, psd_layers

    if layers is None:
        raise InputError(
            f"{out}: a Photoshop document needs the restore's layers (the edited photo, "
            "the restoration and its blend); save this result as .png, .jpg or .tif."
        )
    edited16 = None
    if pixels16 is not None:
        edited16 = _read_16bit_upright(reference, meta["orientation"])
    composite = pixels16 if edited16 is not None else image
    data = encode_psd(
        composite,
        psd_layers(image, changed_alpha, layers, edited16=edited16, composite16=pixels16),
        icc=meta["icc"],
        dpi=meta["dpi"],
        exif=meta["exif"],
    )
    atomic_write(out, lambda handle: handle.write(data))
    note = large_note(out, image.shape)
    if note:
        notes.append(note)


def _has_sub_ifds(meta: dict) -> bool:
    """True when the EXIF to copy has Exif/GPS/Interop sub-IFDs. libtiff (compressed TIFF)
    cannot write those (Pillow raises "Error setting from dictionary"); Pillow's own
    uncompressed TIFF writer keeps them."""
    exif = meta.get("exif_obj")
    return bool(meta.get("exif")) and exif is not None and any(t in exif for t in _SUB_IFD_TAGS)


def _write_8bit(out: Path, fmt: str, image: np.ndarray, meta: dict, quality: int) -> None:
    pil = Image.fromarray(image, "RGB")
    kwargs: dict = {}
    if meta["exif"]:
        kwargs["exif"] = meta["exif"]
    if meta["icc"]:
        kwargs["icc_profile"] = meta["icc"]
    if meta["dpi"]:
        kwargs["dpi"] = meta["dpi"]
    if fmt == "JPEG":
        kwargs.update(quality=int(quality), subsampling=0 if quality >= 90 else 2)
        kwargs["optimize"] = True
    elif fmt == "TIFF" and not _has_sub_ifds(meta):
        kwargs["compression"] = "tiff_deflate"
    elif fmt == "PNG":
        kwargs["compress_level"] = 6
    atomic_write(out, lambda handle: pil.save(handle, format=fmt, **kwargs))


def _tifffile():
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


def _write_tiff16(handle, pixels16: np.ndarray, meta: dict) -> None:
    tifffile = _tifffile()
    extratags = []
    exif = meta.get("exif_obj")
    if exif is not None:
        for tag in _TIFF_TEXT_TAGS:
            value = exif.get(tag)
            if isinstance(value, bytes):
                value = value.decode("latin-1", "replace")
            if isinstance(value, str) and value and value.isascii():
                extratags.append((tag, "s", 0, value, True))
    kwargs: dict = {"photometric": "rgb", "metadata": None, "extratags": extratags}
    if meta.get("icc"):
        kwargs["iccprofile"] = meta["icc"]
    if meta.get("dpi"):
        kwargs["resolution"] = tuple(meta["dpi"])
        kwargs["resolutionunit"] = "INCH"
    buffer = io.BytesIO()  # tifffile wants a named file or a seekable buffer
    try:
        tifffile.imwrite(buffer, pixels16, compression="zlib", **kwargs)
    except (ValueError, ImportError, KeyError):  # no zlib codec: uncompressed
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, pixels16, **kwargs)
    handle.write(buffer.getvalue())
