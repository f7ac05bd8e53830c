"""engine.evaluation.evaluate / engine.cli.eval: real photos, a real identity model (dlib),
classic-mode
restorations made by engine.photo.pipeline, plots, and the ablation on the tiny SD model."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.cli import eval as eval_cli
from engine.evaluation.evaluate import (
    ABLATION_VARIANTS,
    discover_sets,
    evaluate_folder,
    run_ablation,
    write_report,
)
from engine.faces.detection import DlibAnalyzer
from engine.photo.pipeline import analyze_photos, restore_analysis
from engine.restorers import get_restorer
from tests.fixtures.clip import build_tiny_clip
from tests.helpers import sample_photo


@pytest.fixture(scope="module")
def analyzer() -> DlibAnalyzer:
    return DlibAnalyzer()


def _photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(sample_photo(name)).convert("RGB"))


def fake_edit(rgb: np.ndarray, analyzer) -> np.ndarray:
    """An 'AI edit': glasses drawn on, the face squashed and softened (identity drifts)."""
    face = analyzer.detect(rgb)[0]
    out = rgb.copy()
    x0, y0, x1, y1 = (int(v) for v in face.box)
    roi = out[y0:y1, x0:x1]
    h, w = roi.shape[:2]
    squashed = cv2.resize(cv2.resize(roi, (w, int(h * 0.8))), (w, h))
    out[y0:y1, x0:x1] = cv2.GaussianBlur(squashed, (0, 0), 2)
    (lx, ly), (rx, ry) = face.landmarks5[0], face.landmarks5[1]
    r = int(0.22 * abs(rx - lx)) + 4
    for cx, cy in ((lx, ly), (rx, ry)):
        cv2.circle(out, (int(cx), int(cy)), r, (10, 10, 10), max(2, r // 5))
    cv2.line(out, (int(lx + r), int(ly)), (int(rx - r), int(ry)), (10, 10, 10), max(2, r // 5))
    return out


@pytest.fixture(scope="module")
def sets_dir(tmp_path_factory, analyzer) -> Path:
    """Flat layout: two real sets (classic restorations), one 'blurred' variant of one of
    them, a set with a damaged restored file and a set without a restored file."""
    folder = tmp_path_factory.mktemp("eval") / "sets"
    folder.mkdir()
    for name in ("grace_hopper", "astronaut"):
        original = _photo(name)
        edited = fake_edit(original, analyzer)
        analysis = analyze_photos(original, edited, analyzer=analyzer)
        restored = restore_analysis(analysis, get_restorer("classic"), faces="all").image
        Image.fromarray(original).save(folder / f"{name}_original.png")
        Image.fromarray(edited).save(folder / f"{name}_edited.png")
        Image.fromarray(restored).save(folder / f"{name}_restored.png")
    # A variant that also changed the background: PSNR/SSIM outside must notice.
    blurred = cv2.GaussianBlur(np.asarray(Image.open(folder / "astronaut_edited.png")), (0, 0), 3)
    Image.fromarray(blurred).save(folder / "astronaut_restored_blurred.png")
    shutil.copy(folder / "astronaut_original.png", folder / "broken_original.png")
    shutil.copy(folder / "astronaut_edited.png", folder / "broken_edited.png")
    data = (folder / "astronaut_restored.png").read_bytes()
    (folder / "broken_restored.png").write_bytes(data[: len(data) // 3])
    shutil.copy(folder / "astronaut_original.png", folder / "lonely_original.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_discover_flat(sets_dir):
    sets, problems = discover_sets(sets_dir)
    found = sorted((s.name, s.variant) for s in sets)
    assert found == [
        ("astronaut", "blurred"),
        ("astronaut", "restored"),
        ("broken", "restored"),
        ("grace_hopper", "restored"),
    ]
    assert len(problems) == 1 and "lonely" in problems[0] and "no edited" in problems[0]


def test_discover_subfolders(tmp_path, sets_dir):
    for sub in ("original", "edited", "restored", "restored-classic"):
        (tmp_path / sub).mkdir()
    shutil.copy(sets_dir / "astronaut_original.png", tmp_path / "original" / "anna.png")
    shutil.copy(sets_dir / "astronaut_edited.png", tmp_path / "edited" / "anna_edited.png")
    shutil.copy(sets_dir / "astronaut_restored.png", tmp_path / "restored" / "anna_edited.png")
    shutil.copy(sets_dir / "astronaut_restored.png", tmp_path / "restored-classic" / "anna.png")
    shutil.copy(sets_dir / "grace_hopper_edited.png", tmp_path / "edited" / "nobody.png")
    sets, problems = discover_sets(tmp_path)
    assert sorted((s.name, s.variant, s.restored.parent.name) for s in sets) == [
        ("anna", "classic", "restored-classic"),
        ("anna", "restored", "restored"),
    ]
    assert problems == ["No original for edited photo: nobody.png"]


def test_evaluate_folder_and_report(sets_dir, analyzer, clip_dir, tmp_path):
    from engine.evaluation.clip_score import ClipScorer

    inputs = {p.name: p.read_bytes() for p in sets_dir.iterdir()}
    report = evaluate_folder(
        sets_dir, analyzer=analyzer, clip=ClipScorer.load(clip_dir), element_words=["glasses"]
    )
    rows = {(im.name, im.variant): im for im in report.images}
    assert report.id_model == "dlib-resnet-v1" and report.id_metric == "l2"
    assert report.clip_model == "tiny-clip"
    assert report.clip_text == "a photo of a face with glasses"
    broken = rows[("broken", "restored")]
    assert broken.status == "error" and "broken_restored.png" in broken.error
    for name in ("grace_hopper", "astronaut"):
        row = rows[(name, "restored")]
        assert row.status == "ok" and len(row.faces) == 1
        face = row.faces[0]
        print(
            f"{name}: dlib L2 before {face.id_before.value:.3f} after {face.id_after.value:.3f}"
            f" CLIP-S edited {row.clip_edited:.2f} restored {row.clip_restored:.2f}"
            f" PSNR outside {row.psnr_outside} SSIM outside {row.ssim_outside:.4f}"
            f" (outside = {row.outside_fraction:.0%} of the photo, region {row.clip_region})"
        )
        # Classic mode pastes the original face back: closer to the original than the edit.
        assert face.id_after.value < face.id_before.value
        assert face.id_after.same_person
        # Nothing outside the face crops changed.
        assert row.psnr_outside == float("inf") and row.ssim_outside == pytest.approx(1.0)
        assert 0.1 < row.outside_fraction < 1.0
        assert row.clip_edited is not None and row.clip_restored is not None
        assert row.clip_region in ("element", "face")
    blurred = rows[("astronaut", "blurred")]
    print(
        f"blurred background: PSNR outside {blurred.psnr_outside:.2f} dB, "
        f"SSIM {blurred.ssim_outside:.3f}"
    )
    assert blurred.psnr_outside < 40 and blurred.ssim_outside < 0.95

    means = report.means()
    assert means["restored"]["sets"] == 2 and means["restored"]["errors"] == 1
    assert means["restored"]["id_after"] < means["restored"]["id_before"]
    assert means["restored"]["psnr_outside"] == 100.0  # inf counts as 100 dB

    out = tmp_path / "report"
    written = write_report(report, out)
    for key in ("csv", "faces_csv", "md", "id_before_after", "faces_scatter"):
        assert written[key] is not None and written[key].is_file()
    with open(out / "eval.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["name"] for r in table].count("MEAN") == 2
    assert any(r["status"] == "error" and "broken" in r["error"] for r in table)
    grace = next(r for r in table if r["name"] == "grace_hopper")
    assert grace["psnr_outside_db"] == "inf" and float(grace["id_after"]) < float(
        grace["id_before"]
    )
    faces = list(csv.DictReader(open(out / "eval_faces.csv", newline="")))
    assert len(faces) == 3 and {f["model"] for f in faces} == {"dlib-resnet-v1"}
    md = (out / "eval.md").read_text()
    assert "dlib-resnet-v1" in md and "## Means" in md and "lonely" in md
    assert "![faces_scatter](faces_scatter.png)" in md
    for plot in ("id_before_after.png", "faces_scatter.png"):
        image = np.asarray(Image.open(out / plot).convert("RGB"))
        assert image.shape[0] >= 300 and image.shape[1] >= 400
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # bars, points, text
    assert not list(out.glob("*.part"))
    # Inputs untouched.
    assert {p.name: p.read_bytes() for p in sets_dir.iterdir()} == inputs


def test_element_words_from_sidecar_and_no_clip(tmp_path, sets_dir, analyzer):
    for suffix in ("original", "edited", "restored"):
        shutil.copy(sets_dir / f"astronaut_{suffix}.png", tmp_path / f"a_{suffix}.png")
    (tmp_path / "a_restored.png.json").write_text('{"params": {"element_words": ["hat"]}}')
    report = evaluate_folder(tmp_path, analyzer=analyzer)
    assert report.clip_model is None and "no CLIP model" in report.clip_note
    assert report.images[0].clip_edited is None and report.images[0].status == "ok"


def test_cli_eval_folder(sets_dir, clip_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    code = eval_cli.main(
        [
            str(sets_dir),
            "--out",
            str(out),
            "--clip-model",
            str(clip_dir),
            "--face-backend",
            "dlib",
            "--element",
            "glasses",
            "--quiet",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("eval.md")
    assert (out / "eval.csv").is_file() and (out / "faces_scatter.png").is_file()


def test_cli_missing_clip_model_is_an_error(sets_dir, tmp_path, capsys):
    code = eval_cli.main(
        [
            str(sets_dir),
            "--out",
            str(tmp_path / "x"),
            "--clip-model",
            "someone/missing-clip",
            "--models-dir",
            str(tmp_path),
            "--face-backend",
            "dlib",
            "--quiet",
        ]
    )
    assert code == 3
    assert "not on this machine" in capsys.readouterr().err


def test_ablation_on_tiny_model(tiny_sd_dir, sets_dir, analyzer, clip_dir, tmp_path):
    from engine.evaluation.clip_score import ClipScorer
    from engine.models.loading import load_sd_model
    from engine.params import EditedIDParams

    model = load_sd_model(tiny_sd_dir, device="cpu")
    # 2 steps (DPM-Solver++ on the last) keep five tiny-model runs quick on a busy CPU.
    params = EditedIDParams(
        nulltext_iters=1,
        resolution=64,
        steps=2,
        dpm_range=(1, 2),
        final_align_steps=1,
        element_words=("glasses",),
    )
    out = tmp_path / "ablation"
    report = run_ablation(
        sets_dir / "grace_hopper_original.png",
        sets_dir / "grace_hopper_edited.png",
        model,
        params,
        out,
        analyzer=analyzer,
        clip=ClipScorer.load(clip_dir),
    )
    names = [variant for variant, _, _ in ABLATION_VARIANTS]
    assert [r.variant for r in report.rows] == names
    for row in report.rows:
        assert row.status == "ok", row.error
        assert (out / f"ablation_{row.variant}.png").is_file()
        assert row.scores.psnr_outside == float("inf")  # every variant keeps the background
        print(
            f"{row.variant}: ID after {row.scores.id_after:.3f} (before "
            f"{row.scores.id_before:.3f}), CLIP-S {row.scores.clip_restored:.2f}, {row.seconds}s"
        )
    outputs = [np.asarray(Image.open(out / f"ablation_{v}.png")) for v in names]
    assert not np.array_equal(outputs[0], outputs[-1])  # diffusion differs from classic
    sheet = Image.open(out / "ablation_sheet.png")
    assert sheet.width > 6 * 200 and sheet.height > 256
    table = list(csv.DictReader(open(out / "ablation.csv", newline="")))
    assert [r["variant"] for r in table] == names
    assert "Table 7" in (out / "ablation.md").read_text()


def test_ablation_variant_failure_is_reported(sets_dir, analyzer, tmp_path):
    """Without a model the diffusion variants fail with a message; classic still runs."""
    report = run_ablation(
        sets_dir / "astronaut_original.png",
        sets_dir / "astronaut_edited.png",
        None,
        None,
        tmp_path / "abl",
        analyzer=analyzer,
    )
    status = {r.variant: r.status for r in report.rows}
    assert status["classic"] == "ok" and status["full"] == "error"
    assert "model" in next(r.error for r in report.rows if r.variant == "full")
    assert (tmp_path / "abl" / "ablation_sheet.png").is_file()
