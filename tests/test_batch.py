"""engine.batch.run: pairing, bad files, resume, kill mid-run, pause/cancel, report, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.batch import run as batch
from engine.batch import runner
from engine.batch.run import (
    BatchJob,
    BatchProgress,
    FileRequest,
    ReportTarget,
    is_finished,
    plan_batch,
    run_batch,
    sidecar_path,
)
from engine.cli.batch import batch_cli
from engine.errors import InputError
from engine.io.export import OutputFolderError
from engine.io.images import read_rgb
from engine.params import EditedIDParams
from engine.restorers import get_restorer
from tests.fixtures.batch import FakeProcessor, save_image
from tests.helpers import face_crop, sample_photo


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_plan_pairs_by_name_and_lists_the_rest(folders):
    orig, edit, out = folders
    plan = plan_batch(orig, edit, out)
    pairs = {i.original.name: i.edited.name for i in plan.items}
    assert pairs == {
        "a01.jpg": "a01.png",
        "a02.png": "a02_edited.png",
        "A03.jpg": "a03-edit.jpg",
        "a04.png": "edited_a04.png",
        "a05.png": "a05.jpg",
        "a06.png": "A06.TIF",
        "a07.png": "a07.jpg",
    }
    assert [p.name for p in plan.unpaired_originals] == ["lonely.png"]
    assert [p.name for p in plan.unpaired_edited] == ["stray_result_x.png"]
    assert [p.name for p in plan.ignored] == ["notes.txt"]
    assert {i.output.name for i in plan.items} >= {"a02_edited.png", "A06.TIF", "a01.png"}
    assert all(i.output.parent == out for i in plan.items)
    assert "same name" in plan.rule_text and "edited" in plan.rule_text
    problems = plan.problems()
    assert any("lonely.png" in p for p in problems)
    assert any("stray_result_x.png" in p for p in problems)
    assert not out.exists()  # planning writes nothing


def test_plan_exact_rule_and_ambiguity(tmp_path):
    orig, edit = tmp_path / "o", tmp_path / "e"
    orig.mkdir()
    edit.mkdir()
    img = face_crop("grace_hopper", 16)
    for name in ("x.jpg", "x.png", "y.png", "z.png"):
        save_image(img, orig / name)
    for name in ("x.png", "y_edited.png", "y-edit.png", "z_edited.png", "z.png"):
        save_image(img, edit / name)
    plan = plan_batch(orig, edit, tmp_path / "r")
    assert [(i.original.name, i.edited.name) for i in plan.items] == [("z.png", "z.png")]
    assert any("x.jpg" in m and "x.png" in m for m in plan.ambiguous)
    assert any("y_edited.png" in m and "y-edit.png" in m for m in plan.ambiguous)
    assert "z_edited.png" in [p.name for p in plan.unpaired_edited]
    exact = plan_batch(orig, edit, tmp_path / "r", rule="exact")
    assert "y_edited.png" in [p.name for p in exact.unpaired_edited]
    assert "marker" not in exact.rule_text


def test_plan_refuses_an_input_folder_as_output(folders):
    orig, edit, _ = folders
    with pytest.raises(InputError, match="must differ"):
        plan_batch(orig, edit, edit)
    with pytest.raises(InputError, match="does not exist"):
        plan_batch(orig / "nope", edit, orig.parent / "r")
    with pytest.raises(InputError, match="rule"):
        plan_batch(orig, edit, orig.parent / "r", rule="order")


def test_bad_files_are_logged_and_the_rest_finish_then_resume(folders):
    orig, edit, out = folders
    inputs_before = _hashes(orig), _hashes(edit)
    fake = FakeProcessor()
    events: list[BatchProgress] = []
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), mode="classic"),
        processor=fake,
        on_progress=events.append,
    )
    assert report.ok == 5 and report.failed == 2 and not report.cancelled
    failures = dict((Path(f).name, e) for f, e in report.failures)
    assert "a05.jpg" in failures["a05.jpg"] and "damaged or truncated" in failures["a05.jpg"]
    assert "a07.jpg" in failures["a07.jpg"] and "not a readable image" in failures["a07.jpg"]
    rows = _read_csv(report.report_path)
    assert list(rows[0]) == list(batch.REPORT_COLUMNS)
    by_file = {Path(r["edited"]).name: r for r in rows}
    assert by_file["a05.jpg"]["status"] == "failed" and by_file["a05.jpg"]["error"]
    ok = by_file["a02_edited.png"]
    assert ok["status"] == "ok" and ok["faces"] == "2" and ok["mode"] == "classic"
    assert ok["id_before"] == "0.4100;0.4100" and ok["id_after"] == "0.8300;0.8300"
    assert float(ok["seconds"]) >= 0
    summary = json.loads(report.summary_json_path.read_text())
    assert summary["counts"]["failed"] == 2
    assert "lonely.png" in " ".join(summary["unpaired_originals"])
    md = report.summary_md_path.read_text()
    assert "a07.jpg" in md and "lonely.png" in md and "stray_result_x.png" in md
    # progress: per-file steps and an ETA once a file has finished
    assert any(e.stage == "reconstruction" and e.steps == 3 for e in events)
    assert any(e.eta_s is not None for e in events)
    assert events[-1].stage == "finished" and events[-1].fraction == 1.0
    assert {e.total for e in events} == {7}
    # inputs untouched, no temp files, a sidecar per output; 16-bit-less TIF stays TIF
    assert (_hashes(orig), _hashes(edit)) == inputs_before
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".part"]
    assert (out / "A06.TIF").exists() and is_finished(out / "A06.TIF")

    outputs_before = _hashes(out)
    plan2 = plan_batch(orig, edit, out)
    assert len(plan2.skipped_existing) == 5 and len(plan2.items) == 2
    fake2 = FakeProcessor()
    report2 = run_batch(
        BatchJob(plan2, EditedIDParams(), mode="classic"),
        processor=fake2,
        restorer=get_restorer("classic"),
    )
    assert sorted(fake2.calls) == ["a05.jpg", "a07.jpg"]  # only the failed ones again
    assert report2.skipped == 5 and report2.failed == 2
    rows2 = {Path(r["edited"]).name: r for r in _read_csv(report2.report_path)}
    assert rows2["a01.png"]["status"] == "skipped"
    assert rows2["a01.png"]["id_after"] == "0.8300;0.8300"  # carried over from run 1
    after = _hashes(out)
    for name, digest in outputs_before.items():
        if not name.startswith("editedid-batch-report"):
            assert after[name] == digest, name


def test_killed_batch_keeps_finished_outputs_and_resumes(folders):
    orig, edit, out = folders
    plan = plan_batch(orig, edit, out)
    fake = FakeProcessor(interrupt_on=3)
    with pytest.raises(KeyboardInterrupt):
        run_batch(BatchJob(plan, EditedIDParams(), mode="classic"), processor=fake)
    finished = [i.output for i in plan.items if is_finished(i.output)]
    assert len(finished) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".") or ".part" in p.name]
    rows = _read_csv(out / batch.REPORT_NAME)  # the report so far survived the kill
    assert [r["status"] for r in rows] == ["ok", "ok"]
    kept = {p: p.read_bytes() for p in finished}
    fake2 = FakeProcessor()
    report = run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=fake2)
    assert len(fake2.calls) == 5 and not set(fake2.calls) & {p.name for p in finished}
    assert report.ok == 3 and report.skipped == 2 and report.failed == 2
    assert all(p.read_bytes() == data for p, data in kept.items())


def test_stale_output_needs_overwrite(folders):
    orig, edit, out = folders
    out.mkdir()
    (out / "a01.png").write_bytes(b"half of an old file")  # no finished sidecar
    plan = plan_batch(orig, edit, out)
    assert [c.output.name for c in plan.conflicts] == ["a01.png"]
    report = run_batch(BatchJob(plan, EditedIDParams()), processor=FakeProcessor())
    row = next(r for r in report.rows if r.output.endswith("a01.png"))
    assert row.status == "failed" and "not marked finished" in row.error
    assert (out / "a01.png").read_bytes() == b"half of an old file"
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), overwrite=True),
        processor=FakeProcessor(),
    )
    assert is_finished(out / "a01.png")


def _wait_for(condition, timeout: float = 10.0) -> None:
    """Poll a state until it holds (never a fixed sleep before an assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "state not reached in time"
        time.sleep(0.01)


def test_pause_between_files_and_steps_then_cancel(folders):
    orig, edit, out = folders
    pause, cancel = threading.Event(), threading.Event()
    fake = FakeProcessor(steps=4, step_delay=0.01)
    events: list[BatchProgress] = []

    def on_progress(p: BatchProgress) -> None:
        events.append(p)
        if p.stage == "reconstruction" and p.step == 2 and len(fake.calls) == 2:
            pause.set()  # pause inside the second file, at a step

    pause.set()  # paused before the first file
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.setdefault(
            "report",
            run_batch(
                BatchJob(plan_batch(orig, edit, out), EditedIDParams()),
                processor=fake,
                on_progress=on_progress,
                pause=pause,
                cancel=cancel,
            ),
        )
    )
    worker.start()
    _wait_for(lambda: bool(events) and events[-1].stage == "paused")
    assert fake.calls == []  # paused before the first file
    pause.clear()
    _wait_for(lambda: len(fake.calls) == 2 and events[-1].stage == "paused")
    cancel.set()  # cancel while paused: stops without finishing file 2
    worker.join(10)
    # held within the file: the last step any file reached is file 2's step 2 (a pause
    # that did not hold would have run steps 3 and 4 before the "paused" state came)
    assert [e.step for e in events if e.stage == "reconstruction"][-1] == 2
    report = result["report"]
    assert report.cancelled and report.ok == 1
    assert [r.status for r in report.rows] == ["ok", "cancelled"]
    second = next(r for r in report.rows if r.status == "cancelled")
    assert not Path(second.output).exists()
    assert events[-1].stage == "cancelled"
    assert not [p for p in out.iterdir() if ".part" in p.name]


