"""Application entry point: `editedid` starts the main window.

The full editor (canvas, masks, batch panel, model manager) comes in later issues; this
window says so and points to the command line, which already restores faces.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from . import __version__

APP_NAME = "EditedID Desktop"

INTRO = f"""
<h2>{APP_NAME}</h2>
<p>Restores the original facial identity of people in AI-edited portraits while keeping
the edited elements (glasses, hats, clothes, colours) exactly as edited.</p>
<p>The desktop editor is being built. Until it is ready, restore a face crop from the
command line:</p>
<pre>editedid-cli restore-crop --original original.png --edited edited.png \\
    --face-mask face.png --element-mask element.png --element glasses \\
    --out restored.png</pre>
<p>Run <code>editedid-cli --help</code> for every option.</p>
<p style="color:#9aa0a6">Version {__version__}. Everything runs on this computer; nothing
is sent anywhere.</p>
"""


def dark_palette() -> QPalette:
    palette = QPalette()
    window, base, text = QColor(37, 37, 38), QColor(30, 30, 30), QColor(230, 230, 230)
    accent = QColor(64, 128, 220)
    palette.setColor(QPalette.ColorRole.Window, window)
    palette.setColor(QPalette.ColorRole.WindowText, text)
    palette.setColor(QPalette.ColorRole.Base, base)
    palette.setColor(QPalette.ColorRole.AlternateBase, window)
    palette.setColor(QPalette.ColorRole.ToolTipBase, window)
    palette.setColor(QPalette.ColorRole.ToolTipText, text)
    palette.setColor(QPalette.ColorRole.Text, text)
    palette.setColor(QPalette.ColorRole.Button, QColor(50, 50, 52))
    palette.setColor(QPalette.ColorRole.ButtonText, text)
    palette.setColor(QPalette.ColorRole.BrightText, QColor(255, 80, 80))
    palette.setColor(QPalette.ColorRole.Link, accent.lighter(130))
    palette.setColor(QPalette.ColorRole.Highlight, accent)
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    palette.setColor(QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140))
    disabled = QPalette.ColorGroup.Disabled
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(disabled, role, QColor(120, 120, 120))
    return palette


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.resize(900, 600)

        label = QLabel(INTRO)
        label.setObjectName("introLabel")
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setMargin(32)
        self.setCentralWidget(label)

        self.quit_action = QAction("&Quit", self)
        self.quit_action.setObjectName("quitAction")
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.quit_action)

        self.statusBar().showMessage("Ready")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    app = QApplication.instance() or QApplication(args)
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("EditedID")
    apply_theme(app)
    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
