"""The batch dialog's cluster panel: Check runs on a PythonThread and closing waits for it."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QDialog, QVBoxLayout

from editedid_desktop import cluster_panel as panel_module
from editedid_desktop.cluster_panel import ClusterPanel
from editedid_desktop.threads import PythonThread


@pytest.fixture
def fake_cluster(monkeypatch):
    """check_cluster replaced: records the thread it ran on; waits on `gate` (a slow
    connect) when asked to."""
    import engine.batch.cluster as cluster

    calls: list[tuple[QThread, str, str]] = []  # thread, its class and name
    state = {"gate": None}
    found = cluster.ClusterCheck("auto", [cluster.NodeInfo("studio-1", "10.0.0.2", True, 8, 2)], {})

    def check_cluster(address):
        thread = QThread.currentThread()
        calls.append((thread, type(thread).__name__, thread.objectName()))
        gate = state["gate"]
        if gate is not None:
            gate.wait(timeout=0.5)  # a connect that takes a while (never set: 0.5 s)
        return found

    monkeypatch.setattr(cluster, "check_cluster", check_cluster)
    return calls, state


def _panel_in_dialog(qtbot) -> tuple[QDialog, ClusterPanel]:
    dialog = QDialog()
    qtbot.addWidget(dialog)
    panel = ClusterPanel()
    QVBoxLayout(dialog).addWidget(panel.controls)
    dialog.layout().addWidget(panel)
    panel.set_cluster("auto")
    dialog.show()
    qtbot.waitUntil(panel.isVisible, timeout=2000)
    return dialog, panel


def test_check_runs_on_a_python_thread_and_answers_on_the_ui_thread(qtbot, fake_cluster):
    calls, _ = fake_cluster
    _, panel = _panel_in_dialog(qtbot)
    answers: list[QThread] = []
    panel.checked.connect(lambda _: answers.append(QThread.currentThread()))
    with qtbot.waitSignal(panel.checked, timeout=10000):
        panel.check_cluster_button.click()
    assert [name for _, name, _ in calls] == [PythonThread.__name__]
    assert calls[0][2] == "editedid-cluster-check"
    assert answers == [QApplication.instance().thread()]  # delivered queued, to the UI
    assert "1 machine, 2 GPUs" in panel.cluster_status.text()
    # The check's thread is stopped and released once it answered; Check works again.
    assert not panel.check_running() and not panel_module._LIVE
    assert panel.check_cluster_button.isEnabled()
    with qtbot.waitSignal(panel.checked, timeout=10000):
        panel.check_cluster_button.click()
    assert len(calls) == 2 and calls[1][0] is not calls[0][0]  # a thread per check


def test_closing_the_window_waits_for_a_check_still_connecting(qtbot, fake_cluster):
    calls, state = fake_cluster
    state["gate"] = threading.Event()  # never set: the fake connect takes 0.5 s
    dialog, panel = _panel_in_dialog(qtbot)
    answers: list = []
    panel.checked.connect(answers.append)
    panel.check_cluster_button.click()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10000)
    thread = calls[0][0]
    assert thread.isRunning() and panel.check_running()
    assert not panel.check_cluster_button.isEnabled()
    dialog.close()
    assert not thread.isRunning()  # close returned only once the thread had stopped
    assert not panel.check_running() and not panel_module._LIVE
    QApplication.processEvents()  # the late answer is dropped, never shown
    assert answers == []


def test_shutdown_without_a_check_is_a_no_op(qtbot):
    _, panel = _panel_in_dialog(qtbot)
    assert panel.shutdown(timeout_ms=1) and not panel.check_running()
