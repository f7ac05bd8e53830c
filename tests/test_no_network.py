"""Nothing leaves the computer unless the user asks for a download (README, Privacy;
issue 23): the self-test, a classic restore, a batch, a batch on a private Ray and the app
with a photo pair open, each run as users run them, under `strace -f` (every connect()
and sendto() of every process they start) inside a network namespace of their own
(`unshare -rn`, loopback only: whatever tried to reach out could not, and the run must
still succeed). Allowed: loopback, Unix sockets and netlink (the kernel).

Before: the self-test's onnxruntime wrote a telemetry device id and database (its
uploader: mobile.events.data.microsoft.com); a Ray batch connected to 8.8.8.8 (Ray's way
of finding its address), to 169.254.169.254 and looked up metadata.google.internal (its
dashboard asks which cloud it runs on, usage statistics off or not).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from engine.batch.reaper import descendants
from tests.fixtures.batch import studio_folders

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NEEDS = {"strace": "strace", "unshare": "util-linux", "ip": "iproute2"}
# connect/sendto/sendmsg naming an IPv4 or IPv6 address
ADDRESS = re.compile(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"')
LOOPBACK = re.compile(r"^(127\.|::1$|::ffff:127\.)")


@pytest.fixture(scope="module")
def tools():
    missing = [f"{tool} (apt install {package})" for tool, package in NEEDS.items()
               if shutil.which(tool) is None]  # fmt: skip
    assert not missing, f"the no-network test needs {', '.join(missing)}"


@pytest.fixture
def offline_env(tmp_path):
    # a short TMPDIR: Ray's socket paths under it must fit in 107 bytes
    temp = Path(tempfile.mkdtemp(prefix="nonet-"))
    """The environment of a user's shell: a fresh HOME, no offline switches of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EDITEDID_"))}
    for key in (
        "DO_NOT_TRACK",
        "DISABLE_TELEMETRY",
        "ORT_DISABLE_TELEMETRY",
        "RAY_USAGE_STATS_ENABLED",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    ):
        env.pop(key, None)  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", TMPDIR=str(temp))
    yield env
    shutil.rmtree(temp, ignore_errors=True)


def _outbound(trace: Path) -> list[str]:
    """The trace's lines that name an address other than loopback."""
    lines = []
    for line in trace.read_text(errors="replace").splitlines():
        if "sa_family=AF_INET" not in line:
            continue
        address = ADDRESS.search(line)
        if address is None or not LOOPBACK.match(address.group(1)):
            lines.append(line[:200])
    return lines


def _isolated(argv: list[str], trace: Path) -> list[str]:
    """argv in its own network namespace (loopback up), traced, as a shell command."""
    traced = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace)]
    inner = "ip link set lo up && exec " + shlex.join(traced + argv)
    return ["unshare", "-rn", "sh", "-c", inner]


def _run(argv, trace, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        _isolated([str(a) for a in argv], trace), env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def test_the_tracer_sees_an_outbound_attempt(tools, offline_env, tmp_path):
    """The check itself: a connect() to 8.8.8.8 (UDP, sends nothing) is caught."""
    trace = tmp_path / "probe.trace"
    code = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    code += "try:\n    s.connect(('8.8.8.8', 53))\nexcept OSError:\n    pass\n"
    done = _run([sys.executable, "-c", code], trace, offline_env)
    assert done.returncode == 0, done.stderr
    assert any("8.8.8.8" in line for line in _outbound(trace))


def test_self_test_restore_and_batches_send_nothing(tools, offline_env, tmp_path, cli_pair):
    original, edited = cli_pair
    (tmp_path / "studio").mkdir()
    orig_dir, edit_dir = studio_folders(tmp_path / "studio", pairs=2)
    cli = BIN / "editedid-cli"
    common = ["--mode", "classic", "--face-backend", "dlib", "--faces", "all"]
    runs = {
        "self-test": [BIN / "editedid", "--self-test"],
        "restore": [cli, "restore", "--original", original, "--edited", edited,
                    "--out", tmp_path / "r.png", "--mode", "classic", "--face-backend", "dlib"],
        "batch": [cli, "batch", "--original-dir", orig_dir, "--edited-dir", edit_dir,
                  "--out-dir", tmp_path / "out", *common, "--quiet"],
        "ray batch": [cli, "batch", "--original-dir", orig_dir, "--edited-dir", edit_dir,
                      "--out-dir", tmp_path / "out-ray", *common, "--cluster", "local",
                      "--workers", "1", "--quiet"],
    }  # fmt: skip
    problems = []
    for name, argv in runs.items():
        trace = tmp_path / f"{name.replace(' ', '-')}.trace"
        done = _run(argv, trace, offline_env)
        # the batches: 2 pairs restored, the broken zz.jpg reported as failed (exit 0)
        if done.returncode != 0:
            problems.append(f"{name}: exit {done.returncode}: {done.stderr[-800:]}")
        problems += [f"{name}: {line}" for line in _outbound(trace)]
    assert not problems, "\n".join(problems)
    assert (tmp_path / "r.png").is_file()
    assert len(list((tmp_path / "out-ray").glob("p*_edited.png"))) == 2
    assert not (Path(offline_env["HOME"]) / ".cache" / "Microsoft").exists()


def test_the_app_with_a_pair_open_sends_nothing(tools, offline_env, tmp_path, cli_pair):
    original, edited = cli_pair
    state = tmp_path / "state.json"
    trace = tmp_path / "app.trace"
    env = dict(offline_env, EDITEDID_STATE_FILE=str(state))
    app = subprocess.Popen(
        _isolated([str(BIN / "editedid"), str(original), str(edited)], trace),
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen: dict = {}
    try:
        deadline = time.monotonic() + 300
        while not (seen.get("engine_ready") and seen.get("analysis")):
            assert app.poll() is None, app.stdout.read()[-2000:]
            assert time.monotonic() < deadline, f"the pair never finished opening: {seen}"
            time.sleep(0.2)
            try:
                seen = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
    finally:
        # the app itself (strace, signalled, would detach and leave it running), then all
        for pid in [*descendants(app.pid), app.pid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in [*descendants(app.pid), app.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            app.wait()
    assert seen["edited_path"] == str(edited)
    outbound = _outbound(trace)
    assert not outbound, "\n".join(outbound)
