"""The watchdog (issue 20): a silent engine is reported in the status bar while Cancel stays
usable, and a crash, an uncaught exception or a freeze leaves a report that the next start
offers (editedid_desktop/watchdog.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from editedid_desktop import watchdog as watchdog_module
from editedid_desktop import worker as worker_module
from editedid_desktop.watchdog import (
    STALL_PREFIX,
    EngineWatchdog,
    offer_crash_reports,
    pending_reports,
)
from editedid_desktop.worker import EngineHost, RestoreRequest
from tests.window_fixtures import settings, window  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]


def test_a_stuck_job_is_reported_and_cancel_still_works(qtbot, window, monkeypatch):  # noqa: F811
    """A job blocked in a long call (no progress, the worker's event loop held): within
    silence_s the status bar says so with what was running; Cancel answers at once; once
    the call returns the job ends as cancelled and the window is clean again."""
    release, entered = threading.Event(), threading.Event()

    def stuck_restore(self, request):  # like a native call that does not come back
        entered.set()
        release.wait(60)
        self._check_cancel()  # what the real restore does between UNet calls
        raise AssertionError("the cancel was lost")

    monkeypatch.setattr(worker_module.EngineWorker, "_restore", stuck_restore)
    window.watchdog.silence_s = 1.0
    bar = window.statusBar()
    try:
        window.engine.restore(RestoreRequest(None, None, None, []))
        assert entered.wait(30), "the job never started"
        qtbot.waitUntil(lambda: bar.currentMessage().startswith(STALL_PREFIX), timeout=5000)
        assert "(restore)" in bar.currentMessage()  # what the engine was doing
        assert window.cancel_button.isVisible()

        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
        # The click was handled while the job is still stuck: Cancel never waits on it.
        assert not release.is_set() and window.engine.busy
        assert window.stage_label.text() == "Cancelling…"
        assert window.engine.worker.cancel_event.is_set()
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.cancel_button.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: not window.watchdog.is_stalled, timeout=5000)
    assert not window.engine.busy
    assert not bar.currentMessage().startswith(STALL_PREFIX)
    assert not window.cancel_action.isEnabled()


def test_an_idle_engine_answers_the_heartbeat(qtbot):
    """No false alarm: an idle worker answers every ping, so a short silence_s never
    fires; the stage of the last job is forgotten once it is over."""
    host = EngineHost()
    dog = EngineWatchdog(host, silence_s=0.35, interval_ms=100)
    stalls, pongs = [], []
    dog.stalled.connect(lambda s, stage: stalls.append(stage))
    dog._pinger.pong.connect(lambda: pongs.append(1), Qt.ConnectionType.DirectConnection)
    dog.stage = "null-text 3/6"
    try:
        qtbot.waitUntil(lambda: len(pongs) >= 8, timeout=10000)
        assert stalls == []
        assert dog.silent_for() < 0.35
        assert dog.stage == ""
    finally:
        dog.timer.stop()
        host.shutdown()


def test_silence_counts_from_the_last_progress(qtbot):
    """Progress is an answer: a job that reports steps is not 'silent' although its event
    loop is busy; the message names the stage last reported."""
    now = [100.0]
    host = EngineHost()
    dog = EngineWatchdog(host, silence_s=10, interval_ms=60000, clock=lambda: now[0])
    stalls = []
    dog.stalled.connect(lambda s, stage: stalls.append((s, stage)))
    try:
        dog._ping_out = True  # the worker's loop is busy with the job: no pong
        now[0] += 20.0
        dog._on_progress("null-text", 3, 6)
        now[0] += 9.5
        dog.check()
        assert stalls == []
        now[0] += 1.0
        dog.check()
        assert stalls == [(pytest.approx(10.5), "null-text 3/6")]
        assert dog.is_stalled
        dog._on_progress("null-text", 4, 6)
        assert not dog.is_stalled
        now[0] += 9.5  # a long step that reports its UNet calls is not silent either
        dog._on_substep("null-text", 4, 6, " · UNet call 2/3")
        now[0] += 9.5
        dog.check()
        assert not dog.is_stalled and len(stalls) == 1
        assert dog.doing() == "null-text 4/6 · UNet call 2/3"
    finally:
        dog.timer.stop()
        host.shutdown()


# ------------------------------------------------------------------ crash reports
def _run_app_process(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    """A separate Python process with a CrashRecorder on tmp_path (faulthandler and the
    exception hooks are process-wide: never install them in the test process)."""
    script = "from editedid_desktop.watchdog import CrashRecorder\n" + textwrap.dedent(body)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    env.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_native_crash_leaves_a_report_offered_at_next_start(qtbot, qapp, tmp_path, monkeypatch):
    folder = tmp_path / "reports"
    done = _run_app_process(
        tmp_path,
        f"""
        import faulthandler
        def compute_face_descriptor():
            faulthandler._sigsegv()  # a crash inside native code
        CrashRecorder({str(folder)!r}).start()
        compute_face_descriptor()
        """,
    )
    assert done.returncode != 0
    parent = QApplication.activeWindow()
    saved = tmp_path / "report.txt"
    monkeypatch.setattr(
        watchdog_module.QFileDialog, "getSaveFileName", lambda *a, **k: (str(saved), "")
    )
    box = offer_crash_reports(parent, folder)
    assert isinstance(box, QMessageBox) and box.isVisible()
    details = box.detailedText()
    assert "Segmentation fault" in details
    assert "compute_face_descriptor" in details  # where it stood
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Save), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(saved.exists, timeout=5000)
    assert "compute_face_descriptor" in saved.read_text()
    assert pending_reports(folder) == []  # offered once
    assert offer_crash_reports(parent, folder) is None
    assert list(folder.glob("crash-*.seen.log"))  # kept for the user to find


def test_a_clean_run_leaves_nothing_and_an_uncaught_exception_is_kept(tmp_path):
    clean, failing = tmp_path / "clean", tmp_path / "failing"
    done = _run_app_process(
        tmp_path,
        f"""
        import threading
        CrashRecorder({str(clean)!r}).start().stop()
        recorder = CrashRecorder({str(failing)!r}).start()
        def load_face_models():
            raise RuntimeError("no such model")
        thread = threading.Thread(target=load_face_models, name="loader")
        thread.start(); thread.join()
        print(recorder.stop())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert list(clean.iterdir()) == []
    (report,) = pending_reports(failing)
    assert str(report) in done.stdout
    text = report.read_text()
    assert "Uncaught exception in thread loader" in text
    assert "RuntimeError: no such model" in text and "load_face_models" in text


def test_a_frozen_ui_thread_leaves_every_stack(tmp_path):
    """The UI thread kept from its event loop past freeze_s: faulthandler dumps every
    thread's stack into the log (no GIL needed); the run is then killed, and the next
    start finds the report."""
    folder = tmp_path / "reports"
    done = _run_app_process(
        tmp_path,
        f"""
        import os, time
        from PySide6.QtCore import QCoreApplication, QTimer
        app = QCoreApplication([])
        recorder = CrashRecorder({str(folder)!r}, freeze_s=0.5).start()
        recorder.watch_ui_thread(app)
        def open_photos_on_the_ui_thread():
            end = time.monotonic() + 3
            while time.monotonic() < end:
                pass  # busy: the event loop does not run
            os._exit(3)  # killed by the user
        QTimer.singleShot(1500, open_photos_on_the_ui_thread)  # after 3 x freeze_s of idling
        app.exec()
        """,
    )
    assert done.returncode == 3, done.stderr
    (report,) = pending_reports(folder)
    text = report.read_text()
    assert "most recent call first" in text
    assert "open_photos_on_the_ui_thread" in text


def test_quitting_while_the_engine_thread_runs_ends_cleanly(tmp_path):
    """Ctrl+Q during a long, uncancellable engine call (the warm-up's imports): without
    end_process the running QThread is destroyed at exit and Qt aborts (SIGABRT); with it
    the process waits, then ends with its own exit code and leaves the stacks."""
    folder = tmp_path / "reports"
    done = _run_app_process(
        tmp_path,
        f"""
        import sys, threading
        from PySide6.QtCore import QCoreApplication, QThread
        from editedid_desktop.watchdog import end_process
        app = QCoreApplication([])
        release = threading.Event()
        class Engine(QThread):
            def run(self):
                self.import_diffusers()
            def import_diffusers(self):
                release.wait(60)  # an import that does not end before the exit
        engine = Engine()
        engine.start()
        recorder = CrashRecorder({str(folder)!r}).start()
        sys.exit(end_process(engine, recorder, 0, wait_s=1.0))
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "Destroyed while thread" not in done.stderr
    (report,) = pending_reports(folder)
    text = report.read_text()
    assert "The engine did not stop after the window closed" in text
    assert "import_diffusers" in text


def test_quitting_after_the_engine_thread_ended_leaves_nothing(tmp_path):
    folder = tmp_path / "reports"
    done = _run_app_process(
        tmp_path,
        f"""
        import sys
        from PySide6.QtCore import QCoreApplication, QThread
        from editedid_desktop.watchdog import end_process
        app = QCoreApplication([])
        engine = QThread()
        engine.start()
        engine.quit()  # what EngineHost.shutdown asks at close
        recorder = CrashRecorder({str(folder)!r}).start()
        sys.exit(end_process(engine, recorder, 5, wait_s=30))
        """,
    )
    assert done.returncode == 5, done.stderr
    assert list(folder.iterdir()) == []
