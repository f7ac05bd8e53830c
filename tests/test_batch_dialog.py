"""BatchDialog (pytest-qt, offscreen): check step, a run on a real QThread, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from editedid_desktop.batch_dialog import BatchDialog, format_eta
from engine.batch.run import is_finished
from engine.params import EditedIDParams
from engine.runtime import Engine
from tests.fixtures.batch import FakeProcessor


@pytest.fixture
def make_dialog(qtbot):
    def make(processor, model=None):
        dialog = BatchDialog(EditedIDParams, Engine(model), processor=processor)
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return make


def test_check_lists_the_rule_and_every_mismatch(make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor())
    assert not dialog.run_check()  # no folders yet: inline message, no modal box
    assert "Choose" in dialog.check_status.text()
    dialog.set_folders(orig, edit, out)
    dialog.check_button.click()
    assert dialog.plan is not None and "same name" in dialog.rule_label.text()
    text = "\n".join(dialog.check_lines())
    assert "lonely.png" in text and "stray_result_x.png" in text and "notes.txt" in text
    assert "Pairs to process (7)" in text and "a02.png  \u2194  a02_edited.png" in text
    assert "See the list" in dialog.check_status.text()
    dialog.set_folders(output=edit)  # same as an input folder: refused inline
    dialog.check_button.click()
    assert dialog.plan is None and "must differ" in dialog.check_status.text()


def test_run_completes_with_progress_then_resume_skips(qtbot, make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    fake = FakeProcessor(steps=3)
    dialog = make_dialog(fake)
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    events = []
    heartbeat = {"n": 0}
    timer = QTimer()
    timer.timeout.connect(lambda: heartbeat.__setitem__("n", heartbeat["n"] + 1))
    timer.start(5)
    dialog.batch_progress.connect(events.append)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()
        assert dialog.is_running() and not dialog.start_button.isEnabled()
    timer.stop()
    report = blocker.args[0]
    assert report.ok == 5 and report.failed == 2
    assert any(e.stage == "reconstruction" for e in events)
    assert events[-1].stage == "finished"
    assert heartbeat["n"] > 0  # the UI event loop kept running
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)
    assert dialog.overall_bar.value() == 1000
    assert dialog.report_table.rowCount() == 7
    statuses = [dialog.report_table.item(r, 1).text() for r in range(7)]
    # the fake restores make both faces look less like the person (66% -> 31%)
    assert statuses.count("ok \u26a0 identity worse") == 5 and statuses.count("failed") == 2
    ids = [dialog.report_table.item(r, 3).text() for r in range(7)]
    assert "1: 66% \u2192 31%, 2: 66% \u2192 31%" in ids  # as the face panels say it
    log = dialog.log_view.toPlainText()
    assert "FAILED a05.jpg" in log and "FAILED a07.jpg" in log
    assert dialog.open_report_button.isEnabled() and dialog.start_button.isEnabled()

    calls_before = len(fake.calls)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()  # re-checks: the 5 finished files are skipped
    assert blocker.args[0].skipped == 5
    assert len(fake.calls) - calls_before == 2


def test_cancel_leaves_the_dialog_usable(qtbot, make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    gate = threading.Event()

    class SlowProcessor(FakeProcessor):
        def restore_file(self, request):
            gate.set()
            return super().restore_file(request)

    fake = SlowProcessor(steps=200, step_delay=0.01)
    dialog = make_dialog(fake)
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    assert dialog.start()
    qtbot.waitUntil(gate.is_set, timeout=5000)
    dialog.pause_button.click()
    assert dialog.pause_button.text() == "Resume"
    dialog.pause_button.click()
    with qtbot.waitSignal(dialog.batch_finished, timeout=10000) as blocker:
        dialog.cancel_button.click()
    report = blocker.args[0]
    assert report.cancelled and report.ok == 0 and len(fake.calls) == 1
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)
    assert dialog.start_button.isEnabled() and dialog.check_button.isEnabled()
    assert not dialog.cancel_button.isEnabled()
    assert "Cancelled" in dialog.summary_label.text()
    assert not any(is_finished(p) for p in out.iterdir())

    # usable again: a fast run now finishes everything
    dialog.processor = FakeProcessor(steps=1)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()
    assert blocker.args[0].ok == 5


def test_diffusion_without_a_model_is_refused_inline(make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor(), model=None)
    dialog.set_mode("diffusion")
    dialog.set_folders(orig, edit, out)
    assert not dialog.start()
    assert "Classic" in dialog.check_status.text() and not dialog.is_running()


def test_close_while_running_cancels_first(qtbot, make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor(steps=200, step_delay=0.01))
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    assert dialog.start()
    dialog.close()
    assert dialog.isVisible()  # still open until the worker has stopped
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10000)
    assert not dialog.is_running()


def test_format_eta():
    assert format_eta(None).endswith("estimating\u2026")
    assert format_eta(75) == "ETA: 1:15"
    assert format_eta(3725) == "ETA: 1:02:05"


def test_shutdown_stops_a_running_batch(qtbot, make_dialog, folders):  # noqa: F811
    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor(steps=500, step_delay=0.01))
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    assert dialog.start()
    assert dialog.shutdown(10000)
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)


def test_read_only_output_is_reported_not_crashed(qtbot, make_dialog, folders, monkeypatch):  # noqa: F811
    from engine.batch import runner
    from engine.io.export import OutputFolderError

    orig, edit, out = folders

    def refuse(folder, needed=0):
        raise OutputFolderError(f"{folder}: the output folder is read-only.")

    monkeypatch.setattr(runner, "check_output_folder", refuse)
    dialog = make_dialog(FakeProcessor())
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    with qtbot.waitSignal(dialog.batch_failed, timeout=10000) as blocker:
        assert dialog.start()
    assert "read-only" in blocker.args[0] and "read-only" in dialog.log_view.toPlainText()
    assert dialog.start_button.isEnabled()


@pytest.mark.parametrize("strip", [True, False])
def test_the_location_setting_reaches_every_file_of_the_batch(qtbot, folders, strip):
    orig, edit, out = folders
    seen = []

    class Recording(FakeProcessor):
        def restore_file(self, request):
            seen.append(request.strip_location)
            return super().restore_file(request)

    dialog = BatchDialog(EditedIDParams, Engine(), processor=Recording(), strip_location=strip)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000):
        assert dialog.start()
    assert seen and all(value is strip for value in seen)


def test_identity_is_percent_same_person_and_the_table_is_readable(qtbot, make_dialog, folders):
    """D11: one way to show identity (the face panels' "% same person"), a header that
    is not clipped, several result rows at the default size, no "0 %" bar when done."""
    from PySide6.QtCore import QSize

    from engine.faces.identity import display_similarity

    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor(steps=2))
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    available = dialog.screen().availableGeometry()  # the default size, where it fits
    assert dialog.size() == QSize(
        min(880, available.width() - 48), min(760, available.height() - 48)
    )
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000):
        assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=5000)
    table = dialog.report_table
    before, after = display_similarity(0.41, "l2", 0.6), display_similarity(0.83, "l2", 0.6)
    ok_rows = [r for r in range(table.rowCount()) if table.item(r, 1).text().startswith("ok")]
    assert ok_rows
    for r in ok_rows:
        cell = table.item(r, 3)
        one = f"{before:.0%} \u2192 {after:.0%}"
        assert cell.text() == f"1: {one}, 2: {one}"
        assert "0.41" not in cell.text() and "l2 0.41" in cell.toolTip()
    header = table.horizontalHeader()
    for column in range(1, table.columnCount()):
        label = table.horizontalHeaderItem(column).text()
        assert header.sectionSize(column) >= header.fontMetrics().horizontalAdvance(label)
    rows_seen = table.viewport().height() / table.rowHeight(0)
    assert rows_seen >= 5, rows_seen
    assert dialog.file_bar.text() == "Done" and "0 %" not in dialog.file_bar.text()


def test_faces_choice_reaches_the_batch_and_its_report(qtbot, make_dialog, folders):
    """The dialog offers the CLI's --faces changed/all; the default is "changed" and the
    report (JSON, Markdown) and the summary line say which was used."""
    import json

    from PySide6.QtCore import Qt

    orig, edit, out = folders
    seen = []

    class Recording(FakeProcessor):
        def restore_file(self, request):
            seen.append(request.faces)
            return super().restore_file(request)

    dialog = make_dialog(Recording(steps=1))
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    assert dialog.faces == "changed"
    assert dialog.faces_combo.currentText() == "Faces whose identity changed"
    qtbot.keyClick(dialog.faces_combo, Qt.Key.Key_Down)  # a user picks the next entry
    assert dialog.faces == "all" and dialog.faces_combo.currentText() == "All paired faces"
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()
    report = blocker.args[0]
    assert seen and set(seen) == {"all"} and report.faces == "all"
    assert json.loads(report.summary_json_path.read_text())["faces"] == "all"
    assert "Faces restored: all paired faces" in report.summary_md_path.read_text()
    assert "all paired faces" in dialog.summary_label.text()
    assert "Restoring all paired faces" in dialog.log_view.toPlainText()


def test_the_dialog_fits_an_800_px_screen_with_the_cluster_shown(qtbot, make_dialog):
    """Issue 20: with "Ray cluster" chosen the dialog was 829 px tall and its Close row
    fell off an 800 px screen; now its sections scroll and Close stays in view."""
    dialog = make_dialog(FakeProcessor())
    dialog.cluster_panel.set_cluster("auto")
    qtbot.waitUntil(dialog.cluster_panel.isVisible, timeout=2000)
    assert dialog.minimumSizeHint().height() <= 800 - 48
    assert dialog.minimumSizeHint().width() <= 800 - 48  # "Run on" has a row of its own
    dialog.resize(dialog.width(), 800 - 48)  # what an 800 px screen leaves a dialog
    qtbot.waitUntil(lambda: dialog.height() == 800 - 48, timeout=2000)
    close = dialog.close_button
    bottom = close.mapTo(dialog, close.rect().bottomLeft()).y()
    assert close.isVisible() and bottom < dialog.height()
    assert dialog.sections.verticalScrollBar().maximum() > 0  # the sections scroll instead
    content = dialog.sections.widget()
    assert content.width() >= content.minimumSizeHint().width()  # nothing cut on the right


def test_a_check_result_or_error_goes_stale_when_a_folder_changes(make_dialog, folders):
    orig, edit, out = folders
    dialog = make_dialog(FakeProcessor())
    dialog.set_folders(orig, edit, edit)  # output = an input folder: refused inline
    dialog.check_button.click()
    assert "must differ" in dialog.check_status.text()
    dialog.set_folders(output=out)  # the error was about the old folders
    assert dialog.check_status.text() == "Folders changed: Check again."
    dialog.check_button.click()
    assert dialog.plan is not None and dialog.check_lines()
    dialog.set_folders(original=edit)
    assert dialog.check_status.text() == "Folders changed: Check again."
    assert dialog.plan is None and dialog.check_lines() == []


def test_a_cluster_check_result_goes_stale_when_the_address_changes(
    qtbot, make_dialog, monkeypatch
):
    import engine.batch.cluster as cluster

    found = cluster.ClusterCheck("auto", [cluster.NodeInfo("studio-1", "10.0.0.2", True, 8, 2)], {})
    monkeypatch.setattr(cluster, "check_cluster", lambda address: found)
    dialog = make_dialog(FakeProcessor())
    panel = dialog.cluster_panel
    panel.set_cluster("auto")
    with qtbot.waitSignal(panel.checked, timeout=20000):
        panel.check_cluster_button.click()
    assert "1 machine, 2 GPUs" in panel.cluster_status.text()
    panel.address_edit.setText("ray://studio-head:10001")
    assert panel.cluster_status.text() == "Address changed: Check again."


def test_a_row_whose_identity_got_worse_is_a_warning_in_the_table_and_report(
    qtbot, make_dialog, folders
):
    """Issue 20: "43% → 35%" was marked plain "ok"."""
    import json

    from editedid_desktop.batch_widgets import WARN_COLOR
    from engine.io.export import sidecar_path

    class OneImproves(FakeProcessor):  # the fake's faces go 66% -> 31%; a01's the other way
        def restore_file(self, request):
            result = super().restore_file(request)
            edited, out = request.edited, request.output
            if Path(edited).name == "a01.png":
                side = sidecar_path(out)
                data = json.loads(side.read_text())
                for face in data["faces"]:
                    face["id_before"], face["id_after"] = face["id_after"], face["id_before"]
                side.write_text(json.dumps(data))
            return result

    orig, edit, out = folders
    dialog = make_dialog(OneImproves(steps=1))
    dialog.set_mode("classic")
    dialog.set_folders(orig, edit, out)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()
    report = blocker.args[0]
    table = dialog.report_table
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    better, worse = rows["a01.png"], rows["a02_edited.png"]
    assert table.item(better, 1).text() == "ok"
    assert table.item(better, 1).foreground().color() != WARN_COLOR
    assert table.item(worse, 1).text() == "ok \u26a0 identity worse"
    assert table.item(worse, 1).foreground().color() == WARN_COLOR
    assert "66% \u2192 31%" in table.item(worse, 1).toolTip()
    summary = json.loads(report.summary_json_path.read_text())
    assert set(map(lambda p: Path(p).name, summary["identity_worse"])) == {
        "a02_edited.png",
        "a03-edit.jpg",
        "edited_a04.png",
        "A06.TIF",
    }
    markdown = report.summary_md_path.read_text()
    assert "| a02_edited.png | ok \u26a0 identity worse |" in markdown
    assert "| a01.png | ok |" in markdown
    assert "4 files look less like the person" in markdown
    assert "identity worse after the restore" in dialog.log_view.toPlainText()


def test_the_wheel_scrolls_the_dialog_not_an_unfocused_choice(qtbot, make_dialog):
    """Issue 20: in scrolled panels a wheel turn over a combo box changes it only once the
    user clicked it; otherwise the panel scrolls."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    dialog = make_dialog(FakeProcessor())
    dialog.resize(dialog.width(), 420)  # short: the sections scroll
    qtbot.waitUntil(lambda: dialog.sections.verticalScrollBar().maximum() > 0, timeout=2000)
    dialog.close_button.setFocus()
    combo, mode = dialog.mode_combo, dialog.mode
    centre = combo.rect().center()
    wheel = QWheelEvent(
        QPointF(centre), QPointF(combo.mapToGlobal(centre)), QPoint(0, 0), QPoint(0, -120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False,
    )  # fmt: skip
    QApplication.sendEvent(combo, wheel)
    assert dialog.mode == mode
    assert dialog.sections.verticalScrollBar().value() > 0


def test_a_batch_photo_waits_for_the_windows_restore_and_says_so(qtbot):
    """The dialog's restorer runs on the app's shared Engine: while the window's restore
    holds the model, the batch's next photo waits (cancellable) and the log says why."""
    from engine.errors import Cancelled

    engine = Engine(object())  # never run: the photo is cancelled while it waits
    dialog = BatchDialog(EditedIDParams, engine)
    qtbot.addWidget(dialog)
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("diffusion"))
    restorer = dialog._restorer(needed=True)
    held, release, cancel = threading.Event(), threading.Event(), threading.Event()
    outcome: list[str] = []

    def window_restore() -> None:
        with engine.turn("the interactive restore"):
            held.set()
            release.wait(60)

    def batch_photo() -> None:
        try:
            restorer.restore([], EditedIDParams(), cancel=cancel)
            outcome.append("ran")
        except Cancelled:
            outcome.append("cancelled")

    window = threading.Thread(target=window_restore)
    window.start()
    assert held.wait(10)
    photo = threading.Thread(target=batch_photo)
    try:
        photo.start()
        qtbot.waitUntil(
            lambda: (
                "Waiting for the interactive restore to finish before the next photo"
                in dialog.log_view.toPlainText()
            )
        )
        assert outcome == []
        cancel.set()
        photo.join(10)
    finally:
        release.set()
        window.join(10)
    assert outcome == ["cancelled"]


@pytest.mark.parametrize("replace", [False, True])
def test_the_dialogs_choices_reach_every_file(qtbot, make_dialog, folders, replace):
    """Face model, "Replace unfinished outputs" and the mode go into the batch's job."""
    orig, edit, out = folders
    out.mkdir()
    (out / "a01.png").write_bytes(b"half of an earlier result")  # not marked finished
    fake = FakeProcessor(steps=1)
    dialog = make_dialog(fake)
    dialog.set_mode("classic")
    dialog.backend_combo.setCurrentIndex(dialog.backend_combo.findData("dlib"))
    dialog.overwrite_check.setChecked(replace)
    dialog.set_folders(orig, edit, out)
    with qtbot.waitSignal(dialog.batch_finished, timeout=20000) as blocker:
        assert dialog.start()
    report = blocker.args[0]
    assert {(r.backend, r.restorer.name) for r in fake.requests} == {("dlib", "classic")}
    asked = {Path(r.output).name: r.overwrite for r in fake.requests}
    assert asked.get("a01.png") is (True if replace else None)  # refused before the fake
    assert not any(v for k, v in asked.items() if k != "a01.png")
    assert is_finished(out / "a01.png") is replace and report.mode == "classic"
