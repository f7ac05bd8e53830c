"""The watchdog: says so when the engine stops answering, and leaves a report when the app
crashes or freezes, which the next start offers to the user (issue 20).

Two independent parts:

- `EngineWatchdog` (UI thread): a heartbeat to the engine's worker thread. Every second
  it posts a ping to a small object living on the worker thread, which answers when the
  thread's event loop is free; any progress, status or preview the worker sends counts
  as an answer too (a long job blocks the loop but reports its steps). When nothing has
  been heard for `silence_s` seconds, the status bar says "The engine has not answered
  for N s (stage)". Cancel never waits on the worker (`EngineHost.cancel` sets an Event),
  so it stays usable while the engine is silent.
- `CrashRecorder` (process): one session log per run in the app's data folder
  (`reports_dir()`), with `faulthandler` writing into it on a fatal signal (a crash in
  native code: dlib, torch, Qt), uncaught Python exceptions of any thread
  (`sys.excepthook`, `threading.excepthook`), and every thread's stack when the UI thread
  has not come back to its event loop for `FREEZE_DUMP_S` (`faulthandler`'s watchdog
  thread needs no GIL, so a frozen process still writes it). A clean exit with nothing
  recorded deletes the log; anything else becomes a crash report, and
  `offer_crash_reports` shows it at the next start with Save….
"""

from __future__ import annotations

import faulthandler
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from PySide6.QtCore import QObject, QStandardPaths, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from . import __version__

ENGINE_EXIT_WAIT_S = 60.0  # after the window closed: the engine thread's time to end
DEFAULT_SILENCE_S = 30.0  # a UNet call on a slow CPU takes up to ~20 s: no false alarm
PING_INTERVAL_MS = 1000
FREEZE_DUMP_S = 60.0  # the UI thread away from its event loop this long: dump all stacks
STALL_PREFIX = "The engine has not answered for"
_HEADER = "# "  # the session log's own lines; anything else is something that happened


# =============================================================================== heartbeat
class _Pinger(QObject):
    """Lives on the worker thread: answers a ping when that thread's event loop runs."""

    pong = Signal()

    @Slot()
    def ping(self) -> None:
        self.pong.emit()


