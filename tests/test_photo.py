"""Whole photos: detection, pairing, batched restore, paste-back, classic mode, sidecar."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.faces.detection import DlibAnalyzer
from engine.models.loading import load_sd_model
from engine.params import EditedIDParams
from engine.photo.contract import CropRestorer
from engine.photo.pipeline import (
    analyze_photos,
    restore_analysis,
    restore_photo,
    restore_photo_files,
)
from engine.restorers import get_restorer
from tests.helpers import sample_photo

FAST = EditedIDParams(nulltext_iters=1, resolution=64)
CLASSIC = get_restorer("classic")


@pytest.fixture(scope="module")
def analyzer():
    return DlibAnalyzer()


@pytest.fixture(scope="module")
def group() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("t1")).convert("RGB"))


@pytest.fixture(scope="module")
def group_edited(group) -> np.ndarray:
    """An 'edit' of the six-person photo: shifted, scaled, recoloured, with drawn glasses."""
    h, w = group.shape[:2]
    matrix = np.array([[0.9, 0.0, 30.0], [0.0, 0.9, 20.0]])
    edited = cv2.warpAffine(group, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    edited = np.clip(edited.astype(int) + [12, -5, 8], 0, 255).astype(np.uint8)
    return edited


@pytest.fixture(scope="module")
def group_analysis(group, group_edited, analyzer):
    return analyze_photos(group, group_edited, analyzer=analyzer, crop_size=64)


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


def test_analysis_pairs_all_six_faces_and_makes_masks(group_analysis, group_edited):
    analysis = group_analysis
    assert len(analysis.faces) == 6 and analysis.backend == "dlib"
    assert all(f.original_index is not None for f in analysis.faces)
    assert len({f.original_index for f in analysis.faces}) == 6
    for face in analysis.faces:
        assert face.auto_face_mask.shape == group_edited.shape[:2]
        x0, y0, x1, y1 = face.box.astype(int)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        assert face.auto_face_mask[cy, cx] > 0  # the mask covers the face centre
        assert face.auto_face_mask.mean() < 50  # ... and not the whole photo
        assert face.thumb_edited.shape == (96, 96, 3)
        assert face.id_before is not None and face.id_before.model == "dlib-resnet-v1"


def test_classic_changes_only_face_regions(group_analysis, group_edited):
    assert isinstance(CLASSIC, CropRestorer)
    result = restore_analysis(group_analysis, CLASSIC, faces=[0, 2])
    assert result.image.shape == group_edited.shape and result.mode == "classic"
    untouched = result.changed_alpha == 0
    assert untouched.mean() > 0.9
    assert np.array_equal(result.image[untouched], group_edited[untouched])
    assert [f.index for f in result.faces] == [0, 2]
    assert all(f.id_after is not None for f in result.faces)


def test_multi_face_restore_is_one_batched_engine_call(
    group_analysis, group, group_edited, tiny_model
):
    steps = []
    result = restore_photo(
        group,
        group_edited,
        FAST,
        faces=[0, 3],
        restorer=get_restorer("diffusion", model=tiny_model),
        analysis=group_analysis,
        on_step=lambda stage, step, total, info: info.is_step and steps.append((stage, step)),
    )
    engine = result.engine_result
    assert len(engine.faces) == 2
    # One batch: as many UNet calls as for a single face (3 stages x 6 steps + null-text).
    single = 6 + 6 * (1 + FAST.nulltext_iters + 1) + 6
    assert engine.stats.forward_calls == single
    assert steps.count(("entanglement", 6)) == 1
    untouched = result.changed_alpha == 0
    assert np.array_equal(result.image[untouched], group_edited[untouched])
    assert result.sidecar["params"]["resolution"] == 64
    assert [f["index"] for f in result.sidecar["faces"]] == [0, 3]


def test_restore_photo_files_writes_result_and_sidecar(
    tmp_path, group, group_edited, analyzer, tiny_model
):
    original, edited = tmp_path / "orig.jpg", tmp_path / "edit.png"
    Image.fromarray(group).save(original)
    Image.fromarray(group_edited).save(edited)
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (original, edited)}
    out = tmp_path / "result.png"
    diffusion = get_restorer("diffusion", model=tiny_model)
    result = restore_photo_files(
        original, edited, out, FAST, restorer=diffusion, faces=[1], analyzer=analyzer
    )
    assert out.exists() and np.asarray(Image.open(out)).shape == group_edited.shape
    sidecar = json.loads((tmp_path / "result.png.json").read_text())
    assert sidecar["face_backend"] == "dlib" and sidecar["mode"] == "diffusion"
    assert sidecar["faces"][0]["original_index"] == result.faces[0].original_index
    assert sidecar["model"]["fingerprint"] and sidecar["engine"]["plan"]
    assert sidecar["inputs"]["edited"]["sha256"] == digests[edited]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (original, edited)} == digests
    with pytest.raises(InputError, match="already exists"):
        restore_photo_files(original, edited, out, FAST, restorer=CLASSIC, analyzer=analyzer)
    with pytest.raises(InputError, match="input"):
        restore_photo_files(
            original, edited, edited, FAST, restorer=CLASSIC, analyzer=analyzer, overwrite=True
        )
    with pytest.raises(InputError, match="needs a Stable Diffusion model"):
        restore_photo_files(
            original, edited, tmp_path / "x.png", restorer=get_restorer("diffusion")
        )


def test_no_face_and_no_partner_messages(group, analyzer):
    blank = np.full((300, 300, 3), 127, np.uint8)
    with pytest.raises(InputError, match="No face found in the edited photo"):
        analyze_photos(group, blank, analyzer=analyzer, crop_size=64)
    with pytest.raises(InputError, match="No face found in the original photo"):
        analyze_photos(blank, group, analyzer=analyzer, crop_size=64)
    # Five faces painted out of the original: only one edited face keeps a partner.
    original = group.copy()
    faces = analyzer.detect(group)
    for face in faces[1:]:
        x0, y0, x1, y1 = face.box.astype(int)
        original[max(0, y0 - 10) : y1 + 10, max(0, x0 - 10) : x1 + 10] = 127
    analysis = analyze_photos(original, group, analyzer=analyzer, crop_size=64)
    partnered = [f for f in analysis.faces if f.original_index is not None]
    assert len(partnered) == 1
    assert np.allclose(partnered[0].box, faces[0].box, atol=2)
    lost = next(f for f in analysis.faces if f.original_index is None)
    assert any("no partner" in w for w in lost.warnings)
    with pytest.raises(InputError, match="no partner"):
        restore_analysis(analysis, CLASSIC, faces=[lost.index])


def test_small_face_is_flagged(analyzer):
    photo = np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))
    small = cv2.resize(
        photo, (photo.shape[1] // 5, photo.shape[0] // 5), interpolation=cv2.INTER_AREA
    )
    canvas = np.full((400, 400, 3), 200, np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    analysis = analyze_photos(canvas, canvas, analyzer=analyzer, crop_size=512)
    assert analysis.faces[0].too_small
    assert any("small" in w for w in analysis.faces[0].warnings)


# --- issue 12: which faces are restored by default (D1, D2, D15) ----------------------
def _swapped_group(group, analyzer):
    """The six-person photo with face 2 (left to right) replaced by the astronaut's."""
    from engine.faces.plausibility import left_to_right
    from tests.fixtures.faces import photo, sample_face, swap_face

    target = left_to_right(analyzer.detect(group))[1]
    return swap_face(group, target, photo("astronaut"), sample_face("astronaut"))


