"""Dark Fusion theme: a neutral grey palette (colour judgement stays on the photo) and a
small style sheet for the app's own widgets (banner, face cards, status bar).

The palette and style are set on the application; the style sheet on each top-level
window (`MainWindow` sets it; child dialogs inherit it), which keeps `app.style()` the
plain Fusion style."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(64, 128, 220)
GOOD = "#4caf7a"
BAD = "#e0605a"
WARN = "#e0a84a"
MUTED = "#9aa0a6"

ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icons" / "editedid.svg"

STYLE_SHEET = f"""
QToolTip {{ color: #e6e6e6; background: #2b2b2d; border: 1px solid #505055; padding: 4px; }}
QDockWidget::title {{ padding: 6px 8px; background: #2a2a2c; }}
QMainWindow::separator {{ background: #1c1c1d; width: 3px; height: 3px; }}
QFrame#faceCard {{ background: #2c2c2f; border: 1px solid #3a3a3e; border-radius: 6px; }}
QFrame#faceCard[selected="true"] {{ border: 1px solid {ACCENT.name()}; }}
QLabel#faceTitle {{ font-weight: 600; }}
QLabel#mutedLabel {{ color: {MUTED}; }}
QLabel#errorLabel {{ color: {BAD}; }}
QLabel#warningLabel {{ color: {WARN}; }}
QFrame#modelBanner {{ background: #3a3220; border: 1px solid #6b5a2c; border-radius: 6px; }}
QFrame#modelBanner QLabel {{ color: #f2e3bf; }}
QStatusBar QLabel {{ color: #c8c8c8; padding: 0 6px; }}
QPushButton#cancelButton {{ background: #6b2b28; }}
QPushButton#runButton {{ background: {ACCENT.name()}; color: white; font-weight: 600; }}
QPushButton:disabled {{ color: #777; }}
QPushButton#runButton:disabled {{ background: #34405a; color: #8a94a6; }}
QGroupBox {{ border: 1px solid #3a3a3e; border-radius: 6px; margin-top: 10px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #cfcfcf; }}
"""


def dark_palette() -> QPalette:
    palette = QPalette()
    window, base, text = QColor(37, 37, 38), QColor(28, 28, 29), QColor(230, 230, 230)
    role = QPalette.ColorRole
    palette.setColor(role.Window, window)
    palette.setColor(role.WindowText, text)
    palette.setColor(role.Base, base)
    palette.setColor(role.AlternateBase, window)
    palette.setColor(role.ToolTipBase, window)
    palette.setColor(role.ToolTipText, text)
    palette.setColor(role.Text, text)
    palette.setColor(role.Button, QColor(50, 50, 52))
    palette.setColor(role.ButtonText, text)
    palette.setColor(role.BrightText, QColor(255, 80, 80))
    palette.setColor(role.Link, ACCENT.lighter(130))
    palette.setColor(role.Highlight, ACCENT)
    palette.setColor(role.HighlightedText, QColor(255, 255, 255))
    palette.setColor(role.PlaceholderText, QColor(140, 140, 140))
    disabled = QPalette.ColorGroup.Disabled
    for r in (role.Text, role.ButtonText, role.WindowText):
        palette.setColor(disabled, r, QColor(120, 120, 120))
    return palette


def app_icon() -> QIcon:
    return QIcon(str(ICON_PATH)) if ICON_PATH.is_file() else QIcon()


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setWindowIcon(app_icon())
