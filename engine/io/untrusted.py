"""Reading a small file someone handed us (a project, a sidecar, a model's JSON) as the
hostile input it may be: one place for the rules.

    data = read_json(path, what="project file", limit=PROJECT_BYTES, max_items=200_000)

- Regular files only, checked on the open file: a FIFO named `x.editedid` would block the
  reader for ever, `/dev/zero` or `/dev/urandom` behind a link would be read until memory
  runs out. The file is opened non-blocking, then fstat must say "regular file".
- A size cap, checked before reading and enforced while reading (a file that grows).
- JSON: UTF-8, no duplicate keys in any object (`{"edited": a, "edited": b}` would be read
  as whichever came last: ambiguity is refused), a cap on the number of values (a million
  face entries cost a minute before anything was refused), nesting bounded by Python's
  recursion limit (reported, not a crash).

Every refusal is an InputError naming the file and saying what is wrong with it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from engine.errors import InputError

MIB = 1024 * 1024


def read_bytes(path: str | Path, *, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (InputError otherwise)."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as error:
        raise InputError(f"{path}: {what} not found.") from error
    except OSError as error:
        raise InputError(f"{path}: cannot open this {what} ({error.strerror}).") from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"{path}: not a regular file (a device, pipe or folder), so not a {what}."
            )
        if info.st_size > limit:
            raise InputError(
                f"{path}: {info.st_size / MIB:.1f} MiB is far too large for a {what} "
                f"(at most {limit / MIB:.0f} MiB)."
            )
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # it grew while we read
                raise InputError(f"{path}: larger than a {what} can be; not read.")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        raise InputError(f"{path}: cannot read this {what} ({error.strerror}).") from error
    finally:
        os.close(fd)


class _Counter:
    """object_pairs_hook and list counting for json.loads: duplicate keys refused, values
    counted (an InputError as soon as there are more than `max_items`)."""

    def __init__(self, path: Path, what: str, max_items: int) -> None:
        self.path, self.what, self.max_items, self.count = path, what, max_items, 0

    def _add(self, n: int) -> None:
        self.count += n
        if self.count > self.max_items:
            raise InputError(
                f"{self.path}: more than {self.max_items:,} entries; not a {self.what} "
                "EditedID wrote (or a damaged one)."
            )

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self._add(len(pairs))
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise InputError(
                    f"{self.path}: the key {key!r} appears twice in one object; which one "
                    f"is meant is ambiguous, so this {self.what} is not used."
                )
            result[key] = value
        return result


def read_json(
    path: str | Path,
    *,
    what: str,
    limit: int,
    max_items: int = 1_000_000,
    allow_nan: bool = True,
) -> Any:
    """The JSON value of a regular UTF-8 file of at most `limit` bytes, with no duplicate
    keys and at most `max_items` object entries (InputError naming the file otherwise).
    allow_nan=False refuses NaN and Infinity, which JSON itself does not have (Python
    reads them): a number field of a document holding one is refused here, by name, not
    deep in a slot that turns it into a slider position."""
    path = Path(path)
    data = read_bytes(path, what=what, limit=limit)
    return parse_json(data, path=path, what=what, max_items=max_items, allow_nan=allow_nan)


def parse_json(
    data: bytes, *, path: str | Path, what: str, max_items: int = 1_000_000, allow_nan: bool = True
) -> Any:
    """read_json's rules for bytes already read (a safetensors header): UTF-8, no duplicate
    keys, at most `max_items` entries; InputError naming `path` otherwise."""
    path = Path(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text, so not a {what}.") from error
    counter = _Counter(path, what, max_items)
    try:
        return json.loads(
            text,
            object_pairs_hook=counter.pairs,
            parse_constant=None if allow_nan else _no_constant(path, what),
        )
    except InputError:
        raise
    except RecursionError as error:
        raise InputError(f"{path}: nested too deeply for a {what}.") from error
    except ValueError as error:
        raise InputError(f"{path}: not valid JSON ({error}), so not a {what}.") from error


def _no_constant(path: Path, what: str):
    def refuse(name: str) -> float:
        raise InputError(
            f"{path}: holds {name}, which is not a number; this {what} cannot be used."
        )

    return refuse
