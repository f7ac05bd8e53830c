"""Hostile and careless image files (issue 11): only our decoders, limits read from the
header before decoding, odd EXIF types, special files, 16-bit alpha and dark 16-bit grey.
Every refusal is an InputError naming the file; inputs are never modified.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageFile

from engine.errors import InputError
from engine.io.export import estimate_output_bytes, save_result
from engine.io.images import MAX_IMAGE_PIXELS, open_image, read_mask, read_rgb

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
    b"newpath 0 0 moveto 64 64 lineto stroke\nshowpage\n%%EOF\n"
)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Record (and stop) any use of Pillow's PostScript reader or Ghostscript."""
    calls: list[str] = []

    def refuse(name):
        def fail(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} reached")

        return fail

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse("EpsImageFile._open"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", refuse("Ghostscript"))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", refuse("has_ghostscript"))
    return calls


# --- only our decoders ---------------------------------------------------------------
@pytest.mark.parametrize("reader", [read_rgb, read_mask])
def test_postscript_named_jpg_is_refused_without_ghostscript(tmp_path, no_ghostscript, reader):
    path = tmp_path / "client photo.jpg"
    path.write_bytes(EPS)
    with pytest.raises(InputError, match=r"client photo\.jpg: not a readable image"):
        reader(path)
    assert no_ghostscript == []
    assert path.read_bytes() == EPS


def test_postscript_reference_never_reaches_ghostscript_at_export(tmp_path, no_ghostscript):
    ref = tmp_path / "edited.jpg"
    ref.write_bytes(EPS)
    estimate_output_bytes(ref)  # an estimate: no error, but no decoder either
    with pytest.raises(InputError, match=r"edited\.jpg"):
        save_result(tmp_path / "r.png", np.zeros((64, 64, 3), np.uint8), reference_path=ref)
    assert no_ghostscript == []
    assert not (tmp_path / "r.png").exists()


def test_selftest_reads_its_photo_with_our_reader(monkeypatch, tmp_path, no_ghostscript):
    from editedid_desktop import selftest

    photo = tmp_path / "t1.jpg"
    photo.write_bytes(EPS)
    monkeypatch.setattr(selftest, "sample_photo", lambda: photo)
    with pytest.raises(InputError, match=r"t1\.jpg: not a readable image"):
        selftest.check_faces({})
    assert no_ghostscript == []