def test_cancel_callable_stops_within_a_step(folders):
    orig, edit, out = folders
    fake = FakeProcessor(steps=50)
    stop = {"now": False}

    def on_progress(p):
        if p.stage == "reconstruction" and p.step == 5:
            stop["now"] = True

    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()),
        processor=fake,
        on_progress=on_progress,
        cancel=lambda: stop["now"],
    )
    assert report.cancelled and len(fake.calls) == 1 and report.ok == 0


def test_full_disk_stops_the_batch_with_a_reason(folders, monkeypatch):
    orig, edit, out = folders
    real = runner.check_output_folder
    calls = {"n": 0}

    def check(folder, needed=0):
        calls["n"] += 1
        if calls["n"] >= 4:  # start check + 2 files fine, then the disk is full
            raise OutputFolderError(f"{folder}: not enough free disk space.")
        return real(folder, needed)

    monkeypatch.setattr(runner, "check_output_folder", check)  # where run_batch calls it
    fake = FakeProcessor()
    report = run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=fake)
    assert report.ok == 2 and "disk space" in report.stopped_reason and len(fake.calls) == 2
    assert "Stopped" in report.summary_md_path.read_text()


def test_default_processor_is_engine_photo(folders, monkeypatch):
    orig, edit, out = folders
    fake = FakeProcessor()

    def restore_photo_files(original, edited, out, params, **options):
        return fake.restore_file(FileRequest(original, edited, out, params, **options))

    module = types.ModuleType("engine.photo.pipeline")
    module.restore_photo_files = restore_photo_files
    monkeypatch.setitem(sys.modules, "engine.photo.pipeline", module)
    job = BatchJob(plan_batch(orig, edit, out), EditedIDParams(), mode="classic", faces="all")
    report = run_batch(job)
    assert len(fake.calls) == 7 and report.ok == 5
    assert {r.faces for r in fake.requests} == {"all"}  # the job's choices reach the pipeline


