"""The app starts offscreen: title, dark Fusion theme, a working File > Quit, main()."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence


def test_main_window_title_and_quit(qtbot, qapp, tmp_path):
    from editedid_desktop.app import APP_NAME, MainWindow, apply_theme
    from editedid_desktop.settings import Settings

    apply_theme(qapp)
    window = MainWindow(settings=Settings.from_ini(tmp_path / "s.ini"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == "EditedID Desktop" == APP_NAME
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


def test_main_runs_and_returns(qtbot, qapp, monkeypatch, tmp_path):
    """main() builds the window on the existing QApplication and returns exec()'s code."""
    from editedid_desktop import app as app_module
    from editedid_desktop import main_window
    from editedid_desktop.settings import Settings

    shown = []
    monkeypatch.setattr(type(qapp), "exec", lambda self: 0)
    monkeypatch.setattr(main_window, "Settings", lambda: Settings.from_ini(tmp_path / "s.ini"))
    monkeypatch.setattr(
        app_module.MainWindow, "show", lambda self: shown.append(self) or qtbot.addWidget(self)
    )
    assert app_module.main([]) == 0
    assert shown and shown[0].windowTitle() == "EditedID Desktop"
    shown[0].close()
