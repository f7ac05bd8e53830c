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


# ---------------------------------------------------------------------------------------
# Issue 11: hostile image files (image modes, EXIF types, special files) and hostile
# model folders (index routes to pickle shards, malformed JSON shapes, symlink loops).
# ---------------------------------------------------------------------------------------
EPS_BYTES = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
    b"newpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"
)


def exif_orientation_bytes(tiff_type: int, count: int, value: bytes) -> bytes:
    """A raw EXIF block holding only Orientation, stored with any TIFF type."""
    import struct

    entry = struct.pack("<HHI", 0x0112, tiff_type, count) + value.ljust(4, b"\0")
    ifd = struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but which holds almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int, keep_bytes: int) -> bytes:
    """A real JPEG whose frame header is rewritten to width x height, then truncated."""
    import struct

    rng = np.random.default_rng(0)
    noise = Image.fromarray((rng.random((512, 512, 3)) * 255).astype(np.uint8))
    data = bytearray(_jpeg_bytes(noise))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data[:keep_bytes])


def build_hostile_corpus(root: str | Path) -> list[Case]:
    """Issue 11's hostile and unusual image files, as (original, edited) pairs under root.

    "error" cases must be refused with an InputError naming `bad` (nothing decoded that
    is not ours, nothing run); "ok" cases must restore. The FIFO case exists only where
    the platform has FIFOs.
    """
    import os

    import cv2

    root = Path(root)
    original, edited = _base()
    o_dir, e_dir = root / "original", root / "edited"
    orig_jpg = _jpeg_bytes(original)
    cases: list[Case] = []

    def pair(name, edited_file, expect, note, *, bad=None):
        o_path = _write(o_dir / f"{name}.jpg", orig_jpg)
        cases.append(Case(name, o_path, edited_file, expect, bad, note))

    # --- not ours to decode, or not decodable safely: refused by name ---------------------
    e = _write(e_dir / "postscript.jpg", EPS_BYTES)
    pair("postscript_as_jpg", e, "error", "EPS named .jpg (would start Ghostscript)", bad=e)
    e = _write(e_dir / "header_bomb.jpg", jpeg_declaring(19000, 19000, 58_000))
    pair("header_bomb_jpeg", e, "error", "58 KB truncated JPEG declaring 19000x19000", bad=e)
    e = _write(e_dir / "header_bomb.png", png_declaring(15000, 15000))
    pair("header_bomb_png", e, "error", "PNG declaring 15000x15000 (Pillow only warns)", bad=e)
    e = _write(e_dir / "strip_wide.png", Image.new("RGB", (100000, 8), (128, 128, 128)))
    pair("strip_wide", e, "error", "100000x8 strip", bad=e)
    e = _write(e_dir / "strip_tall.png", Image.new("RGB", (8, 100000), (128, 128, 128)))
    pair("strip_tall", e, "error", "8x100000 strip", bad=e)
    e = e_dir / "loop.jpg"
    os.symlink(e.name, e)
    pair("symlink_loop", e, "error", "a symbolic link to itself", bad=e)
    if hasattr(os, "mkfifo"):
        e = e_dir / "fifo.jpg"
        os.mkfifo(e)
        pair("fifo", e, "error", "a FIFO named .jpg (must not block)", bad=e)
    gray = np.asarray(edited.convert("L")).astype(np.uint16)
    e = _write(e_dir / "dark_gray16.png", Image.fromarray(gray))  # values <= 255 of 65535
    pair("dark_gray16", e, "error", "16-bit grey, all values <= 255: near black, no face",
         bad=e)  # fmt: skip

    # --- camera files that are not what their names say, or declare too much (issue 22) ---
    from tests.fixtures.camera_files import (
        chart,
        declare_dng_size,
        declare_heif_size,
        dng_bytes,
        dng_of_photo,
        heic_bytes,
    )

    e = _write(e_dir / "IMG_0001.CR2", b"notes of the shoot, not a photo\n" * 40)
    pair("text_as_cr2", e, "error", "a text file named .CR2", bad=e)
    e = _write(e_dir / "png_as.heic", _png_bytes(edited))
    pair("png_as_heic", e, "error", "a PNG named .heic (refused, not opened by content)", bad=e)
    e = _write(e_dir / "dng_as.tif", dng_bytes(chart(), preview=np.zeros((8, 8, 3), np.uint8)))
    pair("dng_as_tif", e, "error", "a DNG named .tif (would be read as its preview)", bad=e)
    e = _write(e_dir / "huge.dng", declare_dng_size(dng_bytes(chart()), 20000, 15000))
    pair("huge_dng", e, "error", "a DNG declaring 20000x15000 sensor pixels", bad=e)
    small = heic_bytes(Image.new("RGB", (64, 64), (90, 90, 90)), quality=50)
    e = _write(e_dir / "huge.heic", declare_heif_size(small, 20000, 15000))
    pair("huge_heic", e, "error", "a HEIC declaring 20000x15000", bad=e)

    # --- unusual but valid: must restore --------------------------------------------------
    rgba16 = np.dstack([_sixteen_bit(edited), np.full(edited.size[::-1], 65535, np.uint16)])
    rgba16[:, :60] = 0  # transparent, black underneath: must come out white
    e = e_dir / "rgba16.png"
    e.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(e), rgba16)
    pair("rgba16_png", e, "ok", "16-bit RGBA PNG, transparent black border")
    e = _write(e_dir / "la.png", edited.convert("LA"))
    pair("la_png", e, "ok", "grey + alpha PNG")
    for name, raw in (
        ("exif_ascii_orientation", exif_orientation_bytes(2, 2, b"6\0")),
        ("exif_undefined_orientation", exif_orientation_bytes(7, 1, b"\x06")),
        ("exif_orientation_600", exif_orientation_bytes(3, 1, (600).to_bytes(2, "little"))),
    ):
        e = _write(e_dir / f"{name}.jpg", _jpeg_bytes(edited, exif=raw))
        pair(name, e, "ok", f"EXIF Orientation of the wrong type ({name})")
    e = _write(e_dir / "edit.heic", heic_bytes(edited))
    pair("heic_edit", e, "ok", "the edit as HEIC")
    e = _write(e_dir / "edit.avif", edited, format="AVIF", quality=90)
    pair("avif_edit", e, "ok", "the edit as AVIF")
    e = _write(e_dir / "edit.dng", dng_of_photo(np.asarray(edited)))
    pair("dng_edit", e, "ok", "the edit as a camera RAW (DNG)")
    return cases


