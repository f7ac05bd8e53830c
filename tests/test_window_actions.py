"""Each window action, tool bar button and toggle calls what it names (actions.py's specs,
connected by MainWindow._build_actions as callables since issue 21, not dotted strings)."""

from __future__ import annotations

import pytest

from editedid_desktop.canvas import LayeredCanvas
from editedid_desktop.controllers.export import ExportController
from editedid_desktop.controllers.files import FilesController
from editedid_desktop.controllers.projects import ProjectsController
from editedid_desktop.controllers.run import RunController
from editedid_desktop.main_window import MainWindow

SLOTS = {  # window attribute: (class, method) it calls
    "open_original_action": (FilesController, "choose_original"),
    "open_edited_action": (FilesController, "choose_edited"),
    "open_project_action": (ProjectsController, "choose"),
    "save_action": (ExportController, "save_result"),
    "save_as_action": (ExportController, "save_result_as"),
    "save_project_action": (ProjectsController, "save"),
    "batch_action": (MainWindow, "open_batch"),
    "model_manager_action": (MainWindow, "open_model_manager"),
    "settings_action": (MainWindow, "open_settings"),
    "fit_action": (LayeredCanvas, "fit"),
    "zoom100_action": (LayeredCanvas, "zoom_100"),
    "zoom_in_action": (LayeredCanvas, "zoom_in"),
    "zoom_out_action": (LayeredCanvas, "zoom_out"),
    "restore_action": (RunController, "run_restore"),
    "classic_action": (RunController, "run_classic"),
    "cancel_action": (RunController, "cancel"),
}


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """The slots above replaced (before the window is built) by recorders."""
    seen: list[str] = []
    for cls, name in set(SLOTS.values()):
        monkeypatch.setattr(cls, name, lambda self, *_, name=name: seen.append(name))
    return seen


def test_every_action_calls_its_own_slot(calls, window):
    for attr, (_, name) in SLOTS.items():
        action = getattr(window, attr)
        action.setEnabled(True)  # no photos open: saving and running are off
        calls.clear()
        action.trigger()
        assert calls == [name], attr
    calls.clear()
    window.run_button.setEnabled(True)
    window.run_button.click()
    assert calls == ["run_restore"]
    window.quit_action.trigger()
    assert not window.isVisible()


def test_toggles_and_tool_bar_widgets_drive_the_canvas(window):
    window.layer_actions["original"].setChecked(False)
    assert not window.canvas.layer_visible("original")
    window.compare_actions["split"].setChecked(True)
    assert window.canvas._layers.compare_mode == "split"
    assert window.compare_combo.currentData() == "split"  # the combo follows
    window.compare_combo.setCurrentIndex(window.compare_combo.findData("hold"))
    assert window.canvas._layers.compare_mode == "hold"
    assert window.compare_actions["hold"].isChecked()
    window.result_opacity.setValue(40)
    assert window.canvas.layer_opacity("result") == pytest.approx(0.4)
    assert window.recent_menu.objectName() == "recentMenu"
    assert window.shortcuts_action.objectName() == "shortcutsAction"
