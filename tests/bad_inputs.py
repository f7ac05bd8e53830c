"""A corpus of bad and unusual inputs, written into a temp folder (issue 6, item 4).

    cases = build_corpus(tmp_path)            # list[Case]
    for case in cases: case.original, case.edited, case.expect ("ok" | "error"), case.bad

Every case is an (original, edited) pair built from matplotlib's public-domain
grace_hopper photo. `expect == "ok"` cases are valid but unusual files (CMYK, 16-bit,
alpha, palette, EXIF-rotated, grayscale, non-ASCII and very long paths, ...) that must
restore; `expect == "error"` cases must fail with a message naming `bad`, the file at
fault. Files live in `<group>/original/<stem>.<ext>` and `<group>/edited/<stem>.<ext>`
so batch mode pairs them by name: group "main" holds most cases, group "long" is nested
three 200-character folders deep (a path of ~900 characters).

The 12000x9000 image is a flat-colour PNG with one face pasted in: ~1 MB on disk, 324 MB
as an RGB array once decoded.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import sample_photo

HUGE_SIZE = (12000, 9000)  # width, height


@dataclass(frozen=True)
class Case:
    name: str
    original: Path
    edited: Path
    expect: str  # "ok" or "error"
    bad: Path | None = None  # the file the error message must name
    note: str = ""

    @property
    def inputs(self) -> tuple[Path, Path]:
        return self.original, self.edited


def _base() -> tuple[Image.Image, Image.Image]:
    """grace_hopper (original) and an 'AI edit' of it: colour shift + dark glasses band."""
    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    array = np.asarray(photo).astype(np.int16)
    edited = np.clip(array + np.array([12, -6, 9]), 0, 255).astype(np.uint8)
    edited[180:205, 160:360] = (25, 25, 30)
    return photo, Image.fromarray(edited)


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, **kwargs)
    return buffer.getvalue()


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes | Image.Image, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        data.save(path, **save_kwargs)
    return path


def _sixteen_bit(image: Image.Image) -> np.ndarray:
    """HxWx3 uint16 BGR (for cv2.imwrite) spanning the full 16-bit range."""
    rgb = np.asarray(image).astype(np.uint16)
    return (rgb * 257 + 128)[..., ::-1].copy()


def build_corpus(root: str | Path, *, huge: bool = True) -> list[Case]:
    """Write every case under `root`; returns them in a stable order."""
    import cv2

    root = Path(root)
    original, edited = _base()
    main_o, main_e = root / "main" / "original", root / "main" / "edited"
    long_dir = root / "long"
    for level in "abc":
        long_dir = long_dir / (level * 200)
    long_o, long_e = long_dir / "original", long_dir / "edited"
    orig_jpg = _jpeg_bytes(original)
    edit_jpg = _jpeg_bytes(edited)
    edit_png = _png_bytes(edited)
    cases: list[Case] = []

    def pair(name, edited_file, expect, *, bad=None, note="", original_file=None, group="main"):
        o_dir, e_dir = (main_o, main_e) if group == "main" else (long_o, long_e)
        o_path = original_file or _write(o_dir / f"{name}.jpg", orig_jpg)
        e_path = edited_file
        cases.append(Case(name, o_path, e_path, expect, bad, note))

    # --- broken files: a clear error naming the file ---------------------------------
    e = _write(main_e / "truncated_jpeg.jpg", edit_jpg[: len(edit_jpg) // 2])
    pair("truncated_jpeg", e, "error", bad=e, note="JPEG cut in half")
    corrupt = bytearray(edit_jpg)
    corrupt[2:400] = bytes(398)  # SOI kept, every header segment zeroed
    e = _write(main_e / "corrupt_jpeg.jpg", bytes(corrupt))
    pair("corrupt_jpeg", e, "error", bad=e, note="JPEG headers overwritten")
    e = _write(main_e / "truncated_png.png", edit_png[: len(edit_png) // 2])
    pair("truncated_png", e, "error", bad=e, note="PNG cut in half")
    corrupt = bytearray(edit_png)
    middle = len(corrupt) // 2
    corrupt[middle : middle + 64] = bytes(64)  # IDAT data and CRC no longer agree
    e = _write(main_e / "corrupt_png.png", bytes(corrupt))
    pair("corrupt_png", e, "error", bad=e, note="PNG with zeroed IDAT bytes")
    o = _write(main_o / "truncated_original.png", _png_bytes(original)[:5000])
    e = _write(main_e / "truncated_original.png", edit_png)
    pair("truncated_original", e, "error", bad=o, note="the original is the bad file",
         original_file=o)  # fmt: skip
    e = _write(main_e / "zero_byte.jpg", b"")
    pair("zero_byte", e, "error", bad=e, note="0-byte file")
    e = _write(main_e / "text_as_jpg.jpg", b"This is not a photo, just text named .jpg\n" * 20)
    pair("text_as_jpg", e, "error", bad=e, note="text file named .jpg")

    # --- valid but unusual: must restore -----------------------------------------------
    e = _write(main_e / "cmyk_jpeg.jpg", edited.convert("CMYK"), quality=92)
    pair("cmyk_jpeg", e, "ok", note="CMYK JPEG")
    e = main_e / "png16.png"
    e.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(e), _sixteen_bit(edited))
    pair("png16", e, "ok", note="16-bit RGB PNG")
    e = main_e / "tiff16.tif"
    cv2.imwrite(str(e), _sixteen_bit(edited))
    pair("tiff16", e, "ok", note="16-bit RGB TIFF")
    gray16 = (np.asarray(edited.convert("L")).astype(np.uint16) * 257).astype(np.uint16)
    e = _write(main_e / "gray16.png", Image.fromarray(gray16))
    pair("gray16", e, "ok", note="16-bit grayscale PNG (I;16)")
    rgba = np.dstack([np.asarray(edited), np.full(edited.size[::-1], 255, np.uint8)])
    rgba[:, :60, 3] = 0  # transparent left border, away from the face
    rgba[:, 60:120, 3] = 128
    e = _write(main_e / "alpha_png.png", Image.fromarray(rgba, "RGBA"))
    pair("alpha_png", e, "ok", note="RGBA PNG, transparent border")
    e = _write(main_e / "palette_png.png", edited.quantize(256))
    pair("palette_png", e, "ok", note="palette (P) PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    rotated = edited.transpose(Image.Transpose.ROTATE_90)
    e = _write(main_e / "exif_rotated.jpg", _jpeg_bytes(rotated, exif=exif.tobytes()))
    pair("exif_rotated", e, "ok", note="JPEG stored sideways, EXIF Orientation=6")
    e = _write(main_e / "grayscale.jpg", edited.convert("L"), quality=92)
    pair("grayscale", e, "ok", note="8-bit grayscale JPEG")
    small = edited.resize((edited.width * 3 // 4, edited.height * 3 // 4), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (small.width + 90, small.height + 40), (200, 190, 180))
    canvas.paste(small, (70, 10))
    e = _write(main_e / "mismatched_size.png", canvas)
    pair("mismatched_size", e, "ok", note="edited photo smaller and shifted")
    o = _write(main_o / "Grâce Höpper – 写真 ✓.jpg", orig_jpg)
    e = _write(main_e / "Grâce Höpper – 写真 ✓.png", edit_png)
    pair("non_ascii", e, "ok", note="non-ASCII file names", original_file=o)
    stem = "portrait_" + "x" * 190
    o = _write(long_o / f"{stem}.jpg", orig_jpg)
    e = _write(long_e / f"{stem}.png", edit_png)
    pair("long_path", e, "ok", note=f"{len(str(e))}-character path", original_file=o,
         group="long")  # fmt: skip

    # --- usable files that cannot be restored: a clear error naming the file -------------
    rng = np.random.default_rng(0)
    scenery = rng.random((300, 400, 3)) * 40 + np.linspace(60, 200, 400)[None, :, None]
    e = _write(main_e / "no_face.png", Image.fromarray(scenery.astype(np.uint8)))
    pair("no_face", e, "error", bad=e, note="edited photo without a face")
    o = _write(main_o / "original_no_face.png", Image.fromarray(scenery.astype(np.uint8)))
    e = _write(main_e / "original_no_face.png", edit_png)
    pair("original_no_face", e, "error", bad=o, note="original photo without a face",
         original_file=o)  # fmt: skip
    if huge:
        big = Image.new("RGB", HUGE_SIZE, (120, 140, 160))
        big.paste(edited, (5000, 4000))
        e = _write(main_e / "huge.png", big, compress_level=1)
        pair("huge", e, "ok", note=f"{HUGE_SIZE[0]}x{HUGE_SIZE[1]} flat PNG, one face")
    return cases


def sha256_tree(root: str | Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (inputs-untouched check)."""
    root = Path(root)
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digests[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