def test_cli_batch(folders, capsys):
    orig, edit, out = folders
    argv = ["--original-dir", str(orig), "--edited-dir", str(edit), "--out-dir", str(out),
            "--mode", "classic", "--steps", "8", "--quiet"]  # fmt: skip
    fake = FakeProcessor()
    assert batch_cli([*argv, "--check"], processor=fake) == 0 and not fake.calls
    assert batch_cli(argv, processor=fake) == 0
    err = capsys.readouterr().err
    assert "Failures:" in err and "a05.jpg" in err and "a07.jpg" in err
    assert "lonely.png" in err  # the plan's mismatches are printed first
    assert (out / batch.REPORT_NAME).exists()
    # Nothing succeeds: exit 1. Bad folder: exit 2.
    only_bad = orig.parent / "bad"
    (only_bad / "o").mkdir(parents=True)
    (only_bad / "e").mkdir()
    save_image(face_crop("grace_hopper", 16), only_bad / "o" / "x.png")
    (only_bad / "e" / "x.jpg").write_text("nope")
    bad_argv = ["--original-dir", str(only_bad / "o"), "--edited-dir", str(only_bad / "e"),
                "--out-dir", str(only_bad / "r"), "--mode", "classic"]  # fmt: skip
    assert batch_cli(bad_argv, processor=FakeProcessor()) == 1
    missing = ["--original-dir", str(orig / "missing"), "--edited-dir", str(edit),
               "--out-dir", str(out)]  # fmt: skip
    assert batch_cli(missing, processor=fake) == 2


