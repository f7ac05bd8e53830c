"""engine.io.export: formats, metadata (EXIF/ICC), 16-bit, safety, atomic writes."""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from engine.errors import InputError
from engine.io import export, sidecars
from engine.io.export import (
    OutputFolderError,
    apply_orientation,
    check_output_folder,
    estimate_output_bytes,
    save_result,
)
from tests.helpers import face_crop

ARTIST, DATETIME = 0x013B, 0x0132


@functools.cache
def _icc() -> bytes:
    # once: lcms stamps the creation second into the profile, so two calls a second apart
    # differ (the .tif case failed once when the clock ticked between them)
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

    monkeypatch.setattr("tempfile.mkstemp", refuse)
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


# --- issue 11: every file we write is precious -----------------------------------------
def _unit(tmp_path, **kwargs):
    """write_with_sidecar of a small PNG; returns (output, calls to the output writer)."""
    out = kwargs.pop("out", tmp_path / "r.png")
    calls = []

    def write():
        calls.append(out)
        save_result(out, np.zeros((4, 4, 3), np.uint8), overwrite=kwargs.get("overwrite", False))

    export.write_with_sidecar(out, write, {"inputs": {}}, **kwargs)
    return out, calls


def test_sidecar_never_replaces_an_input_or_an_existing_file(tmp_path):
    # an input named like the sidecar: refused even with overwrite, before any writing
    original = tmp_path / "r.png.json"
    Image.new("RGB", (4, 4)).save(original, format="PNG")
    before = original.read_bytes()
    calls = []
    with pytest.raises(InputError, match="sidecar would overwrite the original input"):
        export.write_with_sidecar(
            tmp_path / "r.png", lambda: calls.append(1), {}, protected_paths={"original": original},
            overwrite=True,
        )  # fmt: skip
    assert original.read_bytes() == before and not calls and not (tmp_path / "r.png").exists()
    # an existing sidecar (anyone's) is not replaced without overwrite
    foreign = tmp_path / "s.png.json"
    foreign.write_text("client notes")
    with pytest.raises(InputError, match=r"s\.png\.json: already exists \(the sidecar\)"):
        _unit(tmp_path, out=tmp_path / "s.png")
    assert foreign.read_text() == "client notes" and not (tmp_path / "s.png").exists()
    out, calls = _unit(tmp_path, out=tmp_path / "s.png", overwrite=True)
    data = export.read_sidecar(out)
    assert calls and data["status"] == "ok" and data[export.SIDECAR_MARKER] == 1


def test_a_folder_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "existing.png"
    folder.mkdir()
    for call in (
        lambda: save_result(folder, np.zeros((4, 4, 3), np.uint8), overwrite=True),
        lambda: export.check_result_target(folder, overwrite=True),
        lambda: export.check_result_target(tmp_path, overwrite=True),
    ):
        with pytest.raises(InputError, match="is a folder") as info:
            call()
        assert "already exists" not in str(info.value)
    (tmp_path / "x.png.json").mkdir()  # a folder in the sidecar's way
    with pytest.raises(InputError, match=r"x\.png\.json: is a folder"):
        _unit(tmp_path, out=tmp_path / "x.png", overwrite=True)
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(OutputFolderError, match="does not exist"):
        export.check_result_target(tmp_path / "nope" / "r.png")


def test_no_output_is_left_without_its_sidecar(tmp_path, monkeypatch):
    # the sidecar cannot be committed: the new output goes, with a clear message
    def no_rename(tmp, path):
        raise OutputFolderError(f"{path}: the disk is full; nothing was written.")

    monkeypatch.setattr(sidecars, "commit_file", no_rename)  # write_with_sidecar lives there
    with pytest.raises(OutputFolderError, match=r"r\.png\.json: the disk is full"):
        _unit(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no output, no sidecar, no temp file
    monkeypatch.undo()

    # no space even for the sidecar: nothing is computed into a file at all
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.os, "fsync", full)
    with pytest.raises(OutputFolderError, match="disk is full") as info:
        _unit(tmp_path)
    assert info.type is OutputFolderError  # our error, not a traceback's OSError
    assert list(tmp_path.iterdir()) == []


