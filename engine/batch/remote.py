"""A batch file restored on another machine, by bytes: what travels and what comes back.

    job = read_job(index, item, params, ...)          # driver: reads the two inputs
    outcome = FileWorker(spec).restore(job)           # worker: restores in a private scratch
    write_outcome(item, job, outcome, overwrite)      # driver: writes output + sidecar

Nothing here imports Ray (`engine.batch.cluster` runs `FileWorker` as a Ray actor), so
the whole round trip is testable in one process. No file system is shared: the driver
sends the inputs' bytes and the worker returns the result's bytes and its sidecar; only
the driver writes into the output folder, atomically, with the batch's own writer.

On the worker the bytes go into a private scratch folder (`tempfile.mkdtemp`, 0700) under
their own file names, where the same `restore_photo_files` as a local batch reads and
writes them, so a result is byte for byte what a local batch makes of the same bytes. The
scratch folder is removed when the file ends, whatever happens; one left by a killed
worker process is removed when the next worker starts on that machine. Error messages and
the sidecar name the driver's paths, never the scratch folder's.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import __version__
from engine.batch.job import FileRequest, PipelineProcessor, check_processor
from engine.batch.plan import BatchItem
from engine.batch.reaper import SCRATCH_PREFIX, remove_dead_scratch, start_watcher
from engine.errors import Cancelled, EditedIDError
from engine.io.export import (
    SIDECAR_MARKER,
    check_result_target,
    read_sidecar,
    sidecar_inputs,
    write_with_sidecar,
)
from engine.io.files import atomic_write_bytes
from engine.io.images import open_image
from engine.models.spec import ModelSpec, note_to_stderr
from engine.restorers import restorer_class
from engine.runtime import Engine, EngineRestorer

PAUSE_POLL_S = 0.05  # how often a paused worker looks at its pause and cancel flags


class RemoteFailure(EditedIDError):
    """A file failed on a worker; the message is already worded as a local batch's."""


# --- what travels ------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """How a worker builds its restorer: once, when it starts (the model loads there).

    model: the SD model each worker loads, for a restorer that needs one (None = the
    default model); its source is the model folder or hub id as each worker finds it.
    processor: None = engine.photo.pipeline.restore_photo_files (tests pass stand-ins).
    """

    mode: str
    model: ModelSpec | None = None
    processor: Callable[..., Any] | None = None

    def build_restorer(self, *, gpu: bool = False) -> EngineRestorer:
        """The worker's restorer: its model (loaded here) run through an Engine, as every
        driver runs one (engine.runtime)."""
        cls = restorer_class(self.mode)
        model = None
        if cls.needs_model:
            spec = self.model or ModelSpec()
            if gpu and (spec.device or "").startswith("cuda:"):
                # Ray shows a worker only its own GPU, as cuda:0
                spec = spec.model_copy(update={"device": "cuda"})
            model = cls.from_spec(spec, on_message=note_to_stderr).model
        return Engine(model).restorer(self.mode, who="this worker")


@dataclass(frozen=True)
class FileJob:
    """One pair, as bytes, with the driver's paths (for messages and the sidecar)."""

    index: int  # the file's position in the plan (progress events)
    original: str
    edited: str
    output: str
    original_bytes: bytes
    edited_bytes: bytes
    params: Any
    backend: str = "auto"
    faces: str = "changed"
    strip_location: bool = True

    @property
    def hashes(self) -> dict[str, str]:
        """sha256 of the bytes sent: what the result was made from (its sidecar says so)."""
        return {
            "original": hashlib.sha256(self.original_bytes).hexdigest(),
            "edited": hashlib.sha256(self.edited_bytes).hexdigest(),
        }


@dataclass
class FaceScores:
    id_before: float | None = None
    id_after: float | None = None


@dataclass
class FileOutcome:
    """What comes back: the result's bytes and sidecar, or why there is none."""

    status: str  # "ok" | "failed" | "cancelled"
    output_bytes: bytes = b""
    sidecar: dict | None = None
    error: str = ""
    seconds: float = 0.0  # restoring, pauses excluded
    mode: str = ""
    faces: list[FaceScores] = field(default_factory=list)
    left_alone: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    worker: str = ""


def read_job(index: int, item: BatchItem, params, **options) -> FileJob:
    """The pair's bytes, read on the driver. A missing, empty, non-regular or non-image
    file is refused here with the message a local batch gives (the header is checked,
    nothing is decoded); anything else is the worker's to find."""
    data = []
    for path in (item.original, item.edited):
        with open_image(path):
            pass
        data.append(Path(path).read_bytes())
    return FileJob(
        index, str(item.original), str(item.edited), str(item.output), data[0], data[1],
        params, **options,
    )  # fmt: skip


def write_outcome(item: BatchItem, job: FileJob, outcome: FileOutcome, overwrite: bool) -> None:
    """Write a worker's result and its sidecar into the output folder as one unit
    (the sidecar names the driver's files and the sha256 of the bytes that were sent)."""
    inputs = {"original": item.original, "edited": item.edited}
    if outcome.sidecar is None:  # a processor that writes none: the batch adds its own
        check_result_target(item.output, protected_paths=inputs, overwrite=overwrite)
        atomic_write_bytes(item.output, outcome.output_bytes)
        return
    sidecar = {k: v for k, v in outcome.sidecar.items() if k not in (SIDECAR_MARKER, "status")}
    if "inputs" in sidecar:
        sidecar["inputs"] = sidecar_inputs(inputs, job.hashes)
    if "output" in sidecar:
        sidecar["output"] = str(item.output.resolve())
    write_with_sidecar(
        item.output,
        lambda: atomic_write_bytes(item.output, outcome.output_bytes),
        sidecar,
        protected_paths=inputs,
        overwrite=overwrite,
    )


