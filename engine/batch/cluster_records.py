"""What the driver of a cluster batch keeps of its files and workers, without Ray.

`FileEntry` is a file of the batch on its way (its job, attempts and why its workers
were lost), `WorkerSlot` one worker actor and what it does, `WorkerResult` a worker's
outcome in the shape `engine.batch.report.ok_row` reads. `first_line` and `lost_reason`
cut Ray's many-line error messages down to what a row or a log line shows. The Ray
side that uses them is `engine.batch.cluster` (the only module that imports Ray).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.batch.plan import BatchItem
from engine.batch.remote import FileJob, FileOutcome


@dataclass
class FileEntry:
    """A file of the batch on its way: prepared once, sent as often as workers die."""

    position: int
    item: BatchItem
    attempts: int = 0
    job: FileJob | None = None
    stale: bool = False
    before: tuple | None = None
    lost: list[str] = field(default_factory=list)  # why its workers were lost


@dataclass
class WorkerSlot:
    """One worker actor: starting (ready is pending), idle, or busy with `entry`."""

    actor: Any
    name: str
    label: str
    ready: Any = None  # ObjectRef of info() until the worker has started
    info: dict = field(default_factory=dict)
    entry: FileEntry | None = None
    task: Any = None
    progress: Any = None
    asked: float = 0.0


class WorkerResult:
    """A worker's outcome in the shape `ok_row` reads (faces with scores, mode, ...)."""

    def __init__(self, outcome: FileOutcome) -> None:
        self.faces = outcome.faces
        self.mode = outcome.mode
        self.left_alone = outcome.left_alone
        self.warnings = outcome.warnings
        self.sidecar = outcome.sidecar or {}


def first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else type(error).__name__


def lost_reason(error: BaseException) -> str:
    """A lost worker in a few words (Ray's messages run to many lines)."""
    kind = type(error).__name__
    text = " ".join(str(error).split())
    for marker in ("The actor died because ", "The actor is dead because ", "because "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return f"{kind}: {text[:200]}"
