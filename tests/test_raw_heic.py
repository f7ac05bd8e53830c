"""Camera RAW (LibRaw) and HEIC/AVIF originals through our opener (engine.io.images,
engine.io.camera): developed colours, 16 bits, orientation, metadata, hostile names, and
classic restores from the command line.

Tolerances, and why:
- RAW patches: within RAW_TOLERANCE = 64 of 65535 (0.1 %, a quarter of one 8-bit level)
  of the sRGB encoding of the scene, measured away from the patch edges (demosaicking
  blends across an edge). What is left is quantisation: the 14-bit sensor values, the
  matrices stored as rationals over 10000, LibRaw's integer arithmetic; measured: <= 5.
  A development that ignores the as-shot white balance is off by thousands.
- HEIC/AVIF (lossy HEVC/AV1, 4:2:0 chroma): mean error <= 2 and max <= 12 levels of 255
  on a smooth test image at quality 90 (measured: mean < 1, max 3-4).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from engine.errors import InputError
from engine.io.images import open_image, read_deep_rgb, read_mask, read_rgb
from tests.fixtures.camera_files import (
    PATCHES,
    chart,
    declare_dng_size,
    declare_heif_size,
    dng_bytes,
    dng_of_photo,
    expected_srgb16,
)

RAW_TOLERANCE = 64
PATCH = 24  # chart() patch size
MARGIN = 6  # pixels of each patch's edge left out (demosaicking blends across edges)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _patch_means(pixels: np.ndarray) -> list[np.ndarray]:
    means = []
    for index in range(len(PATCHES)):
        r, c = divmod(index, 3)
        y0, x0 = r * PATCH + MARGIN, c * PATCH + MARGIN
        block = pixels[y0 : y0 + PATCH - 2 * MARGIN, x0 : x0 + PATCH - 2 * MARGIN]
        means.append(block.reshape(-1, 3).astype(np.float64))
    return means


# --- RAW ---------------------------------------------------------------------------------
def test_dng_develops_to_the_known_scene_in_16_bits(tmp_path):
    path = _write(tmp_path / "chart.dng", dng_bytes(chart(PATCH)))
    pixels = read_deep_rgb(path)
    assert pixels.dtype == np.uint16 and pixels.shape == (2 * PATCH, 3 * PATCH, 3)
    for colour, block in zip(PATCHES, _patch_means(pixels), strict=True):
        error = np.abs(block - expected_srgb16(colour)).max()
        assert error <= RAW_TOLERANCE, (colour, block.mean(axis=0), expected_srgb16(colour))
    corner = pixels[:2, :2].astype(int)  # saturated: white, not pink (clipped channels)
    assert (corner >= 65535 - RAW_TOLERANCE).all()
    # the 8-bit pixels the pipeline works on are the 16-bit ones, rounded (as a 16-bit TIFF)
    eight = read_rgb(path)
    assert eight.dtype == np.uint8
    assert np.array_equal(eight, np.clip(pixels / 257.0 + 0.5, 0, 255).astype(np.uint8))
    # 16 bits, not 8 bits scaled up: values between the 8-bit steps (k * 257)
    assert np.any(pixels % 257 != 0)


def test_the_embedded_preview_is_never_the_image(tmp_path):
    magenta = np.zeros((36, 54, 3), np.uint8)
    magenta[:] = (255, 0, 255)
    path = _write(tmp_path / "with_preview.dng", dng_bytes(chart(PATCH), preview=magenta))
    with open_image(path) as image:
        assert image.size == (3 * PATCH, 2 * PATCH)  # the sensor's, not the preview's 54x36
    pixels = read_deep_rgb(path)
    red = _patch_means(pixels)[0]
    assert np.abs(red - expected_srgb16(PATCHES[0])).max() <= RAW_TOLERANCE


def test_orientation_is_applied_clockwise_for_6_and_anticlockwise_for_8(tmp_path):
    scene = chart(PATCH)
    upright = read_deep_rgb(_write(tmp_path / "o1.dng", dng_bytes(scene, orientation=1)))
    six = read_deep_rgb(_write(tmp_path / "o6.dng", dng_bytes(scene, orientation=6)))
    eight = read_deep_rgb(_write(tmp_path / "o8.dng", dng_bytes(scene, orientation=8)))
    assert np.array_equal(six, np.rot90(upright, k=-1))  # 6: turn clockwise to view
    assert np.array_equal(eight, np.rot90(upright, k=1))  # 8: anticlockwise
    assert not np.array_equal(six, eight)
    with open_image(tmp_path / "o6.dng") as image:
        assert image.size == (2 * PATCH, 3 * PATCH)  # upright size before decoding
        assert image.getexif().get(0x0112) is None  # pixels upright: nothing to apply again
    assert read_rgb(tmp_path / "o6.dng").shape == (3 * PATCH, 2 * PATCH, 3)


def test_non_square_pixels_are_counted_as_developed_before_decoding(tmp_path):
    path = _write(tmp_path / "wide.dng", dng_bytes(chart(PATCH), pixel_aspect=2.0))
    with open_image(path) as image:
        declared = image.size
    assert declared == (6 * PATCH, 2 * PATCH)  # LibRaw stretches each pixel to two
    assert read_rgb(path).shape[1::-1] == declared


def test_raw_metadata_camera_date_and_srgb_profile(tmp_path):
    path = _write(
        tmp_path / "meta.dng",
        dng_bytes(chart(PATCH), make="Canon", model="EOS R5", date="2026:05:04 10:20:30"),
    )
    with open_image(path) as image:
        exif = image.getexif()
        assert (exif.get(0x010F), exif.get(0x0110)) == ("Canon", "EOS R5")
        assert exif.get(0x0132) == "2026:05:04 10:20:30"
        assert exif.get_ifd(0x8769).get(0x9003) == "2026:05:04 10:20:30"
        profile = image.info["icc_profile"]
    assert profile[16:20] == b"RGB " and _profile_name(profile) == "sRGB built-in"


def _profile_name(profile: bytes) -> str:
    import io

    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()


def test_a_raw_edit_gives_its_metadata_to_the_result_as_a_jpeg_does(tmp_path):
    from engine.io.export import save_result

    path = _write(tmp_path / "e.dng", dng_bytes(chart(PATCH), make="Nikon", model="Z 8"))
    image = read_rgb(path)
    out = save_result(tmp_path / "r.png", image, reference_path=path)
    with Image.open(out) as result:
        assert result.getexif().get(0x0110) == "Z 8"
        assert _profile_name(result.info["icc_profile"]) == "sRGB built-in"


def test_metadata_that_cannot_be_read_never_stops_the_photo(tmp_path, monkeypatch):
    import engine.io.camera

    def broken(data, raw):
        raise TypeError("an odd vendor value")

    monkeypatch.setattr(engine.io.camera, "raw_exif", broken)
    path = _write(tmp_path / "odd.dng", dng_bytes(chart(PATCH)))
    with open_image(path) as image:
        assert "exif" not in image.info
    assert read_rgb(path).shape == (2 * PATCH, 3 * PATCH, 3)


def test_read_mask_of_a_raw(tmp_path):
    path = _write(tmp_path / "m.dng", dng_bytes(chart(PATCH)))
    mask = read_mask(path)
    assert mask.shape == (2 * PATCH, 3 * PATCH) and mask.dtype == np.uint8


# --- HEIC / AVIF -------------------------------------------------------------------------
def _smooth_image(height: int = 64, width: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 2 + 20, yy * 3 + 10, 128 + 0 * xx], axis=-1).astype(np.uint8)


def _exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    exif[0x0132] = "2026:06:07 08:09:10"
    exif.get_ifd(0x8769)[0xA434] = "iPhone 15 Pro back camera"
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize(("fmt", "suffix"), [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heic_and_avif_round_trip_with_exif_and_icc(tmp_path, fmt, suffix):
    known = _smooth_image()
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(known).save(path, format=fmt, quality=90, exif=_exif(), icc_profile=SRGB_ICC)
    decoded = read_rgb(path)
    assert decoded.shape == known.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(int) - known.astype(int))
    assert error.mean() <= 2 and error.max() <= 12, (error.mean(), error.max())
    with open_image(path) as image:
        assert image.format == fmt
        assert image.getexif().get(0x0110) == "iPhone 15 Pro"
        assert image.getexif().get_ifd(0x8769).get(0xA434) == "iPhone 15 Pro back camera"
        assert image.info.get("icc_profile") == SRGB_ICC


def test_a_heic_edit_gives_its_exif_and_icc_to_the_result(tmp_path):
    from engine.io.export import save_result

    path = tmp_path / "edit.heic"
    Image.fromarray(_smooth_image()).save(
        path, format="HEIF", quality=90, exif=_exif(), icc_profile=SRGB_ICC
    )
    out = save_result(tmp_path / "r.jpg", read_rgb(path), reference_path=path)
    with Image.open(out) as result:
        assert result.getexif().get(0x0110) == "iPhone 15 Pro"
        assert result.info.get("icc_profile") == SRGB_ICC


def test_heic_orientation_is_applied_once(tmp_path):
    known = _smooth_image()
    path = tmp_path / "turned.heic"
    Image.fromarray(known).save(path, format="HEIF", quality=90, exif=_exif(orientation=6))
    decoded = read_rgb(path)
    assert decoded.shape == (96, 64, 3)
    error = np.abs(decoded.astype(int) - np.rot90(known, k=-1).astype(int))
    assert error.mean() <= 2


def test_10_bit_heic_keeps_more_than_8_bits(tmp_path):
    import pillow_heif

    ramp = np.linspace(0, 65535, 1024).astype(np.uint16)  # 1024 greys: 10-bit steps
    pixels = np.repeat(np.tile(ramp, (32, 1))[:, :, None], 3, axis=2)
    heif = pillow_heif.from_bytes("RGB;16", (1024, 32), pixels.tobytes())
    path = tmp_path / "deep.heic"
    heif.save(path, quality=95)
    deep = read_deep_rgb(path)
    assert deep.dtype == np.uint16 and deep.shape == pixels.shape
    assert len(np.unique(deep[16, :, 1])) > 256  # 8 bits could hold at most 256 greys
    assert np.abs(deep.astype(int) - pixels.astype(int)).mean() <= 4 * 64  # 4 10-bit levels
    assert read_rgb(path).dtype == np.uint8
    # transparent areas are white, as read_rgb makes them
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 65535, np.uint16)])
    rgba[:, :100, 3] = 0
    pillow_heif.from_bytes("RGBA;16", (1024, 32), rgba.tobytes()).save(
        tmp_path / "alpha.heic", quality=95
    )
    with_alpha = read_deep_rgb(tmp_path / "alpha.heic")
    assert with_alpha.shape == pixels.shape and (with_alpha[:, :90] > 64000).all()
    # an 8-bit file has no deeper pixels to give
    Image.fromarray(_smooth_image()).save(tmp_path / "eight.heic", format="HEIF", quality=90)
    assert read_deep_rgb(tmp_path / "eight.heic") is None


# --- hostile -----------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_text_file_named_cr2_is_refused_naming_it(tmp_path):
    path = tmp_path / "IMG_0001.CR2"
    path.write_text("these are the notes of the shoot, not a photo\n" * 20)
    before = _sha(path)
    for reader in (read_rgb, read_deep_rgb):
        with pytest.raises(InputError, match="not a camera RAW file.*it is text") as info:
            reader(path)
        assert str(path) in str(info.value)
    assert _sha(path) == before


def test_a_png_named_heic_is_refused_saying_what_it_is(tmp_path):
    """Refused, not opened by content: the name promises the phone's original, and a
    renamed or converted copy is not taken for it silently (issue 22)."""
    path = tmp_path / "IMG_0002.HEIC"
    Image.fromarray(_smooth_image()).save(path, format="PNG")
    with pytest.raises(InputError, match="not a HEIC/HEIF image.*it is a PNG file") as info:
        read_rgb(path)
    assert str(path) in str(info.value)
    # the same bytes under their own name open
    (tmp_path / "IMG_0002.png").write_bytes(path.read_bytes())
    assert read_rgb(tmp_path / "IMG_0002.png").shape == (64, 96, 3)


def test_a_png_named_cr2_is_refused_saying_what_it_is(tmp_path):
    path = tmp_path / "IMG_0003.cr2"
    Image.fromarray(_smooth_image()).save(path, format="PNG")
    with pytest.raises(InputError, match="not a camera RAW file.*it is a PNG image"):
        read_rgb(path)


def test_a_dng_under_a_tiff_name_is_refused_not_read_as_its_preview(tmp_path):
    preview = np.full((36, 54, 3), 200, np.uint8)
    path = _write(tmp_path / "scan.tif", dng_bytes(chart(PATCH), preview=preview))
    with pytest.raises(InputError, match="DNG camera RAW file under a .tif name"):
        read_rgb(path)


def test_huge_declared_raw_is_refused_before_decoding(tmp_path, monkeypatch):
    import engine.io.camera

    def no_decoding(*args, **kwargs):
        raise AssertionError("a RAW over the pixel limit was decoded")

    # rawpy's type cannot be patched: our one call into LibRaw's development is
    monkeypatch.setattr(engine.io.camera, "_develop", no_decoding)
    data = declare_dng_size(dng_bytes(chart(PATCH)), 20000, 15000)
    path = _write(tmp_path / "huge.dng", data)
    with pytest.raises(InputError, match=r"20000x15000.*300 megapixels.*not decoded"):
        read_rgb(path)


def test_huge_declared_heic_is_refused_before_decoding(tmp_path, monkeypatch):
    from pillow_heif import HeifImageFile

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("a HEIC over the pixel limit was decoded")

    monkeypatch.setattr(HeifImageFile, "load", no_decoding)
    Image.fromarray(_smooth_image()).save(tmp_path / "small.heic", format="HEIF", quality=50)
    data = declare_heif_size((tmp_path / "small.heic").read_bytes(), 20000, 15000)
    path = _write(tmp_path / "huge.heic", data)
    with pytest.raises(InputError, match=r"too large.*20000x15000"):
        read_rgb(path)


# --- batch pairing -----------------------------------------------------------------------
def test_raw_originals_pair_with_png_and_jpeg_edits_by_name(tmp_path):
    from engine.io.folders import image_files, pair_by_name

    originals, edits = tmp_path / "o", tmp_path / "e"
    originals.mkdir(), edits.mkdir()
    for name in ("IMG_0001.CR2", "IMG_0002.nef", "IMG_0003.HEIC", "IMG_0004.dng"):
        (originals / name).write_bytes(b"x")
    (originals / "IMG_0001.JPG").write_bytes(b"x")  # RAW + JPEG shooting
    (originals / "notes.txt").write_text("x")
    for name in ("IMG_0001_edited.png", "IMG_0002.jpg", "IMG_0003.webp", "IMG_0004.avif"):
        (edits / name).write_bytes(b"x")
    ignored: list[Path] = []
    pairing = pair_by_name(image_files(originals, ignored), image_files(edits))
    pairs = {o.name: e.name for o, e in pairing.pairs}
    assert pairs == {
        "IMG_0001.CR2": "IMG_0001_edited.png",
        "IMG_0002.nef": "IMG_0002.jpg",
        "IMG_0003.HEIC": "IMG_0003.webp",
        "IMG_0004.dng": "IMG_0004.avif",
    }
    assert not pairing.ambiguous and not pairing.unpaired_originals
    assert [p.name for p in ignored] == ["notes.txt"]
    from engine.batch.plan import rule_text

    assert "the RAW is the original" in rule_text() and "cr3" in rule_text()


def test_two_raws_of_one_name_stay_ambiguous(tmp_path):
    from engine.io.folders import pair_by_name

    originals = [tmp_path / "a.cr2", tmp_path / "a.dng"]
    pairing = pair_by_name(originals, [tmp_path / "a.png"])
    assert not pairing.pairs and pairing.ambiguous


# --- classic restores from the command line ----------------------------------------------
def _grace() -> np.ndarray:
    from tests.helpers import sample_photo

    with Image.open(sample_photo("grace_hopper")) as photo:
        return np.asarray(photo.convert("RGB"))


def _brighter(image: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(int) + 20, 0, 255).astype(np.uint8)


def _restore(tmp_path, original: Path, edited: Path, capsys) -> dict:
    from engine.cli.commands import EXIT_OK, main

    out = tmp_path / "restored.png"
    argv = ["restore", "--original", str(original), "--edited", str(edited), "--out",
            str(out), "--mode", "classic", "--face-backend", "dlib", "--faces", "all"]  # fmt: skip
    hashes = {p: _sha(p) for p in (original, edited)}
    code = main(argv)
    assert code == EXIT_OK, capsys.readouterr().err
    assert {p: _sha(p) for p in (original, edited)} == hashes  # inputs never modified
    assert read_rgb(out).shape == read_rgb(edited).shape
    return json.loads((tmp_path / "restored.png.json").read_text())


def test_classic_restore_raw_original_png_edit(tmp_path, capsys):
    photo = _grace()
    original = _write(tmp_path / "portrait.dng", dng_of_photo(photo))
    developed = read_rgb(original)
    # the mosaicked photo develops back to itself (demosaicking softens edges a little)
    crop = photo[: developed.shape[0], : developed.shape[1]].astype(int)
    assert np.abs(developed.astype(int) - crop).mean() <= 4
    edited = tmp_path / "portrait_edited.png"
    Image.fromarray(_brighter(developed)).save(edited)
    sidecar = _restore(tmp_path, original, edited, capsys)
    assert sidecar["mode"] == "classic" and len(sidecar["faces"]) == 1


def test_classic_restore_heic_original_webp_edit(tmp_path, capsys):
    photo = _grace()
    original = tmp_path / "portrait.heic"
    Image.fromarray(photo).save(original, format="HEIF", quality=90)
    edited = tmp_path / "portrait_edited.webp"
    Image.fromarray(_brighter(photo)).save(edited, format="WEBP", quality=90)
    sidecar = _restore(tmp_path, original, edited, capsys)
    assert sidecar["mode"] == "classic" and len(sidecar["faces"]) == 1


# --- the app -----------------------------------------------------------------------------
def test_app_opens_a_raw_original_with_a_png_edit(qtbot, window, photo_pair, tmp_path):
    """The window's own path (FilesController.open_photos): the RAW is developed, faces
    found and paired, the classic preview made, and Open Recent keeps the pair."""
    original_png, edited = photo_pair
    with Image.open(original_png) as photo:
        raw = _write(tmp_path / "IMG_0001.DNG", dng_of_photo(np.asarray(photo.convert("RGB"))))
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(raw, edited)
    qtbot.waitUntil(lambda: window.session.classic_result is not None, timeout=5000)
    assert window.session.original.shape == read_rgb(raw).shape
    assert list(window.face_list.panels) == [0]
    recent = [a.text() for a in window.recent_menu.actions()]
    assert f"IMG_0001.DNG  \u2192  {Path(edited).name}" in recent


def test_app_drops_and_open_dialog_take_raw_heic_and_avif(qapp):
    from PySide6.QtCore import QMimeData, QUrl

    from editedid_desktop.canvas.view import PhotoView
    from editedid_desktop.controllers.files import IMAGE_FILTER

    names = ["/p/IMG_0001.CR2", "/p/b.nef", "/p/c.HEIC", "/p/d.avif", "/p/e.txt", "/p/f.jxl"]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(n) for n in names])
    assert PhotoView.image_paths(mime) == names[:4]  # what the engine cannot open is not taken
    for pattern in ("*.cr2", "*.CR2", "*.nef", "*.NEF", "*.heic", "*.HEIC", "*.avif", "*.dng"):
        assert pattern in IMAGE_FILTER.split("(")[1].rstrip(")").split()


# --- RAW metadata from the containers LibRaw reads but no TIFF reader does ---------------
def _libraw_stand_in(**other):
    """What raw_exif reads of a rawpy.RawPy: .other and .lens (LibRaw's parse)."""
    from types import SimpleNamespace

    values = dict(timestamp=0, artist="", shutter_speed=0, aperture=0, focal_length=0,
                  iso_speed=0) | other  # fmt: skip
    return SimpleNamespace(other=SimpleNamespace(**values), lens=SimpleNamespace(model="", make=""))


def _tiff_of(tags: dict, exif_tags: dict | None = None) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if exif_tags:
        exif.get_ifd(0x8769).update(exif_tags)
    return exif.tobytes()[6:]  # without "Exif\0\0": a bare TIFF


def _box(kind: bytes, payload: bytes) -> bytes:
    import struct

    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _parsed(data: bytes, raw) -> Image.Exif:
    from engine.io.camera import raw_exif

    exif = Image.Exif()
    exif.load(raw_exif(data, raw))
    return exif


def test_cr3_metadata_from_its_cmt_boxes():
    ifd0 = _tiff_of({0x010F: "Canon", 0x0110: "Canon EOS R6", 0x0112: 8})
    exif_ifd = _tiff_of({0x9003: "2026:01:02 03:04:05", 0xA434: "RF50mm F1.8 STM", 0x927C: b"x"})
    data = _box(b"ftyp", b"crx \0\0\0\1") + _box(
        b"moov", _box(b"CMT1", ifd0) + _box(b"CMT2", exif_ifd)
    )
    exif = _parsed(data + b"\0" * 4096, _libraw_stand_in(iso_speed=800))
    sub = exif.get_ifd(0x8769)
    assert (exif.get(0x010F), exif.get(0x0110)) == ("Canon", "Canon EOS R6")
    assert 0x0112 not in exif  # LibRaw turned the pixels already
    assert sub.get(0x9003) == "2026:01:02 03:04:05" and sub.get(0xA434) == "RF50mm F1.8 STM"
    assert 0x927C not in sub and sub.get(0x8827) == 800  # no maker notes; ISO from LibRaw


def test_raf_metadata_from_its_embedded_jpeg():
    import struct

    tiff = _tiff_of({0x010F: "FUJIFILM", 0x0110: "X-T5"}, {0x9003: "2026:02:03 04:05:06"})
    jpeg = b"\xff\xd8\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\0\0" + tiff
    header = b"FUJIFILMCCD-RAW 0201FF383501X-T5".ljust(84, b"\0")
    data = header + struct.pack(">II", 100, len(jpeg)) + b"\0" * 8 + jpeg + b"\0" * 4096
    exif = _parsed(data, _libraw_stand_in(aperture=2.8, shutter_speed=1 / 250))
    sub = exif.get_ifd(0x8769)
    assert (exif.get(0x010F), exif.get(0x0110)) == ("FUJIFILM", "X-T5")
    assert sub.get(0x9003) == "2026:02:03 04:05:06"
    assert float(sub.get(0x829D)) == pytest.approx(2.8) and float(sub.get(0x829A)) == 0.004


def test_libraw_fills_what_the_file_does_not_say():
    from datetime import datetime

    raw = _libraw_stand_in(timestamp=datetime(2026, 3, 4, 5, 6, 7), artist="A. Photographer ",
                           focal_length=85.0)  # fmt: skip
    raw.lens.model, raw.lens.make = "FE 85mm F1.4 GM", "Sony"
    exif = _parsed(b"\0" * 64, raw)  # no container we know: LibRaw alone
    sub = exif.get_ifd(0x8769)
    assert sub.get(0x9003) == "2026:03:04 05:06:07" and exif.get(0x0132) == "2026:03:04 05:06:07"
    assert exif.get(0x013B) == "A. Photographer" and float(sub.get(0x920A)) == 85.0
    assert (sub.get(0xA434), sub.get(0xA433)) == ("FE 85mm F1.4 GM", "Sony")
