"""Entry script of the frozen app (PyInstaller bundle; see packaging/editedid.spec).

    EditedID                     start the desktop app (optionally: ORIGINAL EDITED, or a project)
    EditedID --self-test         check the installation headless, print a report, exit 0/1
    EditedID --cli ARGS...       the command line (same as editedid-cli ARGS...)

On Windows the GUI executable has no console; `EditedID-console.exe` (same folder, same
libraries) is the one to run --self-test and --cli from a terminal. When the self-test
runs without a console it writes its report to EditedID-self-test.txt in the user's
EditedID data folder and says where in a message box.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path


def _report_file() -> Path:
    from engine.models.places import default_models_dir

    folder = default_models_dir().parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "EditedID-self-test.txt"


def _self_test(argv: list[str]) -> int:
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from editedid_desktop.selftest import run_self_test

    device = argv[argv.index("--device") + 1] if "--device" in argv[:-1] else None
    if sys.stdout is not None:
        code = run_self_test(lambda line: print(line, flush=True), device=device)
        return code
    # Windowed executable without a console: write the report to a file.
    lines: list[str] = []
    code = run_self_test(lines.append, device=device)
    path = _report_file()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        from PySide6.QtWidgets import QApplication, QMessageBox

        app = QApplication.instance() or QApplication([sys.argv[0]])  # noqa: F841
        QMessageBox.information(
            None, "EditedID self-test", f"{lines[-1]}\n\nThe full report is in:\n{path}"
        )
    except Exception:  # noqa: BLE001 - the file is the report
        pass
    return code


def _portable_models_dir() -> None:
    """A `models` folder next to the executable (offline / portable installs) is the
    models folder, unless EDITEDID_MODELS_DIR says otherwise."""
    beside = Path(sys.executable).resolve().parent / "models"
    if beside.is_dir() and not os.environ.get("EDITEDID_MODELS_DIR"):
        os.environ["EDITEDID_MODELS_DIR"] = str(beside)


def main() -> int:
    multiprocessing.freeze_support()
    if getattr(sys, "frozen", False):
        _portable_models_dir()
    else:  # run from a checkout: use its packages
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    argv = sys.argv[1:]
    if "--self-test" in argv:
        return _self_test(argv)
    if argv and argv[0] == "--cli":
        from engine.cli import main as cli_main

        return int(cli_main(argv[1:]) or 0)
    from editedid_desktop.app import main as app_main

    return int(app_main(sys.argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
