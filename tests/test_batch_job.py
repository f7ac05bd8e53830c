"""engine.batch.job: a BatchJob's every choice reaches its place (the processor's request,
the results, the report), and a processor or restorer that does not fit the job is refused
before the batch touches anything."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.batch.remote import FileWorker, WorkerSpec, read_job
from engine.batch.run import (
    REPORT_NAME,
    BatchJob,
    FileRequest,
    ReportTarget,
    check_processor,
    is_finished,
    plan_batch,
    run_batch,
)
from engine.cli.batch import batch_cli
from engine.errors import InputError
from engine.io.export import sidecar_path
from engine.params import EditedIDParams
from engine.restorers import get_restorer
from tests.fixtures.batch import FakeProcessor, save_image
from tests.helpers import face_crop

GPS_IFD = 0x8825


def _gps_photo(path: Path, array: np.ndarray) -> Path:
    """A JPEG from a phone: camera and a GPS position in its EXIF."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)})
    Image.fromarray(array).save(path, format="JPEG", exif=exif.tobytes())
    return path


def _gps(path: Path) -> dict:
    with Image.open(path) as image:
        return dict(image.getexif().get_ifd(GPS_IFD))


@pytest.fixture
def pairs(tmp_path):
    """Three pairs; the edited photos carry a GPS position."""
    orig, edit = tmp_path / "orig", tmp_path / "edit"
    orig.mkdir()
    edit.mkdir()
    for i, name in enumerate(("a1", "a2", "a3")):
        photo = face_crop("grace_hopper" if i % 2 else "astronaut", 64)
        save_image(photo, orig / f"{name}.png")
        _gps_photo(edit / f"{name}.jpg", np.ascontiguousarray(photo[:, ::-1]))
    return orig, edit, tmp_path / "out"


def _job(pairs, **choices) -> BatchJob:
    orig, edit, out = pairs
    return BatchJob(plan_batch(orig, edit, out), EditedIDParams(steps=7), **choices)


@pytest.mark.parametrize("strip", [True, False])
def test_each_choice_reaches_the_processor_the_results_and_the_report(pairs, tmp_path, strip):
    reports = tmp_path / "reports"
    reports.mkdir()
    choices = dict(
        mode="classic", backend="dlib", faces="all" if strip else "changed",
        strip_location=strip, report=ReportTarget(folder=reports) if strip else ReportTarget(),
    )  # fmt: skip
    job = _job(pairs, **choices)
    fake = FakeProcessor(steps=1)
    report = run_batch(job, processor=fake)
    assert report.ok == 3 and sorted(fake.calls) == ["a1.jpg", "a2.jpg", "a3.jpg"]
    for request in fake.requests:
        assert request.params is job.params and request.restorer.name == "classic"
        assert request.backend == "dlib" and request.faces == job.faces
        assert request.strip_location is strip and request.overwrite is False
    out = pairs[2]
    for item in job.plan.items:  # the location: gone from every result, or kept
        assert _gps(item.edited)[2] == (52.0, 31.0, 12.0)
        assert (_gps(item.output) == {}) is strip
        assert json.loads(sidecar_path(item.output).read_text())["mode"] == "classic"
    where = reports if strip else out
    assert report.report_path == where / REPORT_NAME and report.report_path.is_file()
    assert not (out if strip else reports).joinpath(REPORT_NAME).exists()
    summary = json.loads(report.summary_json_path.read_text())
    assert summary["faces"] == job.faces and report.mode == "classic"


def test_no_report_is_written_when_the_job_says_so(pairs):
    report = run_batch(_job(pairs, report=ReportTarget(write=False)), processor=FakeProcessor(1))
    assert report.ok == 3 and report.report_path is None
    assert not list(pairs[2].glob("editedid-batch-report*"))


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_decides_what_happens_to_an_earlier_output(pairs, overwrite):
    orig, edit, out = pairs
    out.mkdir()
    (out / "a2.jpg").write_bytes(b"half of an earlier result")  # no finished sidecar
    fake = FakeProcessor(steps=1)
    report = run_batch(_job(pairs, overwrite=overwrite), processor=fake)
    row = next(r for r in report.rows if r.output.endswith("a2.jpg"))
    asked = {Path(r.output).name: r.overwrite for r in fake.requests}
    if overwrite:  # replaced, and only that file is asked to replace one
        assert row.status == "ok" and is_finished(out / "a2.jpg", orig / "a2.png", edit / "a2.jpg")
        assert asked == {"a1.jpg": False, "a2.jpg": True, "a3.jpg": False}
    else:  # refused, kept as it was, never handed to the processor
        assert row.status == "failed" and "not marked finished" in row.error
        assert (out / "a2.jpg").read_bytes() == b"half of an earlier result"
        assert asked == {"a1.jpg": False, "a3.jpg": False}
    assert report.ok == (3 if overwrite else 2)


