"""The engine worker: one long-lived QObject moved to one QThread (krita's backend).

`EngineWorker` owns the loaded SD model and the face analyzer and reuses them for every
job; the engine keeps its inversion cache on the model object, so a re-run after a mask
or overlap change repeats only the entanglement stage. The UI thread never calls it
directly: `EngineHost` (lives in the UI thread) posts jobs as queued signals to the
worker's QThread and sets the cancel Event; results come back as Qt signals, queued
into the UI thread.
Every job ends with exactly one of `analyzed` / `classic_ready` / `finished` /
`model_loaded`, `failed` or `cancelled`, followed by `job_done(kind)`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from importlib import import_module
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.errors import Cancelled, EditedIDError, InputError, ModelError
from engine.runtime import Engine, ModelSpec

from .jobs import (  # noqa: F401 - the requests are posted through this module too
    AnalyzeRequest,
    ClassicRequest,
    RestoreRequest,
    is_out_of_memory,
    merge_results,
)
from .threads import PythonThread

log = logging.getLogger(__name__)

WORKER_STACK_BYTES = 8 * 1024 * 1024
# What warm_up imports, in order, with the words the status bar shows meanwhile: the
# libraries every analysis and restore needs (torch alone takes seconds on a cold disk).
WARM_UP_MODULES = (
    ("torch", ("torch",)),
    ("the engine", ("engine.photo.pipeline", "engine.restorers", "engine.models.loading")),
    ("diffusers", ("diffusers", "transformers")),
)

# Who holds the shared Engine, as the other side is told while it waits (engine.runtime).
INTERACTIVE = "the interactive restore"
LOADING = "loading the model"

LOW_MEMORY_MESSAGE = (
    "Out of GPU memory outside the restore (the element masks): retrying once in "
    "low-memory mode (VAE and text encoder off the GPU, VAE tiles, one face per null-text "
    "pass; slower)…"
)


class WorkerSignals(QObject):
    """What the engine worker reports (EngineWorker emits; WorkerRelay re-emits)."""

    progress = Signal(str, int, int)  # stage, step, total (a step ended)
    # inside a step: stage, steps done, total, the unit running (" · UNet call 4/12")
    substep = Signal(str, int, int, str)
    # one face's step preview: RGBA uint8 patch in photo pixels, (face index, (x0, y0, x1,
    # y1)) where it goes (engine.photo.pipeline.FacePreview)
    preview = Signal(object, object)
    analyzed = Signal(object)  # engine.photo.pipeline.PhotoAnalysis
    classic_ready = Signal(object)  # engine.photo.pipeline.PhotoResult (classic)
    finished = Signal(object)  # engine.photo.pipeline.PhotoResult (diffusion)
    model_loaded = Signal(dict)  # SDModel.describe()
    failed = Signal(str, str)  # title, message
    cancelled = Signal()
    status = Signal(str)
    job_done = Signal(str)  # kind, after every job whatever its outcome
    job_ending = Signal(str)  # kind, just before the outcome (the host's count, direct)
    warmed_up = Signal(str)  # after warm_up: "" when ready, else why the engine cannot load


SIGNAL_NAMES = (
    "progress", "substep", "preview", "analyzed", "classic_ready", "finished", "model_loaded",
    "failed", "cancelled", "status", "job_done", "warmed_up",
)  # fmt: skip


class WorkerRelay(WorkerSignals):
    """The worker as the UI thread sees it (`EngineHost.worker`): its signals re-emitted
    by this object, which lives in the UI thread, and its state read through.

    Why: a slot that is not a method of a QObject (a lambda, a bound method of a plain
    object, pytest-qt's waitSignal) runs in the thread that emits. Connected to the
    worker itself it would run on the worker thread, touching widgets and timers there
    ("QObject::killTimer: Timers cannot be stopped from another thread"). Connected
    here, every slot runs in the UI thread, whatever its kind.
    """

    def __init__(self, worker: EngineWorker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        for name in SIGNAL_NAMES:  # signal to signal: queued into this object's thread
            getattr(worker, name).connect(getattr(self, name))

    def __getattr__(self, name: str) -> Any:  # model, cancel_event, ... of the worker
        worker = self.__dict__.get("_worker")
        if worker is None:
            raise AttributeError(name)
        return getattr(worker, name)


class EngineWorker(WorkerSignals):
    """Runs engine jobs (called on the worker thread); holds the model between jobs in
    `engine` (an engine.runtime.Engine), which a batch started from the window shares:
    whichever runs the model first, the other waits for it and says so."""

    def __init__(
        self,
        model_spec: ModelSpec | None = None,
        face_config: dict[str, Any] | None = None,
        engine: Engine | None = None,
    ) -> None:
        super().__init__()
        self.cancel_event = threading.Event()
        # Jobs numbered up to this were cancelled (set from the UI thread with the Event).
        self.cancelled_upto = 0
        self.model_spec = model_spec  # None: keep whatever model is loaded
        self.face_config: dict[str, Any] = dict(face_config or {})
        self.engine = engine if engine is not None else Engine()
        self._loaded_spec: ModelSpec | None = None  # the spec the engine's model was made by
        self._analyzer_key: dict[str, Any] | None = None

    # -- state that other threads may read --------------------------------------------
    @property
    def model(self) -> Any:
        return self.engine.model

    # -- slots (run in the worker thread) ------------------------------------------------
    @Slot(object, object)
    def configure(self, model_spec: ModelSpec | None, face_config: dict | None) -> None:
        """New settings; the model / analyzer are reloaded lazily when they changed."""
        if model_spec is not None:
            self.model_spec = model_spec
        if face_config is not None:
            self.face_config = dict(face_config)

    @Slot(object)
    def set_model(self, model: Any) -> None:
        """Adopt an already loaded model (tests, self-test)."""
        self.engine.set_model(model, cancel=self.cancel_event)
        self._loaded_spec = self.model_spec

    @Slot()
    def warm_up(self) -> None:
        """Import the heavy libraries and load the face models before the first job, so
        the window paints at once and the first analysis does not wait for them."""
        start = time.perf_counter()
        problem = ""
        try:
            for stage, modules in WARM_UP_MODULES:
                self.status.emit(f"Loading {stage}…")
                for module in modules:
                    import_module(module)
            if self.face_config:  # else the window configures it later: load it then
                self._ensure_analyzer()
        except Exception as exc:  # noqa: BLE001 - the first real job reports it in full
            log.warning("Warm-up stopped:\n%s", traceback.format_exc())
            problem = f"{type(exc).__name__}: {exc}"
        log.info("Engine warm-up took %.1f s", time.perf_counter() - start)
        self.warmed_up.emit(problem)

    @Slot(int)
    def load_model(self, generation: int = 0) -> None:
        self._run_job(
            "load_model",
            generation,
            lambda: partial(self.model_loaded.emit, self._ensure_model().describe()),
        )

    @Slot(object)
    def analyze(self, request: AnalyzeRequest) -> None:
        def job() -> Callable[[], None]:
            self._ensure_analyzer()  # says which backend, once
            self.progress.emit("detecting faces", 0, 0)
            analysis = self.engine.analyse(
                request.original,
                request.edited,
                backend=self.face_config.get("backend", "auto"),
                models_dir=self.face_config.get("models_dir") or None,
                overrides=request.overrides or None,
                original_name=request.original_name,
                edited_name=request.edited_name,
            )
            return partial(self.analyzed.emit, analysis)

        self._run_job("analyze", request.generation, job)

    @Slot(object)
    def classic(self, request: ClassicRequest) -> None:
        def job() -> Callable[[], None]:
            from engine.photo.pipeline import restore_analysis
            from engine.restorers import get_restorer

            self.progress.emit("classic preview", 0, 0)
            result = restore_analysis(
                request.analysis,
                get_restorer("classic"),
                faces=request.faces,
                masks=request.masks,
            )
            return partial(self.classic_ready.emit, result)

        self._run_job("classic", request.generation, job)

    @Slot(object)
    def restore(self, request: RestoreRequest) -> None:
        self._run_job(
            "restore",
            request.generation,
            lambda: partial(self.finished.emit, self._restore(request)),
        )

    # -- helpers ----------------------------------------------------------------------------
    def _check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("Cancelled.")

    def _run_job(self, kind: str, generation: int, job: Callable[[], Callable]) -> None:
        """Run job(), which returns the emit of its result; emit that, or the failure,
        only after job_ending, so the host counts the job done before any slot hears
        the outcome (a slot may start the next job or ask whether the host is busy)."""
        outcome: Callable[[], Any]
        try:
            if generation and generation <= self.cancelled_upto:
                raise Cancelled("Cancelled before it started.")
            if generation:
                self.cancel_event.clear()  # a cancel of an earlier job does not apply
            outcome = job()
            if generation and generation <= self.cancelled_upto:
                # Cancelled while a call that cannot look at the Event ran (a native
                # detector, one long op): the user asked for no result, so none arrives.
                raise Cancelled("Cancelled.")
        except Cancelled:
            self.status.emit("Cancelled.")
            outcome = self.cancelled.emit
        except InputError as exc:
            outcome = partial(self.failed.emit, "Cannot use these photos", str(exc))
        except ModelError as exc:
            outcome = partial(self.failed.emit, "Model problem", str(exc))
        except EditedIDError as exc:
            outcome = partial(self.failed.emit, "EditedID", str(exc))
        except Exception as exc:  # noqa: BLE001 - never let a job kill the thread
            if is_out_of_memory(exc):
                outcome = partial(
                    self.failed.emit,
                    "Out of memory",
                    "The restore did not fit in memory even in low-memory mode. Close other "
                    "GPU programs, switch on low-VRAM mode in the Model Manager, choose CPU, "
                    f"or restore fewer faces at once.\n\n({exc})",
                )
            else:
                log.error("Job %s failed:\n%s", kind, traceback.format_exc())
                outcome = partial(
                    self.failed.emit,
                    "Unexpected error",
                    f"{type(exc).__name__}: {exc}\n\nDetails are in the log.",
                )
        self.job_ending.emit(kind)
        try:
            outcome()
        finally:
            self.job_done.emit(kind)

    def _ensure_analyzer(self) -> Any:
        """The Engine's face analyser for the chosen backend (made on first use)."""
        key = dict(self.face_config)
        analyzer = self.engine.analyser(
            key.get("backend", "auto"),
            key.get("models_dir") or None,
            on_load=lambda: self.status.emit("Loading face models…"),
        )
        if key != self._analyzer_key:
            self._analyzer_key = key
            self.status.emit(f"Face backend: {getattr(analyzer, 'name', '?')}")
        return analyzer

    def _ensure_model(self) -> Any:
        spec = self.model_spec
        if self.engine.model is not None and (spec is None or self._loaded_spec == spec):
            return self.engine.model

        # The whole load holds the model: a batch photo running on the old model finishes
        # first (a cancel still works meanwhile), the old one is freed before the new one
        # loads, and a batch photo that comes next waits for the new one.
        with self.engine.turn(LOADING, on_wait=self._say_waiting, cancel=self.cancel_event):
            self.engine.set_model(None)
            return self._load_model(spec or ModelSpec())

    def _load_model(self, spec: ModelSpec) -> Any:
        self.status.emit(f"Loading {spec.model_name}…")
        self.progress.emit("loading model", 0, 0)
        model = spec.load(cancel=self.cancel_event.is_set)
        self.engine.set_model(model)
        self._loaded_spec = spec
        self.model_loaded.emit(model.describe())
        return model

    def _say_waiting(self, holder: str) -> None:
        """on_wait of the shared Engine: another run (a batch photo) holds the model."""
        self.status.emit(f"Waiting for {holder} to finish its current photo…")
        self.progress.emit("waiting for the model", 0, 0)

    def _restore(self, request: RestoreRequest) -> Any:
        # The whole restore (a load, each face group, the memory ladder's retry) in one
        # turn on the shared model: a batch photo cannot slip in between two groups and
        # find the model in low-memory mode, nor take its attention processors mid-run.
        with self.engine.turn(INTERACTIVE, on_wait=self._say_waiting, cancel=self.cancel_event):
            self._ensure_model()
            return self._restore_holding(request)

    def _restore_holding(self, request: RestoreRequest) -> Any:
        from engine.models.fallback import LadderExhausted, lower_memory

        model = self.engine.model
        restorer = self.engine.restorer("diffusion", who=INTERACTIVE)

        # The restorer's out-of-memory ladder (engine.models.memory_plan) already tries
        # the savers and the CPU for the restore itself: when it gave up (LadderExhausted)
        # a retry here would run it all again. What it does not cover is the work around
        # it (the element-mask prepass): for that, the ladder's savers, once, and kept.
        lower = lower_memory(model.low_memory)
        try:
            return self._restore_groups(restorer, request)
        except Exception as exc:
            if (
                not is_out_of_memory(exc)
                or isinstance(exc, LadderExhausted)
                or vars(lower) == vars(model.low_memory)
            ):
                raise
        self.status.emit(LOW_MEMORY_MESSAGE)
        _empty_cuda_cache()
        model.set_low_memory(lower)
        return self._restore_groups(restorer, request)

    def _restore_groups(self, restorer: Any, request: RestoreRequest) -> Any:
        from engine.photo.pipeline import restore_photo

        results = []
        for params, faces in request.groups:
            self._check_cancel()

            results.append(
                restore_photo(
                    request.original,
                    request.edited,
                    params,
                    faces=faces,
                    on_step=self._on_step,
                    cancel=self.cancel_event,
                    restorer=restorer,
                    analysis=request.analysis,
                    masks={i: request.masks[i] for i in faces if i in request.masks}
                    if request.masks
                    else None,
                    overlaps={i: request.overlaps[i] for i in faces if i in request.overlaps}
                    if request.overlaps
                    else None,
                )
            )
        return merge_results(request.edited, results)

    def _on_step(self, stage: str, step: int, total: int, info: Any = None) -> None:
        """A restore's report: a step's end (progress, and each face's preview in its
        own place), or a unit inside a step (substep: UNet / VAE call, heartbeat)."""
        describe = getattr(info, "describe", None)
        detail = describe() if describe is not None else ""
        if detail:
            self.substep.emit(stage, int(step), int(total), detail)
            return
        self.progress.emit(stage, int(step), int(total))
        for face in getattr(info, "faces", ()):
            self.preview.emit(face.image, (face.face, face.box))


def opencv_on_the_calling_thread() -> None:
    """Switch off OpenCV's own thread pool (process-wide), so cv2 calls run on the thread
    that makes them.

    Why: the engine worker hung inside cv2.dilate (a 0.3 s call) for minutes: py-spy
    showed the worker's only frames in cv2's native code, the UI thread idle in its event
    loop, the GIL free (tests/test_worker.py -k analyze_and_classic looped under load,
    issue 12: 1 dumped hang and 7 more runs stuck past 60 s in 32; none in 50 with the
    pool off). So: OpenCV's pthreads pool (parallel_for_) not finishing a job; not dlib,
    the GIL or Qt. The engine's cv2 work is on masks and crops of a few hundred pixels,
    where the pool gains little (cv2.dilate was faster serial); a hang costs the session.
    """
    try:
        import cv2
    except ImportError:  # pragma: no cover - a hard dependency of the engine
        return
    cv2.setNumThreads(0)  # 0: "disable threading optimizations" (OpenCV's docs)


def _empty_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass


class EngineHost(QObject):
    """UI-thread side: owns the worker's QThread, posts jobs, tracks busy state, cancels.

    The worker is moved to one long-lived QThread (the design card; krita's backend); jobs
    reach it as queued signals, so they run one after another in the order posted, and its
    results come back as queued signals into the UI thread. Cancel is a thread-safe Event
    the running job polls between UNet calls, so it never waits for the job's event loop.
    """

    busy_changed = Signal(bool)
    # Posted to the worker's thread (queued connections, FIFO in the thread's event loop).
    _post_configure = Signal(object, object)
    _post_set_model = Signal(object)
    _post_analyze = Signal(object)
    _post_classic = Signal(object)
    _post_restore = Signal(object)
    _post_load_model = Signal(int)
    _post_warm_up = Signal()

    def __init__(
        self,
        model_spec: ModelSpec | None = None,
        face_config: dict | None = None,
        parent: QObject | None = None,
        *,
        engine: Engine | None = None,
    ) -> None:
        super().__init__(parent)
        self._pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()  # counted down on the worker thread
        self._announced_busy = False
        self._generation = 0
        self._worker = EngineWorker(model_spec, face_config, engine)
        # The loaded model and its lock, shared with the batches the window starts.
        self.runtime: Engine = self._worker.engine
        self.worker = WorkerRelay(self._worker, self)  # what the window connects to
        opencv_on_the_calling_thread()
        # One Python thread state for the thread's life (dlib/pybind11 crash: threads.py).
        self.thread = PythonThread("editedid-engine")
        # Torch, dlib and the SD pipeline recurse deeply on this thread; give it the main
        # thread's usual room rather than a platform default that may be smaller.
        self.thread.setStackSize(WORKER_STACK_BYTES)
        self._worker.moveToThread(self.thread)
        queued = Qt.ConnectionType.QueuedConnection
        # Counted done on the worker thread (direct) before the outcome is emitted, so
        # `busy` is already right when a slot hears it; busy_changed goes out in the UI
        # thread only (queued), so it never arrives out of order with _submit's.
        self._worker.job_ending.connect(self._count_done, Qt.ConnectionType.DirectConnection)
        self._worker.job_done.connect(self._announce, queued)
        self._post_configure.connect(self._worker.configure, queued)
        self._post_set_model.connect(self._worker.set_model, queued)
        self._post_analyze.connect(self._worker.analyze, queued)
        self._post_classic.connect(self._worker.classic, queued)
        self._post_restore.connect(self._worker.restore, queued)
        self._post_load_model.connect(self._worker.load_model, queued)
        self._post_warm_up.connect(self._worker.warm_up, queued)
        self.thread.start()

    # -- state ------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        with self._pending_lock:
            return sum(self._pending.values()) > 0

    def pending(self, kind: str) -> int:
        with self._pending_lock:
            return self._pending.get(kind, 0)

    def _submit(self, kind: str) -> int:
        self._generation += 1
        with self._pending_lock:
            self._pending[kind] = self._pending.get(kind, 0) + 1
        self._announce()
        return self._generation

    @Slot(str)
    def _count_done(self, kind: str) -> None:  # on the worker thread
        with self._pending_lock:
            self._pending[kind] = max(0, self._pending.get(kind, 0) - 1)

    def _announce(self, *_: object) -> None:  # in the UI thread
        busy = self.busy
        if busy != self._announced_busy:
            self._announced_busy = busy
            self.busy_changed.emit(busy)

    # -- requests -----------------------------------------------------------------------
    def configure(self, model_spec: ModelSpec | None, face_config: dict | None) -> None:
        self._post_configure.emit(model_spec, face_config)

    def set_model(self, model: Any) -> None:
        self._post_set_model.emit(model)

    def analyze(self, request: AnalyzeRequest) -> None:
        request.generation = self._submit("analyze")
        self._post_analyze.emit(request)

    def classic(self, request: ClassicRequest) -> None:
        request.generation = self._submit("classic")
        self._post_classic.emit(request)

    def restore(self, request: RestoreRequest) -> None:
        request.generation = self._submit("restore")
        self._post_restore.emit(request)

    def load_model(self) -> None:
        self._post_load_model.emit(self._submit("load_model"))

    def warm_up(self) -> None:
        """Load the heavy modules on the worker thread (ends with worker.warmed_up); not a
        job the user waits on or cancels, so busy stays False; later jobs queue behind."""
        self._post_warm_up.emit()

    def cancel(self) -> None:
        """Stop the running job within one diffusion step (thread-safe Event)."""
        if self.busy:
            self._worker.cancelled_upto = self._generation
            self._worker.cancel_event.set()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Cancel, let the running job end, stop the thread; jobs not started are dropped."""
        self._worker.cancelled_upto = self._generation
        self._worker.cancel_event.set()
        self.thread.quit()
        self.thread.wait(int(timeout_s * 1000))
