"""engine.io.export: formats, metadata (EXIF/ICC), 16-bit, safety, atomic writes."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from engine.errors import InputError
from engine.io import export
from engine.io.export import (
    OutputFolderError,
    apply_orientation,
    check_output_folder,
    estimate_output_bytes,
    save_result,
)
from tests.helpers import face_crop

ARTIST, DATETIME = 0x013B, 0x0132


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _reference(path, fmt, orientation=1, size=(48, 32)):
    """An 'edited' input with EXIF (artist, date, orientation) and an ICC profile."""
    image = Image.fromarray(face_crop("grace_hopper", 64)).resize(size)
    exif = Image.Exif()
    exif[ARTIST] = "Studio Test"
    exif[DATETIME] = "2024:05:06 07:08:09"
    exif[0x0112] = orientation
    image.save(path, format=fmt, exif=exif.tobytes(), icc_profile=_icc())
    return path


def _upright(path) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_exif_and_icc_survive_and_orientation_is_normalised(tmp_path, ext):
    fmt = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF"}[ext]
    ref = _reference(tmp_path / f"edited{ext}", fmt, orientation=6)
    upright = _upright(ref)  # what the engine hands over: pixels already rotated
    assert upright.shape[:2] == (48, 32)
    (tmp_path / "out").mkdir()
    out = save_result(tmp_path / "out" / f"result{ext}", upright, reference_path=ref)
    with Image.open(out) as image:
        exif = image.getexif()
        assert exif.get(ARTIST) == "Studio Test"
        assert exif.get(DATETIME) == "2024:05:06 07:08:09"
        assert exif.get(0x0112, 1) == 1
        assert image.info.get("icc_profile") == _icc()
        assert image.size == (32, 48)
    # A viewer applying the (normalised) orientation sees the same upright picture.
    assert _upright(out).shape == upright.shape


def test_unknown_extension_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"\.webp"):
        save_result(tmp_path / "r.webp", np.zeros((4, 4, 3), np.uint8))


def test_orientation_helper_matches_pillow():
    base = Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        base.info["exif"] = exif.tobytes()
        tagged = base.copy()
        tagged.info["exif"] = exif.tobytes()
        expected = np.asarray(ImageOps.exif_transpose(tagged))
        assert np.array_equal(apply_orientation(np.asarray(base), orientation), expected)


def _tiff16(path, array16, orientation=1):
    import tifffile

    exif_tags = [(315, "s", 0, "Studio Test", True)]
    if orientation != 1:
        exif_tags.append((274, "H", 1, orientation, True))
    tifffile.imwrite(path, array16, photometric="rgb", iccprofile=_icc(), extratags=exif_tags)
    return path


def test_16bit_tiff_round_trip_keeps_untouched_pixels_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    ref16 = rng.integers(0, 65536, size=(40, 30, 3), dtype=np.uint16)
    ref = _tiff16(tmp_path / "edited.tif", ref16)
    result8 = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    alpha = np.zeros((40, 30), np.float32)
    alpha[10:20, 5:15] = 1.0
    alpha[20:25, 5:15] = 0.5
    notes: list[str] = []
    out = save_result(
        tmp_path / "out.tif", result8, reference_path=ref, changed_alpha=alpha, warnings=notes
    )
    import tifffile

    written = tifffile.imread(out)
    assert written.dtype == np.uint16 and written.shape == ref16.shape
    untouched = alpha == 0
    assert np.array_equal(written[untouched], ref16[untouched])
    assert np.array_equal(written[10:20, 5:15], result8[10:20, 5:15].astype(np.uint16) * 257)
    half = (ref16[20:25, 5:15].astype(np.float64) + result8[20:25, 5:15] * 257.0) / 2
    assert np.abs(written[20:25, 5:15].astype(np.float64) - half).max() <= 1
    with Image.open(out) as image:
        assert image.info.get("icc_profile") == _icc()
        assert image.getexif().get(ARTIST) == "Studio Test"


def test_16bit_png_with_orientation(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    stored = rng.integers(0, 65536, size=(20, 12, 3), dtype=np.uint16)  # as on disk
    ok, png = cv2.imencode(".png", cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[ARTIST] = "Studio Test"
    data = export._png_add_chunks(png.tobytes(), _icc(), exif.tobytes(), None)
    ref = tmp_path / "edited.png"
    ref.write_bytes(data)
    upright16 = np.rot90(stored, k=-1)
    result8 = (upright16 // 257).astype(np.uint8)
    alpha = np.zeros(upright16.shape[:2], np.float32)
    alpha[:3] = 1
    out = save_result(tmp_path / "r.png", result8, reference_path=ref, changed_alpha=alpha)
    written = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert written.dtype == np.uint16
    assert np.array_equal(written[3:], upright16[3:])
    with Image.open(out) as image:
        assert image.getexif().get(0x0112, 1) == 1
        assert image.getexif().get(ARTIST) == "Studio Test"
        assert image.info.get("icc_profile") == _icc()


def test_16bit_input_to_jpeg_is_8bit_with_a_note(tmp_path):
    ref = _tiff16(tmp_path / "e.tif", np.full((8, 8, 3), 1000, np.uint16))
    notes: list[str] = []
    out = save_result(tmp_path / "r.jpg", np.zeros((8, 8, 3), np.uint8), reference_path=ref,
                      warnings=notes)  # fmt: skip
    assert out.exists() and any("8-bit" in n for n in notes)


def test_never_overwrites_inputs_or_existing_files(tmp_path):
    ref = _reference(tmp_path / "edited.jpg", "JPEG")
    original = _reference(tmp_path / "original.png", "PNG")
    before = ref.read_bytes(), original.read_bytes()
    image = _upright(ref)
    with pytest.raises(InputError, match="input"):
        save_result(ref, image, reference_path=ref, overwrite=True)
    with pytest.raises(InputError, match="input"):
        save_result(
            tmp_path / "sub" / ".." / "original.png",
            image,
            overwrite=True,
            protected_paths=(original, ref),
        )
    assert (ref.read_bytes(), original.read_bytes()) == before
    out = save_result(tmp_path / "r.png", image)
    first = out.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        save_result(out, 255 - image)
    assert out.read_bytes() == first
    save_result(out, 255 - image, overwrite=True)
    assert out.read_bytes() != first


def test_read_only_folder_is_reported_before_work(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(export.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputFolderError, match="read-only"):
        check_output_folder(tmp_path, 1000)
    with pytest.raises(OutputFolderError, match="read-only"):
        save_result(tmp_path / "r.png", np.zeros((4, 4, 3), np.uint8))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder_for_real(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputFolderError, match="read-only"):
            check_output_folder(folder, 10)
    finally:
        folder.chmod(0o755)


def test_full_disk_is_reported(tmp_path, monkeypatch):
    class Usage:
        total, used, free = 10**9, 10**9 - 1000, 1000

    monkeypatch.setattr(export.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(OutputFolderError, match="free disk space"):
        check_output_folder(tmp_path, estimate_output_bytes(None, (4000, 3000)))
    with pytest.raises(OutputFolderError, match="does not exist"):
        check_output_folder(tmp_path / "missing")


@pytest.mark.parametrize("failure", ["oserror", "enospc", "interrupt"])
def test_no_temp_file_left_after_a_failed_write(tmp_path, monkeypatch, failure):
    def broken_fsync(fd):
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC if failure == "enospc" else errno.EIO, "simulated")

    monkeypatch.setattr(export.os, "fsync", broken_fsync)
    expected = KeyboardInterrupt if failure == "interrupt" else InputError
    with pytest.raises(expected) as info:
        save_result(tmp_path / "r.jpg", np.zeros((16, 16, 3), np.uint8))
    if failure == "enospc":
        assert "disk is full" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_cmyk_profile_is_not_attached_to_rgb_output(tmp_path):
    cmyk_icc = bytearray(_icc())
    cmyk_icc[16:20] = b"CMYK"
    ref = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 50, 50, 0)).save(ref, icc_profile=bytes(cmyk_icc))
    notes: list[str] = []
    out = save_result(
        tmp_path / "r.jpg", np.zeros((8, 8, 3), np.uint8), reference_path=ref, warnings=notes
    )
    with Image.open(out) as image:
        assert image.mode == "RGB" and not image.info.get("icc_profile")
    assert any("CMYK" in n for n in notes)
