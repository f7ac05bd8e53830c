"""The layered PSD read by a second, independent reader: GIMP 2.10 in batch mode (slow
tier). A classic-mode CLI restore (a JPEG, a camera-RAW and a HEIC original; PNG and WebP
edits) writes r.png and r.psd; GIMP loads r.psd, lists its
layers and exports each layer, the restored layer's mask and the flattened image to PNG,
which are compared here with psd-tools' view and with r.png."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage

GIMP = "gimp-console-2.10"

SCRIPT = """
(define (save-png image drawable path)
  (file-png-save RUN-NONINTERACTIVE image drawable path path 0 9 0 0 0 0 0))
(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{psd}" "{psd}")))
       (layers (cadr (gimp-image-get-layers image)))
       (i 0))
  (while (< i (vector-length layers))
    (let* ((layer (vector-ref layers i))
           (mask (car (gimp-layer-get-mask layer))))
      (gimp-message (string-append "LAYER|" (number->string i) "|"
        (car (gimp-item-get-name layer)) "|" (number->string (car (gimp-item-get-visible layer)))))
      (if (= (car (gimp-item-is-group layer)) 1)
          (let* ((kids (cadr (gimp-item-get-children layer))) (k 0))
            (while (< k (vector-length kids))
              (let ((kid (vector-ref kids k)))
                (gimp-message (string-append "CHILD|" (number->string k) "|"
                  (car (gimp-item-get-name kid)) "|"
                  (number->string (car (gimp-item-get-visible kid)))))
                (save-png image kid (string-append "{out}/child" (number->string k) ".png")))
              (set! k (+ k 1))))
          (save-png image layer (string-append "{out}/layer" (number->string i) ".png")))
      (if (> mask -1)
          (save-png image mask (string-append "{out}/mask" (number->string i) ".png")))
      (set! i (+ i 1))))
  (gimp-message (string-append "PRECISION|"
    (number->string (car (gimp-image-get-precision image)))))
  (save-png image (car (gimp-image-flatten image)) "{out}/flat.png")
  (gimp-message "DONE"))