def test_read_hashed_records_the_bytes_that_were_read(tmp_path):
    from engine.io.files import read_hashed, sha256_file

    path = tmp_path / "e.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    digest = sha256_file(path)

    def read_then_reexport(p):
        value = np.asarray(Image.open(p))
        Image.new("RGB", (8, 8), (99, 0, 0)).save(p)  # re-exported during the run
        return value

    with pytest.raises(InputError, match="changed while it was being read"):
        read_hashed(path, read_then_reexport)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    value, got = read_hashed(path, lambda p: np.asarray(Image.open(p)))
    assert got == sha256_file(path) and value.shape == (8, 8, 3)
    assert digest == got


def test_stale_temp_files_of_ours_are_removed_and_nothing_else(tmp_path):
    import subprocess
    import sys

    from engine.io import files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files.host_tag()
    stale = tmp_path / f".r.png.{host}-{dead.pid}.abcd1234{files.TEMP_SUFFIX}"
    live = tmp_path / f".s.png.{host}-{os.getpid()}.abcd1234{files.TEMP_SUFFIX}"
    other_host = tmp_path / f".t.png.0000beef-{dead.pid}.abcd1234{files.TEMP_SUFFIX}"
    legacy_new = tmp_path / ".u.abcd1234.png.part"
    legacy_old = tmp_path / ".v.abcd1234.png.part"
    client = [tmp_path / ".notes.part", tmp_path / "r.png.part", tmp_path / "photo.png"]
    for path in (stale, live, other_host, legacy_new, legacy_old, *client):
        path.write_bytes(b"x" * 100)
    os.utime(legacy_old, (1e9, 1e9))  # 2001: no live write is that old
    assert sorted(files.remove_stale_temp_files(tmp_path)) == sorted([stale, legacy_old])
    assert all(p.exists() for p in (live, other_host, legacy_new, *client))
    # our own writer's temp names are of that form
    fd, tmp = files.make_temp_file(tmp_path, "x.png")
    os.close(fd)
    assert files.is_our_temp_file(tmp.name) and f"-{os.getpid()}." in tmp.name


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_results_get_the_users_umask(tmp_path, umask):
    from engine.io.files import atomic_write_text

    old = os.umask(umask)
    try:
        out, _ = _unit(tmp_path)
        report = atomic_write_text(tmp_path / "report.csv", "a,b\n")
        sidecar = export.sidecar_path(out)
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for path in (out, sidecar, report):
        assert path.stat().st_mode & 0o777 == expected, (path.name, oct(path.stat().st_mode))


# --- location (GPS) -----------------------------------------------------------------------
MAKE, MODEL, GPS_IFD = 0x010F, 0x0110, 0x8825


def _gps_reference(path, fmt="JPEG", orientation=6):
    """An edited photo from a phone: camera, orientation and a GPS position in its EXIF."""
    image = Image.fromarray(face_crop("grace_hopper", 64)).resize((48, 32))
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[0x0112] = "Canon", "EOS R5", orientation
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    image.save(path, format=fmt, exif=exif.tobytes())
    with Image.open(path) as check:  # the fixture really carries a position
        assert check.getexif().get_ifd(GPS_IFD)[2] == (52.0, 31.0, 12.0)
    return path


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
@pytest.mark.parametrize("strip", [True, False])
def test_location_is_dropped_when_stripping_and_kept_otherwise(tmp_path, ext, strip):
    ref = _gps_reference(tmp_path / "edited.jpg")
    (tmp_path / "out").mkdir()
    out = save_result(
        tmp_path / "out" / f"result{ext}", _upright(ref), reference_path=ref, strip_location=strip
    )
    with Image.open(out) as image:
        exif = image.getexif()
        assert exif.get(MAKE) == "Canon" and exif.get(MODEL) == "EOS R5"  # camera kept
        assert exif.get(0x0112, 1) == 1  # orientation kept, normalised
        gps = exif.get_ifd(GPS_IFD)
        if strip:
            assert GPS_IFD not in exif and gps == {}
        else:
            assert gps[1] == "N" and gps[2] == (52.0, 31.0, 12.0) and gps[3] == "E"


