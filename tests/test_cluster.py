"""Batch folders on Ray (engine.batch.cluster, engine.batch.remote): the same results and
reports as a local batch, lost workers, a killed driver, pause and cancel, and a plain
batch that never imports Ray.

One local Ray instance (2 CPUs, no dashboard) serves the module; each batch starts its
own actors on it, with half a CPU each so two fit on a 2-core machine.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.batch.remote import (
    SCRATCH_PREFIX,
    FileWorker,
    WorkerSpec,
    read_job,
    remove_stale_scratch,
    write_outcome,
)
from engine.batch.run import (
    REPORT_NAME,
    BatchJob,
    is_finished,
    plan_batch,
    run_batch,
    sidecar_path,
)
from engine.cli.batch import batch_cli
from engine.errors import InputError, ModelError
from engine.io.export import read_sidecar
from engine.params import EditedIDParams
from engine.restorers import get_restorer
from engine.runtime import Engine, ModelSpec
from tests.fixtures.batch import FakeProcessor, make_folders, save_image, studio_folders
from tests.helpers import sample_photo

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from test clusters
ROOT = Path(__file__).resolve().parents[1]
PARAMS = EditedIDParams(resolution=64, nulltext_iters=2)
# the fewest steps the method allows: 16 diffusion photos are minutes on two busy cores
QUICK = EditedIDParams(resolution=64, nulltext_iters=1, steps=2, dpm_range=(1, 2),
                       final_align_steps=1)  # fmt: skip
NAMES = [f"p{i:02}_edited.png" for i in range(8)]  # the outputs of `studio_folders`
VOLATILE = ("created", "seconds", "timings_s")  # sidecar keys that differ between runs


class SteppingProcessor(FakeProcessor):
    """FakeProcessor that travels to Ray workers (its lock is made anew there)."""

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.Lock()


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for this module's tests: started once (only they use it), shut down
    after them, so no other test module runs with Ray in its process."""
    import ray

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, namespace="editedid",
        log_to_driver=False, object_store_memory=200 * 2**20, logging_level="warning",
    )  # fmt: skip
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _executor(spec: WorkerSpec, workers: int = 2, **options):
    from engine.batch.cluster import RayExecutor

    return RayExecutor(spec, cluster="auto", workers=workers, cpus_per_worker=0.5, **options)


def _stepping(steps: int) -> WorkerSpec:
    """Classic-mode workers with a stand-in that takes `steps` steps of 50 ms per file
    (40: a file lasts 2 s, so a worker killed at its first progress report dies mid-file)."""
    return WorkerSpec("classic", processor=SteppingProcessor(steps=steps, step_delay=0.05))


def _rows(report) -> list[tuple]:
    """The report's rows without their timing, output folder and order."""
    out = str(report.plan.output_dir)
    return sorted(
        (Path(r.edited).name, r.status, r.error, r.faces, r.id_before, r.id_after, r.mode,
         r.left_alone, r.output.replace(out, "<out>"))
        for r in report.rows
    )  # fmt: skip


def _steady(data):
    """Sidecar data without its clock readings (which differ between any two runs)."""
    if isinstance(data, dict):
        return {k: _steady(v) for k, v in data.items() if k not in VOLATILE}
    if isinstance(data, list):
        return [_steady(v) for v in data]
    return data


def _sidecar(path: Path) -> dict:
    data = _steady(json.loads(sidecar_path(path).read_text()))
    data.pop("output", None)
    return data


def _assert_same_results(local_out: Path, ray_out: Path, names: list[str]) -> None:
    for name in names:
        assert (ray_out / name).read_bytes() == (local_out / name).read_bytes(), name
        assert _sidecar(ray_out / name) == _sidecar(local_out / name), name
    local_json = json.loads((local_out / "editedid-batch-report.json").read_text())
    ray_json = json.loads((ray_out / "editedid-batch-report.json").read_text())
    for key in ("counts", "failures", "mean_id_before", "mean_id_after", "mode"):
        assert ray_json[key] == local_json[key], key
    with open(ray_out / REPORT_NAME, newline="") as handle:
        ray_csv = [Path(r["edited"]).name for r in csv.DictReader(handle)]
    assert ray_csv == sorted(ray_csv)  # the plan's order, as a local batch writes it


