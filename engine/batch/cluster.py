"""Batch folders on a Ray cluster: every GPU of the studio restores whole photos.

    executor = RayExecutor(WorkerSpec("diffusion", model_spec_from_args(args)),
                           cluster="local", workers=2)
    report = run_batch(BatchJob(plan, params, mode="diffusion"), executor=executor)

Imported only when a batch asks for a cluster (`editedid-cli batch --cluster ...`, the
batch dialog's "Ray cluster"): a plain batch never imports Ray.

A pool of Ray actors (`RayFileWorker`), one per GPU (`num_gpus=1`; `num_cpus` each on a
CPU-only cluster), each building its restorer and loading its model once. Files are
handed out one at a time as workers become free, so a slow photo never holds up the
others. This process (the driver) reads the inputs and sends their bytes, and writes
every result, sidecar, row and report itself (`engine.batch.remote`, `engine.batch.run`):
no shared file system, and resume, skip-finished, the output folder's lock, the reports,
pause and cancel are the local batch's own code.

Faults: a worker (process or node) that dies mid-file is replaced and its file handed to
the next free worker, at most `max_attempts` times, then reported failed with the reason.
A killed driver takes its actors with it (Ray ends the actors of a dead owner; a private
`--cluster local` Ray ends with its driver); the rerun resumes like a local one. A worker
whose engine version or model differs from the first worker's is sent away, so one batch
is never restored by two different models. At the end, or on any error, every actor of
the batch is killed: nothing is left running on the workers. The actors are named
`editedid-worker-<batch>-<n>` in the `editedid` namespace, so the Ray dashboard shows who
they are.
"""

from __future__ import annotations

import collections
import importlib.metadata
import os
import platform
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

# No telemetry (README, Privacy): Ray reports usage statistics to its makers unless told
# not to, and reads this when a Ray instance starts. An explicit choice is kept.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError  # noqa: E402

from engine import __version__
from engine.batch.cluster_info import (
    ClusterCheck,
    ClusterError,
    NodeInfo,
    cluster_address_text,
    mismatch,
    visible_gpus,
)
from engine.batch.cluster_records import (
    FileEntry,
    WorkerResult,
    WorkerSlot,
    first_line,
    lost_reason,
)
from engine.batch.local_ray import private_ray_environment
from engine.batch.plan import is_finished
from engine.batch.reaper import start_watcher, stop_watcher
from engine.batch.remote import (
    FileOutcome,
    FileWorker,
    RemoteFailure,
    WorkerSpec,
    read_job,
    write_outcome,
)
from engine.batch.report import BatchRow, failed_row, fingerprints, ok_row, skipped_row
from engine.batch.runner import BatchExecutor, BatchRun
from engine.errors import Cancelled, InputError, ModelError
from engine.io.export import OutputFolderError, check_output_folder, estimate_output_bytes

NAMESPACE = "editedid"
MAX_ATTEMPTS = 3  # a file whose worker dies this many times is reported failed
START_TIMEOUT_S = 600.0  # no worker ready this long (no free GPU, model loading): stop
CANCEL_GRACE_S = 60.0  # after a cancel, workers get this long to stop at their next step
POLL_S = 0.1  # the driver's wait for any result, start or progress
PROGRESS_POLL_S = 0.5  # how often busy workers are asked where they are
PROBE_TIMEOUT_S = 30.0


