"""One loaded Stable Diffusion model and the lock every run on it holds.

Why a lock: a diffusion restore is not a pure function of the model. It installs its gated
attention processors on the UNet for the run (engine.diffusion.attention), keeps the
branch records of its faces beside them, and may lower the model's memory settings on an
out-of-memory error (engine.models.fallback). Two threads restoring on one model at once
(the app's interactive restore and a batch started from File > Batch) give each other
their processors: both results are wrong, and both runs' memory is in use at once. So
every call that runs the model (`Restorer.restore`, `Restorer.element_maps`) holds the
Engine's lock for its whole length, and a second caller waits its turn, being told so
(`on_wait`: the app says "waiting for the current restore") and still able to cancel.

The lock is per model call, not per batch: an interactive restore waits for at most the
batch photo in progress, not for the whole folder.

The face analyser is the Engine's too (`analyser`, `analyse`), kept per backend choice.
Finding faces does not take the model's turn: it never touches the diffusion model, and
the face backends guard their own native objects (engine.faces' per-backend locks), so a
photo can be analysed while a batch restores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.diffusion.progress import cancel_checker
from engine.faces.detection import get_analyzer
from engine.faces.types import FaceAnalyzer
from engine.params import EditedIDParams
from engine.photo.analysis import PhotoAnalysis, analyze_photos
from engine.photo.contract import CropJob, RestoredCrops
from engine.restorers import get_restorer, restorer_class

WAIT_POLL_S = 0.1  # how often a waiting caller looks at its cancel


class Engine:
    """The model the process runs (None until one is loaded) and the lock on it."""

    def __init__(self, model: Any = None) -> None:
        self._model = model
        # Re-entrant: a run that holds its turn for a whole job (load, restore, the memory
        # ladder's retry) calls restorers that take the turn again on the same thread.
        self._lock = threading.RLock()
        self._depth = 0
        self._holder: str | None = None  # who runs now: said to those who wait
        self._analysers: dict[tuple[str, str | None], Any] = {}
        self._analysers_lock = threading.Lock()

    @property
    def model(self) -> Any:
        return self._model

    def set_model(
        self,
        model: Any,
        *,
        cancel: object = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Replace the model, once no run holds the old one (a load waits its turn)."""
        with self.turn("loading a model", cancel=cancel, on_wait=on_wait):
            self._model = model

    def clear_caches(self) -> None:
        """Forget the kept inversions and branch records (a re-run then computes them
        again): memory back, and the next run as a first run."""
        from engine.diffusion.restore import default_cache

        with self.turn("clearing the caches"):
            if self._model is not None:
                default_cache(self._model).clear()

    @property
    def busy(self) -> bool:
        return self._depth > 0

    @property
    def holder(self) -> str | None:
        """What holds the model now ("an interactive restore", "a batch"), or None."""
        return self._holder

    @contextmanager
    def turn(
        self,
        who: str,
        *,
        on_wait: Callable[[str], None] | None = None,
        cancel: object = None,
    ) -> Iterator[Any]:
        """Hold the model for one run: yields the model. If another run holds it,
        on_wait(what holds it) is called once and the caller waits, raising Cancelled as
        soon as `cancel` (an Event or a callable) says so."""
        if not self._lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait(self._holder or "another run")
            check = cancel_checker(cancel)
            while not self._lock.acquire(timeout=WAIT_POLL_S):
                check()
        self._depth += 1
        if self._depth == 1:
            self._holder = who
        try:
            yield self._model
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
            self._lock.release()

    def analyser(
        self,
        backend: str = "auto",
        models_dir: str | Path | None = None,
        *,
        on_load: Callable[[], None] | None = None,
    ) -> FaceAnalyzer:
        """The face analyser for `backend` ("auto", "dlib", "insightface") and the models
        folder, made on first use (`on_load()` is called just before) and kept."""
        key = ((backend or "auto").strip().lower(), str(models_dir) if models_dir else None)
        with self._analysers_lock:
            analyser = self._analysers.get(key)
            if analyser is None:
                if on_load is not None:
                    on_load()
                analyser = get_analyzer(key[0], models_dir=models_dir)
                self._analysers[key] = analyser
            return analyser

    def analyse(
        self,
        original: np.ndarray,
        edited: np.ndarray,
        *,
        backend: str = "auto",
        models_dir: str | Path | None = None,
        **options: Any,
    ) -> PhotoAnalysis:
        """Find, pair and align the faces of a photo pair with this engine's analyser
        (`options`: those of engine.photo.analysis.analyze_photos)."""
        analyser = self.analyser(backend, models_dir)
        return analyze_photos(original, edited, backend=backend, analyzer=analyser, **options)

    def restorer(
        self, mode: str, *, who: str = "a run", on_wait: Callable[[str], None] | None = None
    ) -> EngineRestorer:
        """The restorer `mode` names, built on this engine's model; its model calls hold
        the lock (as `who`)."""
        return EngineRestorer(self, mode, who=who, on_wait=on_wait)


class EngineRestorer:
    """A restorer (engine.restorers) whose model calls take turns on an Engine.

    Built afresh (a restorer is a few attributes) on the model the Engine holds when the
    call starts: a model loaded in the meantime is the one used, and a replaced model is
    not kept alive by a batch's restorer. Restorers that need no model (classic) never
    wait."""

    def __init__(
        self,
        engine: Engine,
        mode: str,
        *,
        who: str,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        self.engine = engine
        self.mode = mode
        self.who = who
        self.on_wait = on_wait
        self.needs_model = bool(restorer_class(mode).needs_model)

    def _inner(self) -> Any:
        return get_restorer(self.mode, model=self.engine.model if self.needs_model else None)

    @property
    def name(self) -> str:
        return self._inner().name

    @property
    def model(self) -> Any:
        """The model its calls run on (None for restorers that need none)."""
        return self.engine.model if self.needs_model else None

    def check(self) -> None:
        self._inner().check()

    def crop_size(self, params: EditedIDParams) -> int | None:
        return self._inner().crop_size(params)

    @contextmanager
    def _turn(self, cancel: object) -> Iterator[Any]:
        if not self.needs_model:
            yield self._inner()
            return
        with self.engine.turn(self.who, on_wait=self.on_wait, cancel=cancel):
            yield self._inner()

    def element_maps(
        self,
        edited_crops: Sequence[np.ndarray],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel: object = None,
    ) -> list[np.ndarray] | None:
        with self._turn(cancel) as restorer:
            return restorer.element_maps(edited_crops, params, on_step=on_step, cancel=cancel)

    def restore(
        self,
        jobs: Sequence[CropJob],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel: object = None,
        on_message: Callable[[str], None] | None = None,
    ) -> RestoredCrops:
        with self._turn(cancel) as restorer:
            return restorer.restore(
                jobs, params, on_step=on_step, cancel=cancel, on_message=on_message
            )
