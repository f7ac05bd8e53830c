"""The engine worker on its QThread, with the tiny SD model: progress, preview, cancel,
responsiveness, errors and model reuse."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QThread, QTimer

from editedid_desktop.worker import (
    AnalyzeRequest,
    ClassicRequest,
    EngineHost,
    RestoreRequest,
    merge_results,
)
from engine.io.images import read_rgb
from engine.models.spec import ModelSpec
from tests.ui_fixtures import FAST_PARAMS, tiny_model_spec, write_photo_pair


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    original, edited = write_photo_pair(folder)
    return read_rgb(original), read_rgb(edited)


@pytest.fixture(scope="module")
def analysis(photos):
    from engine.photo.pipeline import analyze_photos

    return analyze_photos(*photos, backend="dlib", crop_size=FAST_PARAMS.resolution)


@pytest.fixture
def host(qtbot, tiny_sd_dir, tmp_path):
    host = EngineHost(tiny_model_spec(tiny_sd_dir, tmp_path), {"backend": "dlib"})
    yield host
    host.shutdown()


def _request(photos, analysis, params=FAST_PARAMS):
    return RestoreRequest(photos[0], photos[1], analysis, [(params, [0])])


def test_analyze_and_classic_on_the_worker_thread(qtbot, host, photos, monkeypatch):
    import engine.runtime.engine as runtime_engine

    threads = []
    real = runtime_engine.analyze_photos

    def recording(*args, **kwargs):
        threads.append(QThread.currentThread())
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_engine, "analyze_photos", recording)
    slot_threads = []  # a plain callable as slot runs in the UI thread, never the worker's
    host.worker.analyzed.connect(lambda _: slot_threads.append(QThread.currentThread()))
    with qtbot.waitSignal(host.worker.analyzed, timeout=60000) as analyzed:
        host.analyze(AnalyzeRequest(*photos))
    analysis = analyzed.args[0]
    assert [f.index for f in analysis.faces] == [0]
    assert analysis.faces[0].original_index == 0
    assert threads == [host.thread] and isinstance(host.thread, QThread)
    assert host.thread is not QCoreApplication.instance().thread()
    assert slot_threads == [QCoreApplication.instance().thread()]
    # the analyser it used is the Engine's, kept for the next analysis (and for batches)
    made = []
    host.runtime.analyser("dlib", on_load=lambda: made.append("again"))
    assert made == []

    busy_at_result = []  # a slot hearing the result sees the job counted done
    host.worker.classic_ready.connect(lambda _: busy_at_result.append(host.busy))
    with qtbot.waitSignal(host.worker.classic_ready, timeout=30000) as ready:
        host.classic(ClassicRequest(analysis, faces=[0]))
    assert busy_at_result == [False]
    result = ready.args[0]
    assert result.mode == "classic"
    assert result.image.shape == photos[1].shape
    qtbot.waitUntil(lambda: not host.busy)


def test_restore_reports_every_step_and_stays_responsive(qtbot, host, photos, analysis):
    steps, previews, beats = [], [], []
    host.worker.progress.connect(lambda stage, step, total: steps.append((stage, step, total)))
    host.worker.preview.connect(lambda image, where: previews.append((image.shape, where)))
    heartbeat = QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(lambda: beats.append(1))
    heartbeat.start()
    busy = []
    host.busy_changed.connect(busy.append)

    with qtbot.waitSignal(host.worker.finished, timeout=120000) as done:
        host.restore(_request(photos, analysis))
    heartbeat.stop()
    result = done.args[0]
    assert result.mode == "diffusion"
    assert result.image.shape == photos[1].shape
    assert steps[1:3] == [("element masks", 0, 1), ("element masks", 1, 1)]  # D4: own stage
    diffusion = [s for s in steps if s[2] > 0 and s[0] != "element masks"]
    for stage in ("inversion", "nulltext", "entanglement"):
        got = sorted(step for name, step, total in diffusion if name == stage)
        assert got == list(range(1, FAST_PARAMS.steps + 1)), (stage, got)  # counted from 1
    assert len(previews) == len(diffusion)  # one face: one preview per step
    for shape, (face, box) in previews:  # RGBA, in that face's place in the photo
        x0, y0, x1, y1 = box
        assert face == 0 and shape == (y1 - y0, x1 - x0, 4)
    assert len(beats) >= 3, "the UI event loop stalled during the run"
    qtbot.waitUntil(lambda: busy[-1:] == [False])
    assert busy[0] is True


def test_second_run_reuses_model_and_inversion(qtbot, host, photos, analysis):
    with qtbot.waitSignal(host.worker.finished, timeout=120000):
        host.restore(_request(photos, analysis))
    model = host.worker.model
    stages = []
    host.worker.progress.connect(lambda stage, step, total: stages.append(stage))
    overlaps = {0: (0.2, 0.8)}  # entanglement-only change
    request = _request(photos, analysis)
    request.overlaps = overlaps
    with qtbot.waitSignal(host.worker.finished, timeout=120000) as done:
        host.restore(request)
    assert host.worker.model is model
    assert "inversion" not in stages and "entanglement" in stages
    assert done.args[0].faces[0].index == 0


def test_cancel_mid_run_then_run_again(qtbot, host, photos, analysis):
    def cancel_on_first_step(stage, step, total):
        if total > 0:
            host.cancel()

    host.worker.progress.connect(cancel_on_first_step)
    finished = []
    host.worker.finished.connect(finished.append)
    params = FAST_PARAMS.replace(seed=11)  # not cached by the other tests
    with qtbot.waitSignal(host.worker.cancelled, timeout=120000):
        host.restore(_request(photos, analysis, params))
    host.worker.progress.disconnect(cancel_on_first_step)
    qtbot.waitUntil(lambda: not host.busy)
    assert finished == []
    with qtbot.waitSignal(host.worker.finished, timeout=120000):
        host.restore(_request(photos, analysis, params))


def test_missing_model_fails_with_a_message(qtbot, photos, analysis, tmp_path):
    host = EngineHost(
        ModelSpec(source="CompVis/stable-diffusion-v1-4", device="cpu", models_dir=str(tmp_path)),
        {"backend": "dlib"},
    )
    try:
        with qtbot.waitSignal(host.worker.failed, timeout=30000) as failed:
            host.restore(_request(photos, analysis))
        title, message = failed.args
        assert title == "Model problem"
        assert "not on this machine" in message
        qtbot.waitUntil(lambda: not host.busy)
    finally:
        host.shutdown()


def test_an_exhausted_ladder_is_not_retried(qtbot, host, photos, analysis):
    """The restorer's ladder already ran the savers and the CPU: the worker reports its
    failure at once instead of running it all again in low-memory mode."""
    import engine.photo.pipeline
    from engine.models.fallback import LadderExhausted

    real = engine.photo.pipeline.restore_photo
    calls = []

    def exhausted(*args, **kwargs):
        calls.append(kwargs["restorer"].model.low_memory.offload_encoders)
        raise LadderExhausted("Out of memory even with every memory saver.", ())

    engine.photo.pipeline.restore_photo = exhausted
    try:
        with qtbot.waitSignal(host.worker.failed, timeout=30000) as failed:
            host.restore(_request(photos, analysis))
    finally:
        engine.photo.pipeline.restore_photo = real
    assert calls == [False]  # one attempt, the model's settings untouched
    assert "every memory saver" in failed.args[1]
    assert host.worker.model.low_memory.offload_encoders is False
    qtbot.waitUntil(lambda: not host.busy)


def test_out_of_memory_outside_the_ladder_retries_once_in_low_memory_mode(
    qtbot, host, photos, analysis
):
    """An out-of-memory error the restorer's ladder did not see (the element-mask
    prepass) gets the ladder's savers once."""
    import engine.photo.pipeline
    from engine.errors import OutOfMemory

    real = engine.photo.pipeline.restore_photo
    calls = []

    def flaky(*args, **kwargs):
        low = kwargs["restorer"].model.low_memory
        calls.append((low.attention_slicing, low.offload_encoders, low.nulltext_batch_faces))
        if len(calls) == 1:
            raise OutOfMemory("CUDA out of memory")
        return real(*args, **kwargs)

    engine.photo.pipeline.restore_photo = flaky
    statuses = []
    host.worker.status.connect(statuses.append)
    try:
        with qtbot.waitSignal(host.worker.finished, timeout=120000):
            host.restore(_request(photos, analysis))
    finally:
        engine.photo.pipeline.restore_photo = real
    # the retry takes the ladder's first rung, never attention slicing (it raises memory)
    assert calls == [(False, False, None), (False, True, 1)]
    assert any("Out of GPU memory" in s for s in statuses)
    host.worker.model.set_low_memory(type(host.worker.model.low_memory)())


