"""Cancel and progress inside every stage of a restore, down to each UNet and VAE call
(issue 20 item 4): the tiny SD model, a cancel set from inside a UNet or VAE call of
each stage, the calls counted with forward hooks."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from engine.diffusion import progress
from engine.diffusion.progress import UNET_CALL, VAE_DECODE, VAE_ENCODE, StepInfo, StepMonitor
from engine.diffusion.restore import (
    ELEMENT_MASKS_STAGE,
    InversionCache,
    element_attention_maps,
    restore_faces,
)
from engine.errors import Cancelled
from engine.models.loading import LowMemory, load_sd_model
from engine.params import EditedIDParams
from tests.helpers import face_crop, face_pair

# few steps, two null-text iterations, DPM-Solver++ steps (the inversion's look-ahead)
FAST = EditedIDParams(steps=3, dpm_range=(2, 3), final_align_steps=1, nulltext_iters=2)
SIZE = 32


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir, device="cpu")


class CallLog:
    """Every UNet / VAE call started and finished (forward hooks), and every on_step
    report, in one sequence; sets `cancel` when a call of the chosen kind starts."""

    def __init__(self, model, target=None) -> None:
        self.model = model
        self.events: list[tuple] = []
        self.cancel = threading.Event()
        self.target = target  # (stage, unit, substep index or None) to cancel at
        self.cancelled_at: int | None = None  # index in events of the cancelling call
        self.last_unit: tuple | None = None
        self.handles = []
        modules = {UNET_CALL: model.unet, VAE_ENCODE: model.vae.encoder,
                   VAE_DECODE: model.vae.decoder}  # fmt: skip
        for name, module in modules.items():
            self.handles.append(module.register_forward_pre_hook(self._started(name)))
            self.handles.append(module.register_forward_hook(self._finished(name)))

    def on_step(self, stage, step, total, info=None) -> None:
        self.events.append(("report", stage, step, total, info))
        if isinstance(info, StepInfo) and info.substep is not None and info.within is None:
            self.last_unit = (stage, info.unit, info.substep[0])

    def _started(self, name):
        def hook(module, args):
            self.events.append(("start", name, self.last_unit))
            if self.target is not None and self.cancelled_at is None and self._matches():
                self.cancelled_at = len(self.events) - 1
                self.cancel.set()  # the user presses Esc while this call runs

        return hook

    def _finished(self, name):
        def hook(module, args, output):
            self.events.append(("finish", name, self.last_unit))

        return hook

    def _matches(self) -> bool:
        stage, unit, index = self.target
        if self.last_unit is None:
            return False
        return self.last_unit[:2] == (stage, unit) and index in (None, self.last_unit[2])

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def calls_after_cancel(self) -> tuple[int, int]:
        """(calls started after the cancelling one, calls finished after it started)."""
        later = self.events[self.cancelled_at + 1 :]
        return (
            sum(1 for e in later if e[0] == "start"),
            sum(1 for e in later if e[0] == "finish"),
        )


def _restore(model, log: CallLog, faces: int = 1):
    pairs = [face_pair(size=SIZE), face_pair("astronaut", "grace_hopper", SIZE)]
    return restore_faces(
        model,
        pairs[:faces],
        FAST,
        on_step=log.on_step,
        cancel=log.cancel,
        cache=InversionCache(),
    )


# (stage, unit, index of the unit in its step or None: any)
RESTORE_POINTS = {
    "inversion VAE encode": ("inversion", VAE_ENCODE, 2),
    "inversion UNet": ("inversion", UNET_CALL, None),
    "null-text conditional forward": ("nulltext", UNET_CALL, 1),
    "null-text inner iteration": ("nulltext", UNET_CALL, 3),
    "null-text step forward": ("nulltext", UNET_CALL, 2 + FAST.nulltext_iters),
    "entanglement UNet": ("entanglement", UNET_CALL, None),
    "entanglement VAE decode": ("entanglement", VAE_DECODE, 1),
}


@pytest.mark.parametrize("point", list(RESTORE_POINTS))
def test_a_cancel_inside_any_call_of_any_stage_stops_that_call(tiny_model, point):
    """Cancel set while a UNet / VAE call of the stage runs: the call itself stops
    (cancel is checked before each of its blocks) and no other call starts."""
    log = CallLog(tiny_model, RESTORE_POINTS[point])
    try:
        with pytest.raises(Cancelled):
            _restore(tiny_model, log)
    finally:
        log.remove()
    assert log.cancelled_at is not None, f"the run never reached {point}"
    assert log.calls_after_cancel() == (0, 0)


def test_a_cancel_in_the_three_branch_entanglement_stops_within_the_call(tiny_sd_dir):
    """Without branch records (LowMemory.branch_record "off") the entanglement runs its
    own three-branch loop: the same guarantee there."""
    model = load_sd_model(tiny_sd_dir, device="cpu", low_memory=LowMemory(branch_record="off"))
    log = CallLog(model, ("entanglement", UNET_CALL, None))
    try:
        with pytest.raises(Cancelled):
            _restore(model, log)
    finally:
        log.remove()
    assert log.cancelled_at is not None and log.calls_after_cancel() == (0, 0)


@pytest.mark.parametrize("unit", [VAE_ENCODE, UNET_CALL])
def test_a_cancel_inside_the_element_mask_prepass_stops_that_call(tiny_model, unit):
    crops = [face_crop(name, SIZE) for name in ("astronaut", "grace_hopper", "astronaut")]
    log = CallLog(tiny_model, (ELEMENT_MASKS_STAGE, unit, None))
    try:
        with pytest.raises(Cancelled):
            element_attention_maps(tiny_model, crops, FAST, on_step=log.on_step, cancel=log.cancel)
    finally:
        log.remove()
    assert log.cancelled_at is not None and log.calls_after_cancel() == (0, 0)


def test_every_unet_and_vae_call_of_every_stage_is_reported_first(tiny_model):
    """The UI hears of each call before it runs (stage, the step under way, which unit
    of how many): a slow call never leaves the progress where the last step left it."""
    log = CallLog(tiny_model)
    crops = [face_crop(name, SIZE) for name in ("astronaut", "grace_hopper")]
    try:
        element_attention_maps(tiny_model, crops, FAST, on_step=log.on_step)
        _restore(tiny_model, log, faces=2)
    finally:
        log.remove()
    events = log.events
    starts = [i for i, e in enumerate(events) if e[0] == "start"]
    stages_seen = set()
    for i in starts:
        # the nearest report before this call announces exactly this kind of unit
        report = next(e for e in reversed(events[:i]) if e[0] == "report")
        info = report[4]
        assert isinstance(info, StepInfo) and info.substep is not None, events[i]
        assert info.unit == events[i][1]
        stages_seen.add(report[1])
    # Each step's units are announced 1, 2, ... in order, and a step's last announced unit
    # is its last (units of units) before the next step's first: no count skips or lies.
    units = [(e[1], e[2], *e[4].substep) for e in events
             if e[0] == "report" and e[4].substep is not None and e[4].within is None]  # fmt: skip
    assert units[0][2] == 1
    for prev, cur in itertools.pairwise(units):
        if cur[2] == 1:
            assert prev[2] == prev[3], (prev, cur)
        else:
            assert cur[:2] == prev[:2] and cur[3] == prev[3] and cur[2] == prev[2] + 1, (prev, cur)
    assert units[-1][2] == units[-1][3]
    assert stages_seen == {ELEMENT_MASKS_STAGE, "inversion", "nulltext", "entanglement"}
    # null-text: the step's units are its conditional forward, one per iteration, the step
    nulltext = [e[4].substep for e in events if e[0] == "report" and e[1] == "nulltext"
                and e[4].substep is not None and e[4].within is None]  # fmt: skip
    assert nulltext[:4] == [(k, 2 + FAST.nulltext_iters) for k in range(1, 5)]
    # and the step's end still comes once per step, with every face's preview
    ends = [e for e in events if e[0] == "report" and e[1] == "nulltext" and e[4].is_step]
    assert [e[2] for e in ends] == list(range(1, FAST.steps + 1))
    assert all(sorted(e[4].previews) == [0, 1] for e in ends)


def test_a_slow_call_reports_from_inside_itself(tiny_model, monkeypatch):
    """Heartbeats from the blocks of one running UNet call: its share done goes up (the
    tiny model at 512 px spends a minute in one call on a CPU)."""
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    log = CallLog(tiny_model)
    try:
        _restore(tiny_model, log)
    finally:
        log.remove()
    first = next(i for i, e in enumerate(log.events) if e[0] == "start" and e[1] == UNET_CALL)
    end = next(i for i, e in enumerate(log.events[first:], first) if e[0] == "finish")
    inside = [e[4].within for e in log.events[first:end] if e[0] == "report"]
    assert len(inside) >= 4 and inside == sorted(inside) and 0 < inside[0] < inside[-1] <= 1


def test_step_monitor_counts_units_and_keeps_quiet_between_heartbeats():
    now = [0.0]
    seen = []
    monitor = StepMonitor(lambda *a: seen.append(a), lambda: None, clock=lambda: now[0])
    monitor.begin_step("nulltext", 2, 6, 3)
    monitor.begin_unit(UNET_CALL)
    monitor.heartbeat(0.5)  # too soon after the unit's report: quiet
    now[0] = progress.HEARTBEAT_S
    monitor.heartbeat(0.6)
    monitor.begin_unit(UNET_CALL)
    assert [(a[:3], a[3].substep, a[3].within) for a in seen] == [
        (("nulltext", 2, 6), (1, 3), None),
        (("nulltext", 2, 6), (1, 3), 0.6),
        (("nulltext", 2, 6), (2, 3), None),
    ]
    assert seen[1][3].describe() == " · UNet call 1/3 (60 %)"


def test_step_monitor_checks_cancel_before_each_unit_and_step():
    """A compiled UNet gets no block hooks: the check before the call is what stops it."""
    cancel = threading.Event()
    monitor = StepMonitor(None, progress.cancel_checker(cancel))
    monitor.begin_step("entanglement", 0, 3, 1)
    monitor.begin_unit(UNET_CALL)
    cancel.set()
    with pytest.raises(Cancelled):
        monitor.begin_unit(UNET_CALL)
    with pytest.raises(Cancelled):
        monitor.begin_step("entanglement", 1, 3, 1)
    with progress.monitoring(monitor), pytest.raises(Cancelled):
        with progress.unit(UNET_CALL, module=None, compiled=True):
            pytest.fail("the unit ran after the cancel")


def test_a_cancel_after_the_last_decode_stops_before_the_paste_back(tiny_model, monkeypatch):
    """Pasteback and the identity check after it honour the cancel too."""
    import engine.photo.pipeline as pipeline
    from engine.photo.pipeline import analyze_photos, restore_analysis
    from engine.restorers import get_restorer
    from tests.fixtures.faces import photo, sample_face, swap_face

    original = photo("grace_hopper")
    edited = swap_face(original.copy(), sample_face("grace_hopper"), photo("astronaut"),
                       sample_face("astronaut"))  # fmt: skip
    params = FAST.replace(resolution=64)
    analysis = analyze_photos(original, edited, backend="dlib", crop_size=64)
    cancel = threading.Event()
    handle = tiny_model.vae.decoder.register_forward_hook(lambda *a: cancel.set())
    composed = []
    real_compose = pipeline._compose
    monkeypatch.setattr(pipeline, "_compose", lambda *a: composed.append(1) or real_compose(*a))
    try:
        with pytest.raises(Cancelled):
            restore_analysis(analysis, get_restorer("diffusion", model=tiny_model), params,
                             faces=[0], cancel=cancel)  # fmt: skip
    finally:
        handle.remove()
    assert composed == []


def test_faces_previews_are_placed_each_in_its_own_face_only(tiny_model):
    """Two faces with a third between them: each step's previews are two patches, each
    over its own face, none over the face between them (issue 20: one rectangle over
    faces 1-5 covered unselected faces and the background)."""
    from engine.photo.pipeline import PhotoStepInfo, analyze_photos, restore_analysis
    from engine.restorers import get_restorer
    from tests.fixtures.faces import photo

    group = photo("t1")
    analysis = analyze_photos(group, group.copy(), backend="dlib", crop_size=64)
    assert len(analysis.faces) >= 3
    params = FAST.replace(resolution=64, element_words=())
    steps = []

    def on_step(stage, step, total, info=None):
        if isinstance(info, PhotoStepInfo) and info.is_step:
            steps.append(info.faces)

    restore_analysis(analysis, get_restorer("diffusion", model=tiny_model), params,
                     faces=[0, 2], on_step=on_step)  # fmt: skip
    assert len(steps) == 3 * params.steps
    h, w = group.shape[:2]
    for faces in steps:
        assert [f.face for f in faces] == [0, 2]
        cover = np.zeros((h, w), np.uint8)
        for f in faces:
            x0, y0, x1, y1 = f.box
            assert f.image.shape == (y1 - y0, x1 - x0, 4)
            cover[y0:y1, x0:x1] = np.maximum(cover[y0:y1, x0:x1], f.image[..., 3])
        for index, inside in ((0, True), (1, False), (2, True)):
            bx0, by0, bx1, by1 = (int(v) for v in analysis.faces[index].box)
            centre = cover[(by0 + by1) // 2, (bx0 + bx1) // 2]
            assert (centre > 0) == inside, (index, centre)
        gap_x = int((analysis.faces[0].box[2] + analysis.faces[1].box[0]) / 2)
        box0 = analysis.faces[0].box
        assert cover[int((box0[1] + box0[3]) / 2), gap_x] == 0  # background between faces
