"""Batch on Ray vs in this process: files per second, and what Ray costs per file.

    OMP_NUM_THREADS=1 python bench/cluster_scaling.py                 # 16 pairs, classic
    OMP_NUM_THREADS=1 python bench/cluster_scaling.py --pairs 24 --workers 1 2 4
    OMP_NUM_THREADS=1 python bench/cluster_scaling.py --mode diffusion  # tiny SD model

Writes N photo pairs (two public-domain portraits at 256x256, each "edit" a different
colour shift) into a temp folder and restores them, in one run, with the local executor
and with Ray (`engine.batch.cluster.RayExecutor` on a private local Ray, one CPU per
worker) for each worker count, every run into a fresh output folder. Prints a Markdown
table: seconds, files/s over the whole run (worker start and model load included) and in
steady state (from the first worker ready to the end), and the speed-up over local.

Ray's own cost per file is measured with a null processor (it copies the edited file,
writes the sidecar, restores nothing): (Ray with 1 worker, steady) - (local), per file:
bytes to the worker and back, the worker's scratch folder, the driver's write.

Goal (issue 14): Ray with 1 worker within 10 % of local; 2 workers >= 1.7x one where 2
cores (GPUs) are free. A warm-up batch of one pair runs first in each place (dlib and
the restorer's first-use costs are not the batch's).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.batch.cluster import RayExecutor  # noqa: E402
from engine.batch.remote import WorkerSpec  # noqa: E402
from engine.batch.run import BatchJob, plan_batch, run_batch  # noqa: E402
from engine.io.export import sidecar_inputs, write_with_sidecar  # noqa: E402
from engine.io.files import atomic_write_bytes  # noqa: E402
from engine.models.spec import ModelSpec  # noqa: E402
from engine.params import EditedIDParams  # noqa: E402
from engine.restorers import get_restorer  # noqa: E402
from tests.helpers import sample_photo  # noqa: E402

SIZE = 256
CLASSIC = EditedIDParams(resolution=64)
DIFFUSION = EditedIDParams(
    resolution=64, nulltext_iters=1, steps=2, dpm_range=(1, 2), final_align_steps=1
)


class NullProcessor:
    """Restores nothing: the edited file as the result, with a sidecar (Ray's cost)."""

    def __call__(self, original, edited, out, params, *, restorer, **_options):
        data = Path(edited).read_bytes()
        hashes = {
            "original": hashlib.sha256(Path(original).read_bytes()).hexdigest(),
            "edited": hashlib.sha256(data).hexdigest(),
        }
        inputs = {"original": original, "edited": edited}
        sidecar = {"mode": restorer.name, "inputs": sidecar_inputs(inputs, hashes)}
        write_with_sidecar(out, lambda: atomic_write_bytes(out, data), sidecar,
                           protected_paths=inputs)  # fmt: skip
        return types.SimpleNamespace(faces=[], mode=restorer.name, warnings=[])


def make_pairs(root: Path, pairs: int) -> tuple[Path, Path]:
    orig, edit = root / "orig", root / "edit"
    orig.mkdir(parents=True)
    edit.mkdir()
    photos = [
        np.asarray(Image.open(sample_photo(name)).convert("RGB").resize((SIZE, SIZE)))
        for name in ("grace_hopper", "astronaut")
    ]
    for i in range(pairs):
        photo = photos[i % 2]
        shift = np.array([(7 * i) % 31 - 15, (5 * i) % 23 - 11, (3 * i) % 17 - 8])
        edited = np.clip(photo.astype(int) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(orig / f"p{i:03}.png")
        Image.fromarray(edited).save(edit / f"p{i:03}.png")
    return orig, edit


class Clock:
    """on_progress: the time the first worker was ready."""

    def __init__(self) -> None:
        self.first_ready: float | None = None

    def __call__(self, p) -> None:
        if p.stage == "worker ready" and self.first_ready is None:
            self.first_ready = time.monotonic()


def timed(orig, edit, out, params, restorer, executor=None, processor=None):
    clock = Clock()
    start = time.monotonic()
    report = run_batch(
        BatchJob(
            plan_batch(orig, edit, out), params, mode=restorer.name, backend="dlib", faces="all"
        ),
        restorer=restorer,
        executor=executor,
        processor=processor,
        on_progress=clock,
    )
    end = time.monotonic()
    if report.ok != len(report.plan.items):
        raise SystemExit(f"{out}: {report.ok} of {len(report.plan.items)} restored: {report.rows}")
    steady_from = clock.first_ready or start
    return end - start, end - steady_from, report.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mode", choices=("classic", "diffusion"), default="classic")
    args = parser.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="cluster-scaling-"))
    orig, edit = make_pairs(root / "in", args.pairs)
    warm_o, warm_e = make_pairs(root / "warm", 1)
    if args.mode == "diffusion":
        from engine.models.loading import load_sd_model
        from engine.models.tiny import build_tiny_sd

        model_dir = build_tiny_sd(root / "tiny-sd", seed=0)
        params = DIFFUSION
        restorer = get_restorer("diffusion", model=load_sd_model(model_dir, device="cpu"))
        spec = WorkerSpec("diffusion", ModelSpec(source=str(model_dir), device="cpu"))
    else:
        params, restorer, spec = CLASSIC, get_restorer("classic"), WorkerSpec("classic")

    rows = []
    timed(warm_o, warm_e, root / "warm-local", params, restorer)
    seconds, _, files = timed(orig, edit, root / "local", params, restorer)
    rows.append(("local (this process)", 1, files, seconds, seconds))
    t0 = time.monotonic()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="warning")  # fmt: skip
    ray_start = time.monotonic() - t0
    for workers in args.workers:
        executor = RayExecutor(spec, cluster="auto", workers=workers)
        seconds, steady, files = timed(orig, edit, root / f"ray{workers}", params, restorer,
                                       executor)  # fmt: skip
        rows.append((f"Ray, {workers} worker{'s' if workers > 1 else ''}", workers, files,
                     seconds, steady))  # fmt: skip

    null = get_restorer("classic")
    local_null, _, n = timed(orig, edit, root / "null-local", params, null, None, NullProcessor())
    ray_null = RayExecutor(WorkerSpec("classic", processor=NullProcessor()), "auto", 1)
    _, ray_null_steady, _ = timed(orig, edit, root / "null-ray", params, null, ray_null)
    ray.shutdown()

    local_rate = rows[0][2] / rows[0][3]
    print(f"\n{args.pairs} pairs, {args.mode} mode, {os.cpu_count()} CPUs, "
          f"Ray {ray.__version__} (start: {ray_start:.1f} s, not in the table)\n")  # fmt: skip
    print("| executor | workers | files | total s | files/s | steady files/s | vs local (steady) |")
    print("|---|---|---|---|---|---|---|")
    for name, workers, files, seconds, steady in rows:
        print(f"| {name} | {workers} | {files} | {seconds:.1f} | {files / seconds:.2f} | "
              f"{files / steady:.2f} | {files / steady / local_rate:.2f}x |")  # fmt: skip
    per_ray, per_local = ray_null_steady / n * 1000, local_null / n * 1000
    print(
        f"\nRay's cost per file (null processor, 1 worker, steady): "
        f"{per_ray - per_local:.0f} ms ({per_ray:.0f} ms vs {per_local:.0f} ms locally)"
    )


if __name__ == "__main__":
    main()
