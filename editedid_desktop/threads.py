"""The app's worker threads: QThreads that keep ONE Python thread state for their life.

Why this exists (issue 20, the crashes and freezes in dlib on the engine thread): a plain
`QThread()` runs its event loop in C++, and PySide gives every queued slot call a fresh
Python thread state (PyGILState_Ensure before the slot, PyGILState_Release after it, which
deletes the state). pybind11 extensions (dlib's `_dlib_pybind11`, and torch's own copy)
remember a thread state per thread in their own thread-local slot: `get_internals()`
stores the thread state current when the extension first initialises (pybind11's
detail/internals.h: `PYBIND11_TLS_REPLACE_VALUE(internals_ptr->tstate, tstate)`), and
`gil_scoped_acquire` prefers that slot over Python's. dlib first initialised inside one
engine slot (warm-up imports it); that slot's thread state was freed when the slot
returned; in a later slot any `gil_scoped_acquire` inside dlib (for example the one in
`error_already_set`'s destructor when iterating a `dlib.vector` ends with IndexError, as
`np.asarray(descriptor)` does) calls `PyEval_AcquireThread` with the freed state: a
segfault in `take_gil`, or, when the memory was reused, a wait for the GIL this very
thread holds (the freeze). gdb showed exactly that frame; `bench/gil_state_probe.py`
reproduces it in 30 lines (plain QThread: hang; this class: fine).

The fix at the root: the thread's `run()` is Python code that enters the event loop, so
the thread holds one thread state from start to finish, exactly like a Python thread;
PySide's per-slot Ensure/Release then only counts on that state. Every QThread of the app
that runs Python slots must be a `PythonThread` (tests/test_threads.py checks the app's
threads and the invariant itself).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread


class PythonThread(QThread):
    """A QThread whose event loop runs inside one Python call (one thread state)."""

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)

    def run(self) -> None:  # noqa: D401 - Qt's override
        # PySide releases the GIL inside exec() but keeps this thread state alive, so
        # every slot below runs on it (see the module docstring).
        self.exec()