@dataclass(frozen=True)
class ModelCase:
    name: str
    path: Path
    error: str  # "unsafe" (UnsafeCheckpointError) or "model" (ModelError)
    match: str  # regex the message must match
    names: Path  # the file or folder the message must name
    note: str = ""


def _copy_model(src: Path, dst: Path) -> Path:
    """A copy of a model folder whose weights are hard links (JSON files are copied)."""
    import os
    import shutil

    def link_weights(s, d):
        if str(s).endswith(".safetensors"):
            try:
                os.link(s, d)
                return d
            except OSError:
                pass
        return shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_weights)
    return dst


def _replace_json(path: Path, data) -> None:
    """Write over path without touching the inode it may share with the source model."""
    import json

    path.unlink(missing_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")


def _edit_json(path: Path, **changes) -> None:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    _replace_json(path, data)


def _shard_to_pickle(folder: Path, stem: str, index_name: str) -> None:
    """Move a component's weights into a pickle shard named by a *safetensors* index."""
    import torch
    from safetensors.torch import load_file

    st = folder / f"{stem}.safetensors"
    tensors = load_file(str(st))
    shard = f"{stem}-00001-of-00001.bin"
    torch.save(tensors, folder / shard)
    st.unlink()
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    _replace_json(
        folder / index_name,
        {"metadata": {"total_size": size}, "weight_map": {k: shard for k in tensors}},
    )


def build_model_corpus(tiny_sd_dir: str | Path, root: str | Path) -> list[ModelCase]:
    """Issue 11's hostile and malformed model folders, each a copy of the tiny SD model."""
    import os

    src, root = Path(tiny_sd_dir), Path(root)
    cases: list[ModelCase] = []

    def case(name, error, match, *, names=None, note=""):
        path = root / name
        cases.append(ModelCase(name, path, error, match, names or path, note))

    unet_stem, text_stem = "diffusion_pytorch_model", "model"
    m = _copy_model(src, root / "index_to_bin_unet")
    _shard_to_pickle(m / "unet", unet_stem, f"{unet_stem}.safetensors.index.json")
    case("index_to_bin_unet", "unsafe", "pickle",
         names=m / "unet" / f"{unet_stem}.safetensors.index.json")  # fmt: skip
    m = _copy_model(src, root / "index_to_bin_text_encoder")
    _shard_to_pickle(m / "text_encoder", text_stem, f"{text_stem}.safetensors.index.json")
    case("index_to_bin_text_encoder", "unsafe", "pickle",
         names=m / "text_encoder" / f"{text_stem}.safetensors.index.json")  # fmt: skip
    m = _copy_model(src, root / "variant_index_to_bin")
    _shard_to_pickle(m / "unet", unet_stem, f"{unet_stem}.safetensors.index.fp16.json")
    case("variant_index_to_bin", "unsafe", "pickle",
         names=m / "unet" / f"{unet_stem}.safetensors.index.fp16.json")  # fmt: skip
    m = _copy_model(src, root / "index_outside_folder")
    index = m / "unet" / f"{unet_stem}.safetensors.index.json"
    _replace_json(index, {"weight_map": {"conv_in.weight": "../vae/x.safetensors"}})
    case("index_outside_folder", "model", "not a file in", names=index)
    m = _copy_model(src, root / "index_without_weight_map")
    index = m / "text_encoder" / f"{text_stem}.safetensors.index.json"
    _replace_json(index, {"metadata": {}})
    case("index_without_weight_map", "model", "no weight_map", names=index)

    for name, data, match in (
        ("model_index_list", ["unet", "vae"], "JSON list, not an object"),
        ("model_index_not_json", "{this is not json", "Cannot read"),
        ("model_index_number", "42", "JSON int, not an object"),
        ("model_index_deep", "[" * 100_000 + "]" * 100_000, "nested too deeply|Cannot read"),
    ):
        m = _copy_model(src, root / name)
        _replace_json(m / "model_index.json", data)
        case(name, "model", match, names=m / "model_index.json")
    m = _copy_model(src, root / "model_index_latin1")
    (m / "model_index.json").unlink()
    (m / "model_index.json").write_bytes(
        '{"_class_name": "Stable Diffusion café"}'.encode("latin-1")
    )
    case("model_index_latin1", "model", "Cannot read", names=m / "model_index.json")
    for name, rel in (
        ("unet_config_list", "unet/config.json"),
        ("scheduler_config_list", "scheduler/scheduler_config.json"),
        ("text_encoder_config_list", "text_encoder/config.json"),
    ):
        m = _copy_model(src, root / name)
        _replace_json(m / rel, [1, 2, 3])
        case(name, "model", "JSON list, not an object", names=m / rel)
    scheduler = "scheduler/scheduler_config.json"
    for name, changes, match in (
        ("timesteps_zero", {"num_train_timesteps": 0}, "num_train_timesteps"),
        ("timesteps_negative", {"num_train_timesteps": -5}, "num_train_timesteps"),
        ("timesteps_text", {"num_train_timesteps": "1000"}, "num_train_timesteps"),
        ("timesteps_float", {"num_train_timesteps": 1000.5}, "num_train_timesteps"),
        ("timesteps_huge", {"num_train_timesteps": 10**12}, "num_train_timesteps"),
        ("beta_end_above_one", {"beta_end": 2.0}, "beta_end"),
        ("beta_start_text", {"beta_start": "small"}, "beta_start"),
        ("beta_schedule_unknown", {"beta_schedule": "cosine-ish"}, "scheduler"),
        ("trained_betas_one", {"trained_betas": [1.0] * 1000}, "noise schedule|scheduler"),
    ):
        m = _copy_model(src, root / name)
        _edit_json(m / scheduler, **changes)
        case(name, "model", match, names=m / scheduler)

    loop = root / "symlink_loop"
    os.symlink(loop.name, loop)
    case("symlink_loop", "model", "symbolic link loop")
    return cases