def test_report_rows_keep_no_images_over_many_files(tmp_path):
    """No image is kept per file: the report rows hold only short strings (memory itself
    is measured in bench/batch_memory.py, not here)."""
    orig, edit = tmp_path / "o", tmp_path / "e"
    orig.mkdir()
    edit.mkdir()
    img = face_crop("astronaut", 32)
    for i in range(30):
        save_image(img, orig / f"p{i:03}.png")
        save_image(img, edit / f"p{i:03}.png")
    report = run_batch(
        BatchJob(plan_batch(orig, edit, tmp_path / "r"), EditedIDParams()),
        processor=FakeProcessor(1),
    )
    assert report.ok == 30
    assert all(isinstance(v, str | tuple) for row in report.rows for v in vars(row).values())
    assert sidecar_path(tmp_path / "r" / "p000.png").exists()


def test_real_engine_classic_batch_end_to_end(tmp_path):
    """The default processor (engine.photo.pipeline.restore_photo_files), classic mode, dlib faces:
    real photos restore, a broken file is reported, a rerun skips the finished output."""
    orig, edit = tmp_path / "o", tmp_path / "e"
    orig.mkdir()
    edit.mkdir()
    photo = np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))
    edited = np.clip(photo.astype(int) + [14, -6, 10], 0, 255).astype(np.uint8)
    edited[150:175, 150:380] = (20, 20, 20)  # a drawn 'glasses' band
    save_image(photo, orig / "hopper.jpg")
    save_image(edited, edit / "hopper_edited.png")
    save_image(photo, orig / "broken.png")
    (edit / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    params = EditedIDParams(resolution=64)
    report = run_batch(
        BatchJob(
            plan_batch(orig, edit, tmp_path / "r"),
            params,
            mode="classic",
            backend="dlib",
            faces="all",
        )
    )
    assert report.ok == 1 and report.failed == 1, report.rows
    row = next(r for r in report.rows if r.status == "ok")
    assert row.faces == "1" and row.id_before and row.id_after
    out = tmp_path / "r" / "hopper_edited.png"
    assert is_finished(out) and read_rgb(out).shape == edited.shape
    assert "broken.jpg" in report.failures[0][1]
    again = run_batch(
        BatchJob(plan_batch(orig, edit, tmp_path / "r"), params, mode="classic", backend="dlib")
    )
    assert again.skipped == 1 and again.failed == 1


# --- issue 11: every file we write is precious -------------------------------------------
def _cli_argv(orig, edit, out, *extra):
    return ["--original-dir", str(orig), "--edited-dir", str(edit), "--out-dir", str(out),
            "--quiet", *extra]  # fmt: skip


def test_report_never_replaces_a_file_nor_an_input(folders, tmp_path, capsys):
    orig, edit, out = folders
    elsewhere = tmp_path / "reports"
    elsewhere.mkdir()
    client = elsewhere / "client.csv"
    client.write_text("a client's own table")
    neighbour = elsewhere / "r.json"  # the JSON summary's place of report r.csv
    neighbour.write_text('{"client": true}')
    fake = FakeProcessor()
    for path, message in ((client, "client.csv: already exists"), (elsewhere / "r.csv", "r.json")):
        with pytest.raises(InputError, match=message):
            run_batch(
                BatchJob(
                    plan_batch(orig, edit, out), EditedIDParams(), report=ReportTarget(path=path)
                ),
                processor=fake,
            )
    assert not fake.calls and not out.exists()  # refused before any work
    assert client.read_text() == "a client's own table"
    assert neighbour.read_text() == '{"client": true}'
    # never an input, even when replacing reports is allowed: a link to one, its folder
    link = elsewhere / "link.csv"
    (edit / "table.csv").write_text("client data")
    link.symlink_to(edit / "table.csv")
    for path, message in ((link, "input files"), (edit / "new.csv", "edited folder")):
        with pytest.raises(InputError, match=message):
            run_batch(
                BatchJob(
                    plan_batch(orig, edit, out),
                    EditedIDParams(),
                    report=ReportTarget(path=path, overwrite=True),
                ),
                processor=fake,
            )
    assert (edit / "table.csv").read_text() == "client data" and not (edit / "new.md").exists()
    # a foreign file at the default place in the output folder is not replaced either
    out.mkdir()
    (out / batch.REPORT_NAME).write_text("not ours")
    with pytest.raises(InputError, match="already exists"):
        run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=fake)
    assert (out / batch.REPORT_NAME).read_text() == "not ours"
    # the CLI says so before loading any model (diffusion with no model would exit 3)
    assert batch_cli(_cli_argv(orig, edit, tmp_path / "o2", "--report", str(client))) == 2
    err = capsys.readouterr().err
    assert "client.csv: already exists" in err and "--overwrite-report" in err
    # allowed explicitly: replaced (an ordinary file that is not an input)
    report = run_batch(
        BatchJob(
            plan_batch(orig, edit, tmp_path / "o3"),
            EditedIDParams(),
            report=ReportTarget(path=client, overwrite=True),
        ),
        processor=fake,
    )
    assert report.report_path == client and _read_csv(client)[0]["status"]


