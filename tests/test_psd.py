"""engine.io.psd: the layered Photoshop document, read back with psd-tools' own reader.

GIMP reads the same files in the slow tier (tests/test_psd_gimp.py)."""

from __future__ import annotations

import functools
import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from psd_tools import PSDImage

from engine.errors import InputError
from engine.io.export import save_result
from engine.io.psd import FaceMasks, Patch, ResultLayers

H, W = 40, 56
BOX = (14, 8, 44, 32)  # x0, y0, x1, y1 of the restoration


@functools.cache
def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _scene(seed: int = 3):
    """An edited photo, a restoration over BOX, a feathered blend, two faces' masks and
    the 8-bit result that blend makes (as engine.photo.pasteback composes it)."""
    rng = np.random.default_rng(seed)
    edited = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = BOX
    restored = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    blend = np.zeros((H, W), np.float32)
    ramp = np.linspace(0.0, 1.0, x1 - x0, dtype=np.float32)
    blend[y0:y1, x0:x1] = np.minimum(ramp[None, :] * 1.7, 1.0)
    full = edited.astype(np.float64).copy()
    full[y0:y1, x0:x1] = restored
    a = blend.astype(np.float64)[..., None]
    image = np.clip(edited * (1 - a) + full * a + 0.5, 0, 255).astype(np.uint8)
    masks = []
    for number, (left, right) in ((1, (2, 12)), (2, (20, 40))):
        face = np.zeros((H, W), np.uint8)
        face[10:30, left:right] = 255
        element = np.zeros((H, W), np.uint8)
        element[14:18, left:right] = 200
        masks.append(FaceMasks(number, face, element, "glasses"))
    original = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    original[2:-2, 2:-2] = (10, 120, 230, 255)
    layers = ResultLayers(edited, Patch(BOX, restored), Patch(BOX, original), tuple(masks))
    return edited, image, blend, layers


def _save(tmp_path, name, image, blend, layers, reference):
    out = tmp_path / name
    save_result(out, image, reference_path=reference, changed_alpha=blend, layers=layers)
    return out


def _layered(psd: PSDImage) -> np.ndarray:
    """The visible layers composed by the stored masks (float, 0..1): what an editor
    shows. The masks group and the original are hidden and take no part."""
    bottom, restored = psd[0], psd[1]
    mask = restored.numpy("mask")
    return bottom.numpy()[..., :3] * (1 - mask) + restored.numpy()[..., :3] * mask


def test_layers_order_names_visibility_masks_and_composite(tmp_path):
    edited, image, blend, layers = _scene()
    reference = tmp_path / "e.png"
    Image.fromarray(edited).save(reference, icc_profile=_icc())
    psd_path = _save(tmp_path, "r.psd", image, blend, layers, reference)
    png_path = _save(tmp_path, "r.png", image, blend, layers, reference)
    psd = PSDImage.open(psd_path)
    assert psd.depth == 8 and psd.size == (W, H) and psd.version == 1
    assert [layer.name for layer in psd] == [
        "Edited photo", "Restored photo", "Original (aligned)", "EditedID masks"
    ]  # fmt: skip
    assert [layer.visible for layer in psd] == [True, True, False, True]
    assert [layer.has_mask() for layer in psd] == [False, True, False, False]
    group = psd[3]
    assert [layer.name for layer in group] == [
        "Face 1 \u2014 face", "Face 1 \u2014 glasses", "Face 2 \u2014 face", "Face 2 \u2014 glasses"
    ]  # fmt: skip
    assert not any(layer.visible for layer in group)
    masks = [m for f in layers.faces for m in (f.face, f.element)]
    for layer, face in zip(group, masks, strict=True):
        assert np.array_equal(np.rint(layer.numpy()[..., 0] * 255).astype(np.uint8), face)
    # the bottom layer is the edit, the restored layer the restoration at full strength
    assert np.array_equal(np.rint(psd[0].numpy()[..., :3] * 255).astype(np.uint8), edited)
    x0, y0, x1, y1 = BOX
    restored = np.rint(psd[1].numpy()[..., :3] * 255).astype(np.uint8)
    assert np.array_equal(restored[y0:y1, x0:x1], layers.restored.pixels)
    # the restored layer's mask IS the blend: white where restored, black where edited
    mask = np.rint(psd[1].numpy("mask")[..., 0] * 255).astype(np.uint8)
    assert np.array_equal(mask, np.rint(blend * 255).astype(np.uint8))
    original = np.rint(psd[2].numpy() * 255).astype(np.uint8)
    assert np.array_equal(original[y0:y1, x0:x1], layers.original.pixels)
    assert not original[:y0].any()
    # the document's composite is the PNG, exactly; the layers rebuild it within 1 level
    png = np.asarray(Image.open(png_path))
    assert np.array_equal(np.rint(psd.numpy() * 255).astype(np.uint8), png)
    assert np.abs(np.rint(_layered(psd) * 255) - png).max() <= 1
    assert psd.image_resources.get_data(1039) == _icc()


