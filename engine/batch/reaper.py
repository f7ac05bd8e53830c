"""Cleaning up after a process that was killed without warning (kill -9, a crash, OOM).

A Ray worker keeps each client photo in a private scratch folder while it restores it and
removes the folder when the file ends; a worker killed mid-file (its driver killed -9, so
Ray ends its workers at once) cannot. Likewise a driver that started a private Ray and is
killed leaves Ray's agent processes running. A process cannot clean up after its own
SIGKILL, so a small watcher does it: a separate process in its own session (a kill of the
watched process group does not reach it) that polls the watched process and, once it is
gone, removes the scratch folders named after its pid and, for a driver, ends the
processes it had started (the last snapshot of its descendants, each checked against its
start time so that a reused pid is never hit). The watcher then exits; it also exits when
told to (`stop_watcher`: the batch ended normally and cleaned up itself).

Linux only (/proc): Ray's workers and the studio drivers that start private Rays run on
Linux; elsewhere no watcher starts, and the next batch's start removes what is left
(`remove_dead_scratch`). This file runs as a plain script (`python reaper.py ...`) and so
imports nothing from the engine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRATCH_PREFIX = "editedid-worker-"  # <prefix><pid>-<random>: removable once pid is gone
POLL_S = 0.5
MARKER = "--editedid-reaper"  # in every watcher's command line: a driver's watcher spares them
_watchers: dict[tuple[int, bool], subprocess.Popen] = {}


# -- processes (Linux /proc) -------------------------------------------------------------
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of pid, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    return fields[0], int(fields[1]), int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """pid runs (not a zombie) and, where given, is the process that started at `started`."""
    if pid == os.getpid():
        return True
    if not Path("/proc/self/stat").exists():  # no /proc: ask the kernel (POSIX)
        if os.name == "nt":
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # EPERM: it exists, owned by someone else
            return True
        return True
    info = _stat(pid)
    return info is not None and info[0] != "Z" and (started is None or info[2] == started)


def descendants(pid: int) -> dict[int, int]:
    """pid's descendants (pid -> start time), watchers excluded."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        info = _stat(int(entry.name))
        if info is not None:
            children.setdefault(info[1], []).append((int(entry.name), info[2]))
    found: dict[int, int] = {}
    pending = [pid]
    while pending:
        for child, started in children.get(pending.pop(), []):
            if child in found or _is_watcher(child):
                continue
            found[child] = started
            pending.append(child)
    return found


def _is_watcher(pid: int) -> bool:
    try:
        return MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# -- scratch folders ---------------------------------------------------------------------
def remove_dead_scratch(folder: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders in `folder` (default: the temp folder) whose worker
    process is gone; returns them."""
    removed = []
    root = Path(folder or tempfile.gettempdir())
    try:
        entries = list(root.glob(f"{SCRATCH_PREFIX}*"))
    except OSError:
        return removed
    for path in entries:
        pid = path.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and path.is_dir() and not path.is_symlink() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# -- the watcher -------------------------------------------------------------------------
def start_watcher(pid: int | None = None, *, end_descendants: bool = False):
    """Start (once per watched process and kind) a watcher of `pid` (default: this
    process); returns its Popen, or None where none can run (no /proc)."""
    pid = os.getpid() if pid is None else pid
    if not Path(f"/proc/{pid}/stat").exists() or getattr(sys, "frozen", False):
        return None
    key = (pid, end_descendants)
    running = _watchers.get(key)
    if running is not None and running.poll() is None:
        return running
    argv = [sys.executable, "-I", __file__, MARKER, str(pid), tempfile.gettempdir()]
    if end_descendants:
        argv.append("--end-descendants")
    _watchers[key] = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not ended with the watched process's group
        close_fds=True,
    )
    return _watchers[key]


def stop_watcher(pid: int | None = None, *, end_descendants: bool = False) -> None:
    """Stop the watcher started for (pid, end_descendants): its process ended its work."""
    watcher = _watchers.pop((os.getpid() if pid is None else pid, end_descendants), None)
    if watcher is not None and watcher.poll() is None:
        watcher.terminate()
        watcher.wait(timeout=10)


def watch(pid: int, temp: str, end_descendants: bool) -> None:
    """Wait for pid to end, then end its last descendants and remove dead scratch."""
    started = _stat(pid)
    if started is None:
        return
    snapshot: dict[int, int] = {}
    while alive(pid, started[2]):
        if end_descendants:
            snapshot = descendants(pid) or snapshot
        time.sleep(POLL_S)
    for child, child_started in snapshot.items():
        if alive(child, child_started):
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + 10  # the ended workers' pids must be gone first
    while any(alive(c, s) for c, s in snapshot.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    remove_dead_scratch(temp)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != MARKER:
        print(f"usage: reaper.py {MARKER} PID TEMP_DIR [--end-descendants]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(int(argv[1]), argv[2], "--end-descendants" in argv[3:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
