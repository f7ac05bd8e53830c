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


def test_exif_orientation_is_respected(tmp_path, photo):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.fromarray(photo).save(path, exif=exif)
    rgb = read_rgb(path)
    assert rgb.shape == (photo.shape[1], photo.shape[0], 3)


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