def test_resume_redoes_changed_inputs_and_trusts_only_our_sidecars(folders):
    orig, edit, out = folders
    run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor())
    assert is_finished(out / "a01.png", orig / "a01.jpg", edit / "a01.png")
    # the edit is re-exported: its finished output is stale, not skipped
    save_image(face_crop("astronaut", 64), edit / "a01.png")
    assert not is_finished(out / "a01.png", orig / "a01.jpg", edit / "a01.png")
    # an unrelated `{}` beside a foreign file, and a sidecar of ours with no status
    (out / "a02_edited.png.json").write_text("{}")
    data = json.loads((out / "a03-edit.jpg.json").read_text())
    del data["status"]
    (out / "a03-edit.jpg.json").write_text(json.dumps(data))
    plan = plan_batch(orig, edit, out)
    todo = sorted(i.output.name for i in plan.items)
    assert todo == ["a01.png", "a02_edited.png", "a03-edit.jpg", "a05.jpg", "a07.jpg"]
    assert [c.output.name for c in plan.changed] == ["a01.png"]
    assert any("input changed" in p and "a01.png" in p for p in plan.problems())
    fake = FakeProcessor()
    report = run_batch(BatchJob(plan, EditedIDParams()), processor=fake)
    row = next(r for r in report.rows if r.output.endswith("a01.png"))
    assert row.status == "failed" and "other versions of the inputs" in row.error
    fake = FakeProcessor()
    run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), overwrite=True), processor=fake
    )
    assert {"a01.png", "a02_edited.png", "a03-edit.jpg"} <= set(fake.calls)
    assert is_finished(out / "a01.png", orig / "a01.jpg", edit / "a01.png")
    assert not is_finished(out / "a01.png", orig / "a02.png", edit / "a01.png")