# --- the worker --------------------------------------------------------------------------
class FileWorker:
    """Restores whole photos sent as bytes; its restorer (and model) is built once.

    `control` and `progress` may be called from another thread while `restore` runs
    (a Ray actor with two threads), to pause or cancel at the next step and to see it.
    """

    def __init__(self, spec: WorkerSpec, *, name: str = "", gpu: bool = False) -> None:
        remove_stale_scratch()
        # Killed mid-file (its driver killed -9: Ray ends the workers at once), this
        # process cannot remove the client photos in its scratch: its watcher does.
        start_watcher()
        self.spec = spec
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.gpu = gpu
        self.processor = check_processor(spec.processor or PipelineProcessor())  # pre-load
        self.restorer = spec.build_restorer(gpu=gpu)
        self.pause_flag, self.cancel_flag = threading.Event(), threading.Event()
        self.state: tuple[int, str, int, int] = (-1, "idle", 0, 0)  # index, stage, step, steps
        self.files_done = 0

    # -- control from the driver ------------------------------------------------------
    def control(self, pause: bool, cancel: bool) -> None:
        (self.pause_flag.set if pause else self.pause_flag.clear)()
        (self.cancel_flag.set if cancel else self.cancel_flag.clear)()

    def progress(self) -> tuple[int, str, int, int]:
        return self.state

    def info(self) -> dict[str, Any]:
        """Who this worker is, for the check list and the mismatch guard."""
        model = getattr(self.restorer, "model", None)
        return {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "engine": __version__,
            "mode": self.restorer.name,
            "device": str(getattr(model, "device", "cpu")),
            "model": str(getattr(model, "model_id", "") or ""),
            "fingerprint": str(getattr(model, "fingerprint", "") or ""),
            "gpu": self.gpu,
        }

    # -- one file -----------------------------------------------------------------------
    def restore(self, job: FileJob) -> FileOutcome:
        start, paused = time.monotonic(), [0.0]
        self.state = (job.index, "file", 0, 0)

        def is_cancelled() -> bool:
            return self.cancel_flag.is_set()

        def on_step(stage="processing", step=0, steps=0, *rest, **kwargs) -> None:
            if self.pause_flag.is_set():
                t0 = time.monotonic()
                self.state = (job.index, "paused", int(step or 0), int(steps or 0))
                while self.pause_flag.is_set() and not is_cancelled():
                    time.sleep(PAUSE_POLL_S)
                paused[0] += time.monotonic() - t0
            if is_cancelled():
                raise Cancelled("Batch cancelled.")
            self.state = (job.index, str(stage), int(step or 0), int(steps or 0))

        try:
            outcome = self._restore(job, on_step, is_cancelled)
        except Cancelled:
            outcome = FileOutcome("cancelled", error="cancelled by the user")
        finally:
            self.state = (-1, "idle", 0, 0)
        outcome.seconds = time.monotonic() - start - paused[0]
        outcome.worker = self.name
        self.files_done += outcome.status == "ok"
        return outcome

    def _restore(self, job: FileJob, on_step, is_cancelled) -> FileOutcome:
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")).resolve()
        try:
            paths = {name: scratch / name / Path(getattr(job, name)).name
                     for name in ("original", "edited", "output")}  # fmt: skip
            for name in ("original", "edited", "output"):
                paths[name].parent.mkdir(mode=0o700)
            paths["original"].write_bytes(job.original_bytes)
            paths["edited"].write_bytes(job.edited_bytes)
            real = {str(paths[name]): getattr(job, name) for name in paths}
            real[str(scratch)] = str(Path(job.output).parent)
            try:
                result = self.processor.restore_file(
                    FileRequest(
                        paths["original"], paths["edited"], paths["output"], job.params,
                        self.restorer, backend=job.backend, faces=job.faces,
                        strip_location=job.strip_location, on_step=on_step,
                        cancel=is_cancelled,
                    )
                )  # fmt: skip
                data = paths["output"].read_bytes()
                sidecar = read_sidecar(paths["output"])
            except Cancelled:
                raise
            except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
                return FileOutcome("failed", error=_replace_paths(_message(error), real))
            return FileOutcome(
                "ok",
                output_bytes=data,
                sidecar=None if sidecar is None else _replace_paths(sidecar, real),
                mode=str(getattr(result, "mode", None) or self.restorer.name),
                faces=[
                    FaceScores(
                        _score(getattr(f, "id_before", None)), _score(getattr(f, "id_after", None))
                    )
                    for f in (getattr(result, "faces", None) or [])
                ],  # fmt: skip
                left_alone=[(int(i), str(w)) for i, w in getattr(result, "left_alone", ()) or ()],
                warnings=[
                    _replace_paths(str(w), real) for w in getattr(result, "warnings", ()) or ()
                ],
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _message(error: BaseException) -> str:
    """The report's wording of an error (as engine.batch.run words a local failure)."""
    message = str(error) or type(error).__name__
    if not isinstance(error, EditedIDError):
        message = f"{type(error).__name__}: {message}"
    return message


def _score(score) -> float | None:
    value = getattr(score, "value", score)
    return None if value is None else float(value)


def _replace_paths(value, real: dict[str, str]):
    """`value` (text, or JSON-like data) with the scratch paths replaced by the driver's."""
    if isinstance(value, str):
        for scratch in sorted(real, key=len, reverse=True):  # files before their folder
            value = value.replace(scratch, real[scratch])
        return value
    if isinstance(value, dict):
        return {k: _replace_paths(v, real) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace_paths(v, real) for v in value)
    return value


def remove_stale_scratch(folder: str | Path | None = None) -> list[Path]:
    """Remove scratch folders of ours whose worker process is gone (killed mid-file)."""
    return remove_dead_scratch(folder)
