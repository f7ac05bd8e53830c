"""Progress and cancel inside a restore's stages, down to each UNet and VAE call.

A restore reports itself through `on_step(stage, step, total, info)`:

- after each diffusion step of a stage (inversion, null-text, entanglement) and each
  face of the element-mask pre-pass: `step` steps of `total` done, `info` a `StepInfo`
  whose `previews` hold every face's latent preview after that step (face -> RGB);
- before every unit of work inside a step (one UNet call, one face's VAE encode or
  decode): `step` is still the steps done, `info.substep` says which unit runs now and
  how many the step takes ("Null-text 2/6 · UNet call 4/12"), and no preview;
- while one slow unit runs (an eager model on a CPU: the tiny model at 512 px takes a
  minute per call), from inside it at most every `HEARTBEAT_S`: the same unit with
  `info.within`, the share of its blocks done.

Cancel is checked before every unit and, on an eager model, before every block of it, so
a cancel stops a restore within one UNet call whatever the stage.

The stages need not pass a monitor around: `StepMonitor` is the current one for the
thread that runs a restore (a context variable), and the UNet and VAE plumbing
(`engine.diffusion.latents`) asks for it. Outside a restore there is none and nothing
is reported.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from engine.errors import Cancelled

StepCallback = Callable[[str, int, int, object], None]

HEARTBEAT_S = 0.5  # in-call reports at most this often (the cancel check runs every block)

UNET_CALL = "UNet call"
VAE_ENCODE = "VAE encode"
VAE_DECODE = "VAE decode"


@dataclass(frozen=True)
class StepInfo:
    """on_step's fourth argument.

    previews: after a step, each face's preview (face slot in the restore's pairs ->
    small RGB uint8 array); empty in the reports of units.
    substep: (unit running now, units this step takes), 1-based; None after a step.
    unit: what the running unit is (UNET_CALL, VAE_ENCODE, VAE_DECODE).
    within: share of the running unit's blocks done (in-call heartbeats), else None.
    """

    previews: dict[int, np.ndarray] = field(default_factory=dict)
    substep: tuple[int, int] | None = None
    unit: str = ""
    within: float | None = None

    @property
    def is_step(self) -> bool:
        """A step's end (with previews), not the report of a unit inside it."""
        return self.substep is None

    def describe(self) -> str:
        """ " · UNet call 4/12 (37 %)" for a unit's report; "" after a step."""
        if self.substep is None:
            return ""
        text = f" · {self.unit or 'step'} {self.substep[0]}/{self.substep[1]}"
        if self.within is not None:
            text += f" ({int(round(100 * self.within))} %)"
        return text


def cancel_checker(cancel: object) -> Callable[[], None]:
    """A check that raises Cancelled once `cancel` (None, a callable returning True, or
    an object with is_set(), e.g. threading.Event) says so."""
    if cancel is None:
        return lambda: None
    probe = cancel.is_set if hasattr(cancel, "is_set") else cancel

    def check() -> None:
        if probe():
            raise Cancelled("Restore cancelled.")

    return check


def is_unit_report(info: object) -> bool:
    """on_step's `info` reports a unit inside a step (a sub-step), not a step's end."""
    return isinstance(info, StepInfo) and not info.is_step


def step_info(previews: dict[int, np.ndarray]) -> StepInfo:
    return StepInfo(previews=dict(previews))


def remap_faces(on_step: StepCallback | None, slots: list[int]) -> StepCallback | None:
    """on_step for a batch of `slots` (batch face b is face slots[b] of the caller):
    previews renumbered, everything else passed through."""
    if on_step is None:
        return None

    def remapped(stage: str, step: int, total: int, info: object = None) -> None:
        if isinstance(info, StepInfo) and info.previews:
            info = StepInfo({slots[b]: p for b, p in info.previews.items()}, info.substep,
                            info.unit, info.within)  # fmt: skip
        on_step(stage, step, total, info)

    return remapped


class StepMonitor:
    """Counts the units of the running step, reports them and checks cancel."""

    def __init__(
        self,
        on_step: StepCallback | None,
        check_cancel: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_step = on_step
        self.check_cancel = check_cancel
        self.clock = clock
        self.stage = ""
        self.done = 0  # steps of the stage done
        self.total = 0
        self.units = 0  # units the running step takes
        self.unit_index = 0  # units started in the running step
        self.unit = ""
        self._last_beat = 0.0

    def begin_step(self, stage: str, done: int, total: int, units: int) -> None:
        """A step of `stage` starts: `done` of `total` steps are done; it takes `units`."""
        self.check_cancel()
        self.stage, self.done, self.total = stage, done, total
        self.units, self.unit_index = max(1, units), 0

    def begin_unit(self, unit: str) -> None:
        """Before one UNet call or VAE call: cancel checked, the unit reported."""
        self.check_cancel()
        self.unit_index += 1
        self.units = max(self.units, self.unit_index)  # early stops end a step sooner
        self.unit = unit
        self._last_beat = self.clock()
        self._report(None)

    def heartbeat(self, within: float) -> None:
        """From inside the running unit: cancel checked; reported now and then."""
        self.check_cancel()
        now = self.clock()
        if now - self._last_beat >= HEARTBEAT_S:
            self._last_beat = now
            self._report(within)

    def _report(self, within: float | None) -> None:
        if self.on_step is not None and self.stage:
            info = StepInfo(substep=(self.unit_index, self.units), unit=self.unit, within=within)
            self.on_step(self.stage, self.done, self.total, info)


_CURRENT: ContextVar[StepMonitor | None] = ContextVar("editedid_step_monitor", default=None)


def current_monitor() -> StepMonitor | None:
    return _CURRENT.get()


@contextlib.contextmanager
def monitoring(monitor: StepMonitor) -> Iterator[StepMonitor]:
    """Make `monitor` the current one in this thread for the block."""
    token = _CURRENT.set(monitor)
    try:
        yield monitor
    finally:
        _CURRENT.reset(token)


def begin_step(stage: str, done: int, total: int, units: int) -> None:
    """Tell the current monitor (if any) that a step starts."""
    monitor = _CURRENT.get()
    if monitor is not None:
        monitor.begin_step(stage, done, total, units)


@contextlib.contextmanager
def unit(name: str, module=None, compiled: bool = False) -> Iterator[None]:
    """One unit of work (a UNet or VAE call) under the current monitor: reported and
    cancel-checked before it; on an eager `module`, cancel-checked before each of its
    blocks, with a heartbeat report now and then (a compiled graph gets no hooks: its
    calls are short, and hooks would send it back to eager)."""
    monitor = _CURRENT.get()
    if monitor is None:
        yield
        return
    monitor.begin_unit(name)
    if module is None or compiled:
        yield
        return
    blocks = _blocks(module)
    seen = [0]

    def beat(_module, _args) -> None:
        seen[0] += 1
        monitor.heartbeat(min(1.0, seen[0] / len(blocks)))

    handles = [block.register_forward_pre_hook(beat) for block in blocks]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


_BLOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _blocks(module) -> list:
    """The resnet and attention blocks of a UNet or VAE (diffusers), in call order;
    kept per module (a model's structure does not change)."""
    blocks = _BLOCKS.get(module)
    if blocks is None:
        from diffusers.models.attention_processor import Attention
        from diffusers.models.resnet import ResnetBlock2D

        blocks = [m for m in module.modules() if isinstance(m, ResnetBlock2D | Attention)]
        _BLOCKS[module] = blocks
    return blocks