def test_faces_are_numbered_left_to_right(group_analysis):
    xs = [f.edited_face.center[0] for f in group_analysis.faces]
    assert xs == sorted(xs) and [f.number for f in group_analysis.faces] == [1, 2, 3, 4, 5, 6]
    originals = [f.center[0] for f in group_analysis.original_faces]
    assert originals == sorted(originals)


def test_default_restores_only_faces_whose_identity_changed(tmp_path, group, analyzer):
    edited = _swapped_group(group, analyzer)
    analysis = analyze_photos(group, edited, analyzer=analyzer, crop_size=64)
    changed = [f.number for f in analysis.faces if f.restore_by_default]
    assert changed == [2]
    unchanged = analysis.face(0)
    assert unchanged.changed is False and "unchanged" in unchanged.left_alone_reason
    result = restore_analysis(analysis, CLASSIC)
    assert [f.index for f in result.faces] == [1]
    assert [i for i, _ in result.left_alone] == [0, 2, 3, 4, 5]
    left = result.sidecar["left_alone"]
    assert [e["face"] for e in left] == [1, 3, 4, 5, 6] and "unchanged" in left[0]["reason"]
    assert result.sidecar["faces"][0]["face"] == 2
    # "all": every paired face, as before
    assert len(restore_analysis(analysis, CLASSIC, faces="all").faces) == 6
    # nothing changed: the edited photo comes back as it is, each face saying why
    same = analyze_photos(group, group, analyzer=analyzer, crop_size=64)
    result = restore_analysis(same, CLASSIC)
    assert result.faces == [] and np.array_equal(result.image, group)
    assert len(result.left_alone) == 6 and not result.changed_alpha.any()


def test_face_on_the_mission_patch_is_implausible_and_left_alone():
    """dlib upsampled finds a "face" on the astronaut's mission patch (score 0.12)."""
    from engine.faces.detection import DlibAnalyzer as Dlib
    from engine.faces.plausibility import face_verdict

    astronaut = np.asarray(Image.open(sample_photo("astronaut")).convert("RGB"))
    analysis = analyze_photos(astronaut, astronaut, analyzer=Dlib(upsample=1), crop_size=64)
    assert len(analysis.faces) == 2
    patch = min(analysis.faces, key=lambda f: f.edited_face.score)
    real = max(analysis.faces, key=lambda f: f.edited_face.score)
    assert patch.restorable and not patch.plausible and real.plausible
    assert "detector score" in patch.left_alone_reason
    assert "not a face?" in patch.left_alone_reason
    result = restore_analysis(analysis, CLASSIC, faces="all")  # asked for: restored
    assert patch.index in [f.index for f in result.faces]
    assert all(i != patch.index or "not a face" in why for i, why in result.left_alone)
    # landmarks that are no face's: eyes on top of each other, mouth above the nose
    bad = real.edited_face
    scrambled = type(bad)(bad.box, bad.landmarks5[[2, 3, 0, 1, 4]], score=2.0, backend="dlib")
    assert not face_verdict(scrambled).plausible
