"""Application entry point: `editedid` starts the main window.

editedid [ORIGINAL EDITED]     # optional: open a photo pair (or one .editedid project)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QApplication

from . import __version__
from .main_window import APP_NAME, MainWindow
from .settings import APPLICATION, ORGANIZATION
from .theme import apply_theme, dark_palette

__all__ = ["APP_NAME", "MainWindow", "apply_theme", "dark_palette", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    from engine.privacy import apply_privacy_defaults

    apply_privacy_defaults()  # portraits never leave the machine: no library telemetry
    args = list(sys.argv if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(ORGANIZATION)
    apply_theme(app)
    window = MainWindow()
    window.show()
    files = [Path(a) for a in args[1:] if not a.startswith("-")]
    if len(files) == 1 and files[0].suffix == ".editedid":
        window.open_project(files[0])
    elif len(files) >= 2:
        window.open_photos(files[0], files[1])
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
