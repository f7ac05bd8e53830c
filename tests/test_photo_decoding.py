"""Opening a photo decodes it off the UI thread (editedid_desktop/decoding.py): the window
keeps painting while a slow file (a camera RAW) decodes, errors still reach the user as
before, and the caller still gets the photo before it goes on."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QTimer

import engine.io.images as images
from engine.io.images import read_rgb

WAIT_S = 20  # how long the decoder waits for the UI thread before calling it frozen


def test_the_ui_thread_runs_while_a_photo_decodes(qtbot, window, photo_pair, monkeypatch):
    """The decoder waits until a timer on the UI thread fires. Decoding on the UI thread
    (the old way) can never see it fire: the wait runs out and the open fails."""
    original, edited = photo_pair
    ui_thread = threading.get_ident()
    ticked = threading.Event()
    decoded_on: list[int] = []

    def slow_read(path):
        decoded_on.append(threading.get_ident())
        if not ticked.wait(WAIT_S):
            raise AssertionError("the UI thread did not run while the photo decoded")
        return read_rgb(path)

    monkeypatch.setattr(images, "read_rgb", slow_read)
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(ticked.set)
    timer.start()
    try:
        assert window.files.open_photo("original", original, analyze=False)
    finally:
        timer.stop()
    assert decoded_on and decoded_on[0] != ui_thread
    # the caller has the photo when open_photo returns, as before
    np.testing.assert_array_equal(window.session.original, read_rgb(original))
    assert window.statusBar().currentMessage() == f"Opened original photo {original.name}"


def test_a_decoding_error_reaches_the_user_naming_the_file(qtbot, window, tmp_path, monkeypatch):
    broken = tmp_path / "client.cr2"
    broken.write_text("not a raw")
    decoded_on: list[int] = []
    real = images.read_rgb

    def recording_read(path):
        decoded_on.append(threading.get_ident())
        return real(path)

    monkeypatch.setattr(images, "read_rgb", recording_read)
    assert not window.files.open_photo("original", broken)
    assert decoded_on and decoded_on[0] != threading.get_ident()
    assert window.session.original is None
    assert window.error_box is not None and "client.cr2" in window.error_box.text()
    window.error_box.close()


def test_an_unexpected_error_is_raised_on_the_calling_thread(qapp):
    """Not only InputError (which the slot catches): whatever the reader raises comes
    back as it was."""
    from editedid_desktop.decoding import decode_photo

    class Odd(Exception):
        pass

    def failing(path):
        raise Odd(f"{path} on {threading.get_ident()}")

    with pytest.raises(Odd, match=r"x\.png on (\d+)") as caught:
        decode_photo("x.png", failing)
    assert caught.value.args[0] != f"x.png on {threading.get_ident()}"
