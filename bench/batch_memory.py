"""Load test (issue 6, item 7): RSS over a long batch must stay flat.

    python bench/batch_memory.py                              # 500 pairs, classic, dlib
    python bench/batch_memory.py --mode diffusion --pairs 200 # tiny SD model, 64 px crops
    python bench/batch_memory.py --mode diffusion --pairs 200 --max-seconds 300

Writes N synthetic 256x256 pairs into a temp folder (a real face from matplotlib's
grace_hopper or skimage's astronaut, randomly scaled and shifted on a random background;
the "edit" is a colour change plus a tinted glasses band), runs engine.batch.run.run_batch and
samples this process's RSS (VmRSS from /proc/self/status) every 0.5 s in a thread.
Prints files done vs RSS at 10 %, 20 %, ... 100 %, the total time and files/s.
Flat: RSS at 100 % within 10 % of RSS at 20 % (after the models are loaded).
--max-seconds stops the batch (cancel) after that long; the table then covers the files
that finished. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.batch.run import BatchJob, BatchProgress, plan_batch, run_batch  # noqa: E402
from engine.params import EditedIDParams  # noqa: E402
from tests.helpers import sample_photo  # noqa: E402

SIZE = 256
FACE_BOXES = {"grace_hopper": (60, 0, 450, 390), "astronaut": (100, 0, 360, 260)}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sampler(threading.Thread):
    """(seconds, RSS MB, files finished) every `interval` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self.files = interval, [], 0
        self._stop_event = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.start_time, rss_mb(), self.files))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()


def make_pairs(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    bases = {
        name: Image.open(sample_photo(name)).convert("RGB").crop(box)
        for name, box in FACE_BOXES.items()
    }
    orig, edit = folder / "original", folder / "edited"
    orig.mkdir(parents=True)
    edit.mkdir(parents=True)
    names = list(bases)
    for i in range(n):
        face = bases[names[i % len(names)]]
        side = int(rng.integers(170, 215))
        face = face.resize((side, side), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 255, 3)))
        x, y = (int(v) for v in rng.integers(0, SIZE - side + 1, 2))
        canvas.paste(face, (x, y))
        canvas.save(orig / f"pair{i:04d}.jpg", quality=90)
        shift = rng.integers(-3, 4, 2)
        edited = np.roll(np.asarray(canvas).astype(np.int16), tuple(shift), axis=(0, 1))
        edited = np.clip(edited + rng.integers(-18, 19, 3), 0, 255).astype(np.uint8)
        eye_y = y + int(side * 0.38)
        band = edited[eye_y : eye_y + side // 12, x + side // 6 : x + side * 5 // 6]
        band[:] = band // 2  # tinted glasses: darker, the eyes still visible
        Image.fromarray(edited).save(edit / f"pair{i:04d}_edited.png")
    return orig, edit


def load_tiny_model(folder: Path):
    from engine.models.loading import load_sd_model
    from engine.models.tiny import build_tiny_sd

    return load_sd_model(build_tiny_sd(folder / "tiny-sd", seed=0), device="cpu")


def table(sampler: Sampler, done: int) -> list[str]:
    rows = ["| done | files | time s | RSS MB | peak MB so far |", "|---|---|---|---|---|"]
    samples = sampler.samples
    for pct in range(10, 101, 10):
        target = max(1, round(done * pct / 100))
        upto = [s for s in samples if s[2] < target] or samples[:1]
        at = next((s for s in samples if s[2] >= target), samples[-1])
        peak = max(s[1] for s in upto + [at])
        rows.append(f"| {pct:3d} % | {at[2]} | {at[0]:.1f} | {at[1]:.0f} | {peak:.0f} |")
    return rows


def rss_at(sampler: Sampler, done: int, pct: int) -> float:
    target = max(1, round(done * pct / 100))
    return next((s[1] for s in sampler.samples if s[2] >= target), sampler.samples[-1][1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("classic", "diffusion"), default="classic")
    parser.add_argument("--pairs", type=int, default=None, help="default 500 (classic), 200")
    parser.add_argument("--max-seconds", type=float, default=None, help="cancel after this")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    args = parser.parse_args(argv)
    pairs = args.pairs or (500 if args.mode == "classic" else 200)

    with tempfile.TemporaryDirectory(prefix="editedid-bench-") as tmp:
        work = args.workdir or Path(tmp)
        t0 = time.monotonic()
        orig, edit = make_pairs(work / "pairs", pairs)
        print(f"{pairs} synthetic {SIZE}x{SIZE} pairs in {time.monotonic() - t0:.1f} s")
        model = None
        params = EditedIDParams(resolution=64)
        if args.mode == "diffusion":
            model = load_tiny_model(work)
            params = EditedIDParams(resolution=64, nulltext_iters=1)
        plan = plan_batch(orig, edit, work / "restored")
        assert len(plan.items) == pairs, plan.summary()
        print(f"RSS before the batch: {rss_mb():.0f} MB")

        sampler = Sampler()
        started = time.monotonic()
        deadline = started + args.max_seconds if args.max_seconds else None

        def progress(p: BatchProgress) -> None:
            sampler.files = p.done + p.failed + p.skipped

        sampler.start()
        report = run_batch(
            BatchJob(plan, params, mode=args.mode, backend="dlib"),
            model=model,
            on_progress=progress,
            cancel=(lambda: time.monotonic() > deadline) if deadline else None,
        )
        seconds = time.monotonic() - started
        sampler.stop()

    done = report.ok + report.failed
    print(f"\nmode {args.mode}: {report.ok} ok, {report.failed} failed of {pairs} planned"
          + (" (stopped by --max-seconds)" if report.cancelled else ""))  # fmt: skip
    for name, error in report.failures[:5]:
        print(f"  failed: {Path(name).name}: {error}")
    print("\n".join(table(sampler, done)))
    rate = done / seconds if seconds else float("nan")
    print(f"\ntotal {seconds:.1f} s, {rate:.2f} files/s, {len(sampler.samples)} RSS samples")
    if done >= 5:
        at20, at100 = rss_at(sampler, done, 20), rss_at(sampler, done, 100)
        change = (at100 - at20) / at20 * 100
        verdict = "flat" if abs(change) <= 10 else "NOT flat"
        print(f"RSS 20 % -> 100 %: {at20:.0f} -> {at100:.0f} MB ({change:+.1f} %): {verdict}")
        return 0 if abs(change) <= 10 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
