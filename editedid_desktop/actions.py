"""The main window's actions, menus and tool bars.

Each action of the window is an `ActionSpec` constant (text, shortcut, object name, tip,
menu role); the window makes its own actions from them with `make_action(window, spec,
slot)`, the slot a real callable (main_window.MainWindow._build_actions). The builders
below make the undo/redo, layer and compare actions, the menus and the tool bars, and
return what they create for the window to keep; what the menus and tool bars read of the
window is the `ActionHost` protocol. This module never imports main_window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QSlider,
    QToolBar,
)

from .canvas import LayeredCanvas
from .shortcuts_dialog import show_shortcuts

COMPARE_MODES = (("off", "Compare off"), ("split", "Split view"), ("hold", "Hold to compare"))
LAYER_KEYS = (("original", "1"), ("edited", "2"), ("result", "3"), ("masks", "4"))

Shortcut = str | QKeySequence.StandardKey | tuple[str, ...] | None
Slot = Callable[[], object]


@dataclass(frozen=True)
class ActionSpec:
    text: str
    shortcut: Shortcut = None
    name: str = ""  # objectName (tests and QSettings' window state find it by this)
    tip: str = ""
    role: QAction.MenuRole | None = None  # where macOS puts it (Preferences, Quit)
    context: Qt.ShortcutContext | None = None  # None: Qt's default (the window)


OPEN_ORIGINAL = ActionSpec(
    "Open &Original…", "Ctrl+O", "openOriginalAction", "the photo with the client's real face"
)
OPEN_EDITED = ActionSpec(
    "Open &Edited…",
    "Ctrl+Shift+O",
    "openEditedAction",
    "the AI-edited photo whose face changed",
)
OPEN_PROJECT = ActionSpec("Open &Project…", "Ctrl+Alt+O", "openProjectAction")
SAVE = ActionSpec("&Save Result", "Ctrl+S", "saveAction")
SAVE_AS = ActionSpec("Save Result &As…", "Ctrl+Shift+S", "saveAsAction")
SAVE_PROJECT = ActionSpec("Save Pro&ject", "Ctrl+Alt+S", "saveProjectAction")
BATCH = ActionSpec("&Batch…", "Ctrl+B", "batchAction")
MODEL_MANAGER = ActionSpec("&Model Manager…", None, "modelManagerAction")
SETTINGS = ActionSpec(
    "Se&ttings…",
    QKeySequence.StandardKey.Preferences,
    "settingsAction",
    role=QAction.MenuRole.PreferencesRole,
)
QUIT = ActionSpec("&Quit", "Ctrl+Q", "quitAction", role=QAction.MenuRole.QuitRole)
FIT = ActionSpec("&Fit to Window", "Ctrl+0", "fitAction")
ZOOM_100 = ActionSpec("&100 %", "Ctrl+1", "zoom100Action")
ZOOM_IN = ActionSpec("Zoom &In", ("Ctrl++", "Ctrl+="), "zoomIn")
ZOOM_OUT = ActionSpec("Zoom O&ut", "Ctrl+-", "zoomOut")
RESTORE = ActionSpec(
    "&Restore (diffusion)",
    "Ctrl+R",
    "restoreAction",
    "restore each person's identity with EditedID on Stable Diffusion",
)
CLASSIC = ActionSpec(
    "&Classic Preview",
    "Ctrl+Shift+R",
    "classicAction",
    "instant blend of the original face (no diffusion model)",
)
CANCEL = ActionSpec(
    "Ca&ncel",
    "Esc",
    "cancelAction",
    "stop the run",
    context=Qt.ShortcutContext.WindowShortcut,
)
SHORTCUTS = ActionSpec(
    "&Keyboard Shortcuts",
    QKeySequence.StandardKey.HelpContents,
    "shortcutsAction",
    "every key of the window, read from its actions",
)


def make_action(
    window: QMainWindow, spec: ActionSpec, slot: Slot | None = None, checkable: bool = False
) -> QAction:
    """A window action from its spec; a click or its shortcut calls `slot()`."""
    action = QAction(spec.text, window)
    action.setObjectName(spec.name)
    if isinstance(spec.shortcut, tuple):
        action.setShortcuts([QKeySequence(s) for s in spec.shortcut])
    elif spec.shortcut is not None:
        action.setShortcut(QKeySequence(spec.shortcut))
    if spec.tip:
        action.setStatusTip(spec.tip)
        action.setToolTip(f"{spec.text.replace('&', '').rstrip('…')} — {spec.tip}")
    if spec.role is not None:
        action.setMenuRole(spec.role)
    if spec.context is not None:
        action.setShortcutContext(spec.context)
    action.setCheckable(checkable)
    if slot is not None:
        action.triggered.connect(lambda _=False, slot=slot: slot())
    window.addAction(action)
    return action


def undo_redo_actions(window: QMainWindow, stack: QUndoStack) -> tuple[QAction, QAction]:
    """Undo and redo of the mask stack (their text names the step)."""
    undo = stack.createUndoAction(window, "&Undo")
    undo.setShortcut(QKeySequence("Ctrl+Z"))
    undo.setObjectName("undoAction")
    redo = stack.createRedoAction(window, "&Redo")
    redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    redo.setObjectName("redoAction")
    window.addActions([undo, redo])
    return undo, redo


def layer_actions(window: QMainWindow, canvas: LayeredCanvas) -> dict[str, QAction]:
    """Show Original / Edited / Result / Masks (Alt+1..4), checked: the canvas' layers."""
    actions = {}
    for layer, key in LAYER_KEYS:
        spec = ActionSpec(f"Show {layer.title()}", f"Alt+{key}", f"layer_{layer}")
        action = make_action(window, spec, checkable=True)
        action.setChecked(True)
        action.toggled.connect(lambda on, layer=layer: canvas.set_layer_visible(layer, on))
        actions[layer] = action
    return actions


