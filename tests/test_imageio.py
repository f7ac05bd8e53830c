"""Reading every kind of input photo correctly, and writing atomically."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.io.images import read_mask, read_rgb, write_image_atomic
from tests.helpers import sample_photo


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_grayscale_cmyk_palette_and_alpha_become_rgb(tmp_path, photo):
    cases = {
        "gray.png": Image.fromarray(photo).convert("L"),
        "cmyk.jpg": Image.fromarray(photo).convert("CMYK"),
        "palette.png": Image.fromarray(photo).convert("P"),
        "alpha.png": Image.fromarray(photo).convert("RGBA"),
    }
    for name, image in cases.items():
        path = tmp_path / name
        image.save(path)
        before = _digest(path)
        rgb = read_rgb(path)
        assert rgb.shape == photo.shape and rgb.dtype == np.uint8, name
        assert np.abs(rgb.astype(int) - photo.astype(int)).mean() < 40, name
        assert _digest(path) == before  # never modified


def test_transparent_pixels_composite_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = read_rgb(path)
    assert tuple(rgb[0, 0]) == (200, 0, 0) and tuple(rgb[7, 7]) == (255, 255, 255)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(256 * 4, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # uint16 -> mode I;16
    rgb = read_rgb(path)
    assert rgb.max() > 200 and rgb.min() < 10  # full range kept, not clipped to white


# What a viewer shows for each EXIF Orientation value (TIFF/EXIF 2.3, tag 0x0112): the
# stored pixels flipped/rotated. Written out here, not taken from Pillow, so the loader is
# checked against the standard rather than against itself. np.rot90(k=-1) is clockwise.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: np.swapaxes(a, 0, 1),  # transposed (main diagonal)
    6: lambda a: np.rot90(a, k=-1),  # stored 90 anticlockwise: turn it 90 clockwise
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),  # transversed (anti-diagonal)
    8: lambda a: np.rot90(a, k=1),  # stored 90 clockwise: turn it 90 anticlockwise
}


def _asymmetric_grid() -> np.ndarray:
    """24x32 RGB: 3x4 flat 8x8 blocks (JPEG's block size), each a different colour, so
    every flip or rotation of it is a different picture."""
    rows, cols = np.mgrid[0:3, 0:4]
    colours = np.stack([40 + 60 * cols, 30 + 90 * rows, 200 - 40 * cols + 15 * rows], axis=-1)
    return np.repeat(np.repeat(colours.astype(np.uint8), 8, axis=0), 8, axis=1)


def test_the_orientation_pattern_tells_all_eight_apart():
    grid = _asymmetric_grid().astype(int)
    views = {n: UPRIGHT[n](grid) for n in UPRIGHT}
    for a in views:
        for b in views:
            if a < b and views[a].shape == views[b].shape:
                assert np.abs(views[a] - views[b]).max() > 50, (a, b)


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_pixels(tmp_path, orientation, ext):
    grid = _asymmetric_grid()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{ext}"
    # lossless except JPEG; JPEG at 4:4:4 keeps flat 8x8 blocks within 1-2 levels
    options = {"jpg": {"quality": 95, "subsampling": 0}, "webp": {"lossless": True}}
    Image.fromarray(grid).save(path, exif=exif, **options.get(ext, {}))
    rgb = read_rgb(path)
    want = UPRIGHT[orientation](grid)
    assert rgb.shape == want.shape
    diff = np.abs(rgb.astype(int) - want.astype(int)).max()
    assert diff <= (3 if ext == "jpg" else 0), diff


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_exif_orientation_applies_to_masks(tmp_path, orientation):
    """A mask painted on the displayed photo is read in the same upright frame."""
    mask = np.zeros((6, 10), np.uint8)
    mask[0, :3] = 255  # a stroke along the stored top-left edge
    mask[1:4, 8] = 128
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(mask).save(tmp_path / "m.png", exif=exif)
    assert np.array_equal(read_mask(tmp_path / "m.png"), UPRIGHT[orientation](mask))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"hello, this is text", "not a readable image"),
    ],
)
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"photo.jpg: {message}"):
        read_rgb(path)


def test_truncated_jpeg_is_named(tmp_path, photo):
    path = tmp_path / "cut.jpg"
    Image.fromarray(photo).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InputError, match="cut.jpg: .*(damaged|truncated|not a readable)"):
        read_rgb(path)


def test_missing_file_and_mask_reading(tmp_path):
    with pytest.raises(InputError, match="nope.png: file not found"):
        read_rgb(tmp_path / "nope.png")
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 3:9] = 255
    Image.fromarray(mask).convert("RGB").save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), mask)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image_atomic(target, np.zeros((4, 4, 3), np.uint8))
    before = _digest(target)

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(InputError, match="disk is full"):
        write_image_atomic(target, np.ones((4, 4, 3), np.uint8))
    assert _digest(target) == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_text_and_sha256(tmp_path):
    import hashlib

    from engine.io.files import atomic_write_text, sha256_file

    path = atomic_write_text(tmp_path / "notes.json", '{"a": 1}\n')
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n'
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.json"]  # no temp file left


# -- 32-bit integer and floating-point grey images (issue 23) ------------------------------
def _ramp(top: float, dtype) -> np.ndarray:
    """16x32 left-to-right ramp 0..top: a dark and a bright end that must stay so."""
    return np.tile(np.linspace(0, top, 32), (16, 1)).astype(dtype)


@pytest.mark.parametrize(
    "values, dtype",
    [
        (1.0, np.float32),  # the 0..1 float convention
        (255.0, np.float32),  # float holding 8-bit values
        (65535.0, np.float32),
        (255, np.int32),
        (65535, np.int32),  # a 16-bit range in a 32-bit integer TIFF
        (2**31 - 1, np.int32),
    ],
)
def test_deep_grey_tiffs_are_scaled_to_their_range(tmp_path, values, dtype):
    path = tmp_path / "deep.tif"
    Image.fromarray(_ramp(values, dtype)).save(path)
    assert Image.open(path).mode == ("F" if dtype == np.float32 else "I")
    rgb = read_rgb(path)
    want = np.tile(np.linspace(0, 255, 32), (16, 1))
    assert np.abs(rgb[..., 0].astype(float) - want).max() <= 1.0  # not all black or white
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_a_float_image_with_nan_is_refused_by_name(tmp_path):
    array = _ramp(1.0, np.float32)
    array[3, 4] = np.nan
    path = tmp_path / "hdr-export.tif"
    Image.fromarray(array).save(path)
    with pytest.raises(InputError, match="hdr-export.tif: a floating-point image with NaN"):
        read_rgb(path)


def test_a_refused_file_is_told_every_type_we_read(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"hello, this is text")
    with pytest.raises(InputError) as info:
        read_rgb(path)
    for kind in ("PNG", "JPEG", "TIFF", "WebP", "BMP", "HEIC", "AVIF", "camera RAW", "CR3"):
        assert kind in str(info.value)


def test_a_heic_under_a_jpeg_name_opens_by_its_content(tmp_path, photo):
    """The classic names keep their rule (a PNG named .jpg opens: AI tools do that); only
    a RAW, HEIC or AVIF name must match its content (tests/test_raw_heic.py)."""
    from tests.fixtures.camera_files import heic_bytes

    path = tmp_path / "from_phone.jpg"
    path.write_bytes(heic_bytes(Image.fromarray(photo), quality=95))
    decoded = read_rgb(path)
    assert decoded.shape == photo.shape
    assert np.abs(decoded.astype(int) - photo.astype(int)).mean() <= 4
