"""Photos decoded off the UI thread.

Decoding a photo is the slowest thing the UI thread did by itself: a 24-megapixel camera
RAW takes LibRaw about 2.7 s on one core, a 108-megapixel JPEG about 1 s, and during that
the window neither painted nor answered the window manager (which then offers to kill a
"not responding" app). Opening must still finish before its caller goes on (a pair opens
the original, then the edited photo; a project puts its masks on the photos it opened),
so the UI thread waits for the pixels — but in a local event loop that keeps painting
and answering, while the user's input is held back until the photo is in
(`QEventLoop.ExcludeUserInputEvents` defers those events; it never drops them): nothing
the user does can start while a photo is half-open.

The decoder runs on its own `PythonThread` (one Python thread state: threads.py) and owns
every native object it makes (LibRaw's, libheif's, OpenCV's) from creation to release;
only the finished numpy array crosses to the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication

from .threads import PythonThread


class _Decoder(QObject):
    """Runs `read(path)` once on the thread it was moved to."""

    done = Signal()

    def __init__(self, read: Callable[[Path], np.ndarray], path: Path) -> None:
        super().__init__()
        self._read = read
        self._path = path
        self.image: np.ndarray | None = None
        self.error: BaseException | None = None

    @Slot()
    def run(self) -> None:
        try:
            self.image = self._read(self._path)
        except BaseException as error:  # noqa: BLE001 - re-raised on the UI thread
            self.error = error
        self.done.emit()


def decode_photo(path: Path, read: Callable[[Path], np.ndarray]) -> np.ndarray:
    """`read(path)` on a decoding thread; the UI thread paints meanwhile. Returns the image
    or raises what `read` raised, on the calling thread, as if it had run here."""
    thread = PythonThread("editedid-decode")
    decoder = _Decoder(read, path)
    decoder.moveToThread(thread)
    loop = QEventLoop()
    thread.started.connect(decoder.run)
    # The thread's loop ends as soon as the decoder answered; the local loop here ends
    # when that answer reaches the UI thread (queued, so an answer that comes before
    # exec() starts still ends it).
    decoder.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    decoder.done.connect(loop.quit, Qt.ConnectionType.QueuedConnection)
    QGuiApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
    try:
        thread.start()
        loop.exec(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
    finally:
        # The app quitting ends every event loop, this one included: the decode is still
        # waited for (seconds at most), so no thread outlives its objects.
        thread.wait()
        QGuiApplication.restoreOverrideCursor()
    if decoder.error is not None:
        raise decoder.error
    assert decoder.image is not None  # run() sets one of the two
    return decoder.image
