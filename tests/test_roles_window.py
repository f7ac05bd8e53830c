"""Issue 20 item 5 in the main window: the swap-roles notice comes with the analysis,
before any preview is composed; while it waits for an answer no classic preview pastes
the (AI) face of the photo opened as the original into the real one."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt


@pytest.fixture(scope="module")
def portrait_pair(tmp_path_factory):
    """grace_hopper (a real portrait) and its simulated AI edit, as files; the edit
    re-rendered the face as someone else's, so the face is restored (and previewed) by
    default."""
    from tests.fixtures.ai_edit import simulate_ai_edit
    from tests.fixtures.faces import dlib_faces, photo, sample_face

    folder = tmp_path_factory.mktemp("portrait")
    real = photo("grace_hopper")
    edit = simulate_ai_edit(real, dlib_faces(real), smoothing="bilateral", strength=0.5,
                            face_from=(photo("astronaut"), sample_face("astronaut")))  # fmt: skip
    paths = folder / "hopper.png", folder / "hopper-ai.png"
    Image.fromarray(real).save(paths[0])
    Image.fromarray(edit).save(paths[1])
    return paths


def _open_and_settle(qtbot, window, original, edited, classic: list) -> None:
    """Open the pair; wait for its analysis and until the engine has nothing left to do
    (a classic preview, if any was posted, has come back)."""
    window.engine.worker.classic_ready.connect(classic.append)
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photos(original, edited)
    qtbot.waitUntil(lambda: window.session.analysis is not None, timeout=10000)
    qtbot.waitUntil(lambda: not window.engine.busy, timeout=60000)


def test_the_wrong_way_round_shows_the_notice_and_no_preview_until_kept(
    qtbot, window, portrait_pair
):
    real, edit = portrait_pair
    classic = []
    _open_and_settle(qtbot, window, edit, real, classic)  # the AI edit as the original
    notice = window.files.role_notice
    assert notice.isVisible() and "really the original" in notice.label.text()
    assert classic == [] and window.session.classic_result is None
    assert window.session.enabled_faces()  # a face to preview, were the roles not in doubt
    assert not window.canvas.has_image("result")  # nothing pasted behind the notice
    window.runner.schedule_classic()  # a mask or face change meanwhile: still held back
    qtbot.wait(window.runner.rerun_timer.interval() + 100)
    assert not window.engine.busy and classic == []
    # "Keep": the user says the roles are right, and the preview comes
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        qtbot.mouseClick(notice.keep_button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible()
    qtbot.waitUntil(lambda: window.canvas.has_image("result"), timeout=10000)


def test_the_right_way_round_previews_at_once_without_a_notice(qtbot, window, portrait_pair):
    real, edit = portrait_pair
    classic = []
    _open_and_settle(qtbot, window, real, edit, classic)
    assert not window.files.role_notice.isVisible()
    # the preview is posted by the re-run timer after the analysis: the engine can be idle
    # before it starts (under load the test read "not busy" first and failed)
    qtbot.waitUntil(lambda: len(classic) == 1, timeout=60000)
    qtbot.waitUntil(lambda: window.canvas.has_image("result"), timeout=10000)
    assert not window.files.role_notice.isVisible() and len(classic) == 1