# --- without Ray ------------------------------------------------------------------------
def test_a_batch_without_cluster_never_imports_ray(tmp_path):
    orig, edit, out = tmp_path / "o", tmp_path / "e", tmp_path / "r"
    orig.mkdir()
    edit.mkdir()
    photo = np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB").resize((256, 256)))
    save_image(photo, orig / "a01.png")
    save_image(np.clip(photo.astype(int) + 9, 0, 255).astype(np.uint8), edit / "a01.png")
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        f"rc = main(['batch', '--original-dir', {str(orig)!r}, '--edited-dir', {str(edit)!r},"
        f" '--out-dir', {str(out)!r}, '--mode', 'classic', '--face-backend', 'dlib',"
        " '--resolution', '64', '--quiet'])\n"
        "print(rc, 'ray' in sys.modules, any(m.startswith('ray.') for m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stderr[-2000:]
    assert is_finished(out / "a01.png")  # it really ran a batch


def test_cli_cluster_options_are_checked_before_any_work(tmp_path, capsys):
    orig, edit, out = make_folders(tmp_path)
    argv = ["--original-dir", str(orig), "--edited-dir", str(edit), "--out-dir", str(out),
            "--mode", "classic", "--quiet"]  # fmt: skip
    assert batch_cli([*argv, "--workers", "2"], processor=FakeProcessor()) == 2
    assert "--workers needs --cluster" in capsys.readouterr().err
    bad_options = (
        (["--cluster", "nowhere"], "use local, auto, ray://HOST:PORT or HOST:PORT"),
        (["--cluster", "local", "--workers", "0"], "1 or more"),
    )
    for bad, message in bad_options:
        with pytest.raises(SystemExit) as stop:
            batch_cli([*argv, *bad])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_a_file_restored_from_bytes_equals_the_local_result(tmp_path):
    """The worker's round trip in one process: same bytes, same sidecar (with the
    driver's paths, resolved, as locally), the same failure messages, its scratch gone."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")  # folders reached through a link
    orig, edit, out = make_folders(tmp_path / "link")
    full = edit / "A06.TIF"  # a08: decodes its header, then the pixels run out
    save_image(np.asarray(Image.open(full)), orig / "a08.png")
    Image.open(full).convert("RGB").save(edit / "whole.jpg", quality=95)
    (edit / "a08.jpg").write_bytes((edit / "whole.jpg").read_bytes()[:1500])
    (edit / "whole.jpg").unlink()
    plan = plan_batch(orig, edit, out)
    local = run_batch(BatchJob(plan, EditedIDParams(), mode="classic"), processor=FakeProcessor())
    local_rows = {Path(r.edited).name: r for r in local.rows}
    assert local.ok == 5 and local_rows["a08.jpg"].status == "failed"
    worker = FileWorker(WorkerSpec("classic", processor=SteppingProcessor()), name="w")
    remote_out = tmp_path / "remote"
    remote_out.mkdir()
    temp = Path(tempfile.gettempdir())
    scratch_before = set(temp.glob(f"{SCRATCH_PREFIX}*"))
    statuses = {}
    for index, item in enumerate(plan.items):
        item = type(item)(item.original, item.edited, remote_out / item.output.name)
        expected = local_rows[item.edited.name]
        try:
            job = read_job(index, item, EditedIDParams())
        except InputError as error:  # refused on the driver, worded as locally
            statuses[item.edited.name] = "driver"
            assert str(error) == expected.error
            continue
        outcome = worker.restore(job)
        statuses[item.edited.name] = outcome.status
        if outcome.status == "failed":
            assert outcome.error == expected.error and str(tmp_path) in outcome.error
            continue
        assert outcome.status == "ok" and outcome.worker == "w"
        write_outcome(item, job, outcome, overwrite=False)
        assert item.output.read_bytes() == (out / item.output.name).read_bytes()
        side = json.loads(sidecar_path(item.output).read_text())
        assert side["inputs"]["edited"]["path"] == str(
            tmp_path / "real" / "edit" / item.edited.name
        )
        assert side["inputs"] == read_sidecar(out / item.output.name)["inputs"]
        assert is_finished(item.output, item.original, item.edited)
    assert statuses["a08.jpg"] == "failed" and statuses["a07.jpg"] == "driver"
    assert list(statuses.values()).count("ok") == 5
    assert set(temp.glob(f"{SCRATCH_PREFIX}*")) == scratch_before


def test_scratch_of_a_killed_worker_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"{SCRATCH_PREFIX}{dead.pid}-abc"
    (gone / "edited").mkdir(parents=True)
    (gone / "edited" / "client.png").write_bytes(b"a client's photo")
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "editedid-other"
    other.mkdir()
    assert remove_stale_scratch(tmp_path) == [gone]
    assert not gone.exists() and live.exists() and other.exists()


# --- on Ray -----------------------------------------------------------------------------
@pytest.mark.slow  # 16 real photo restores: 20-30 s; the round trip above is the quick guard
def test_classic_batch_on_two_workers_matches_a_local_batch(ray_cluster, tmp_path):
    orig, edit = studio_folders(tmp_path)
    options = dict(mode="classic", backend="dlib", faces="all")
    local = run_batch(BatchJob(plan_batch(orig, edit, tmp_path / "local"), PARAMS, **options))
    events = []
    on_ray = run_batch(
        BatchJob(plan_batch(orig, edit, tmp_path / "ray"), PARAMS, **options),
        executor=_executor(WorkerSpec("classic")),
        on_progress=events.append,
    )
    assert local.ok == on_ray.ok == 8 and local.failed == on_ray.failed == 1
    assert _rows(on_ray) == _rows(local)
    assert all(r.faces == "1" for r in on_ray.rows if r.status == "ok")
    _assert_same_results(tmp_path / "local", tmp_path / "ray", NAMES)
    ready = {e.worker for e in events if e.stage == "worker ready"}
    assert len(ready) == 2  # two workers served the batch
    done = [e.file for e in events if e.stage in ("file done", "file failed")]
    assert sorted(done) == sorted(Path(r.edited).name for r in on_ray.rows)  # once each
    assert events[-1].stage == "finished" and events[-1].fraction == 1.0


@pytest.mark.slow  # 16 diffusion photos: about a minute on 2 CPUs
def test_diffusion_batch_on_two_workers_matches_a_local_batch(ray_cluster, tmp_path, tiny_sd_dir):
    import torch

    from engine.diffusion.restore import STAGES
    from engine.models.loading import load_sd_model

    orig, edit = studio_folders(tmp_path)
    options = dict(mode="diffusion", backend="dlib", faces="all")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on a worker with one CPU: the same float sums
    try:
        model = load_sd_model(tiny_sd_dir, device="cpu")
        restorer = get_restorer("diffusion", model=model)
        local = run_batch(
            BatchJob(plan_batch(orig, edit, tmp_path / "local"), QUICK, **options),
            restorer=restorer,
        )
    finally:
        torch.set_num_threads(threads)
    spec = WorkerSpec("diffusion", ModelSpec(source=str(tiny_sd_dir), device="cpu"))
    events = []
    on_ray = run_batch(
        BatchJob(plan_batch(orig, edit, tmp_path / "ray"), QUICK, **options),
        executor=_executor(spec),
        on_progress=events.append,
    )
    assert local.ok == on_ray.ok == 8 and on_ray.mode == "diffusion"
    assert _rows(on_ray) == _rows(local)
    _assert_same_results(tmp_path / "local", tmp_path / "ray", NAMES)
    stages = {e.stage for e in events if e.worker.startswith("worker")}
    # per-worker step progress: the method's stages as the workers report them (sampled
    # every PROGRESS_POLL_S, so not necessarily all; 'null-text' and 'reconstruction' were
    # never stage names, so this passed only when 'inversion' happened to be sampled)
    assert stages & set(STAGES)


def test_a_worker_killed_mid_file_is_replaced_and_every_file_finishes_once(ray_cluster, tmp_path):
    import ray

    orig, edit, out = make_folders(tmp_path)
    executor = _executor(_stepping(40))
    events, killed = [], {}

    def on_progress(p):
        events.append(p)
        if not killed and p.stage == "reconstruction" and p.worker.startswith("worker 1 "):
            killed["file"] = p.file  # worker 1 is inside this file: kill its process
            ray.kill(ray.get_actor(executor.actor_name(1), namespace="editedid"))

    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), mode="classic"),
        executor=executor,
        on_progress=on_progress,
    )
    assert killed and report.ok == 5 and report.failed == 2
    names = [Path(r.edited).name for r in report.rows]
    assert len(names) == len(set(names)) == 7  # every file exactly one row
    retried = [e for e in events if e.stage == "retry"]
    assert [e.file for e in retried] == [killed["file"]]
    assert any(e.stage == "worker lost" and e.worker.startswith("worker 1 ") for e in events)
    finished = [e.file for e in events if e.stage == "file done"]
    assert sorted(finished) == sorted(set(finished)) and killed["file"] in finished
    row = next(r for r in report.rows if Path(r.edited).name == killed["file"])
    assert row.status == "ok" and is_finished(Path(row.output), row.original, row.edited)
    assert not [p for p in out.iterdir() if ".part" in p.name]


@pytest.mark.slow  # three worker starts on two busy cores: ~10 s
def test_a_file_whose_workers_keep_dying_fails_with_the_reason(ray_cluster, tmp_path):
    import ray

    orig, edit, out = make_folders(tmp_path)
    executor = _executor(_stepping(40), workers=1, max_attempts=2)
    victim = {}

    def on_progress(p):  # kill whoever restores a01.png, every time
        if p.file == "a01.png" and p.stage == "reconstruction" and p.worker not in victim:
            victim[p.worker] = True
            number = int(p.worker.split()[1])
            ray.kill(ray.get_actor(executor.actor_name(number), namespace="editedid"))

    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams(), mode="classic"),
        executor=executor,
        on_progress=on_progress,
    )
    row = next(r for r in report.rows if Path(r.edited).name == "a01.png")
    assert row.status == "failed" and "lost 2 times" in row.error and "not tried again" in row.error
    assert len(victim) == 2 and report.ok == 4  # the other files went on


def test_cancel_on_ray_keeps_finished_files_and_writes_no_half_file(ray_cluster, tmp_path):
    orig, edit, out = make_folders(tmp_path)
    executor = _executor(_stepping(40))
    cancel, pause = threading.Event(), threading.Event()
    events, held = [], []

    def on_progress(p):
        events.append(p)
        if p.stage == "reconstruction" and p.step >= 2:
            pause.set()  # the workers hold at their next step ...
        if p.stage == "paused" and p.worker:  # ... one reports it holds inside its file
            held.append(p.worker)
            cancel.set()  # ... and a cancel while paused ends the batch

    # Were the workers deaf to the pause, the batch would wait forever with files left:
    # this ends it then, and `held` stays empty.
    guard = threading.Timer(60, cancel.set)
    guard.start()
    try:
        report = run_batch(
            BatchJob(plan_batch(orig, edit, out), EditedIDParams(), mode="classic"),
            executor=executor,
            on_progress=on_progress,
            pause=pause,
            cancel=cancel,
        )
    finally:
        guard.cancel()
    assert held and report.cancelled and events[-1].stage == "cancelled"
    assert report.count("cancelled") >= 1 and len(report.rows) < 7
    for row in report.rows:
        assert is_finished(Path(row.output)) == (row.status == "ok"), row
    assert not [p for p in out.iterdir() if ".part" in p.name]
    rerun = run_batch(
        BatchJob(plan_batch(orig, edit, out), EditedIDParams()), processor=FakeProcessor()
    )
    assert rerun.ok + rerun.skipped == 5  # resumes like a local batch


def test_a_model_no_worker_can_load_stops_with_a_model_error(ray_cluster, tmp_path):
    orig, edit, out = make_folders(tmp_path)
    spec = WorkerSpec("diffusion", ModelSpec(source=str(tmp_path / "none")))
    with pytest.raises(ModelError, match="No worker could load the model"):
        run_batch(
            BatchJob(plan_batch(orig, edit, out), EditedIDParams()),
            restorer=get_restorer("diffusion"),
            executor=_executor(spec, workers=1),
        )
    assert not [p for p in out.iterdir() if p.suffix in (".png", ".jpg", ".TIF")]


def test_check_cluster_lists_machines_and_versions(ray_cluster):
    from engine.batch.cluster import check_cluster, versions

    check = check_cluster("auto")
    assert len(check.nodes) == 1 and check.cpus == 2 and check.gpus == 0
    node = check.nodes[0]
    assert node.alive and node.versions["python"] == versions()["python"]
    assert node.versions["engine"] == versions()["engine"] and not check.mismatches()
    assert "1 machine, 0 GPUs, 2 CPUs" in check.summary() and check.workers == 1


@pytest.mark.slow  # a second Ray driver process, killed and rerun: ~35 s
def test_a_killed_driver_resumes_and_leaves_no_worker_behind(ray_cluster, tmp_path):
    import ray

    orig, edit = studio_folders(tmp_path, pairs=10)
    out = tmp_path / "out"
    cli = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", cli, "batch", "--original-dir", str(orig),
            "--edited-dir", str(edit), "--out-dir", str(out), "--mode", "classic",
            "--face-backend", "dlib", "--resolution", "64", "--faces", "all",
            "--cluster", ray_cluster, "--workers", "1", "--quiet"]  # fmt: skip
    driver = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(is_finished(p) for p in out.glob("p*_edited.png"))):
            assert driver.poll() is None, driver.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no file finished"
            time.sleep(0.05)
    finally:
        driver.send_signal(signal.SIGKILL)  # kill -9, mid-batch
        driver.wait()
    finished = {p: p.read_bytes() for p in out.glob("p*_edited.png") if is_finished(p)}
    # killed mid-batch: something finished, and something did not (its moment is timing)
    assert finished, "no file finished before the kill"
    assert len(finished) != 10, "the batch ended before the kill: nothing to resume"
    deadline = time.monotonic() + 60  # Ray ends the dead driver's actors: its CPU is free
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.05)
    report = run_batch(
        BatchJob(plan_batch(orig, edit, out), PARAMS, mode="classic", backend="dlib", faces="all"),
        executor=_executor(WorkerSpec("classic")),
    )
    assert report.skipped == len(finished) and report.ok == 10 - len(finished)
    assert all(p.read_bytes() == data for p, data in finished.items())
    assert not [p for p in out.iterdir() if ".part" in p.name or p.name.startswith(".editedid")]


# --- the app ------------------------------------------------------------------------------
def test_batch_dialog_runs_on_the_cluster_with_per_worker_progress(ray_cluster, qtbot, tmp_path):
    from editedid_desktop.batch_dialog import BatchDialog

    orig, edit, out = make_folders(tmp_path)
    dialog = BatchDialog(EditedIDParams, Engine(), processor=SteppingProcessor(steps=3))
    qtbot.addWidget(dialog)
    panel = dialog.cluster_panel
    assert not panel.use_cluster() and panel.isHidden()  # this computer, by default
    assert panel.executor("classic", get_restorer("classic")) is None
    dialog.set_folders(orig, edit, out)
    dialog.set_mode("classic")
    panel.set_cluster("auto", workers=2)
    assert not panel.isHidden() and panel.workers() == 2
    with qtbot.waitSignal(panel.checked, timeout=60000):
        panel.check_cluster_button.click()
    assert "1 machine, 0 GPUs, 2 CPUs" in panel.cluster_status.text()
    panel.cpus_per_worker = 0.5  # two workers on two busy cores
    with qtbot.waitSignal(dialog.batch_finished, timeout=120000) as blocker:
        assert dialog.start()
        assert not panel.address_edit.isEnabled()  # no change of cluster mid-batch
    report = blocker.args[0]
    assert report.ok == 5 and report.failed == 2
    lines = panel.worker_lines()
    assert lines and all(line.startswith("worker ") for line in lines)  # those that started
    assert sum(int(line.rsplit("|", 1)[1]) for line in lines) == 5  # restored by the workers
    assert panel.address_edit.isEnabled()
    panel.set_cluster("not an address")
    with pytest.raises(InputError, match="HOST:PORT"):
        panel.executor("classic", get_restorer("classic"))


def test_a_worker_with_another_engine_or_model_is_sent_away():
    from engine.batch.cluster import mismatch

    first = {"engine": "0.1.0", "mode": "diffusion", "fingerprint": "abc"}
    assert mismatch(None, first) == "" and mismatch(first, dict(first)) == ""
    assert "fingerprint 'xyz' differs from 'abc'" in mismatch(
        first, {**first, "fingerprint": "xyz"}
    )
    assert "engine '0.2.0'" in mismatch(first, {**first, "engine": "0.2.0"})


def test_the_cluster_module_turns_off_rays_usage_report():
    code = (
        "import os\n"
        "os.environ.pop('RAY_USAGE_STATS_ENABLED', None)\n"
        "import engine.batch.cluster\n"
        "print(os.environ.get('RAY_USAGE_STATS_ENABLED'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_USAGE_STATS_ENABLED"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.stdout.split()[-1:] == ["0"], done.stderr[-2000:]
