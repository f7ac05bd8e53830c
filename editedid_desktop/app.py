"""Application entry point: `editedid` starts the main window.

    editedid [ORIGINAL EDITED]     open a photo pair (or one .editedid project), optional
    editedid --self-test           check the installation headless, print a report, exit 0/1
    editedid --version | --help

The developer install's `editedid` and the bundle's entry script both end here, so both
know the same options; an unknown option is an error (exit code 2), not a silent window.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from . import __version__
from .main_window import APP_NAME, MainWindow
from .settings import APPLICATION, ORGANIZATION
from .state_probe import install_probe
from .theme import apply_theme, dark_palette
from .watchdog import CrashRecorder, end_process, offer_crash_reports

__all__ = ["APP_NAME", "MainWindow", "apply_theme", "dark_palette", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editedid",
        description="EditedID Desktop: restore each person's identity in an AI-edited photo.",
    )
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="ORIGINAL EDITED photos to open as a pair, or one .editedid project",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check the installation without a window, print a report, exit 0 (pass) or 1",
    )
    parser.add_argument(
        "--device", metavar="DEVICE", help="with --self-test: the device to test (cpu, cuda)"
    )
    parser.add_argument("--version", action="version", version=f"EditedID {__version__}")
    return parser


def self_test(device: str | None = None) -> int:
    """Run the headless self-test (see selftest.py) and print its report."""
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .selftest import run_self_test

    return run_self_test(lambda line: print(line, flush=True), device=device)


def main(argv: Sequence[str] | None = None) -> int:
    """`argv` is the whole command line, program name first (as sys.argv)."""
    args = list(sys.argv if argv is None else argv)
    options = build_parser().parse_args(args[1:])  # --help/--version/unknown: SystemExit
    if options.self_test:
        return self_test(options.device)
    if options.device:
        build_parser().error("--device goes with --self-test")
    from engine.privacy import apply_privacy_defaults

    apply_privacy_defaults()  # portraits never leave the machine: no library telemetry
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    recorder: CrashRecorder | None = None
    if QApplication.instance() is None:  # a real start (tests reuse their application)
        from .qt_platform import xcb_problem

        problem = xcb_problem()  # Qt would abort without naming the missing library
        if problem:
            print(problem, file=sys.stderr)
            return 1
        recorder = CrashRecorder().start()  # a crash or freeze leaves a report (watchdog.py)
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(ORGANIZATION)
    apply_theme(app)
    window = MainWindow(defer_engine=True)  # paints before torch & co. are loaded
    window.show()
    install_probe(window)  # EDITEDID_STATE_FILE only: the user-path tests' hook
    if recorder is not None:
        recorder.watch_ui_thread(window)
        offer_crash_reports(window, recorder.folder)  # what the last run left, if anything
    open_arguments(window, [Path(a) for a in options.files])
    code = app.exec()
    if recorder is not None:  # never exit while the engine thread runs (watchdog.py)
        return end_process(window.engine.thread, recorder, code)
    return code


def open_arguments(window, files: list[Path]) -> None:
    """Files named on the command line or by a file manager's "Open with": one project;
    ORIGINAL EDITED in that order; anything else as if dropped on the canvas (one photo
    goes into the empty slot, so "Open with" on a single photo is never ignored)."""
    if len(files) == 1 and files[0].suffix == ".editedid":
        window.open_project(files[0])
    elif len(files) == 2:
        window.open_photos(files[0], files[1])
    elif files:
        window.files.open_dropped([str(f) for f in files])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
