"""The Model Manager's "Download face models" button (issue 12 D13), clicked for real, with
the engine's downloader replaced (no network in tests: socket connects are refused too)."""

from __future__ import annotations

import socket
import time

import pytest
from PySide6.QtCore import Qt

from editedid_desktop.model_manager import ModelManagerDialog
from editedid_desktop.settings import Settings
from engine.errors import Cancelled, DownloadError
from engine.faces import detection


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def dialog(qtbot, tmp_path):
    settings = Settings.from_ini(tmp_path / "settings.ini")
    settings.models_dir = str(tmp_path / "models")
    settings.face_backend = "auto"
    dialog = ModelManagerDialog(settings)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    yield dialog
    dialog.reject()


def _fake_pack(models_dir) -> None:
    pack = detection.insightface_pack_dir(models_dir)
    pack.mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (pack / name).write_bytes(b"onnx")


def test_download_face_models_button_downloads_with_progress(qtbot, dialog, monkeypatch):
    calls = []

    def fake_download(models_dir, progress, cancel):
        calls.append(models_dir)
        total = 280 << 20
        for done in (0, total // 2, total):
            progress(done, total, "buffalo_l.zip")
            assert not cancel()
        progress(0, 1, "unpacking buffalo_l.zip")
        _fake_pack(models_dir)
        return detection.insightface_pack_dir(models_dir)

    monkeypatch.setattr(detection, "download_face_models", fake_download)
    button = dialog.face_download_button
    assert button.text() == "Download face models" and button.isVisibleTo(dialog)
    assert button.isEnabled()
    status = dialog.face_status.text()
    assert "not downloaded" in status and "editedid-cli" not in status
    assert "Download face models" in status  # the message points at the button

    with qtbot.waitSignal(dialog.face_download.finished, timeout=10000) as finished:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert finished.args[0] is True
    assert calls == [dialog.models_dir()]
    assert dialog.face_download.progress.value() == 1000
    assert dialog.face_download.progress.format().startswith("Downloaded to ")
    assert "insightface</span>: ready" in dialog.face_status.text()
    assert not button.isEnabled()  # nothing left to download
    assert not dialog.face_download.cancel_button.isVisible()


def test_download_face_models_cancel_then_resume(qtbot, dialog, monkeypatch):
    def slow_download(models_dir, progress, cancel):
        for i in range(2000):  # at most ~20 s if nobody cancels
            progress(i << 20, 280 << 20, "buffalo_l.zip")
            if cancel():
                raise Cancelled("Download of buffalo_l.zip cancelled.")
            time.sleep(0.01)
        raise AssertionError("cancel never reached the downloader")

    monkeypatch.setattr(detection, "download_face_models", slow_download)
    qtbot.mouseClick(dialog.face_download_button, Qt.MouseButton.LeftButton)
    progress = dialog.face_download.progress
    qtbot.waitUntil(lambda: "MB" in progress.format(), timeout=10000)
    assert progress.isVisible() and not dialog.face_download_button.isEnabled()
    cancel = dialog.face_download.cancel_button
    assert cancel.isVisible()
    with qtbot.waitSignal(dialog.face_download.finished, timeout=10000) as finished:
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    assert finished.args == [False, ""]
    assert progress.format() == "Cancelled — press Download face models again to resume"
    assert dialog.face_download_button.isEnabled() and not cancel.isVisible()
    assert not any(detection.insightface_pack_dir(dialog.models_dir()).glob("*.onnx"))


def test_download_face_models_failure_is_explained(qtbot, dialog, monkeypatch):
    def failing(models_dir, progress, cancel):
        raise DownloadError(
            "buffalo_l.zip did not verify: sha256 abc instead of def. The file was deleted; "
            "download it again. Or run `editedid-cli models download faces`."
        )

    monkeypatch.setattr(detection, "download_face_models", failing)
    with qtbot.waitSignal(dialog.face_download.finished, timeout=10000):
        qtbot.mouseClick(dialog.face_download_button, Qt.MouseButton.LeftButton)
    text = dialog.face_status.text()
    assert "The face models were not downloaded" in text and "did not verify" in text
    assert "editedid-cli" not in text
    assert dialog.face_download.progress.format() == "Download failed"
    assert dialog.face_download_button.isEnabled()  # try again


def test_present_face_models_need_no_download(qtbot, tmp_path):
    settings = Settings.from_ini(tmp_path / "settings.ini")
    settings.models_dir = str(tmp_path / "models")
    _fake_pack(settings.models_dir)
    dialog = ModelManagerDialog(settings)
    qtbot.addWidget(dialog)
    assert not dialog.face_download_button.isEnabled()
    dialog.face_dir_edit.setText(str(tmp_path / "elsewhere"))  # another folder: none there
    assert dialog.face_download_button.isEnabled()