def test_merge_results_composes_faces():
    from engine.photo.pipeline import PhotoResult

    edited = np.zeros((4, 4, 3), np.uint8)
    a_alpha = np.zeros((4, 4), np.float32)
    a_alpha[:2] = 1
    b_alpha = np.zeros((4, 4), np.float32)
    b_alpha[2:] = 1
    a = PhotoResult(np.full_like(edited, 100), ["a"], {"x": 1}, "diffusion", "dlib", a_alpha)
    b = PhotoResult(np.full_like(edited, 200), ["b"], {"x": 2}, "diffusion", "dlib", b_alpha)
    merged = merge_results(edited, [a, b])
    assert merged.faces == ["a", "b"]
    assert (merged.image[:2] == 100).all() and (merged.image[2:] == 200).all()
    assert merged.changed_alpha.min() == 1
    assert len(merged.sidecar["runs"]) == 2


def test_host_runs_opencv_on_the_calling_thread(qtbot, tiny_sd_dir, tmp_path):
    """OpenCV's own thread pool hung the worker inside cv2.dilate (issue 12): the host
    switches it off, so cv2 calls run on the thread that makes them."""
    import cv2

    cv2.setNumThreads(4)
    host = EngineHost(tiny_model_spec(tiny_sd_dir, tmp_path), {"backend": "dlib"})
    try:
        assert cv2.getNumThreads() == 1
    finally:
        host.shutdown()


