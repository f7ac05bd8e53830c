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
    assert shown[0].defer_engine  # the app's window paints before the engine is loaded
    shown[0].close()


def test_window_paints_first_and_loads_the_engine_behind_a_note(qtbot, qapp, monkeypatch, tmp_path):
    """First start: the window is up and usable while torch & co. load on the worker; the
    note goes and the first-run check runs once they are loaded (issue 12)."""
    import threading

    from editedid_desktop import main_window, worker
    from editedid_desktop.settings import Settings

    gate = threading.Event()
    imported = []

    def slow_import(name):  # the worker's imports wait until the test lets them go on
        gate.wait(30)
        imported.append(name)
        return __import__(name)

    monkeypatch.setattr(main_window, "engine_loaded", lambda: False)  # as in a new process
    monkeypatch.setattr(worker, "import_module", slow_import)
    settings = Settings.from_ini(tmp_path / "s.ini")
    settings.models_dir = str(tmp_path / "no-models")  # the first-run banner is due
    settings.face_backend = "dlib"
    window = main_window.MainWindow(settings=settings, defer_engine=True)  # as app.main
    qtbot.addWidget(window)
    try:
        window.show()
        qtbot.waitExposed(window)
        assert window.loading_label.isVisible() and window.loading_bar.isVisible()
        assert "Loading the engine" in window.loading_label.text()
        assert not window.engine_ready and not window.banner.isVisible()
        qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "Loading torch…")
        # The window answers meanwhile: the Advanced tab opens from the View menu.
        window.params_dock.toggleViewAction().trigger()
        assert window.params_dock.isVisible()
        assert imported == []
    finally:
        gate.set()
    qtbot.waitUntil(lambda: window.engine_ready, timeout=60000)
    assert imported[0] == "torch"
    assert not window.loading_label.isVisible() and not window.loading_bar.isVisible()
    assert window.banner.isVisible() and "not installed" in window.model_label.text()
    assert "checking" not in window.device_label.text()
    window.close()