class EngineWatchdog(QObject):
    """Notices when the engine's worker thread goes silent (see the module docstring)."""

    stalled = Signal(float, str)  # seconds without an answer, what the engine was doing
    recovered = Signal()
    _post_ping = Signal()

    def __init__(
        self,
        host: Any,
        silence_s: float = DEFAULT_SILENCE_S,
        *,
        interval_ms: int = PING_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
        parent: QObject | None = None,
    ) -> None:
        """host: the `EngineHost` (its `worker` relay and worker `thread`)."""
        super().__init__(parent)
        self.host = host
        self.silence_s = float(silence_s)
        self.clock = clock
        self.stage = ""
        self.is_stalled = False
        self._last_heard = clock()
        self._ping_out = False
        self._pinger = _Pinger()
        self._pinger.moveToThread(host.thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._post_ping.connect(self._pinger.ping, queued)
        self._pinger.pong.connect(self._on_pong, queued)  # answered in the UI thread
        worker = host.worker
        worker.progress.connect(self._on_progress)
        substep = getattr(worker, "substep", None)  # inside a step: the UNet call running
        if substep is not None:
            substep.connect(self._on_substep)
        worker.status.connect(self._on_status)
        for signal in (worker.preview, worker.job_done, worker.warmed_up):
            signal.connect(self._heard)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        host.thread.finished.connect(self.timer.stop)
        self.timer.start()

    def silent_for(self) -> float:
        """Seconds since the worker thread last answered or reported anything."""
        return max(0.0, self.clock() - self._last_heard)

    @Slot()
    def check(self) -> None:
        """One heartbeat (the timer's): ping, and report a silence of silence_s or more."""
        if not self._ping_out:  # one at a time: a blocked loop does not pile them up
            self._ping_out = True
            self._post_ping.emit()
        silent = self.silent_for()
        if silent >= self.silence_s:
            self.is_stalled = True
            self.stalled.emit(silent, self.doing())
        elif self.is_stalled:
            self._recover()

    def doing(self) -> str:
        """What the engine was last heard doing, in the words of the status bar."""
        if self.stage:
            return self.stage
        kinds = [k for k in ("analyze", "classic", "restore", "load_model") if self.host.pending(k)]
        return ", ".join(kinds) or "between jobs"

    def _heard(self, *_: Any) -> None:
        self._last_heard = self.clock()
        if self.is_stalled:
            self._recover()

    def _recover(self) -> None:
        self.is_stalled = False
        self.recovered.emit()

    def _on_pong(self) -> None:
        self._ping_out = False
        if not self.host.busy:
            self.stage = ""  # the job is over: an old stage no longer describes anything
        self._heard()

    def _on_progress(self, stage: str, step: int, total: int) -> None:
        self.stage = f"{stage} {step}/{total}" if total > 0 else stage
        self._heard()

    def _on_substep(self, stage: str, step: int, total: int, unit: str) -> None:
        self.stage = f"{stage} {step}/{total}{unit}"
        self._heard()

    def _on_status(self, text: str) -> None:
        if text.startswith("Loading"):  # warm-up and model loads report no progress
            self.stage = text.rstrip("…. ")
        self._heard()


def stall_message(seconds: float, stage: str) -> str:
    return (
        f"{STALL_PREFIX} {seconds:.0f} s ({stage}). Cancel (Esc) still works; if it stays "
        "silent, save the project and restart EditedID."
    )


def install_watchdog(window: Any, silence_s: float = DEFAULT_SILENCE_S) -> EngineWatchdog:
    """Watch `window.engine`; a silence shows in the window's status bar until it ends."""
    watchdog = EngineWatchdog(window.engine, silence_s, parent=window)
    bar = window.statusBar()

    def show(seconds: float, stage: str) -> None:
        bar.showMessage(stall_message(seconds, stage))

    def clear() -> None:
        if bar.currentMessage().startswith(STALL_PREFIX):
            bar.clearMessage()

    watchdog.stalled.connect(show)
    watchdog.recovered.connect(clear)
    return watchdog


# =============================================================================== crash reports
def reports_dir() -> Path:
    """<data folder>/EditedID/crash-reports: ~/.local/share/EditedID/crash-reports on Linux
    ($XDG_DATA_HOME), %LOCALAPPDATA%\\EditedID\\... on Windows, ~/Library/Application
    Support/EditedID/... on macOS (the models folder's neighbour)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    return Path(base) / "EditedID" / "crash-reports"


def _has_events(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.strip() and not line.startswith(_HEADER) for line in text.splitlines())


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (or Windows' answer): leave it alone
        return True
    return True


class CrashRecorder:
    """This run's session log, fed by faulthandler and the exception hooks (see above)."""

    def __init__(self, folder: Path | None = None, freeze_s: float = FREEZE_DUMP_S) -> None:
        self.folder = Path(folder) if folder is not None else reports_dir()
        self.freeze_s = freeze_s
        self.path = self.folder / f"session-{os.getpid()}.log"
        self.file: TextIO | None = None
        self._hooks: tuple[Any, Any] | None = None
        self._freeze_timer: QTimer | None = None

    def start(self) -> CrashRecorder:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
        for line in (
            f"EditedID {__version__} session log (kept only if something went wrong)",
            f"started {datetime.now().isoformat(timespec='seconds')}, pid {os.getpid()}",
            f"command: {' '.join(sys.argv)}",
            f"Python {sys.version.split()[0]}, {platform.platform()}",
        ):
            self.file.write(f"{_HEADER}{line}\n")
        faulthandler.enable(self.file, all_threads=True)
        self._hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook
        return self

    def watch_ui_thread(self, parent: QObject) -> None:
        """Dump every thread's stack into the log if the UI thread stays away from its
        event loop for freeze_s: re-armed from the event loop, so it fires only then."""
        if self.file is None:
            return

        def rearm() -> None:
            faulthandler.dump_traceback_later(self.freeze_s, repeat=False, file=self.file)

        rearm()
        self._freeze_timer = QTimer(parent)
        self._freeze_timer.setInterval(max(100, int(self.freeze_s * 1000 / 4)))
        self._freeze_timer.timeout.connect(rearm)
        self._freeze_timer.start()

    def record(self, title: str, text: str) -> None:
        if self.file is None:
            return
        stamp = datetime.now().isoformat(timespec="seconds")
        thread = QThread.currentThread().objectName() or threading.current_thread().name
        self.file.write(f"\n{title} ({stamp}, thread {thread}):\n{text.rstrip()}\n")
        self.file.flush()

    def _excepthook(self, kind, value, tb) -> None:
        self.record("Uncaught exception", "".join(traceback.format_exception(kind, value, tb)))
        if self._hooks is not None:
            self._hooks[0](kind, value, tb)

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        text = "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        )
        self.record(f"Uncaught exception in thread {getattr(args.thread, 'name', '?')}", text)
        if self._hooks is not None:
            self._hooks[1](args)

    def stop(self) -> Path | None:
        """A clean exit: delete the log if nothing happened, else keep it as a report."""
        if self.file is None:
            return None
        if self._freeze_timer is not None:
            self._freeze_timer.stop()
        faulthandler.cancel_dump_traceback_later()
        faulthandler.disable()
        if self._hooks is not None:
            sys.excepthook, threading.excepthook = self._hooks
            self._hooks = None
        self.file.close()
        self.file = None
        if _has_events(self.path):
            return _keep(self.path)
        self.path.unlink(missing_ok=True)
        return None


def end_process(
    thread: QThread, recorder: CrashRecorder, code: int, wait_s: float = ENGINE_EXIT_WAIT_S
) -> int:
    """After the window closed (its closeEvent cancelled the running job and asked the
    engine thread to quit): wait for the thread, close the session log, return `code`.

    Why: a QThread object destroyed while its thread still runs aborts the process at exit
    ("QThread: Destroyed while thread is still running", SIGABRT): the user-path loop saw
    it when Ctrl+Q came during the engine's warm-up imports (10+ s under load, nothing to
    cancel) and EngineHost.shutdown's 10 s wait ran out. The window is gone by now, so
    waiting longer costs the user nothing. A thread still running after `wait_s` (a native
    call that never returns) goes into the report with every stack, and the process ends
    with os._exit, which skips the destructor that would abort."""
    finished = thread.wait(int(wait_s * 1000))
    if not finished:
        recorder.record(
            "The engine did not stop after the window closed",
            f"still running {wait_s:.0f} s after the window closed; every thread's stack:",
        )
        if recorder.file is not None:
            faulthandler.dump_traceback(recorder.file, all_threads=True)
    recorder.stop()
    if not finished:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _keep(session_log: Path) -> Path:
    stamp = datetime.fromtimestamp(session_log.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    report = session_log.with_name(f"crash-{stamp}-{session_log.stem.split('-')[-1]}.log")
    session_log.replace(report)
    return report


def pending_reports(folder: Path | None = None) -> list[Path]:
    """Crash reports not yet offered, oldest first. Session logs of runs that ended
    without a clean exit become reports (if they recorded anything; logs of runs still
    going are left alone)."""
    folder = Path(folder) if folder is not None else reports_dir()
    if not folder.is_dir():
        return []
    for log in folder.glob("session-*.log"):
        try:
            pid = int(log.stem.split("-")[-1])
        except ValueError:
            continue
        if _alive(pid):
            continue
        if _has_events(log):
            _keep(log)
        else:
            log.unlink(missing_ok=True)  # killed before anything happened: nothing to say
    return sorted(p for p in folder.glob("crash-*.log") if not p.name.endswith(".seen.log"))


def _mark_seen(reports: list[Path]) -> None:
    for report in reports:
        if report.exists():
            report.replace(report.with_name(report.stem + ".seen.log"))


def offer_crash_reports(parent: QWidget, folder: Path | None = None) -> QMessageBox | None:
    """At start: if the last runs left crash reports, say so (non-blocking, window-modal)
    with the report under Show Details and a Save… button; each report is offered once."""
    reports = pending_reports(folder)
    if not reports:
        return None
    text = "\n\n".join(
        f"== {p.name} ==\n{p.read_text(encoding='utf-8', errors='replace')}" for p in reports
    )
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "EditedID stopped unexpectedly",
        "EditedID crashed or froze the last time it ran. A report was saved: it holds where "
        "the program stood (no photos). Save it and send it with a description of what you "
        "were doing, so it can be fixed.",
        QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Close,
        parent,
    )
    box.setObjectName("crashReportBox")
    box.setDetailedText(text)
    box.setInformativeText(f"Reports folder: {reports[0].parent}")
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def finished(result: int) -> None:
        if box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Save:
            target, _ = QFileDialog.getSaveFileName(
                parent,
                "Save crash report",
                str(Path.home() / "editedid-crash-report.txt"),
                "Text files (*.txt)",
            )
            if target:
                Path(target).write_text(text, encoding="utf-8")
        _mark_seen(reports)

    box.finished.connect(finished)
    box.open()
    return box