def test_a_second_batch_on_one_output_folder_is_refused(folders, capsys):
    from engine.batch.lock import LOCK_NAME, BatchLockedError, OutputLock

    orig, edit, out = folders
    out.mkdir()
    fake = FakeProcessor()
    with OutputLock(out):
        with pytest.raises(BatchLockedError, match=f"another batch .*process {os.getpid()}"):
            run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=fake)
        # the CLI: a clear message, exit 2, before any model is loaded
        assert batch_cli(_cli_argv(orig, edit, out)) == 2
        assert "another batch is already writing" in capsys.readouterr().err
    assert not fake.calls
    run_batch(BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=fake)
    assert len(fake.calls) == 7 and not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_batch_is_taken_over(folders):
    from engine.batch.lock import LOCK_NAME, BatchLockedError

    orig, edit, out = folders
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from engine.batch.lock import OutputLock; "
         "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
         str(out)],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BatchLockedError, match=f"process {holder.pid}"):
            run_batch(
                BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor()
            )
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the lock file stays behind
        holder.wait()
    assert (out / LOCK_NAME).exists()
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor()
    )
    assert report.ok == 5 and not (out / LOCK_NAME).exists()


def test_killed_runs_part_files_go_and_a_sidecar_in_the_way_is_named(folders):
    from engine.io.files import TEMP_SUFFIX, host_tag

    orig, edit, out = folders
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    part = out / f".a01.png.{host_tag()}-{dead.pid}.k1ll3d99{TEMP_SUFFIX}"
    part.write_bytes(b"\0" * 4096)  # a full-size temp file of a killed run
    client = out / ".client.part"
    client.write_bytes(b"not ours")
    (out / "a02_edited.png.json").mkdir()  # a folder in the sidecar's way
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), overwrite=True),
        processor=FakeProcessor(),
    )
    assert not part.exists() and client.read_bytes() == b"not ours"
    row = next(r for r in report.rows if r.output.endswith("a02_edited.png"))
    assert row.status == "failed" and "is a folder" in row.error and "Error:" not in row.error
    assert not (out / "a02_edited.png").exists()


def test_folders_and_report_place_are_checked_before_any_work(folders, tmp_path, capsys):
    orig, edit, out = folders
    with pytest.raises(InputError, match="paired with itself"):
        plan_batch(orig, orig, out)
    link = tmp_path / "same-as-orig"
    link.symlink_to(orig)
    with pytest.raises(InputError, match="paired with itself"):
        plan_batch(orig, link, out)
    assert batch_cli(_cli_argv(orig, link, out)) == 2
    assert "paired with itself" in capsys.readouterr().err
    cases = [
        (["--report", str(tmp_path / "nope" / "r.csv")], "nope: the report's folder does not"),
        (["--report", str(tmp_path)], "is a folder"),
        (["--report", str(tmp_path / "r.jpg")], "ending in .csv"),
        (["--report-dir", str(tmp_path / "nope")], "report folder does not exist"),
        (["--report", str(out / "a01.png.csv")], "an output of this batch"),
    ]
    for extra, message in cases:
        assert batch_cli(_cli_argv(orig, edit, out, *extra)) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Report:" not in err, (extra, err)
    assert not out.exists()


