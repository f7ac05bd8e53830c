"""Shared fixtures: tiny SD 1.x models built once per test session in a temp folder."""

from __future__ import annotations

import os

import pytest

# the main window's fixtures (photo_pair, settings, window) for every window test module
pytest_plugins = ["tests.window_fixtures"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    from engine.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd", seed=0)


@pytest.fixture(scope="session")
def exact_sd_dir(tmp_path_factory):
    from engine.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("models") / "exact-sd", exact_inversion=True)


@pytest.fixture
def folders(tmp_path):
    """Batch folders: 5 good pairs with assorted naming, a truncated JPEG, a text file
    named .jpg, an unpaired original, an unpaired edited file and a non-image file."""
    from tests.fixtures.batch import make_folders

    return make_folders(tmp_path)


@pytest.fixture()
def cli_pair(tmp_path):
    """A 160x200 pair for command-line tests: grace_hopper as JPEG and its negative. Not
    named photo_pair: a conftest fixture hides the window tests' photo_pair
    (tests/window_fixtures.py, whose file names say which photo is which)."""
    import numpy as np
    from PIL import Image

    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB").resize((160, 200))
    original, edited = tmp_path / "o.jpg", tmp_path / "e.png"
    photo.save(original)
    Image.fromarray(255 - np.asarray(photo)).save(edited)
    return original, edited


# A modal dialog nobody answers would hang the run until CI's limit (issue 19's landing: a
# window test's drop asked "Which photo is the original?" for 80 minutes). Past this, the
# dialog is rejected and the test fails, naming it.
UNANSWERED_MODAL_S = 30.0


@pytest.fixture(autouse=True)
def unanswered_modal_fails(request):
    if not {"qtbot", "qapp"} & set(request.fixturenames):
        yield
        return
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

    request.getfixturevalue("qapp")
    seen: dict[int, float] = {}
    stuck: list[str] = []

    def look() -> None:
        modal = QApplication.activeModalWidget()
        if modal is None:
            return
        first = seen.setdefault(id(modal), time.monotonic())
        if time.monotonic() - first < UNANSWERED_MODAL_S:
            return
        text = modal.text() if isinstance(modal, QMessageBox) else ""
        stuck.append(f"{type(modal).__name__} {modal.windowTitle()!r}: {text!r}")
        if isinstance(modal, QDialog):
            modal.reject()
        else:
            modal.close()

    timer = QTimer()
    timer.setInterval(500)
    timer.timeout.connect(look)
    timer.start()
    yield
    timer.stop()
    assert not stuck, f"a modal dialog stayed open {UNANSWERED_MODAL_S:.0f} s unanswered: {stuck}"
