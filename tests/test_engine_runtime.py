"""engine.runtime.Engine: one model, one lock (issue 21).

The app's interactive restore and a batch started beside it share one model. Each run
installs its gated attention processors and branch records on the UNet, so two runs at
once give each other theirs. With the Engine's lock the second run waits (and is told
what it waits for), and each result is byte for byte the result of the run alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import Cancelled
from engine.models.loading import load_sd_model
from engine.params import EditedIDParams
from engine.photo.contract import CropJob
from engine.runtime import Engine
from tests.helpers import face_and_element_masks, face_crop

SIZE = 64
# Two different runs: other faces, overlaps and seeds, so one's processors in the other's
# UNet give other pixels.
PARAMS_A = EditedIDParams(steps=3, dpm_range=(2, 3), final_align_steps=1, nulltext_iters=1,
                          resolution=SIZE, seed=1)  # fmt: skip
PARAMS_B = EditedIDParams(steps=3, dpm_range=(2, 3), final_align_steps=1, nulltext_iters=1,
                          resolution=SIZE, seed=7)  # fmt: skip


def jobs(original: str, edited: str, overlap: tuple[float, float]) -> list[CropJob]:
    face, element = face_and_element_masks(SIZE)
    crop_o, crop_e = face_crop(original, SIZE), face_crop(edited, SIZE)
    return [CropJob(crop_o, crop_e, face, element, overlap=overlap, require_element=False)]


JOBS_A = jobs("grace_hopper", "astronaut", (0.8, 0.2))
JOBS_B = jobs("astronaut", "grace_hopper", (0.3, 0.7))


@pytest.fixture(scope="module")
def engine(tiny_sd_dir):
    return Engine(load_sd_model(tiny_sd_dir, device="cpu"))


def run_alone(engine: Engine, jobs_: list[CropJob], params: EditedIDParams) -> np.ndarray:
    return engine.restorer("diffusion").restore(jobs_, params).crops[0]


def test_a_run_beside_another_waits_and_both_give_the_bytes_of_the_run_alone(engine):
    # The runs one after the other, from empty caches (a re-run replays kept inversions,
    # within a grey level of a first run): what the lock must give.
    engine.clear_caches()
    alone_a = run_alone(engine, JOBS_A, PARAMS_A)
    alone_b = run_alone(engine, JOBS_B, PARAMS_B)
    assert not np.array_equal(alone_a, alone_b)  # the two runs differ: a mix-up shows
    engine.clear_caches()

    b_arrived = threading.Event()  # B waits for its turn, or (without the lock) runs
    waited_for: list[str] = []
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    a_running = threading.Event()

    def hold_a_at_its_first_step(*_args) -> None:
        # A stays inside its restore until B has come: B then either waits its turn or,
        # without the lock, runs now on the model A is using.
        a_running.set()
        if not b_arrived.is_set():
            assert b_arrived.wait(120), "the second run never came"

    def arrive(*_args) -> None:
        b_arrived.set()

    def run(name, jobs_, params, **kw) -> None:
        try:
            restorer = engine.restorer("diffusion", who=name, **kw.pop("restorer_kw", {}))
            results[name] = restorer.restore(jobs_, params, **kw).crops[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    a = threading.Thread(
        target=run,
        args=("the interactive restore", JOBS_A, PARAMS_A),
        kwargs={"on_step": hold_a_at_its_first_step},
    )
    a.start()
    assert a_running.wait(120), "the first run never reached its first step"
    b = threading.Thread(
        target=run,
        args=("a batch", JOBS_B, PARAMS_B),
        kwargs={
            "on_step": arrive,
            "restorer_kw": {"on_wait": lambda who: (waited_for.append(who), b_arrived.set())},
        },
    )
    b.start()
    a.join(300)
    b.join(300)
    assert not errors, errors
    assert waited_for == ["the interactive restore"]  # B was told what it waits for
    assert np.array_equal(results["the interactive restore"], alone_a)
    assert np.array_equal(results["a batch"], alone_b)
    assert not engine.busy and engine.holder is None


def holding(engine: Engine, who: str):
    """A thread that holds the model as `who` until its `release` Event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.turn(who):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    return thread, release


def test_a_waiting_run_cancels_without_running(engine):
    cancel = threading.Event()
    told: list[str] = []
    thread, release = holding(engine, "a batch")
    try:
        restorer = engine.restorer(
            "diffusion", on_wait=lambda who: (told.append(who), cancel.set())
        )
        with pytest.raises(Cancelled):
            restorer.restore(JOBS_A, PARAMS_A, cancel=cancel)
    finally:
        release.set()
        thread.join(10)
    assert told == ["a batch"]
    assert not engine.busy


def test_the_same_thread_takes_its_turn_again(engine):
    """A job that holds the model for its whole length (the worker: load, restore, the
    memory ladder's retry) calls restorers that take the turn again: no self-deadlock."""
    with engine.turn("the interactive restore"):
        with engine.turn("its restorer", on_wait=pytest.fail) as model:
            assert model is engine.model and engine.holder == "the interactive restore"
        assert engine.busy
    assert not engine.busy and engine.holder is None


def test_a_restorer_without_a_model_never_waits(engine):
    thread, release = holding(engine, "a batch")
    try:
        crops = engine.restorer("classic", on_wait=pytest.fail).restore(JOBS_A, PARAMS_A)
    finally:
        release.set()
        thread.join(10)
    assert crops.crops[0].shape == (SIZE, SIZE, 3)


def test_a_new_model_is_used_once_set_and_loading_waits_its_turn(engine, tiny_sd_dir):
    restorer = engine.restorer("diffusion")
    assert restorer.model is engine.model and restorer._inner().model is engine.model
    other = load_sd_model(tiny_sd_dir, device="cpu")
    old = engine.model
    try:
        engine.set_model(other)
        assert restorer.model is other and restorer._inner().model is other
        # A load while a run holds the model waits; cancelled, it changes nothing.
        stop = threading.Event()
        stop.set()
        thread, release = holding(engine, "a batch")
        try:
            assert _try_set(engine, old, stop) == "cancelled"
        finally:
            release.set()
            thread.join(10)
        assert engine.model is other
    finally:
        engine.set_model(old)


def _try_set(engine: Engine, model, cancel) -> str:
    try:
        engine.set_model(model, cancel=cancel)
    except Cancelled:
        return "cancelled"
    return "set"
