"""Every file of the bad-input corpus (tests/bad_inputs.py) through the CLI, batch mode
and the app's loader: a clear message naming the file, no crash, no traceback, and the
inputs untouched (sha256 of every input file before and after). Valid-but-unusual files
(CMYK, 16-bit, alpha, palette, EXIF-rotated, grayscale, non-ASCII and long paths,
mismatched sizes) must restore.

The 12000x9000 case costs ~25 s and ~1.4 GB extra RSS on the CLI (dlib runs HOG at full
resolution), so it runs only with `-m slow`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dlib  # noqa: F401 - a hard dependency: missing dlib must fail, not skip
import pytest

from engine.cli.commands import EXIT_INPUT, EXIT_OK, main
from engine.io.images import read_rgb
from engine.params import EditedIDParams
from tests.bad_inputs import HUGE_SIZE, Case, build_corpus, sha256_tree

FAST = EditedIDParams(resolution=128)  # classic mode: smaller crops, same code path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root, huge=False)


def _cli(case: Case, out: Path, capsys) -> tuple[int, str]:
    argv = ["restore", "--original", str(case.original), "--edited", str(case.edited),
            "--out", str(out), "--mode", "classic", "--face-backend", "dlib", "--faces", "all",
            "--resolution", str(FAST.resolution), "--quiet"]  # fmt: skip
    code = main(argv)  # must return, never raise
    return code, capsys.readouterr().err


def _check_ok_output(case: Case, out: Path) -> list[str]:
    problems = []
    if not out.is_file():
        return [f"{case.name}: no output written"]
    if read_rgb(out).shape != read_rgb(case.edited).shape:
        problems.append(f"{case.name}: output size differs from the (upright) edited photo")
    sidecar = json.loads(out.with_name(out.name + ".json").read_text(encoding="utf-8"))
    if len(sidecar["faces"]) != 1:
        problems.append(f"{case.name}: {len(sidecar['faces'])} faces restored, expected 1")
    return problems


def test_cli_restore_every_corpus_file(corpus, tmp_path, capsys):
    root, cases = corpus
    before = sha256_tree(root)
    problems = []
    for case in cases:
        out = tmp_path / f"{case.name}.png"
        code, err = _cli(case, out, capsys)
        if "Traceback" in err:
            problems.append(f"{case.name}: traceback printed:\n{err}")
        if case.expect == "ok":
            if code != EXIT_OK:
                problems.append(f"{case.name} ({case.note}): exit {code}: {err.strip()}")
            else:
                problems += _check_ok_output(case, out)
        else:
            if code != EXIT_INPUT:
                problems.append(f"{case.name}: exit {code}, expected {EXIT_INPUT}: {err}")
            if str(case.bad) not in err:
                problems.append(f"{case.name}: message does not name {case.bad}: {err.strip()}")
            if out.exists():
                problems.append(f"{case.name}: an output was written for a failed input")
    assert not problems, "\n".join(problems)
    assert not list(tmp_path.glob(".*.part")), "temp files left behind"
    assert sha256_tree(root) == before, "an input file was changed, added or removed"


def test_batch_goes_on_and_reports_each_problem_by_name(corpus, tmp_path):
    from engine.batch.run import BatchJob, is_finished, plan_batch, run_batch

    root, cases = corpus
    before = sha256_tree(root)
    by_edited = {str(c.edited): c for c in cases}
    rows = []
    for group in sorted({c.edited.parent.parent for c in cases}):
        out = tmp_path / ("out-" + group.name[:10])
        plan = plan_batch(group / "original", group / "edited", out)
        assert not plan.problems(), plan.problems()
        report = run_batch(BatchJob(plan, FAST, mode="classic", backend="dlib", faces="all"))
        assert report.report_path is not None and report.report_path.is_file()
        with open(report.report_path, encoding="utf-8", newline="") as handle:
            csv_rows = {r["edited"]: r for r in csv.DictReader(handle)}
        markdown = report.summary_md_path.read_text(encoding="utf-8")
        for row in report.rows:
            rows.append((row, csv_rows[row.edited], markdown))
    assert sorted(r.edited for r, _, _ in rows) == sorted(by_edited)
    problems = []
    for row, csv_row, markdown in rows:
        case = by_edited[row.edited]
        if case.expect == "ok":
            if row.status != "ok" or not is_finished(Path(row.output)):
                problems.append(f"{case.name}: {row.status}: {row.error}")
            else:
                problems += _check_ok_output(case, Path(row.output))
        else:
            if row.status != "failed":
                problems.append(f"{case.name}: status {row.status}, expected failed")
            if str(case.bad) not in row.error or row.error != csv_row["error"]:
                problems.append(f"{case.name}: report error does not name {case.bad}")
            if "Traceback" in row.error or case.edited.name not in markdown:
                problems.append(f"{case.name}: missing from the Markdown failures table")
            if Path(row.output).exists():
                problems.append(f"{case.name}: an output was written for a failed input")
    assert not problems, "\n".join(problems)
    assert sha256_tree(root) == before, "an input file was changed, added or removed"


# --- the app's loader ---------------------------------------------------------------------
@pytest.fixture
def window(qtbot, qapp, tmp_path, tiny_sd_dir, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    import editedid_desktop.main_window as main_window
    from editedid_desktop.settings import Settings

    class CapturingBox(QMessageBox):
        """A real message box that records itself instead of opening."""

        shown: list[tuple[str, str]] = []

        def open(self) -> None:  # noqa: A003 - Qt API
            CapturingBox.shown.append((self.windowTitle(), self.text()))

    CapturingBox.shown = []
    monkeypatch.setattr(main_window, "QMessageBox", CapturingBox)
    settings = Settings.from_ini(tmp_path / "settings.ini")
    settings.model_source = str(tiny_sd_dir)
    settings.device = "cpu"
    settings.precision = "fp32"
    settings.models_dir = str(tmp_path / "models")
    settings.face_backend = "dlib"
    win = main_window.MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    win.shown_boxes = CapturingBox.shown
    yield win
    win.session.set_dirty(False)
    win.close()


def _load_in_app(window, case: Case) -> list[str]:
    """Open both files without analysis; returns problems found."""
    problems = []
    unreadable = case.expect == "error" and not case.name.endswith("no_face")
    for kind, path in (("original", case.original), ("edited", case.edited)):
        window.shown_boxes.clear()
        opened = window.open_photo(kind, path, analyze=False)
        if unreadable and path == case.bad:
            status = window.statusBar().currentMessage()
            if opened or len(window.shown_boxes) != 1:
                problems.append(f"{case.name}: no message box ({window.shown_boxes})")
            elif str(path) not in window.shown_boxes[0][1] or str(path) not in status:
                problems.append(f"{case.name}: box/status do not name {path}: {status}")
        elif not opened or window.shown_boxes:
            problems.append(f"{case.name}: {path.name} failed to open: {window.shown_boxes}")
    return problems


def test_app_loader_shows_a_message_naming_the_file(corpus, window, qtbot):
    root, cases = corpus
    before = sha256_tree(root)
    problems = []
    for case in cases:
        problems += _load_in_app(window, case)
    assert not problems, "\n".join(problems)

    # A photo without a face opens, and the analysis (worker thread) reports it in a box.
    no_face = next(c for c in cases if c.name == "no_face")
    window.shown_boxes.clear()
    assert window.open_photos(no_face.original, no_face.edited)
    qtbot.waitUntil(lambda: bool(window.shown_boxes), timeout=30000)
    title, text = window.shown_boxes[0]
    # The message names the file the user opened.
    assert f"No face found in {no_face.edited}" in text, text
    assert sha256_tree(root) == before


@pytest.mark.slow
def test_huge_image_cli_and_app(tmp_path, window, capsys):
    """12000x9000 (108 MP): restores at full size. ~25 s, ~1.4 GB extra peak RSS."""
    cases = [c for c in build_corpus(tmp_path / "corpus") if c.name == "huge"]
    (case,) = cases
    before = sha256_tree(tmp_path / "corpus")
    out = tmp_path / "huge-out.png"
    code, err = _cli(case, out, capsys)
    assert code == EXIT_OK, err
    assert read_rgb(out).shape == (HUGE_SIZE[1], HUGE_SIZE[0], 3)
    assert not _load_in_app(window, case)
    assert sha256_tree(tmp_path / "corpus") == before