# --- size limits read from the header, before decoding --------------------------------
def _png_header_only(path, width, height):
    """A PNG that declares width x height but holds (almost) no pixel data."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    data += chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def _jpeg_declaring(path, width, height, keep_bytes):
    """A real JPEG whose frame header is rewritten to width x height, then truncated."""
    import io

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((512, 512, 3)) * 255).astype(np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data[:keep_bytes]))
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail if any pixel is decoded."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_truncated_jpeg_declaring_19000_squared_is_refused_before_decoding(tmp_path, no_decoding):
    path = _jpeg_declaring(tmp_path / "bomb.jpg", 19000, 19000, 58_000)
    with pytest.raises(InputError, match=r"bomb\.jpg: the image is too large .*19000x19000"):
        read_rgb(path)


@pytest.mark.parametrize("size", [(15000, 15000), (20000, 20000)])
def test_our_pixel_limit_is_enforced_not_just_warned(tmp_path, no_decoding, size):
    """Pillow only warns between its limit and twice it; we refuse above ours."""
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    path = _png_header_only(tmp_path / "big.png", *size)
    with pytest.raises(InputError, match=r"big\.png: the image is too large"):
        read_rgb(path)
    with pytest.raises(InputError, match=r"big\.png: the image is too large"):
        with open_image(path):
            pass


@pytest.mark.parametrize("size", [(100000, 8), (8, 100000), (6000, 100)])
def test_strips_are_refused_by_name(tmp_path, size):
    path = tmp_path / "strip.png"
    Image.new("RGB", size, (128, 128, 128)).save(path)
    with pytest.raises(InputError, match=r"strip\.png: the image is too narrow"):
        read_rgb(path)


def test_a_wide_panorama_is_still_read(tmp_path):
    path = tmp_path / "pano.png"
    Image.new("RGB", (2000, 100), (10, 20, 30)).save(path)
    assert read_rgb(path).shape == (100, 2000, 3)


# --- EXIF orientation stored with the wrong type ---------------------------------------
def _exif_orientation_raw(tiff_type: int, count: int, value: bytes) -> bytes:
    entry = struct.pack("<HHI", 0x0112, tiff_type, count) + value.ljust(4, b"\0")
    ifd = struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    return b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd


WRONG_TYPE_ORIENTATIONS = {
    "ascii": _exif_orientation_raw(2, 2, b"6\0"),
    "undefined": _exif_orientation_raw(7, 1, b"\x06"),
    "undefined4": _exif_orientation_raw(7, 4, b"\x06\0\0\0"),
    "out_of_range": _exif_orientation_raw(3, 1, struct.pack("<H", 600)),
}


@pytest.mark.parametrize("kind", sorted(WRONG_TYPE_ORIENTATIONS))
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_exif_orientation_of_the_wrong_type_is_ignored_at_read_and_save(tmp_path, kind, ext):
    raw = WRONG_TYPE_ORIENTATIONS[kind]
    ref = tmp_path / f"edited-{kind}{ext}"
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 200
    Image.fromarray(stored).save(ref, exif=raw)
    before = _digest(ref)
    rgb = read_rgb(ref)
    assert rgb.shape == (20, 40, 3)  # not rotated: the value is not an orientation
    out = save_result(tmp_path / f"result-{kind}{ext}", rgb, reference_path=ref)
    with Image.open(out) as image:
        assert image.size == (40, 20)
        assert image.getexif().get(0x0112, 1) in (1, "1", b"\x01")
    assert _digest(ref) == before


# --- special files and permissions -------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"photo\.jpg: is not a regular file"):
        read_rgb(fifo)  # must not block waiting for a writer


def test_unreadable_file_says_permission_not_damaged(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    Image.new("RGB", (16, 16)).save(path)
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(InputError, match=r"locked\.png: cannot be read \(permission") as err:
        read_rgb(path)
    assert "damaged" not in str(err.value)


def test_symlink_loop_is_named(tmp_path):
    loop = tmp_path / "loop.jpg"
    os.symlink(loop, loop)
    with pytest.raises(InputError, match=r"loop\.jpg: is a symbolic link loop"):
        read_rgb(loop)


def test_broken_symlink_is_not_found(tmp_path):
    link = tmp_path / "gone.jpg"
    os.symlink(tmp_path / "missing.jpg", link)
    with pytest.raises(InputError, match=r"gone\.jpg: file not found"):
        read_rgb(link)


# --- 16-bit --------------------------------------------------------------------------------
def test_dark_16bit_grey_is_read_as_16bit(tmp_path):
    """All values <= 255 in a 16-bit file are dark (x/257), not a bright 8-bit image."""
    grey = np.tile(np.arange(0, 256, dtype=np.uint16), (16, 1))  # 0..255 of 65535
    path = tmp_path / "dark16.png"
    Image.fromarray(grey).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    rgb = read_rgb(path)
    assert rgb.max() <= 1  # 255 / 257 rounds to 1
    bright = np.full((16, 16), 65535, np.uint16)
    Image.fromarray(bright).save(path)
    assert read_rgb(path).min() == 255


def test_16bit_rgba_transparent_areas_are_white_as_in_8bit(tmp_path):
    """16-bit RGBA: transparency composited on white in the 16-bit result, as in 8-bit."""
    rgba16 = np.zeros((24, 32, 4), np.uint16)
    rgba16[..., 2] = 40000  # blue where opaque, black underneath the transparent part
    rgba16[:, :16, 3] = 65535
    ref = tmp_path / "edited16.png"
    cv2.imwrite(str(ref), rgba16[..., [2, 1, 0, 3]])  # BGRA for cv2
    rgb8 = read_rgb(ref)
    assert tuple(rgb8[0, 30]) == (255, 255, 255)  # 8-bit read: white
    out8 = save_result(tmp_path / "r.jpg", rgb8, reference_path=ref)
    out16 = save_result(
        tmp_path / "r.png", rgb8, reference_path=ref, changed_alpha=np.zeros((24, 32))
    )
    written = cv2.imread(str(out16), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert written.dtype == np.uint16
    assert (written[:, 16:] == 65535).all()  # transparent: white, as in the 8-bit output
    assert (written[:, :16, 2] == 40000).all()  # opaque reference pixels kept bit-exact
    assert (np.asarray(Image.open(out8))[:, 20:] > 245).all()


# --- the hostile corpus (tests/bad_inputs.py) through the reader and the CLI ---------------
@pytest.fixture(scope="module")
def hostile_corpus(tmp_path_factory):
    from tests.bad_inputs import build_hostile_corpus

    root = tmp_path_factory.mktemp("hostile")
    return root, build_hostile_corpus(root)


def test_hostile_corpus_through_the_cli(hostile_corpus, tmp_path, capsys, no_ghostscript):
    """Each refused file: exit 'input error' with a message naming it, no traceback, no
    output; each unusual-but-valid file restores; no input changed."""
    from engine.cli.commands import EXIT_INPUT, EXIT_OK, main
    from tests.bad_inputs import sha256_tree

    root, cases = hostile_corpus
    before = sha256_tree(root)
    problems = []
    for case in cases:
        out = tmp_path / f"{case.name}.png"
        argv = ["restore", "--original", str(case.original), "--edited", str(case.edited),
                "--out", str(out), "--mode", "classic", "--face-backend", "dlib",
                "--resolution", "128", "--quiet"]  # fmt: skip
        code = main(argv)
        err = capsys.readouterr().err
        if "Traceback" in err:
            problems.append(f"{case.name}: traceback:\n{err}")
        if case.expect == "ok":
            if code != EXIT_OK or not out.is_file():
                problems.append(f"{case.name} ({case.note}): exit {code}: {err.strip()}")
            elif read_rgb(out).shape != read_rgb(case.edited).shape:
                problems.append(f"{case.name}: output size differs from the edited photo")
        else:
            if code != EXIT_INPUT or str(case.bad) not in err:
                problems.append(f"{case.name} ({case.note}): exit {code}: {err.strip()}")
            if out.exists():
                problems.append(f"{case.name}: an output was written for a refused input")
    assert not problems, "\n".join(problems)
    assert no_ghostscript == []
    assert sha256_tree(root) == before


def test_hostile_corpus_16bit_alpha_result_is_white_where_transparent(hostile_corpus, tmp_path):
    from engine.cli.commands import EXIT_OK, main

    _, cases = hostile_corpus
    (case,) = [c for c in cases if c.name == "rgba16_png"]
    out = tmp_path / "r16.png"
    argv = ["restore", "--original", str(case.original), "--edited", str(case.edited),
            "--out", str(out), "--mode", "classic", "--face-backend", "dlib",
            "--resolution", "128", "--quiet"]  # fmt: skip
    assert main(argv) == EXIT_OK
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    assert (written[:, :60] == 65535).all()  # the transparent border: white, not black
