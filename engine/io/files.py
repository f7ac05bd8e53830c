"""Writing files so that a crash never leaves half a file, and hashing files.

Every writer goes through `atomic_write`: a temp file in the target folder, fsync,
`os.replace`, then an fsync of the folder so the rename itself survives a power cut.
A full or read-only disk becomes `OutputFolderError` (nothing was written); any other
OS error an `InputError` naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from engine.errors import InputError


class OutputFolderError(InputError):
    """The output folder cannot take the result (missing, read-only, full)."""


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """write(binary handle) into a temp file next to `path`, fsync, rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, error) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _write_error(path: Path, error: OSError) -> InputError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputFolderError(
            f"{path}: the disk is full; nothing was written. Free some space and run again."
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputFolderError(f"{path}: the output folder is read-only; nothing was written.")
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


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
