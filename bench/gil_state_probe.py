"""The dlib freeze of issue 20 in 40 lines: pybind11 first initialised in one queued
slot of a QThread, used in a later slot (see editedid_desktop/threads.py).

    .venv/bin/python bench/gil_state_probe.py plain    # a plain QThread: hangs or crashes
    .venv/bin/python bench/gil_state_probe.py python   # PythonThread: three lines, exit 0

Each slot prints the Python thread state it runs on: a plain QThread gives every slot a
new one; PythonThread keeps one for the thread's life. (A hang here is the bug: stop it
with Ctrl+C; `timeout 30` in front does it for you.)
"""

from __future__ import annotations

import ctypes
import sys

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QTimer, Signal, Slot

from editedid_desktop.threads import PythonThread

ctypes.pythonapi.PyThreadState_Get.restype = ctypes.c_void_p


class Worker(QObject):
    done = Signal()

    @Slot(int)
    def job(self, number: int) -> None:
        import dlib  # the first slot initialises dlib's pybind11 on this thread

        vector = np.asarray(dlib.vector([1.0, 2.0]))  # ends with IndexError inside dlib
        state = ctypes.pythonapi.PyThreadState_Get()
        print(f"slot {number}: thread state {state:#x}, {vector.tolist()}", flush=True)
        self.done.emit()


class Poster(QObject):
    post = Signal(int)


def main(kind: str) -> None:
    app = QCoreApplication(sys.argv)
    thread = PythonThread("probe") if kind == "python" else QThread()
    worker, poster = Worker(), Poster()
    worker.moveToThread(thread)
    poster.post.connect(worker.job, Qt.ConnectionType.QueuedConnection)
    count = [0]

    def next_job() -> None:
        count[0] += 1
        if count[0] > 3:
            app.quit()
        else:
            poster.post.emit(count[0])

    worker.done.connect(next_job, Qt.ConnectionType.QueuedConnection)
    thread.start()
    QTimer.singleShot(0, next_job)
    app.exec()
    thread.quit()
    thread.wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "python")
