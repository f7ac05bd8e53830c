"""The main window's actions, menus and tool bars, declared as tables.

An action is a row of `ACTIONS` (napari's "tools are a table"): the window attribute it
lands in, its text, what it calls (a dotted path from the window, e.g.
"runner.run_restore"), shortcut, object name and tip. `build_actions` makes them,
`build_menus` and `build_toolbars` place them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QSlider, QToolBar

from .canvas.shortcuts import CanvasShortcuts
from .shortcuts_dialog import show_shortcuts

if TYPE_CHECKING:
    from .main_window import MainWindow

COMPARE_MODES = (("off", "Compare off"), ("split", "Split view"), ("hold", "Hold to compare"))
LAYER_KEYS = (("original", "1"), ("edited", "2"), ("result", "3"), ("masks", "4"))

Shortcut = str | QKeySequence.StandardKey | tuple[str, ...] | None


@dataclass(frozen=True)
class ActionSpec:
    attr: str  # the window attribute that holds the action
    text: str
    slot: str  # dotted path from the window to what the action calls
    shortcut: Shortcut = None
    name: str = ""  # objectName (tests and QSettings' window state find it by this)
    tip: str = ""


ACTIONS = (
    ActionSpec(
        "open_original_action",
        "Open &Original…",
        "files.choose_original",
        "Ctrl+O",
        "openOriginalAction",
        "the photo with the client's real face",
    ),
    ActionSpec(
        "open_edited_action",
        "Open &Edited…",
        "files.choose_edited",
        "Ctrl+Shift+O",
        "openEditedAction",
        "the AI-edited photo whose face changed",
    ),
    ActionSpec(
        "open_project_action",
        "Open &Project…",
        "projects.choose",
        "Ctrl+Alt+O",
        "openProjectAction",
    ),
    ActionSpec("save_action", "&Save Result", "exporter.save_result", "Ctrl+S", "saveAction"),
    ActionSpec(
        "save_as_action",
        "Save Result &As…",
        "exporter.save_result_as",
        "Ctrl+Shift+S",
        "saveAsAction",
    ),
    ActionSpec(
        "save_project_action", "Save Pro&ject", "projects.save", "Ctrl+Alt+S", "saveProjectAction"
    ),
    ActionSpec("batch_action", "&Batch…", "open_batch", "Ctrl+B", "batchAction"),
    ActionSpec(
        "model_manager_action", "&Model Manager…", "open_model_manager", None, "modelManagerAction"
    ),
    ActionSpec(
        "settings_action",
        "Se&ttings…",
        "open_settings",
        QKeySequence.StandardKey.Preferences,
        "settingsAction",
    ),
    ActionSpec("quit_action", "&Quit", "close", "Ctrl+Q", "quitAction"),
    ActionSpec("fit_action", "&Fit to Window", "canvas.fit", "Ctrl+0", "fitAction"),
    ActionSpec("zoom100_action", "&100 %", "canvas.zoom_100", "Ctrl+1", "zoom100Action"),
    ActionSpec("zoom_in_action", "Zoom &In", "canvas.zoom_in", ("Ctrl++", "Ctrl+="), "zoomIn"),
    ActionSpec("zoom_out_action", "Zoom O&ut", "canvas.zoom_out", "Ctrl+-", "zoomOut"),
    ActionSpec(
        "restore_action",
        "&Restore (diffusion)",
        "runner.run_restore",
        "Ctrl+R",
        "restoreAction",
        "restore each person's identity with EditedID on Stable Diffusion",
    ),
    ActionSpec(
        "classic_action",
        "&Classic Preview",
        "runner.run_classic",
        "Ctrl+Shift+R",
        "classicAction",
        "instant blend of the original face (no diffusion model)",
    ),
    ActionSpec("cancel_action", "Ca&ncel", "runner.cancel", "Esc", "cancelAction", "stop the run"),
)


def _resolve(window: MainWindow, path: str) -> Any:
    target: Any = window
    for part in path.split("."):
        target = getattr(target, part)
    return target


def make_action(
    window: MainWindow,
    text: str,
    shortcut: Shortcut = None,
    name: str = "",
    tip: str = "",
    checkable: bool = False,
) -> QAction:
    action = QAction(text, window)
    action.setObjectName(name)
    if isinstance(shortcut, tuple):
        action.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
        action.setToolTip(f"{text.replace('&', '').rstrip('…')} — {tip}")
    action.setCheckable(checkable)
    window.addAction(action)
    return action


def build_actions(window: MainWindow) -> None:
    """The table's actions, undo/redo of the mask stack, layer and compare toggles."""
    for spec in ACTIONS:
        action = make_action(window, spec.text, spec.shortcut, spec.name, spec.tip)
        slot = _resolve(window, spec.slot)
        action.triggered.connect(lambda _=False, slot=slot: slot())
        setattr(window, spec.attr, action)
    window.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
    window.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
    window.cancel_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    stack = window.masks.undo_stack
    window.undo_action = stack.createUndoAction(window, "&Undo")
    window.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
    window.undo_action.setObjectName("undoAction")
    window.redo_action = stack.createRedoAction(window, "&Redo")
    window.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    window.redo_action.setObjectName("redoAction")
    window.addActions([window.undo_action, window.redo_action])

    window.layer_actions = {}
    for layer, key in LAYER_KEYS:
        action = make_action(window, f"Show {layer.title()}", f"Alt+{key}", f"layer_{layer}")
        action.setCheckable(True)
        action.setChecked(True)
        action.toggled.connect(lambda on, layer=layer: window.canvas.set_layer_visible(layer, on))
        window.layer_actions[layer] = action
    window.compare_group = QActionGroup(window)
    window.compare_actions = {}
    for mode, text in COMPARE_MODES:
        action = make_action(window, text, None, f"compare_{mode}", checkable=True)
        action.toggled.connect(lambda on, mode=mode: on and window.set_compare_mode(mode))
        window.compare_group.addAction(action)
        window.compare_actions[mode] = action
    window.compare_actions["off"].setChecked(True)
    # [ ] Shift+[ ] Space \ anywhere in the window, never while typing.
    window.canvas_shortcuts = CanvasShortcuts(window.canvas, window)