def test_report_rows_are_appended_and_full_rewrites_are_bounded(tmp_path):
    orig, edit = tmp_path / "o", tmp_path / "e"
    orig.mkdir()
    edit.mkdir()
    img = face_crop("astronaut", 16)
    for i in range(40):
        save_image(img, orig / f"p{i:03}.png")
        save_image(img, edit / f"p{i:03}.png")
    out = tmp_path / "r"
    seen = {}

    def on_progress(p):
        if p.stage == "file done" and p.done == 20:  # the rows so far are on disk
            seen["rows"] = len(_read_csv(out / batch.REPORT_NAME))

    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()),
        processor=FakeProcessor(1),
        on_progress=on_progress,
    )
    assert seen["rows"] == 20
    assert report.full_report_writes <= 3  # start and end (and one per interval), not 40
    assert len(_read_csv(out / batch.REPORT_NAME)) == 40
    assert json.loads(report.summary_json_path.read_text())["counts"]["ok"] == 40


def test_full_report_rewrites_follow_the_time_budget(folders, monkeypatch):
    orig, edit, out = folders
    monkeypatch.setattr(runner, "REPORT_INTERVAL_S", 0.0)  # every file is due: a rewrite each
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor()
    )
    assert report.full_report_writes == 1 + 7 + 1
    assert [r["status"] for r in _read_csv(report.report_path)].count("ok") == 5


def test_report_elsewhere_or_none_keeps_client_names_out_of_the_output(folders, tmp_path, capsys):
    orig, edit, out = folders
    reports = tmp_path / "reports"
    reports.mkdir()
    assert batch_cli(_cli_argv(orig, edit, out, "--mode", "classic", "--report-dir",
                               str(reports)), processor=FakeProcessor()) == 0  # fmt: skip
    assert not list(out.glob("editedid-batch-report*"))
    assert (reports / batch.REPORT_NAME).is_file() and (
        reports / "editedid-batch-report.md"
    ).exists()
    assert f"Report: {reports / batch.REPORT_NAME}" in capsys.readouterr().out
    out2 = tmp_path / "out2"
    assert batch_cli(_cli_argv(orig, edit, out2, "--mode", "classic", "--no-report"),
                     processor=FakeProcessor()) == 0  # fmt: skip
    assert not [p for p in out2.iterdir() if not p.name.startswith(("a0", "A0", "edited_a04"))]
    assert "Report:" not in capsys.readouterr().out


