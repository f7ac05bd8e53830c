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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xcb is Qt's Linux platform")
def test_missing_qt_system_library_is_named_with_the_install_command(tmp_path):
    """Where Qt's xcb plugin cannot load, the app says which library is missing and how to
    install it, instead of Qt's abort (issue 12). The plugin here is a copy of PySide6's
    whose libxcb-cursor dependency is renamed to one no system has."""
    from editedid_desktop.qt_platform import xcb_plugin

    real = xcb_plugin()
    assert real is not None, "PySide6 on Linux ships the xcb platform plugin"
    data = real.read_bytes()
    assert data.count(b"libxcb-cursor.so.0") == 1
    fake = tmp_path / "libqxcb.so"
    fake.write_bytes(data.replace(b"libxcb-cursor.so.0", b"libxcb-cursor.so.9"))
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="xcb",
        DISPLAY=":0",
        LD_LIBRARY_PATH=str(real.parents[2] / "lib"),  # Qt's own libraries, as in place
    )
    code = (
        "import sys; from pathlib import Path; import editedid_desktop.qt_platform as q; "
        f"q.xcb_plugin = lambda: Path({str(fake)!r}); "
        "from editedid_desktop.app import main; sys.exit(main(['editedid']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 1, done.stderr
    assert "cannot open its window" in done.stderr
    assert "libxcb-cursor.so.9" in done.stderr  # named, with how to find its package
    assert "apt-file search libxcb-cursor.so.9" in done.stderr
    assert "qt.qpa.plugin" not in done.stderr  # Qt never got to abort


def test_install_commands_for_missing_qt_libraries():
    from editedid_desktop.qt_platform import install_commands, parse_ldd

    ldd = (
        "\tlibxcb-cursor.so.0 => not found\n"
        "\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)\n"
        "\tlibxcb-icccm.so.4 => not found\n"
        "\tlibxcb-icccm.so.4 => not found\n"
        "\tlibxkbcommon-x11.so.0 => not found\n"
    )
    missing = parse_ldd(ldd)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    assert install_commands(missing) == [
        "sudo apt install libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0",
        "sudo dnf install libxkbcommon-x11 xcb-util-cursor xcb-util-wm",
    ]


class _Window:
    """What open_arguments may call on the main window, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.files = self

    def open_project(self, path):
        self.calls.append(("project", path.name))

    def open_photos(self, original, edited):
        self.calls.append(("pair", original.name, edited.name))

    def open_dropped(self, paths):
        self.calls.append(("dropped", [os.path.basename(p) for p in paths]))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["job.editedid"], ("project", "job.editedid")),
        (["a.jpg", "b.jpg"], ("pair", "a.jpg", "b.jpg")),  # ORIGINAL EDITED, in order
        (["portrait.jpg"], ("dropped", ["portrait.jpg"])),  # "Open with" on one photo
    ],
)
def test_files_on_the_command_line_are_opened(tmp_path, names, expected):
    from pathlib import Path

    from editedid_desktop.app import open_arguments

    window = _Window()
    open_arguments(window, [Path(tmp_path / n) for n in names])
    assert window.calls == [expected]