def test_16bit_edit_gives_a_16bit_document_equal_to_the_16bit_png(tmp_path):
    edited, image, blend, layers = _scene(seed=5)
    edited16 = edited.astype(np.uint16) * 257 + 100  # not an 8-bit image scaled up
    reference = tmp_path / "e.png"
    cv2.imwrite(str(reference), cv2.cvtColor(edited16, cv2.COLOR_RGB2BGR))
    psd = PSDImage.open(_save(tmp_path, "r.psd", image, blend, layers, reference))
    png = cv2.cvtColor(
        cv2.imread(str(_save(tmp_path, "r.png", image, blend, layers, reference)), -1),
        cv2.COLOR_BGR2RGB,
    )
    assert psd.depth == 16 and png.dtype == np.uint16
    assert np.array_equal(np.rint(psd.numpy() * 65535).astype(np.uint16), png)
    assert np.array_equal(np.rint(psd[0].numpy()[..., :3] * 65535).astype(np.uint16), edited16)
    mask = np.rint(psd[1].numpy("mask")[..., 0] * 65535).astype(np.uint16)
    assert np.array_equal(mask, np.rint(blend.astype(np.float64) * 65535).astype(np.uint16))
    assert np.abs(np.rint(_layered(psd) * 65535) - png.astype(np.float64)).max() <= 1


def test_a_side_over_30000_px_gives_the_large_document_form(tmp_path):
    edited = np.full((3, 30001, 3), 90, np.uint8)  # no reference: a photo this shape is refused
    notes: list[str] = []
    out = tmp_path / "wide.psd"
    save_result(out, edited, changed_alpha=np.zeros((3, 30001)),
                layers=ResultLayers(edited), warnings=notes)  # fmt: skip
    assert out.read_bytes()[4:6] == b"\x00\x02"  # version 2: PSB
    assert PSDImage.open(out).version == 2
    assert any("PSB" in note for note in notes)


def test_a_psd_needs_the_layers_and_never_replaces_a_file(tmp_path):
    edited, image, blend, layers = _scene()
    reference = tmp_path / "e.png"
    Image.fromarray(edited).save(reference)
    with pytest.raises(InputError, match="needs the restore's layers"):
        save_result(tmp_path / "r.psd", image, reference_path=reference, changed_alpha=blend)
    assert not (tmp_path / "r.psd").exists()
    taken = tmp_path / "taken.psd"
    taken.write_bytes(b"someone's work")
    with pytest.raises(InputError, match="already exists"):
        _save(tmp_path, "taken.psd", image, blend, layers, reference)
    assert taken.read_bytes() == b"someone's work"