# --- issue 12: batch restores only changed faces by default, and says why ------------------
def test_batch_leaves_unchanged_faces_alone_and_reports_why(tmp_path, capsys):
    from tests.fixtures.faces import synthetic_edit

    orig, edit = tmp_path / "o", tmp_path / "e"
    orig.mkdir()
    edit.mkdir()
    photo = np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))
    save_image(photo, orig / "kept.png")  # a colour edit: the same person
    save_image(np.clip(photo.astype(int) + 15, 0, 255).astype(np.uint8), edit / "kept.png")
    original, _, swapped, _, _ = synthetic_edit()  # the astronaut's face pasted in
    save_image(original, orig / "swapped.png")
    save_image(swapped, edit / "swapped.png")
    argv = [*_cli_argv(orig, edit, tmp_path / "r"), "--mode", "classic", "--face-backend", "dlib",
            "--resolution", "64"]  # fmt: skip
    assert batch_cli(argv) == 0, capsys.readouterr().err
    rows = {Path(r["edited"]).name: r for r in _read_csv(tmp_path / "r" / batch.REPORT_NAME)}
    assert rows["kept.png"]["faces"] == "0"
    assert rows["kept.png"]["left_alone"].startswith("1: unchanged")
    assert rows["swapped.png"]["faces"] == "1" and rows["swapped.png"]["left_alone"] == ""
    kept_out = read_rgb(tmp_path / "r" / "kept.png")
    assert np.array_equal(kept_out, np.clip(photo.astype(int) + 15, 0, 255))  # as edited
    md = (tmp_path / "r" / "editedid-batch-report.md").read_text()
    assert "Left as edited" in md and "1: unchanged" in md
    # identity as every view shows it (D11): "% same person" before -> after, in CSV and MD
    same = rows["swapped.png"]["same_person"]
    assert re.fullmatch(r"\d+% → \d+%", same), same
    assert rows["kept.png"]["same_person"] == ""  # nothing restored, nothing scored
    assert f"| {same} |" in md
    # --faces all: every paired face, as before
    assert batch_cli([*argv[:5], str(tmp_path / "all"), *argv[6:], "--faces", "all"]) == 0
    rows = {Path(r["edited"]).name: r for r in _read_csv(tmp_path / "all" / batch.REPORT_NAME)}
    assert rows["kept.png"]["faces"] == "1" and rows["kept.png"]["left_alone"] == ""
    with pytest.raises(InputError, match="faces must be"):
        run_batch(BatchJob(plan_batch(orig, edit, tmp_path / "x"), EditedIDParams(), faces="some"))


# --- issue 14: the executor seam ---------------------------------------------------------
def test_an_executor_decides_who_restores_and_the_batch_keeps_rows_and_reports(folders):
    """run_batch hands the plan's files to its executor; rows, reports and resume stay the
    batch's (the local executor is the default; engine.batch.cluster's runs on Ray)."""
    orig, edit, out = folders
    seen = []

    class Backwards(batch.BatchExecutor):
        name = "backwards"

        def run_items(self, run, overwrite, old_rows):
            for item in reversed(run.plan.items):
                seen.append(item.edited.name)
                run.begin(item)
                run.process(item, overwrite)

    fake = FakeProcessor()
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()),
        processor=fake,
        executor=Backwards(),
    )
    assert fake.calls == seen == sorted(seen, key=str.casefold, reverse=True)
    assert report.ok == 5 and report.failed == 2
    assert [r["status"] for r in _read_csv(report.report_path)].count("ok") == 5
    again = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor()
    )
    assert again.skipped == 5  # the default (local) executor resumes what it finished
    assert isinstance(batch.LocalExecutor(), batch.BatchExecutor) and batch.LocalExecutor.runs_here


def test_identity_worse_names_only_the_faces_that_dropped(tmp_path):
    """Issue 20: a restore that made a face look less like the person is a warning; equal
    shown percentages are not "worse" (both read "66%")."""
    from engine.batch.identity_text import identity_worse
    from engine.io.export import sidecar_path

    def score(value):
        return {"value": value, "metric": "l2", "threshold": 0.6, "model": "dlib"}

    out = tmp_path / "result.png"
    faces = [
        {"face": 1, "id_before": score(0.41), "id_after": score(0.83)},  # 66% -> 31%
        {"face": 2, "id_before": score(0.83), "id_after": score(0.41)},  # better
        {"face": 3, "id_before": score(0.41), "id_after": score(0.4101)},  # 66% -> 66%
    ]
    sidecar_path(out).write_text(json.dumps({"editedid_sidecar": 1, "faces": faces}))
    assert identity_worse(out) == "1: 66% \u2192 31%"
    sidecar_path(out).write_text(json.dumps({"editedid_sidecar": 1, "faces": faces[1:]}))
    assert identity_worse(out) == ""
    assert identity_worse(tmp_path / "no-sidecar.png") == ""
