"""One entry point: `editedid --help/--version/--self-test`, and unknown options refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from editedid_desktop import __version__


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    code = "import sys; from editedid_desktop.app import main; sys.exit(main(sys.argv))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_version_prints_and_exits_zero():
    done = _run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"EditedID {__version__}"


def test_help_lists_the_options():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    for option in ("--self-test", "--version", "--help", "ORIGINAL EDITED"):
        assert option in done.stdout


def test_unknown_option_is_a_clear_error():
    done = _run("--selftest")
    assert done.returncode == 2
    assert "unrecognized arguments: --selftest" in done.stderr
    assert "usage: editedid" in done.stderr


def test_self_test_flag_runs_the_self_test_and_opens_no_window(monkeypatch, capsys):
    from editedid_desktop import app, selftest

    calls = []

    def fake(report, *, device=None):
        calls.append(device)
        report("RESULT: PASS (1 of 1 checks)")
        return 0

    monkeypatch.setattr(selftest, "run_self_test", fake)
    monkeypatch.setattr(app, "MainWindow", lambda: pytest.fail("the self-test opened a window"))
    assert app.main(["editedid", "--self-test", "--device", "cpu"]) == 0
    assert calls == ["cpu"]
    assert "RESULT: PASS" in capsys.readouterr().out
    monkeypatch.setattr(selftest, "run_self_test", lambda report, *, device=None: 1)
    assert app.main(["editedid", "--self-test"]) == 1