def test_cli_restore_to_psd_matches_the_png_of_the_same_restore(tmp_path, capsys):
    from engine.cli.commands import EXIT_OK, main
    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    original, edited = tmp_path / "o.jpg", tmp_path / "e.png"
    photo.save(original)
    brighter = np.clip(np.asarray(photo).astype(int) + 40, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(edited)
    for name in ("r.png", "r.psd"):
        argv = ["restore", "--original", str(original), "--edited", str(edited), "--out",
                str(tmp_path / name), "--mode", "classic", "--face-backend", "dlib",
                "--faces", "all", "--quiet"]  # fmt: skip
        assert main(argv) == EXIT_OK, capsys.readouterr().err
    png = np.asarray(Image.open(tmp_path / "r.png"))
    psd = PSDImage.open(tmp_path / "r.psd")
    assert np.array_equal(np.rint(psd.numpy() * 255).astype(np.uint8), png)
    assert np.abs(np.rint(_layered(psd) * 255) - png).max() <= 1
    mask = psd[1].numpy("mask")[..., 0]
    assert 0 < mask.mean() < 1 and mask.max() == 1.0  # a feathered blend, not a stencil
    assert [layer.name for layer in psd[3]] == ["Face 1 \u2014 face", "Face 1 \u2014 glasses"]
    face = psd[3][0].numpy()[..., 0]
    assert ((mask > 0) <= (face > 0) | (psd[3][1].numpy()[..., 0] > 0) | (mask < 1)).all()
    original = psd[2].numpy()
    assert original[..., 3].max() == 1.0 and original[..., 3].min() == 0.0  # faces only
    sidecar = json.loads((tmp_path / "r.psd.json").read_text())
    assert sidecar["output"].endswith("r.psd") and sidecar["mode"] == "classic"


def test_batch_format_psd_names_every_result_psd(tmp_path):
    from engine.batch.plan import plan_batch
    from engine.cli.commands import build_parser

    originals, edits = tmp_path / "o", tmp_path / "e"
    originals.mkdir(), edits.mkdir()
    for name in ("a.jpg", "b.png"):
        Image.new("RGB", (8, 8)).save(originals / name)
        Image.new("RGB", (8, 8)).save(edits / name.replace(".", "_edited."))
    plan = plan_batch(originals, edits, tmp_path / "r", out_format="psd")
    assert sorted(item.output.name for item in plan.items) == ["a_edited.psd", "b_edited.psd"]
    kept = plan_batch(originals, edits, tmp_path / "r")
    assert sorted(item.output.name for item in kept.items) == ["a_edited.jpg", "b_edited.png"]
    argv = ["batch", "--original-dir", "o", "--edited-dir", "e", "--out-dir", "r"]
    assert build_parser().parse_args([*argv, "--format", "psd"]).format == "psd"


def test_cli_batch_format_psd_writes_layered_documents(tmp_path, capsys):
    from engine.cli.commands import EXIT_OK, main
    from tests.helpers import sample_photo

    originals, edits, out = tmp_path / "o", tmp_path / "e", tmp_path / "r"
    originals.mkdir(), edits.mkdir()
    photo = Image.open(sample_photo("grace_hopper")).convert("RGB")
    photo.save(originals / "p.jpg")
    brighter = np.clip(np.asarray(photo).astype(int) + 40, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(edits / "p.png")
    argv = ["batch", "--original-dir", str(originals), "--edited-dir", str(edits),
            "--out-dir", str(out), "--mode", "classic", "--face-backend", "dlib",
            "--faces", "all", "--format", "psd", "--quiet", "--no-report"]  # fmt: skip
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["p.psd", "p.psd.json"]
    psd = PSDImage.open(out / "p.psd")
    assert [layer.name for layer in psd][:2] == ["Edited photo", "Restored photo"]
    assert psd[1].has_mask() and 0 < psd[1].numpy("mask").mean() < 1


def test_the_self_test_writes_and_reads_back_a_psd(tmp_path, monkeypatch):
    from editedid_desktop import selftest
    from engine.io import psd

    assert "layered PSD" in selftest.CHECKS
    assert "5 layers" in selftest.check_layered_psd({"tmp": str(tmp_path)})
    inverted = psd.psd_layers

    def upside_down(*args, **kwargs):
        layers = inverted(*args, **kwargs)
        name, pixels, mask, visible = layers[1]
        layers[1] = (name, pixels, ~mask, visible)
        return layers

    monkeypatch.setattr(psd, "psd_layers", upside_down)
    (tmp_path / "again").mkdir()
    with pytest.raises(RuntimeError, match="not the blend"):
        selftest.check_layered_psd({"tmp": str(tmp_path / "again")})


@pytest.mark.parametrize("deep", [False, True])
def test_a_merged_result_is_shown_over_a_mask_of_what_changed(tmp_path, deep):
    """Faces restored in separate runs (the app merges them) have no one blend: the
    result layer is the result itself over a mask of where it differs from the edit."""
    edited, image, blend, layers = _scene(seed=9)
    reference = tmp_path / "e.png"
    if deep:
        edited16 = edited.astype(np.uint16) * 257 + 50
        cv2.imwrite(str(reference), cv2.cvtColor(edited16, cv2.COLOR_RGB2BGR))
    else:
        Image.fromarray(edited).save(reference)
    merged = ResultLayers(edited, faces=layers.faces)
    psd = PSDImage.open(_save(tmp_path, "r.psd", image, blend, merged, reference))
    png = np.asarray(Image.open(_save(tmp_path, "r.png", image, blend, merged, reference)))
    if deep:
        png = cv2.cvtColor(cv2.imread(str(tmp_path / "r.png"), -1), cv2.COLOR_BGR2RGB)
    top = 65535 if deep else 255
    mask = psd[1].numpy("mask")[..., 0]
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert np.array_equal(mask > 0, blend > 0)
    assert np.array_equal(np.rint(_layered(psd) * top), png)


def test_any_element_words_name_the_layers(tmp_path):
    """The element words are the user's text: Unicode names carry them whole (255
    characters at most); the legacy MacRoman name cannot, and was a crash."""
    edited, image, blend, layers = _scene()
    reference = tmp_path / "e.png"
    Image.fromarray(edited).save(reference)
    face = layers.faces[0].face
    words = ["帽子", "y" * 300, "face"]
    faces = tuple(FaceMasks(n, face, face, word) for n, word in enumerate(words, 1))
    named = ResultLayers(edited, layers.restored, layers.original, faces)
    psd = PSDImage.open(_save(tmp_path, "r.psd", image, blend, named, reference))
    assert [layer.name for layer in psd[3]] == [
        "Face 1 \u2014 face", "Face 1 \u2014 帽子",
        "Face 2 \u2014 face", ("Face 2 \u2014 " + "y" * 300)[:255],
        "Face 3 \u2014 face", "Face 3 \u2014 face",
    ]  # fmt: skip


def test_a_run_keeps_the_user_masks_it_used(tmp_path):
    """The app paints its masks in place after a run: the result keeps its own copy, as
    0..255, whatever type it was handed (a bool mask was a black layer)."""
    from engine.io.images import read_rgb
    from engine.photo.pipeline import analyze_photos, restore_analysis
    from engine.restorers import get_restorer
    from tests.helpers import sample_photo

    photo = read_rgb(sample_photo("grace_hopper"))
    edited = np.clip(photo.astype(int) + 40, 0, 255).astype(np.uint8)
    analysis = analyze_photos(photo, edited, backend="dlib")
    painted = np.zeros(edited.shape[:2], bool)
    painted[150:350, 150:350] = True
    result = restore_analysis(
        analysis, get_restorer("classic"), faces="all", masks={0: (painted, None)}
    )
    face = result.layers.faces[0]
    assert face.number == 1 and face.face.dtype == np.uint8
    assert np.array_equal(face.face, painted.astype(np.uint8) * 255)
    painted[:] = False  # a later stroke
    assert face.face.max() == 255
    assert np.array_equal(face.element, analysis.faces[0].auto_element_mask)
