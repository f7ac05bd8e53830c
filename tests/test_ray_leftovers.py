"""A driver killed -9 mid-batch on a private Ray leaves nothing behind (issue 23): no
client photo in a worker's scratch folder, no Ray process (before: the DashboardAgent and
RuntimeEnvAgent ran on until the next batch, and `editedid-worker-*/original/*.png` stayed
in the temp folder). engine.batch.reaper's watchers clean up; here the real CLI is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from engine.batch.plan import is_finished
from engine.batch.reaper import SCRATCH_PREFIX, alive, descendants
from tests.fixtures.batch import studio_folders

ROOT = Path(__file__).resolve().parents[1]


def _processes_under(temp: Path) -> list[str]:
    """Command lines of this machine's processes that name `temp` (Ray's session lives
    there: every Ray process has it in its arguments)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(temp) in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


@pytest.fixture
def short_temp():
    temp = Path(tempfile.mkdtemp(prefix="leftover-"))  # Ray's socket paths must stay short
    yield temp
    shutil.rmtree(temp, ignore_errors=True)


def test_a_driver_killed_mid_batch_leaves_no_photo_and_no_ray_process(tmp_path, short_temp):
    orig, edit = studio_folders(tmp_path, pairs=10)
    out = tmp_path / "out"
    cli = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", cli, "batch", "--original-dir", str(orig),
            "--edited-dir", str(edit), "--out-dir", str(out), "--mode", "classic",
            "--face-backend", "dlib", "--resolution", "64", "--faces", "all",
            "--cluster", "local", "--workers", "1", "--quiet"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(short_temp)}
    driver = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_dir() and any(is_finished(p) for p in out.glob("p*_edited.png"))):
            assert driver.poll() is None, driver.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no file finished"
            time.sleep(0.05)
        ray_processes = descendants(driver.pid)
        assert len(ray_processes) >= 3, "the private Ray was not running"  # gcs, raylet, ...
    finally:
        driver.send_signal(signal.SIGKILL)  # kill -9, mid-batch
        driver.wait()
    deadline = time.monotonic() + 30
    while _processes_under(short_temp) or list(short_temp.glob(f"{SCRATCH_PREFIX}*")):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not [pid for pid, started in ray_processes.items() if alive(pid, started)]
    assert not _processes_under(short_temp)
    assert not list(short_temp.glob(f"{SCRATCH_PREFIX}*")), "a client photo was left behind"