# --- connecting ------------------------------------------------------------------------
def connect(cluster: str, *, workers: int | None = None, cpus_per_worker: float = 1.0) -> bool:
    """Connect this process to Ray; True when it started (and so owns) the Ray instance.

    cluster: "local" (a private Ray on this computer, ended with the batch), "auto" (the
    Ray started here with `ray start`), "ray://HOST:PORT" (Ray Client, from any machine)
    or "HOST:PORT" (the head's address, from a machine of the cluster). A process that is
    connected already stays on its connection.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = dict(
        namespace=NAMESPACE, log_to_driver=False, logging_level="warning"
    )
    try:
        if cluster == "local":
            cpus = max(os.cpu_count() or 1, int((workers or 1) * cpus_per_worker + 0.999))
            # address='local': a new private Ray even where `ray start` runs one already
            with private_ray_environment():
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)
            # Killed -9, this process leaves Ray's agents running: its watcher ends them.
            start_watcher(end_descendants=True)
        else:
            ray.init(address=cluster, **options)
    except (ConnectionError, RuntimeError, ValueError, RayError) as error:
        raise ClusterError(
            f"Cannot connect to {cluster_address_text(cluster)}: {error}. Start the head "
            "with `ray start --head` and give its address (ray://HOST:10001 from another "
            "machine, or auto on a machine of the cluster). A head that asks for a token "
            "(Ray 2.59 and later) is reached with RAY_AUTH_MODE=token set here and its "
            "token (`ray get-auth-token` on the head) in ~/.ray/auth_token."
        ) from error
    return True


def disconnect(owned: bool) -> None:
    """Leave Ray; a private Ray this process started (owned) ends with its watcher."""
    if owned:
        ray.shutdown()
        stop_watcher(end_descendants=True)


def default_workers(cluster: str) -> int:
    """One worker per GPU (of this computer, or of the cluster once connected), else 1."""
    if cluster == "local" and not ray.is_initialized():
        return max(1, visible_gpus())
    return max(1, int(ray.cluster_resources().get("GPU", 0)))


# --- checking a cluster (the batch dialog's Check button) -------------------------------
def versions() -> dict[str, str]:
    """What must match between the machines of a batch."""
    found = {"python": platform.python_version(), "ray": ray.__version__, "engine": __version__}
    try:  # the installed version, without importing torch (seconds) for a probe
        found["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        found["torch"] = "missing"
    return found


@ray.remote(num_cpus=0)
def _probe() -> dict[str, str]:
    return {**versions(), "host": socket.gethostname()}


def check_cluster(cluster: str) -> ClusterCheck:
    """Connect, list the machines with their CPUs and GPUs, and ask each for its versions
    (a tiny task pinned to each machine). Disconnects again when it connected."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    owned = connect(cluster)
    try:
        nodes, probes = [], []
        for node in ray.nodes():
            resources = node.get("Resources", {}) or {}
            info = NodeInfo(
                host=str(node.get("NodeManagerHostname", "?")),
                address=str(node.get("NodeManagerAddress", "?")),
                alive=bool(node.get("Alive")),
                cpus=float(resources.get("CPU", 0)),
                gpus=float(resources.get("GPU", 0)),
            )
            nodes.append(info)
            if info.alive:
                strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                probes.append((info, _probe.options(scheduling_strategy=strategy).remote()))
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        for info, ref in probes:
            try:
                found = ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                info.host = found.pop("host", info.host)
                info.versions = found
            except GetTimeoutError:
                info.problem = f"did not answer within {PROBE_TIMEOUT_S:.0f} s"
            except RayError as error:
                info.problem = f"cannot run EditedID ({first_line(error)})"
        return ClusterCheck(cluster, nodes, versions())
    finally:
        disconnect(owned)


# --- the workers -------------------------------------------------------------------------
@ray.remote(max_concurrency=2)  # restore runs in one thread; control and progress in another
class RayFileWorker(FileWorker):
    """A FileWorker as a Ray actor. Its start never raises: a restorer or model that
    cannot be built is reported by `info()`, so the driver gets a clean message."""

    def __init__(self, spec: WorkerSpec, name: str) -> None:
        self.init_error, self.init_kind = "", ""
        try:
            super().__init__(spec, name=name, gpu=bool(ray.get_gpu_ids()))
        except Exception as error:  # noqa: BLE001 - reported by info()
            self.name = name
            self.init_error = str(error) or type(error).__name__
            self.init_kind = "model" if isinstance(error, ModelError) else "other"

    def info(self) -> dict[str, Any]:
        if self.init_error:
            found = {"name": self.name, "host": socket.gethostname(), "engine": __version__}
            return {**found, "error": self.init_error, "error_kind": self.init_kind}
        return {**super().info(), "ray": ray.__version__, "gpus": list(ray.get_gpu_ids())}


