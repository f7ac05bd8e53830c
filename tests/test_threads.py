"""The app's worker threads keep one Python thread state for their life (threads.py).

The crash these tests stand for (issue 20): dlib's pybind11 initialised inside one slot of
a plain QThread kept that slot's thread state; PySide freed it when the slot returned, and
the next slot's `np.asarray(dlib.vector)` acquired the GIL with the freed state: SIGSEGV
in take_gil, or a wait for a GIL the thread itself held (the freeze).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from editedid_desktop.threads import PythonThread
from tests.fixtures.session_pairs import write_covered_portrait, write_six_person_swap

_api = ctypes.pythonapi
_api.PyThreadState_Get.restype = ctypes.c_void_p


def _current_thread_state() -> int:
    return int(_api.PyThreadState_Get())


class _Probe(QObject):
    seen = Signal(object)  # a pointer: wider than Qt's int

    @Slot()
    def record(self) -> None:
        self.seen.emit(_current_thread_state())


class _Poster(QObject):
    post = Signal()


def _thread_states_of_two_slots(qtbot, thread: QThread) -> list[int]:
    probe, poster = _Probe(), _Poster()
    probe.moveToThread(thread)
    poster.post.connect(probe.record, Qt.ConnectionType.QueuedConnection)
    states: list[int] = []
    probe.seen.connect(states.append, Qt.ConnectionType.DirectConnection)
    thread.start()
    try:
        for expected in (1, 2):
            poster.post.emit()
            qtbot.waitUntil(lambda n=expected: len(states) == n, timeout=5000)
    finally:
        thread.quit()
        thread.wait(5000)
    return states


def test_python_thread_runs_every_slot_on_one_thread_state(qtbot):
    states = _thread_states_of_two_slots(qtbot, PythonThread("probe"))
    assert states[0] == states[1]


def test_a_plain_qthread_gives_each_slot_its_own_state(qtbot):
    """What PythonThread is for: PySide's per-slot state on a plain QThread (if a PySide
    release ever keeps one state per thread, threads.py's reason is gone: this says so)."""
    states = _thread_states_of_two_slots(qtbot, QThread())
    assert states[0] != states[1]


def test_the_app_threads_are_python_threads(qtbot, tiny_sd_dir, tmp_path):
    from editedid_desktop.worker import EngineHost
    from tests.ui_fixtures import tiny_model_spec

    host = EngineHost(tiny_model_spec(tiny_sd_dir, tmp_path), {"backend": "dlib"})
    try:
        assert isinstance(host.thread, PythonThread)
        assert host.thread.objectName() == "editedid-engine"
    finally:
        host.shutdown()


_FRESH_ENGINE = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QCoreApplication, QTimer
    from editedid_desktop.worker import AnalyzeRequest, ClassicRequest, EngineHost
    from engine.io.images import read_rgb

    app = QCoreApplication(sys.argv)
    assert "dlib" not in sys.modules  # first initialised on the worker thread, as in the app
    original, edited = read_rgb(sys.argv[1]), read_rgb(sys.argv[2])
    host = EngineHost(None, {"backend": "dlib"})
    outcome = []

    def failed(title, message):
        outcome.append(f"failed: {title}: {message}")
        app.quit()

    def classic_ready(result):
        outcome.append(f"{len(result.faces)} restored, {len(result.left_alone)} left")
        if len(outcome) < 3:  # more slots: more chances to meet a freed thread state
            host.analyze(AnalyzeRequest(original, edited))
        else:
            app.quit()

    host.worker.failed.connect(failed)
    host.worker.analyzed.connect(lambda a: host.classic(ClassicRequest(a)))
    host.worker.classic_ready.connect(classic_ready)
    host.warm_up()  # imports dlib in one slot; analysis and classic come in later slots
    host.analyze(AnalyzeRequest(original, edited))
    QTimer.singleShot(240000, app.quit)
    app.exec()
    host.shutdown()
    print(" / ".join(outcome) if outcome else "no outcome")
    """
)


@pytest.mark.parametrize(
    "pair, faces",
    [(write_six_person_swap, "5 restored, 0 left"), (write_covered_portrait, "0 restored, 1 left")],
    ids=["six", "portrait"],
)
def test_dlib_first_loaded_on_the_engine_thread_survives_later_jobs(tmp_path, pair, faces):
    """The real engine thread in a fresh interpreter (dlib not imported beforehand, as in
    `editedid ORIGINAL EDITED`) on the pairs that crashed sessions: warm-up loads dlib,
    then three rounds of analysis + classic preview call it from later slots. With a
    plain QThread the six-person pair hung 3 runs in 3 (the portrait: 1 in 2)."""
    original, edited = pair(tmp_path / "photos")
    script = tmp_path / "fresh_engine.py"
    script.write_text(_FRESH_ENGINE)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(original), str(edited)],
        capture_output=True,
        text=True,
        timeout=180,  # 20-60 s when it works; a hang is the bug
        env={**env, "HOME": str(tmp_path)},
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == " / ".join([faces] * 3)
