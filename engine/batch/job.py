"""What a batch is asked to do (`BatchJob`), and the one way a file is handed to whoever
restores it (`PhotoProcessor`, `FileRequest`).

    job = BatchJob(plan_batch("originals/", "edited/", "restored/"), EditedIDParams(),
                   mode="classic", faces="all", report=ReportTarget(folder="reports/"))
    report = run_batch(job, on_progress=print)

A `BatchJob` is plain data (it pickles, compares and prints): the plan, the method's
parameters and every choice a user makes for the batch. What cannot travel (the loaded
model, the restorer built on it, the processor, callbacks, pause and cancel, the executor)
is given to `run_batch` beside it.

A processor restores one pair of files. It has one fixed entry point,
`restore_file(request)`, so the batch never guesses what it accepts: every choice reaches
it in the `FileRequest`, and a processor that lacks the entry point is refused before the
batch starts (`check_processor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.batch.plan import BatchPlan
from engine.batch.report import FACE_SELECTIONS, resolve_report_path
from engine.errors import InputError


@dataclass(frozen=True)
class ReportTarget:
    """Where a batch's report goes (`resolve_report_path` checks it before any work).

    path: the report CSV (its .md and .json beside it); None: the default name in `folder`,
        else in the output folder. folder: an existing folder for the default name.
    write: False writes no report files. overwrite: an explicit `path` may replace an
        existing file (never an input).
    """

    path: Path | None = None
    folder: Path | None = None
    write: bool = True
    overwrite: bool = False

    def resolve(self, plan: BatchPlan) -> Path | None:
        """The report CSV's path for `plan` (None: no report), refused with InputError
        when it would replace a file that is not a report of this output folder."""
        return resolve_report_path(
            plan, self.path, report_dir=self.folder, write_report=self.write,
            overwrite_report=self.overwrite,
        )  # fmt: skip


@dataclass(frozen=True)
class BatchJob:
    """One batch: what to restore and how the user chose to have it restored.

    mode: the restorer by name ("classic", "diffusion"); a restorer handed to `run_batch`
        must be that one. backend: the face detector ("auto", "dlib", "insightface").
    faces: "changed" (only faces whose identity the edit changed; the others are left as
        edited and the report says why) or "all" (every paired face).
    overwrite: replace outputs that exist but are not finished results of these inputs
        (`plan.conflicts`). strip_location: results carry no GPS position.
    report: where the report goes (`ReportTarget`).
    """

    plan: BatchPlan
    params: Any  # engine.params.EditedIDParams
    mode: str = "diffusion"
    backend: str = "auto"
    faces: str = "changed"
    overwrite: bool = False
    strip_location: bool = True
    report: ReportTarget = field(default_factory=ReportTarget)

    def __post_init__(self) -> None:
        if self.faces not in FACE_SELECTIONS:
            raise InputError(
                f"faces must be one of {', '.join(FACE_SELECTIONS)}, got {self.faces!r}."
            )


@dataclass(frozen=True)
class FileRequest:
    """One pair of files for a processor, with every choice that applies to it.

    output: where the result goes, with its sidecar beside it, written as one unit.
    overwrite: an earlier output is in the way and may be replaced (the batch has checked
        that the user allowed it); the processor keeps it until the new pair is whole.
    on_step(stage, step, steps, preview): called at every step; it waits while the batch
        is paused and raises `Cancelled` when it is cancelled. cancel(): True once the
        batch is cancelled.
    """

    original: Path
    edited: Path
    output: Path
    params: Any  # engine.params.EditedIDParams
    restorer: Any  # engine.restorers.Restorer
    backend: str = "auto"
    faces: str = "changed"
    overwrite: bool = False
    strip_location: bool = True
    on_step: Callable[..., None] | None = None
    cancel: Callable[[], bool] | None = None


@runtime_checkable
class PhotoProcessor(Protocol):
    """Restores one pair of files; the batch's only way to have a file restored.

    `restore_file` reads `request.original` and `request.edited`, writes `request.output`
    (and, as a rule, its sidecar) and returns the outcome: an object whose optional
    attributes `faces` (each with `id_before`/`id_after` scores), `left_alone`
    ((index, why) pairs), `warnings` and `mode` fill the file's report row, as
    `engine.photo.pipeline.PhotoResult` has them. A bad file raises; the batch reports it
    and goes on. A processor that writes no sidecar gets the batch's own.
    """

    def restore_file(self, request: FileRequest) -> Any: ...


class PipelineProcessor:
    """The default processor: `engine.photo.pipeline.restore_photo_files`.

    The pipeline is imported on the first file, so planning a batch (and a cluster's
    driver, whose workers restore) never loads it."""

    def restore_file(self, request: FileRequest) -> Any:
        from engine.photo.pipeline import restore_photo_files

        return restore_photo_files(
            request.original, request.edited, request.output, request.params,
            restorer=request.restorer, backend=request.backend, faces=request.faces,
            on_step=request.on_step, cancel=request.cancel, overwrite=request.overwrite,
            strip_location=request.strip_location,
        )  # fmt: skip


def check_processor(processor: object) -> PhotoProcessor:
    """`processor` when it is a `PhotoProcessor`; else TypeError, before any file is
    touched (a stand-in with the wrong shape would otherwise fail every file)."""
    if not isinstance(processor, PhotoProcessor) or not callable(processor.restore_file):
        raise TypeError(
            f"A batch processor needs a restore_file(request) method (the PhotoProcessor "
            f"protocol of engine.batch.job); {processor!r} has none."
        )
    return processor