def test_a_job_cancelled_inside_a_call_that_cannot_stop_delivers_no_result(
    qtbot, host, analysis, monkeypatch
):
    """Cancel pressed while the classic preview sits in a native call that never looks at
    the Event: when the call returns, the user gets "cancelled", not a late preview."""
    import engine.photo.pipeline

    real = engine.photo.pipeline.restore_analysis

    def cancelled_meanwhile(*args, **kwargs):
        host.cancel()  # what Esc does from the UI thread while the call runs
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.photo.pipeline, "restore_analysis", cancelled_meanwhile)
    late = []
    host.worker.classic_ready.connect(late.append)
    with qtbot.waitSignal(host.worker.cancelled, timeout=60000):
        host.classic(ClassicRequest(analysis, faces=[0]))
    qtbot.waitUntil(lambda: not host.busy)
    assert late == []


def _hold(engine, who: str):
    """A thread holding the shared Engine as `who` (a batch photo) until released."""
    import threading

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.turn(who):
            held.set()
            release.wait(120)

    thread = threading.Thread(target=hold, name="a batch photo")
    thread.start()
    assert held.wait(10)
    return thread, release


def test_a_restore_waits_for_the_batch_photo_on_the_shared_model(qtbot, host, photos, analysis):
    """The window's restore and a batch share one model (engine.runtime.Engine): while
    the batch's photo runs, the restore runs nothing on the model and says what it waits
    for; it runs once the photo is done."""
    with qtbot.waitSignal(host.worker.model_loaded, timeout=60000):
        host.load_model()
    qtbot.waitUntil(lambda: not host.busy)
    statuses, stages, finished = [], [], []
    host.worker.status.connect(statuses.append)
    host.worker.progress.connect(lambda stage, step, total: stages.append(stage))
    host.worker.finished.connect(finished.append)
    thread, release = _hold(host.runtime, "the batch")
    try:
        host.restore(_request(photos, analysis, FAST_PARAMS.replace(seed=23)))
        qtbot.waitUntil(lambda: "waiting for the model" in stages, timeout=30000)
        assert "Waiting for the batch to finish its current photo…" in statuses
        assert stages == ["waiting for the model"] and finished == [] and host.busy
    finally:
        release.set()
        thread.join(10)
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=120000)
    assert "entanglement" in stages and not host.runtime.busy


def test_a_restore_waiting_for_the_batch_cancels(qtbot, host, photos, analysis):
    stages = []
    host.worker.progress.connect(lambda stage, step, total: stages.append(stage))
    thread, release = _hold(host.runtime, "the batch")
    try:
        with qtbot.waitSignal(host.worker.cancelled, timeout=60000):
            host.restore(_request(photos, analysis))
            qtbot.waitUntil(lambda: "waiting for the model" in stages, timeout=60000)
            host.cancel()
    finally:
        release.set()
        thread.join(10)
    assert "inversion" not in stages and "entanglement" not in stages
    qtbot.waitUntil(lambda: not host.busy)


def test_an_equal_spec_keeps_the_loaded_model_and_another_loads_anew(qtbot, tiny_sd_dir, tmp_path):
    spec = tiny_model_spec(tiny_sd_dir, tmp_path)
    host = EngineHost(spec, {"backend": "dlib"})
    try:
        with qtbot.waitSignal(host.worker.model_loaded, timeout=120000):
            host.load_model()
        qtbot.waitUntil(lambda: not host.busy)
        first = host.worker.model
        host.configure(spec.model_copy(), None)  # the settings made again: an equal spec
        with qtbot.waitSignal(host.worker.model_loaded, timeout=120000):
            host.load_model()
        qtbot.waitUntil(lambda: not host.busy)
        assert host.worker.model is first
        host.configure(spec.model_copy(update={"low_vram": True}), None)
        with qtbot.waitSignal(host.worker.model_loaded, timeout=120000):
            host.load_model()
        qtbot.waitUntil(lambda: not host.busy)
        assert host.worker.model is not first and host.worker.model.low_memory.vae_tiling
    finally:
        host.shutdown()


def test_the_engine_keeps_one_face_analyser_per_choice(photos, analysis, tmp_path):
    """Engine.analyse is the pipeline's analysis with the Engine's analyser, made once per
    backend and models folder."""
    from engine.runtime import Engine

    engine = Engine()
    made = []
    first = engine.analyser("dlib", on_load=lambda: made.append("dlib"))
    assert engine.analyser(" DLIB", on_load=lambda: made.append("again")) is first
    assert made == ["dlib"]
    elsewhere = engine.analyser("dlib", tmp_path, on_load=lambda: made.append("elsewhere"))
    assert elsewhere is not first and made == ["dlib", "elsewhere"]

    found = engine.analyse(*photos, backend="dlib", crop_size=FAST_PARAMS.resolution)
    assert made == ["dlib", "elsewhere"]
    assert [f.index for f in found.faces] == [f.index for f in analysis.faces] == [0]
    np.testing.assert_array_equal(
        found.faces[0].original_crop.image, analysis.faces[0].original_crop.image
    )
    np.testing.assert_array_equal(
        found.faces[0].edited_crop.image, analysis.faces[0].edited_crop.image
    )
