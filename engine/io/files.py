"""Writing files so that a crash never leaves half a file, and hashing files.

Every writer goes through `atomic_write`: a temp file in the target folder, fsync,
`os.replace`, then an fsync of the folder so the rename itself survives a power cut.
A full or read-only disk becomes `OutputFolderError` (nothing was written); any other
OS error an `InputError` naming the file. Results get the mode the user's umask gives
(`0o666 & ~umask`), like any file a program creates, not the temp file's private 0600.

Our temp files are named `.<target>.<host>-<pid>.<random>.editedid.part`, so a later run
can tell them from anyone else's files and remove those a killed process left behind
(`remove_stale_temp_files`); nothing else is ever removed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from engine.errors import InputError

T = TypeVar("T")
TEMP_SUFFIX = ".editedid.part"
_TEMP_RE = re.compile(
    r"^\.(?P<label>.*)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)\.[a-z0-9_]{8}"
    + re.escape(TEMP_SUFFIX)
    + "$"
)
# Before the host-pid naming: `.<stem>.<random><suffix>.part` (written by older versions).
_LEGACY_TEMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.(png|jpe?g|tiff?|json|csv|md)\.part$", re.I)
LEGACY_TEMP_AGE_S = 3600.0  # an old-style temp file this old belongs to no live write
FOREIGN_TEMP_AGE_S = 24 * 3600.0  # another machine's temp file (shared folder)
_umask_lock = threading.Lock()


class OutputFolderError(InputError):
    """The output folder cannot take the result (missing, read-only, full)."""


def host_tag() -> str:
    """8 hex digits naming this machine (temp files and locks in shared folders)."""
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def make_temp_file(folder: str | Path, label: str) -> tuple[int, Path]:
    """An open temp file of ours in `folder` (mode from the umask): (fd, path)."""
    label = label[:80]  # keep the name under any file system's limit
    fd, tmp = tempfile.mkstemp(
        prefix=f".{label}.{host_tag()}-{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder
    )
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        except OSError:
            pass  # a file system without modes (FAT, some shares): its own default stays
    return fd, Path(tmp)


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # set-and-restore: the only portable way to read it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def stage_file(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """write(binary handle) into a temp file of ours next to `path`, fsync'd; returns the
    temp path, for `commit_file` (or removal) later. OS errors become our errors."""
    path = Path(path)
    try:
        fd, tmp = make_temp_file(path.parent, path.name)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, error) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit_file(tmp: Path, path: str | Path) -> Path:
    """Rename a staged temp file over `path` and make the rename durable."""
    path = Path(path)
    try:
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, error) from error
    _fsync_folder(path.parent)
    return path


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """write(binary handle) into a temp file next to `path`, fsync, rename over `path`."""
    return commit_file(stage_file(path, write), path)


def _write_error(path: Path, error: OSError) -> InputError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputFolderError(
            f"{path}: the disk is full; nothing was written. Free some space and run again."
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputFolderError(f"{path}: the output folder is read-only; nothing was written.")
    if error.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST) or (
        path.is_dir() and not path.is_symlink()
    ):
        return InputError(f"{path}: is a folder, in the way of the file; nothing was written.")
    if error.errno == errno.ENOENT:
        return OutputFolderError(f"{path.parent}: the folder does not exist; nothing was written.")
    return InputError(f"{path}: could not write the file ({error.strerror or error}).")


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable where the platform allows it (not on Windows)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text, written atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str | Path, text: str) -> None:
    """Append UTF-8 text to an existing file of ours and fsync it (report rows)."""
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


# --- temp files a killed run left behind ---------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would end the process; an open file cannot be removed
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def is_our_temp_file(name: str) -> bool:
    """True for a file name our writers give their temp files (any version)."""
    return bool(_TEMP_RE.match(name) or _LEGACY_TEMP_RE.match(name))


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temp files of ours in `folder` whose writer is gone (killed); returns them.

    Only names of our own temp naming are considered: this machine's when their process
    no longer runs, another machine's (a shared folder) or an older version's when they
    are old. Any other file, and any temp file still being written, is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now, here = time.time(), host_tag()
    for entry in entries:
        if not entry.name.startswith(".") or not entry.name.endswith(".part"):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        match = _TEMP_RE.match(entry.name)
        if match is not None:
            if match["host"] == here:
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = age > FOREIGN_TEMP_AGE_S
        else:
            stale = bool(_LEGACY_TEMP_RE.match(entry.name)) and age > LEGACY_TEMP_AGE_S
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


# --- hashing ----------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def read_hashed(path: str | Path, read: Callable[[Path], T]) -> tuple[T, str]:
    """(read(path), sha256 of the bytes it read): the file is hashed, read, and checked
    not to have changed in between (InputError if it did), so a sidecar records the
    bytes the result was made from, not whatever lies there after the run."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is None or not stat.S_ISREG(mode):
        read(path)  # the reader names the problem (not found, a folder, a pipe, ...)
        raise InputError(f"{path}: is not a regular file; give an image file.")
    try:
        before = _fingerprint(path)
        digest = sha256_file(path)
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error}).") from error
    value = read(path)
    try:
        changed = _fingerprint(path) != before
    except OSError:
        changed = True
    if changed:
        raise InputError(f"{path}: the file changed while it was being read; run again.")
    return value, digest