def test_location_is_stripped_by_default(tmp_path):
    ref = _gps_reference(tmp_path / "edited.jpg")
    out = save_result(tmp_path / "r.jpg", _upright(ref), reference_path=ref)
    with Image.open(out) as image:
        assert image.getexif().get_ifd(GPS_IFD) == {}
        assert image.getexif().get(MAKE) == "Canon"


def test_camera_exif_with_sub_ifds_saves_as_tiff(tmp_path):
    """A camera JPEG (Exif sub-IFD: dates, exposure) saved as .tif: libtiff cannot write
    sub-IFDs (Pillow raised RuntimeError); the TIFF is written uncompressed and keeps them."""
    image = Image.fromarray(face_crop("grace_hopper", 64)).resize((48, 32))
    exif = Image.Exif()
    exif[MAKE] = "Canon"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    ref = tmp_path / "edited.jpg"
    image.save(ref, exif=exif.tobytes())
    notes: list[str] = []
    out = save_result(tmp_path / "r.tif", _upright(ref), reference_path=ref, warnings=notes)
    with Image.open(out) as saved:
        assert saved.getexif().get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
        assert saved.getexif().get(MAKE) == "Canon"
    assert any("uncompressed" in n for n in notes)


def test_overwriting_keeps_the_earlier_pair_when_the_new_one_cannot_be_completed(
    tmp_path, monkeypatch
):
    """--overwrite over an earlier result on a disk that fills while the new sidecar is
    renamed in: the earlier result and sidecar come back as they were (issue 23: both
    were gone and the new pair incomplete)."""
    out, _ = _unit(tmp_path)
    side = sidecars.sidecar_path(out)
    before = {p.name: p.read_bytes() for p in (out, side)}

    def full(tmp, path):
        Path(tmp).unlink(missing_ok=True)
        raise OutputFolderError(f"{path}: the disk is full; nothing was written.")

    monkeypatch.setattr(sidecars, "commit_file", full)
    with pytest.raises(OutputFolderError, match="disk is full"):
        export.write_with_sidecar(
            out,
            lambda: save_result(out, np.full((4, 4, 3), 200, np.uint8), overwrite=True),
            {"inputs": {"new": 1}},
            overwrite=True,
        )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overwriting_replaces_the_pair_and_leaves_nothing_aside(tmp_path):
    out, _ = _unit(tmp_path)
    export.write_with_sidecar(
        out,
        lambda: save_result(out, np.full((4, 4, 3), 200, np.uint8), overwrite=True),
        {"inputs": {"new": 1}},
        overwrite=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "r.png.json"]
    assert export.read_sidecar(out)["inputs"] == {"new": 1}


def test_a_16bit_result_blends_the_restoration_once_as_the_8bit_result_does(tmp_path):
    """The pipeline's 8-bit result is already the blend of the edit and the restoration;
    the 16-bit result is that same blend at 16 bit (the restoration weighs alpha). Before,
    the blended 8-bit result was blended into the 16-bit edit again: alpha² at the edges."""
    import tifffile

    from engine.io.psd import Patch, ResultLayers

    rng = np.random.default_rng(3)
    ref16 = rng.integers(0, 65536, size=(24, 30, 3), dtype=np.uint16)
    edited8 = np.clip(np.rint(ref16 / 257.0), 0, 255).astype(np.uint8)
    restored8 = rng.integers(0, 256, size=(24, 30, 3), dtype=np.uint8)
    alpha = np.zeros((24, 30))
    alpha[:, 10:20] = 0.5
    alpha[:, 20:] = 1.0
    image8 = np.rint(edited8 * (1 - alpha[..., None]) + restored8 * alpha[..., None])
    layers = ResultLayers(edited8, restored=Patch((0, 0, 30, 24), restored8))
    out = save_result(
        tmp_path / "out.tif", image8.astype(np.uint8), reference_path=_tiff16(
            tmp_path / "edited.tif", ref16), changed_alpha=alpha, layers=layers,
    )  # fmt: skip
    written = tifffile.imread(out).astype(np.float64)
    expected = ref16 * (1 - alpha[..., None]) + restored8 * 257.0 * alpha[..., None]
    assert np.array_equal(written[:, :10], ref16[:, :10])  # untouched: the edit, bit-exact
    assert np.abs(written[:, 10:] - np.rint(expected[:, 10:])).max() == 0
