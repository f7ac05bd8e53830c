"""The main window starts offscreen, has its title and a working File > Quit."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence


def test_main_window_title_and_quit(qtbot, qapp):
    from editedid_desktop.app import APP_NAME, MainWindow, apply_theme

    apply_theme(qapp)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == "EditedID Desktop" == APP_NAME
    assert "editedid-cli restore-crop" in window.centralWidget().text()
    assert qapp.style().name().lower() == "fusion"

    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert "File" in menus
    quit_action = window.findChild(QAction, "quitAction")
    assert quit_action is not None
    assert quit_action.shortcut() == QKeySequence("Ctrl+Q")
    file_menu = window.menuBar().actions()[menus.index("File")].menu()
    assert quit_action in file_menu.actions()

    quit_action.trigger()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)


def test_main_runs_and_returns(qtbot, qapp, monkeypatch):
    """main() builds the window on the existing QApplication and returns exec()'s code."""
    from editedid_desktop import app as app_module

    shown = []
    monkeypatch.setattr(type(qapp), "exec", lambda self: 0)
    monkeypatch.setattr(
        app_module.MainWindow, "show", lambda self: shown.append(self) or qtbot.addWidget(self)
    )
    assert app_module.main([]) == 0
    assert shown and shown[0].windowTitle() == "EditedID Desktop"