class RayExecutor(BatchExecutor):
    """Restores a batch on a pool of Ray actors (see the module docstring).

    spec: how each worker builds its restorer (`WorkerSpec`: the mode and its ModelSpec).
    cluster: "local", "auto", "ray://HOST:PORT" or "HOST:PORT" (`connect`).
    workers: actors to start (default: one per GPU, else 1).
    cpus_per_worker: CPUs each actor reserves on a cluster without GPUs (fractions let
        several share a core; tests and small machines).
    max_attempts: times a file is sent before it is failed for lost workers.
    on_workers: called with the workers' info (dicts) whenever a worker starts or is lost.
    """

    name = "ray"
    runs_here = False

    def __init__(
        self,
        spec: WorkerSpec,
        cluster: str = "local",
        workers: int | None = None,
        *,
        cpus_per_worker: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
        start_timeout_s: float = START_TIMEOUT_S,
        on_workers: Callable[[list[dict]], None] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise InputError(f"A cluster batch needs at least one worker, not {workers}.")
        if max_attempts < 1:
            raise InputError("max_attempts must be at least 1.")
        self.spec, self.cluster, self.workers = spec, cluster, workers
        self.cpus_per_worker = cpus_per_worker
        self.max_attempts, self.start_timeout_s = max_attempts, start_timeout_s
        self.on_workers = on_workers
        self.batch_id = uuid.uuid4().hex[:8]
        self.worker_info: list[dict] = []

    def actor_name(self, number: int) -> str:
        return f"editedid-worker-{self.batch_id}-{number}"

    def run_items(self, run: BatchRun, overwrite: bool, old_rows: dict) -> None:
        if not run.plan.items:
            return
        owned = connect(self.cluster, workers=self.workers, cpus_per_worker=self.cpus_per_worker)
        dispatch = _Dispatch(self, run, overwrite, old_rows)
        try:
            dispatch.go()
        finally:
            dispatch.kill_all()
            disconnect(owned)

    def new_actor(self, number: int) -> Any:
        gpus = ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": self.cpus_per_worker}
        name = self.actor_name(number)
        return RayFileWorker.options(
            name=name, namespace=NAMESPACE, max_restarts=0, **resources
        ).remote(self.spec, name)


class _Dispatch:
    """One batch's run on the pool: hand out, collect, retry, pause, cancel."""

    def __init__(self, executor: RayExecutor, run: BatchRun, overwrite: bool, old_rows: dict):
        self.ex, self.run, self.overwrite, self.old_rows = executor, run, overwrite, old_rows
        base = run.position
        self.queue = collections.deque(
            FileEntry(base + i, item) for i, item in enumerate(run.plan.items)
        )
        run.position = base + len(run.plan.items)
        self.slots: list[WorkerSlot] = []
        self.numbers = 0
        self.replacements = executor.max_attempts * (executor.workers or 1)
        self.start_problems: list[tuple[str, str]] = []  # (kind, message)
        self.paused = False
        self.stopped = False
        self.started = time.monotonic()

    # -- the loop -----------------------------------------------------------------------
    def go(self) -> None:
        workers = self.ex.workers or default_workers(self.ex.cluster)
        self.replacements = self.ex.max_attempts * workers
        for _ in range(workers):
            self.start_worker()
        while (self.queue and not self.stopped) or self.busy():
            if self.run.is_cancelled():
                self.cancel()
            self.follow_pause()
            if not self.paused and not self.stopped:
                self.hand_out()
            if self.queue and not self.stopped and not self.slots:
                self.fail_no_workers()
            self.wait()
        self.ex.worker_info = [s.info for s in self.slots if s.info]
        self.run.focus(self.run.position - 1, self.run.plan.items[-1])
        self.run.worker = ""
        self.sort_rows()

    def busy(self) -> list[WorkerSlot]:
        return [s for s in self.slots if s.entry is not None]

    def start_worker(self) -> None:
        self.numbers += 1
        actor = self.ex.new_actor(self.numbers)
        slot = WorkerSlot(actor, self.ex.actor_name(self.numbers), f"worker {self.numbers}")
        slot.ready = actor.info.remote()
        slot.asked = time.monotonic()
        self.slots.append(slot)

    def hand_out(self) -> None:
        for slot in self.slots:
            if slot.ready is not None or slot.entry is not None:
                continue
            while self.queue and not self.stopped:
                entry = self.queue.popleft()
                if self.send(slot, entry):
                    break

    def send(self, slot: WorkerSlot, entry: FileEntry) -> bool:
        """Hand `entry` to `slot`; False when it got its row here (skipped, failed)."""
        run, item = self.run, entry.item
        run.focus(entry.position, item)
        run.worker = ""  # what fails here failed on this computer, not on the worker
        if entry.job is None:
            if is_finished(item.output, item.original, item.edited):  # done meanwhile
                run.add_row(skipped_row(item, self.old_rows, run.report.mode), "skipped")
                return False
            try:
                check_output_folder(run.plan.output_dir, estimate_output_bytes(item.edited))
                run.make_way(item, self.overwrite)  # entry.stale stays False: gone already
                entry.before = fingerprints(item)
                entry.job = read_job(
                    entry.position, item, run.params, backend=run.backend, faces=run.faces,
                    strip_location=run.strip_location,
                )  # fmt: skip
            except OutputFolderError as error:
                run.stop_for(item, error, 0.0)
                self.stop()
                return False
            except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
                run.count_work(0.0)
                run.add_row(failed_row(item, error, run.report.mode, 0.0), "file failed")
                return False
        entry.attempts += 1
        slot.entry, slot.task = entry, slot.actor.restore.remote(entry.job)
        run.worker = slot.label
        run.emit("file", message=f"{item.original.name} + {item.edited.name}")
        return True

    def wait(self) -> None:
        refs: dict[Any, tuple[str, WorkerSlot]] = {}
        for slot in self.slots:
            if slot.ready is not None:
                refs[slot.ready] = ("ready", slot)
            if slot.task is not None:
                refs[slot.task] = ("task", slot)
            if slot.progress is not None:
                refs[slot.progress] = ("progress", slot)
        self.ask_progress()
        if not refs:
            time.sleep(POLL_S)
            return
        done, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
        if done:  # and whatever else is ready by now
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            kind, slot = refs[ref]
            if slot not in self.slots:
                continue
            {"ready": self.on_ready, "task": self.on_task, "progress": self.on_progress}[kind](
                slot, ref
            )
        if not done:
            self.check_start_timeout()

    def ask_progress(self) -> None:
        now = time.monotonic()
        for slot in self.busy():
            if slot.progress is None and now - slot.asked >= PROGRESS_POLL_S:
                slot.progress, slot.asked = slot.actor.progress.remote(), now

    # -- events ---------------------------------------------------------------------------
    def on_ready(self, slot: WorkerSlot, ref) -> None:
        slot.ready = None
        try:
            info = ray.get(ref)
        except RayError as error:
            self.lose(slot, lost_reason(error), start=True)
            return
        if info.get("error"):
            self.start_problems.append((info.get("error_kind", "other"), info["error"]))
            self.drop(slot, f"could not start: {info['error']}")
            return
        why = mismatch(next((s.info for s in self.slots if s.info), None), info)
        if why:
            self.drop(slot, f"sent away: {why} (every worker must run the same)")
            return
        slot.info = info
        slot.label = f"{slot.label} ({info.get('host', '?')}, {info.get('device', '?')})"
        self.run.parallel = sum(1 for s in self.slots if s.info)
        model = info.get("model") or info.get("mode", "")
        self.note("worker ready", slot, f"{slot.label} ready ({model})")

    def on_task(self, slot: WorkerSlot, ref) -> None:
        entry, slot.entry, slot.task = slot.entry, None, None
        slot.progress = None
        try:
            outcome: FileOutcome = ray.get(ref)
        except RayActorError as error:
            self.lose(slot, lost_reason(error))
            self.retry(entry, lost_reason(error))
            return
        except RayTaskError as error:  # a bug on the worker, not the file's fault
            outcome = FileOutcome("failed", error=first_line(error), worker=slot.label)
        except RayError as error:  # worker process or its node lost, object lost, ...
            self.lose(slot, lost_reason(error))
            self.retry(entry, lost_reason(error))
            return
        self.finish(slot, entry, outcome)

    def on_progress(self, slot: WorkerSlot, ref) -> None:
        slot.progress = None
        try:
            index, stage, step, steps = ray.get(ref)
        except RayError:
            return  # the task's own result says what happened to the worker
        entry = slot.entry
        if entry is None or index != entry.position or stage in ("idle", "file"):
            return
        self.run.focus(entry.position, entry.item)
        self.run.worker = slot.label
        self.run.emit(stage, step, steps)

    def finish(self, slot: WorkerSlot, entry: FileEntry, outcome: FileOutcome) -> None:
        run, item = self.run, entry.item
        run.focus(entry.position, item)
        run.worker = slot.label
        mode = run.report.mode
        if self.stopped and not run.is_cancelled():
            return  # the output folder is full or gone: not started, as locally
        if outcome.status == "cancelled":
            row = BatchRow(
                str(item.original), str(item.edited), str(item.output), "cancelled",
                error="cancelled by the user", mode=mode,
            )  # fmt: skip
            run.report.rows.append(row)
            return
        run.count_work(outcome.seconds)
        if outcome.status != "ok":
            error = RemoteFailure(outcome.error or "failed on the worker")
            run.add_row(failed_row(item, error, mode, outcome.seconds), "file failed")
            return
        try:
            write_outcome(item, entry.job, outcome, entry.stale)
            row = ok_row(item, WorkerResult(outcome), mode, entry.before)
        except OutputFolderError as error:
            run.stop_for(item, error, outcome.seconds)
            self.stop()
            return
        except Exception as error:  # noqa: BLE001 - one bad file never stops a batch
            run.add_row(failed_row(item, error, mode, outcome.seconds), "file failed")
            return
        entry.job = None  # nothing of the image is kept past its file
        row.seconds = f"{outcome.seconds:.2f}"
        run.add_row(row, "file done")

    # -- faults ---------------------------------------------------------------------------
    def retry(self, entry: FileEntry, reason: str) -> None:
        entry.lost.append(reason)
        run = self.run
        run.focus(entry.position, entry.item)
        if self.stopped:
            return
        if entry.attempts >= self.ex.max_attempts:
            error = RemoteFailure(
                f"{entry.item.edited.name}: the worker restoring it was lost "
                f"{entry.attempts} times ({'; '.join(entry.lost)}); not tried again."
            )
            run.add_row(failed_row(entry.item, error, run.report.mode, 0.0), "file failed")
            entry.job = None
            return
        self.queue.appendleft(entry)  # next free worker (a new one replaces the lost one)
        run.emit("retry", message=f"{entry.item.edited.name}: worker lost ({reason}); retrying")

    def lose(self, slot: WorkerSlot, reason: str, start: bool = False) -> None:
        self.drop(slot, ("could not start: " if start else "lost: ") + reason)
        if start:
            self.start_problems.append(("other", reason))
        if self.replacements > 0 and not self.stopped and self.queue_or_busy():
            self.replacements -= 1
            self.start_worker()

    def queue_or_busy(self) -> bool:
        return bool(self.queue) or bool(self.busy())

    def drop(self, slot: WorkerSlot, why: str) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
        _kill(slot.actor)
        self.run.parallel = max(1, sum(1 for s in self.slots if s.info))
        self.note("worker lost", slot, f"{slot.label} {why}")

    def note(self, stage: str, slot: WorkerSlot, message: str) -> None:
        self.ex.worker_info = [s.info for s in self.slots if s.info]
        if self.ex.on_workers is not None:
            self.ex.on_workers(list(self.ex.worker_info))
        self.run.worker = slot.label
        self.run.emit(stage, message=message)

    def fail_no_workers(self) -> None:
        """Every worker is gone and none can replace it: stop, saying why."""
        problems = self.start_problems
        if problems and all(kind == "model" for kind, _ in problems):
            raise ModelError(f"No worker could load the model: {problems[-1][1]}")
        why = problems[-1][1] if problems else "every worker was lost"
        raise ClusterError(f"No Ray worker is left to restore the batch ({why}).")

    def check_start_timeout(self) -> None:
        if any(s.info for s in self.slots):
            return
        waited = time.monotonic() - self.started
        if self.slots and waited > self.ex.start_timeout_s:
            resources = ray.available_resources()
            raise ClusterError(
                f"No Ray worker started within {waited:.0f} s (the cluster has "
                f"{resources.get('GPU', 0):.0f} free GPUs and {resources.get('CPU', 0):.0f} "
                "free CPUs; a worker needs a GPU, or CPUs where there is none)."
            )

    # -- pause, cancel, stop ------------------------------------------------------------
    def follow_pause(self) -> None:
        pause = self.run.pause is not None and self.run.pause.is_set()
        if pause == self.paused:
            return
        self.paused = pause
        self.broadcast(pause=pause, cancel=False)
        if pause:
            self.run.worker = ""
            self.run.emit("paused", message="Paused")

    def broadcast(self, *, pause: bool, cancel: bool) -> None:
        for slot in self.slots:
            try:
                slot.actor.control.remote(pause, cancel)
            except RayError:
                continue

    def cancel(self) -> None:
        """Stop every worker at its next step, keep what finished, then Cancelled."""
        self.queue.clear()
        self.broadcast(pause=False, cancel=True)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while self.busy() and time.monotonic() < deadline:
            self.wait()
        for slot in self.busy():  # stuck in a step: end it
            entry = slot.entry
            self.drop(slot, "did not stop in time")
            self.finish(slot, entry, FileOutcome("cancelled"))
        self.sort_rows()
        self.run.file, self.run.worker = "", ""
        raise Cancelled("Batch cancelled.")

    def stop(self) -> None:
        self.stopped = True
        self.queue.clear()
        self.broadcast(pause=False, cancel=True)

    def kill_all(self) -> None:
        for slot in self.slots:
            _kill(slot.actor)
        self.slots.clear()

    def sort_rows(self) -> None:
        """Rows in the plan's order, as a local batch writes them (the final report)."""
        order = {str(i.output): n for n, i in enumerate(self.run.plan.skipped_existing)}
        offset = len(order)
        order.update({str(i.output): offset + n for n, i in enumerate(self.run.plan.items)})
        self.run.report.rows.sort(key=lambda r: order.get(r.output, len(order)))


def _kill(actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except (RayError, ValueError):
        pass