class OldStyle:
    """The signature-guessed processor of before: a bare callable."""

    def __call__(self, original, edited, out, params, **options):
        raise AssertionError("never called")


class NotCallable:
    restore_file = "restore"


@pytest.mark.parametrize(
    "processor", [OldStyle(), NotCallable(), lambda *a, **k: None], ids=["old", "attr", "lambda"]
)
def test_a_processor_outside_the_protocol_is_refused_before_any_work(pairs, processor):
    with pytest.raises(TypeError, match=r"restore_file\(request\)"):
        run_batch(_job(pairs), processor=processor)
    assert not pairs[2].exists()  # no output folder, no lock, no report
    with pytest.raises(TypeError, match="PhotoProcessor"):
        FileWorker(WorkerSpec("classic", processor=processor), name="w")  # at the start
    assert check_processor(FakeProcessor()) is not None


def test_a_restorer_the_job_did_not_ask_for_is_refused(pairs):
    with pytest.raises(ValueError, match="'diffusion' restorer but was handed 'classic'"):
        run_batch(_job(pairs), restorer=get_restorer("classic"), processor=FakeProcessor())
    assert not pairs[2].exists()
    with pytest.raises(TypeError, match="BatchJob"):
        run_batch(_job(pairs).plan, processor=FakeProcessor())  # the keyword call of before


def test_a_job_is_a_plain_value(pairs):
    job = _job(pairs, mode="classic", faces="all", report=ReportTarget(write=False))
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.plan.items == job.plan.items
    with pytest.raises(AttributeError):
        job.overwrite = True  # frozen: what a batch does is fixed once it is planned
    with pytest.raises(InputError, match="faces must be one of changed, all"):
        _job(pairs, faces="some")


def test_a_worker_hands_the_jobs_choices_to_its_processor(pairs):
    """The Ray path: the choices travel in the FileJob and reach the worker's processor."""
    orig, edit, out = pairs
    out.mkdir()
    item = plan_batch(orig, edit, out).items[0]
    fake = FakeProcessor(steps=1)
    worker = FileWorker(WorkerSpec("classic", processor=fake), name="w")
    params = EditedIDParams(steps=9)
    for backend, faces, strip in (("dlib", "all", False), ("auto", "changed", True)):
        job = read_job(0, item, params, backend=backend, faces=faces, strip_location=strip)
        assert worker.restore(job).status == "ok"
        request: FileRequest = fake.requests[-1]
        assert (request.backend, request.faces, request.strip_location) == (backend, faces, strip)
        assert request.params == params and request.restorer.name == "classic"
        assert request.output.name == item.output.name and request.overwrite is False


def test_the_command_line_fills_the_job(pairs, tmp_path):
    orig, edit, out = pairs
    reports = tmp_path / "reports"
    reports.mkdir()
    out.mkdir()
    (out / "a3.jpg").write_bytes(b"half of an earlier result")
    fake = FakeProcessor(steps=1)
    argv = ["--original-dir", str(orig), "--edited-dir", str(edit), "--out-dir", str(out),
            "--mode", "classic", "--face-backend", "dlib", "--faces", "all", "--keep-location",
            "--overwrite", "--report-dir", str(reports), "--steps", "9", "--quiet"]  # fmt: skip
    assert batch_cli(argv, processor=fake) == 0
    assert {(r.backend, r.faces, r.strip_location, r.params.steps) for r in fake.requests} == {
        ("dlib", "all", False, 9)
    }
    assert {Path(r.output).name: r.overwrite for r in fake.requests}["a3.jpg"] is True
    assert _gps(out / "a1.jpg")[2] == (52.0, 31.0, 12.0)
    assert (reports / REPORT_NAME).is_file() and not (out / REPORT_NAME).exists()