"""


def _gimp_read(psd_path, out_dir) -> list[tuple[str, str, str, bool]]:
    """(kind, index, name, visible) of GIMP's layers, top first, as GIMP lists them, and
    ("PRECISION", number, "", False): GIMP's precision of the image."""
    if shutil.which(GIMP) is None:
        pytest.fail(f"{GIMP} is not installed: apt-get install gimp (GIMP 2.10's console).")
    script = SCRIPT.format(psd=psd_path, out=out_dir)
    run = subprocess.run(
        [GIMP, "-i", "-b", script, "-b", "(gimp-quit 0)"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
    )
    lines = [ln.split("Warning: ", 1)[-1] for ln in (run.stdout + run.stderr).splitlines()]
    assert "DONE" in lines, run.stdout + run.stderr
    rows = [ln.split("|") for ln in lines if ln.startswith(("LAYER|", "CHILD|"))]
    found = [(kind, index, name, visible == "1") for kind, index, name, visible in rows]
    precision = [ln.split("|")[1] for ln in lines if ln.startswith("PRECISION|")]
    return [*found, ("PRECISION", precision[0], "", False)]


def _srgb_decode(values: np.ndarray) -> np.ndarray:
    """GIMP keeps masks linear and exports them through the sRGB curve: undo it."""
    v = values.astype(np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _write_original(photo: Image.Image, path) -> None:
    """The client's original in the form its name says: JPEG, camera RAW (a CFA DNG that
    LibRaw develops) or HEIC."""
    from tests.fixtures.camera_files import dng_of_photo, heic_bytes

    if path.suffix == ".DNG":
        path.write_bytes(dng_of_photo(np.asarray(photo)))
    elif path.suffix == ".HEIC":
        path.write_bytes(heic_bytes(photo, quality=95))
    else:
        photo.save(path)


@pytest.mark.slow  # GIMP starts in ~10 s; needs the gimp package (.ci/run installs it)
@pytest.mark.parametrize(
    ("original_name", "edited_name"),
    [("o.jpg", "e.png"), ("IMG_0001.DNG", "e.png"), ("IMG_0002.HEIC", "e.webp")],
    ids=["jpeg-png", "raw-png", "heic-webp"],
)
def test_gimp_reads_our_layers_masks_and_composite(tmp_path, capsys, original_name, edited_name):
    from engine.cli.commands import EXIT_OK, main
    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original, edited = tmp_path / original_name, tmp_path / edited_name
    _write_original(photo, original)
    Image.fromarray(np.clip(np.asarray(photo).astype(int) + 40, 0, 255).astype(np.uint8)).save(
        edited, quality=95
    )
    for name in ("r.png", "r.psd"):
        argv = ["restore", "--original", str(original), "--edited", str(edited), "--out",
                str(tmp_path / name), "--mode", "classic", "--face-backend", "dlib",
                "--faces", "all", "--quiet"]  # fmt: skip
        assert main(argv) == EXIT_OK, capsys.readouterr().err
    out = tmp_path / "gimp"
    out.mkdir()
    layers = _gimp_read(tmp_path / "r.psd", out)
    assert layers == [  # GIMP lists top first
        ("LAYER", "0", "EditedID masks", True),
        ("CHILD", "0", "Face 1 \u2014 glasses", False),
        ("CHILD", "1", "Face 1 \u2014 face", False),
        ("LAYER", "1", "Original (aligned)", False),
        ("LAYER", "2", "Restored photo", True),
        ("LAYER", "3", "Edited photo", True),
        ("PRECISION", "150", "", False),  # GIMP_PRECISION_U8_GAMMA
    ]
    ours = PSDImage.open(tmp_path / "r.psd")
    png = np.asarray(Image.open(tmp_path / "r.png")).astype(int)

    def gimp_png(name: str) -> np.ndarray:
        return np.asarray(Image.open(out / name)).astype(int)

    assert np.array_equal(gimp_png("layer3.png")[..., :3], np.asarray(Image.open(edited)))
    restored = np.rint(ours[1].numpy()[..., :3] * 255).astype(int)
    assert np.array_equal(gimp_png("layer2.png")[..., :3], restored)
    mask = ours[1].numpy("mask")[..., 0] * 255
    assert 0 < mask.mean() < 255
    assert np.abs(_srgb_decode(gimp_png("mask2.png")) * 255 - mask).max() <= 1.5
    for index, layer in ((0, ours[3][1]), (1, ours[3][0])):  # top first in GIMP
        assert np.array_equal(gimp_png(f"child{index}.png")[..., 0], layer.numpy()[..., 0] * 255)
    flat = gimp_png("flat.png")[..., :3]
    assert np.abs(flat - png).max() <= 1


@pytest.mark.slow  # GIMP starts in ~10 s
def test_gimp_reads_a_16bit_document_at_16_bit(tmp_path):
    import cv2

    from engine.io.export import save_result
    from engine.io.psd import FaceMasks, Patch, ResultLayers

    rng = np.random.default_rng(7)
    h, w, box = 40, 56, (14, 8, 44, 32)
    edited = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    edited16 = edited.astype(np.uint16) * 257 + 100  # more than 8 bits of its own
    reference = tmp_path / "e.png"
    cv2.imwrite(str(reference), cv2.cvtColor(edited16, cv2.COLOR_RGB2BGR))
    x0, y0, x1, y1 = box
    restored = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    blend = np.zeros((h, w), np.float32)
    blend[y0:y1, x0:x1] = np.linspace(0.0, 1.0, x1 - x0, dtype=np.float32)[None, :]
    full = edited.astype(np.float64).copy()
    full[y0:y1, x0:x1] = restored
    a = blend.astype(np.float64)[..., None]
    image = np.clip(edited * (1 - a) + full * a + 0.5, 0, 255).astype(np.uint8)
    face = (blend > 0).astype(np.uint8) * 255
    layers = ResultLayers(edited, Patch(box, restored), None, (FaceMasks(1, face, None, "hat"),))
    for name in ("r.png", "r.psd"):
        save_result(tmp_path / name, image, reference_path=reference, changed_alpha=blend,
                    layers=layers)  # fmt: skip
    out = tmp_path / "gimp"
    out.mkdir()
    assert _gimp_read(tmp_path / "r.psd", out) == [
        ("LAYER", "0", "EditedID masks", True),
        ("CHILD", "0", "Face 1 \u2014 face", False),
        ("LAYER", "1", "Original (aligned)", False),
        ("LAYER", "2", "Restored photo", True),
        ("LAYER", "3", "Edited photo", True),
        ("PRECISION", "250", "", False),  # GIMP_PRECISION_U16_GAMMA
    ]
    png = cv2.imread(str(tmp_path / "r.png"), cv2.IMREAD_UNCHANGED).astype(int)
    flat = cv2.imread(str(out / "flat.png"), cv2.IMREAD_UNCHANGED)
    bottom = cv2.imread(str(out / "layer3.png"), cv2.IMREAD_UNCHANGED)
    assert flat.dtype == np.uint16 and bottom.dtype == np.uint16
    assert np.array_equal(cv2.cvtColor(bottom, cv2.COLOR_BGRA2RGB), edited16)
    assert np.abs(flat[..., :3].astype(int) - png).max() <= 1  # 16-bit levels
