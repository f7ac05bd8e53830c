"""One batch at a time per output folder: a lock file the operating system releases.

    with OutputLock(output_dir):      # BatchLockedError when another batch holds it
        ...

The lock is `.editedid-batch.lock` in the output folder, holding the owner's pid, host and
start time (for the message a second run shows). It is held with an OS file lock
(`flock` on POSIX, `msvcrt.locking` on Windows) that the kernel drops when the process
ends in any way, kill -9 included: a lock file left by a dead run is stale and is simply
taken over; the file's contents never decide who holds it.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import InputError

LOCK_NAME = ".editedid-batch.lock"

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class BatchLockedError(InputError):
    """Another batch is writing into the same output folder."""


def _try_lock(fd: int, path: Path) -> bool:
    """Take the OS lock on an open file without waiting; False when someone holds it.

    Where the file system offers no locks (some network shares), the lock file's own
    pid and host decide: held while that process runs on this machine.
    """
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK):
            return False
        return not _owner_alive(path)  # no locking here (ENOLCK, EOPNOTSUPP, ...)
    return True


def _owner_alive(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:4096])
        pid, host = int(data["pid"]), str(data["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return True  # cannot tell: another machine's batch is assumed to run
    if pid == os.getpid():
        return False
    if os.name == "nt":  # os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unlock(fd: int) -> None:
    if fcntl is None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass


def _holder(path: Path) -> str:
    """Who holds the lock, in words, from the lock file's contents (best effort)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:4096])
        return (
            f"process {int(data['pid'])} on {str(data['host'])[:100]}, "
            f"started {str(data['started'])[:40]}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _locked_message(folder: Path, path: Path) -> str:
    return (
        f"{folder}: another batch is already writing into this output folder "
        f"({_holder(path)}). Wait for it to finish, or choose another output folder. "
        f"(Lock file: {path.name}.)"
    )


class OutputLock:
    """The batch lock of one output folder (a context manager; `release` is idempotent)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.took_over_stale = False  # a dead run's lock file was found and taken over

    def acquire(self) -> OutputLock:
        for _ in range(10):  # only a release racing with us makes a second round
            existed = self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise InputError(
                    f"{self.path}: cannot create the batch lock file ({error.strerror or error})."
                ) from error
            if not _try_lock(fd, self.path):
                os.close(fd)
                raise BatchLockedError(_locked_message(self.folder, self.path))
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False  # released and removed meanwhile: try again on the new file
            if not same:
                os.close(fd)
                continue
            self.fd, self.took_over_stale = fd, existed
            self._write_owner()
            return self
        raise BatchLockedError(_locked_message(self.folder, self.path))

    def _write_owner(self) -> None:
        owner = {
            "tool": "editedid batch",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        data = json.dumps(owner).encode("utf-8")
        try:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.write(self.fd, data.ljust(max(len(data), 2), b" "))
        except OSError:
            pass  # the OS lock is what counts; the text only names the owner

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if fcntl is not None:
            self.path.unlink(missing_ok=True)  # while still held: no one sees a stale file
            os.close(fd)  # drops the flock
            return
        _unlock(fd)  # Windows: an open file cannot be removed; unlock, close, then remove
        os.close(fd)
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_unlocked(folder: str | Path) -> None:
    """BatchLockedError when a running batch holds `folder`'s lock (takes nothing).

    For an early message before a model is loaded; `OutputLock` is the real guard.
    """
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        if not _try_lock(fd, path):
            raise BatchLockedError(_locked_message(Path(folder), path))
        _unlock(fd)
    finally:
        os.close(fd)  # closing drops a flock we may have taken