def build_menus(window: MainWindow) -> None:
    w = window
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.open_original_action, w.open_edited_action, w.open_project_action])
    w.recent_menu = file_menu.addMenu("Open &Recent")
    w.recent_menu.setObjectName("recentMenu")
    for group in (
        [w.save_action, w.save_as_action, w.save_project_action],
        [w.batch_action],
        [w.model_manager_action, w.settings_action],
        [w.quit_action],
    ):
        file_menu.addSeparator()
        file_menu.addActions(group)

    bar.addMenu("&Edit").addActions([w.undo_action, w.redo_action])

    view_menu = bar.addMenu("&View")
    view_menu.addActions([w.fit_action, w.zoom100_action, w.zoom_in_action, w.zoom_out_action])
    for group in (
        list(w.layer_actions.values()),
        list(w.compare_actions.values()),
        [w.faces_dock.toggleViewAction(), w.params_dock.toggleViewAction()],
    ):
        view_menu.addSeparator()
        view_menu.addActions(group)

    bar.addMenu("&Run").addActions([w.restore_action, w.classic_action, w.cancel_action])

    # Help ▸ Keyboard Shortcuts lists the window's actions as they are (shortcuts_dialog).
    w.shortcuts_action = make_action(
        w,
        "&Keyboard Shortcuts",
        QKeySequence.StandardKey.HelpContents,
        "shortcutsAction",
        "every key of the window, read from its actions",
    )
    w.shortcuts_action.triggered.connect(lambda: show_shortcuts(w))
    about = QAction("&About EditedID", w)
    about.triggered.connect(w.show_about)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(w.shortcuts_action)
    help_menu.addSeparator()
    help_menu.addAction(about)


def build_toolbars(window: MainWindow) -> None:
    """The main tool bar (open, run, compare, result opacity, zoom) and the mask tools."""
    w = window
    main = QToolBar("Main", w)
    main.setObjectName("mainToolBar")
    main.setMovable(False)
    main.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    main.addActions([w.open_original_action, w.open_edited_action])
    main.addSeparator()
    main.addAction(w.classic_action)
    w.run_button = QPushButton("Restore")
    w.run_button.setObjectName("runButton")
    w.run_button.setToolTip("Restore identity with diffusion (Ctrl+R)")
    w.run_button.clicked.connect(w.runner.run_restore)
    main.addWidget(w.run_button)
    main.addSeparator()
    w.compare_combo = QComboBox()
    w.compare_combo.setObjectName("compareCombo")
    for mode, text in COMPARE_MODES:
        w.compare_combo.addItem(text, mode)
    w.compare_combo.setToolTip("Before/after compare (hold \\ to compare)")
    w.compare_combo.currentIndexChanged.connect(
        lambda i: w.set_compare_mode(w.compare_combo.itemData(i))
    )
    main.addWidget(w.compare_combo)
    main.addWidget(QLabel("  Result opacity "))
    w.result_opacity = QSlider(Qt.Orientation.Horizontal)
    w.result_opacity.setRange(0, 100)
    w.result_opacity.setValue(100)
    w.result_opacity.setFixedWidth(110)
    w.result_opacity.valueChanged.connect(lambda v: w.canvas.set_layer_opacity("result", v / 100.0))
    main.addWidget(w.result_opacity)
    main.addSeparator()
    main.addActions([w.fit_action, w.zoom100_action])
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
    w.main_toolbar = main

    w.mask_toolbar = None
    try:
        from .tool_bar import MaskToolBar
    except ImportError:  # the mask tool bar lands separately; the canvas still paints
        return
    w.mask_toolbar = MaskToolBar(w.canvas, w)
    w.mask_toolbar.setObjectName("maskToolBar")
    w.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
    w.addToolBar(Qt.ToolBarArea.TopToolBarArea, w.mask_toolbar)
    w.addAction(w.mask_toolbar.swap_target_action)  # X: a window shortcut, no button
