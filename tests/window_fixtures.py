"""Fixtures for tests of the main window: a photo pair, isolated settings on the tiny SD
model, a shown MainWindow; and a helper that answers a message box when it shows."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer

from editedid_desktop.main_window import MainWindow
from editedid_desktop.settings import Settings
from tests.ui_fixtures import tiny_model_spec, write_photo_pair


@pytest.fixture(scope="module")
def photo_pair(tmp_path_factory):
    return write_photo_pair(tmp_path_factory.mktemp("photos"))


@pytest.fixture
def settings(tmp_path, tiny_sd_dir):
    settings = Settings.from_ini(tmp_path / "settings.ini")
    spec = tiny_model_spec(tiny_sd_dir, tmp_path / "models")
    settings.model_source = spec.source
    settings.device = "cpu"
    settings.precision = "fp32"
    settings.models_dir = spec.models_dir
    settings.face_backend = "dlib"
    return settings


@pytest.fixture
def window(qtbot, qapp, settings):
    from editedid_desktop.theme import apply_theme

    apply_theme(qapp)
    window = MainWindow(settings=settings)
    window.confirm_discard = lambda: True  # no "save changes?" question at teardown
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    window.close()


def answer_box(qtbot, object_name: str, button, answers: list) -> None:
    """Click `button` of the message box named `object_name` once it shows."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    def click() -> None:
        box = next(
            (w for w in QApplication.topLevelWidgets() if w.objectName() == object_name), None
        )
        if not isinstance(box, QMessageBox) or not box.isVisible():
            QTimer.singleShot(20, click)
            return
        answers.append(box.text())
        qtbot.mouseClick(box.button(button), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, click)