def compare_actions(
    window: QMainWindow, set_compare_mode: Callable[[str], object]
) -> tuple[QActionGroup, dict[str, QAction]]:
    """One checkable action per compare mode, exclusive; none is checked yet (the window
    checks "off" once it holds them: checking calls `set_compare_mode`)."""
    group = QActionGroup(window)
    actions = {}
    for mode, text in COMPARE_MODES:
        action = make_action(window, ActionSpec(text, None, f"compare_{mode}"), checkable=True)
        action.toggled.connect(lambda on, mode=mode: on and set_compare_mode(mode))
        group.addAction(action)
        actions[mode] = action
    return group, actions


class ActionHost(Protocol):
    """What the menus and tool bars read of the window: its actions and docks."""

    open_original_action: QAction
    open_edited_action: QAction
    open_project_action: QAction
    save_action: QAction
    save_as_action: QAction
    save_project_action: QAction
    batch_action: QAction
    model_manager_action: QAction
    settings_action: QAction
    quit_action: QAction
    undo_action: QAction
    redo_action: QAction
    fit_action: QAction
    zoom100_action: QAction
    zoom_in_action: QAction
    zoom_out_action: QAction
    restore_action: QAction
    classic_action: QAction
    cancel_action: QAction
    layer_actions: dict[str, QAction]
    compare_actions: dict[str, QAction]
    faces_dock: QDockWidget
    params_dock: QDockWidget
    recent_menu: QMenu  # File ▸ Open Recent (make_recent_menu)

    def show_about(self) -> None: ...


def make_recent_menu(window: QMainWindow) -> QMenu:
    """File ▸ Open Recent, made before the menus: the files controller that fills it is
    built with it, and the actions that build_menus shows are built with the controllers."""
    menu = QMenu("Open &Recent", window)
    menu.setObjectName("recentMenu")
    return menu


@dataclass(frozen=True)
class Menus:
    shortcuts_action: QAction  # Help ▸ Keyboard Shortcuts


def build_menus(window: QMainWindow, host: ActionHost) -> Menus:
    """File, Edit, View, Run and Help in `window`'s menu bar; `host` (the window itself)
    holds the actions they show."""
    w = host
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.open_original_action, w.open_edited_action, w.open_project_action])
    file_menu.addMenu(w.recent_menu)
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
    shortcuts_action = make_action(window, SHORTCUTS, lambda: show_shortcuts(window))
    about = QAction("&About EditedID", window)
    about.triggered.connect(w.show_about)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(shortcuts_action)
    help_menu.addSeparator()
    help_menu.addAction(about)
    return Menus(shortcuts_action)


@dataclass(frozen=True)
class ToolBars:
    main_toolbar: QToolBar
    run_button: QPushButton
    compare_combo: QComboBox
    result_opacity: QSlider
    mask_toolbar: QToolBar | None  # None while the mask tool bar is not installed


def build_toolbars(
    window: QMainWindow,
    host: ActionHost,
    canvas: LayeredCanvas,
    run_restore: Slot,
    set_compare_mode: Callable[[str], object],
) -> ToolBars:
    """The main tool bar (open, run, compare, result opacity, zoom) and the mask tools,
    added to `window`; `host` (the window itself) holds the actions they show."""
    w = host
    main = QToolBar("Main", window)
    main.setObjectName("mainToolBar")
    main.setMovable(False)
    main.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    main.addActions([w.open_original_action, w.open_edited_action])
    main.addSeparator()
    main.addAction(w.classic_action)
    run_button = QPushButton("Restore")
    run_button.setObjectName("runButton")
    run_button.setToolTip("Restore identity with diffusion (Ctrl+R)")
    run_button.clicked.connect(run_restore)
    main.addWidget(run_button)
    main.addSeparator()
    combo = QComboBox()
    combo.setObjectName("compareCombo")
    for mode, text in COMPARE_MODES:
        combo.addItem(text, mode)
    combo.setToolTip("Before/after compare (hold \\ to compare)")
    combo.currentIndexChanged.connect(lambda i: set_compare_mode(combo.itemData(i)))
    main.addWidget(combo)
    main.addWidget(QLabel("  Result opacity "))
    opacity = QSlider(Qt.Orientation.Horizontal)
    opacity.setRange(0, 100)
    opacity.setValue(100)
    opacity.setFixedWidth(110)
    opacity.valueChanged.connect(lambda v: canvas.set_layer_opacity("result", v / 100.0))
    main.addWidget(opacity)
    main.addSeparator()
    main.addActions([w.fit_action, w.zoom100_action])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)

    try:
        from .tool_bar import MaskToolBar
    except ImportError:  # the mask tool bar lands separately; the canvas still paints
        return ToolBars(main, run_button, combo, opacity, None)
    mask_toolbar = MaskToolBar(canvas, window)
    mask_toolbar.setObjectName("maskToolBar")
    window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, mask_toolbar)
    window.addAction(mask_toolbar.swap_target_action)  # X: a window shortcut, no button
    return ToolBars(main, run_button, combo, opacity, mask_toolbar)
