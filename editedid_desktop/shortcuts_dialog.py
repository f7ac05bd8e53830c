"""Help ▸ Keyboard Shortcuts: every key the window answers to, read from its actions.

Generated, never written by hand: the rows are the window's own QActions (the actions
table in `actions.py`, undo/redo, the layer toggles, the mask tool bar, the canvas keys
of `canvas.shortcuts`), so a shortcut added, changed or removed there is listed as it
is. Grouped by the menu that holds an action; the rest under the tool bar or widget they
belong to ("Canvas" for the keys that work anywhere in the window).
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

UNDO_STACK_ACTIONS = {"undoAction": "Undo", "redoAction": "Redo"}  # their text names the step


def _keys(action: QAction) -> str:
    native = QKeySequence.SequenceFormat.NativeText
    return ", ".join(s.toString(native) for s in action.shortcuts() if not s.isEmpty())


def _name(action: QAction) -> str:
    if action.objectName() in UNDO_STACK_ACTIONS:
        return UNDO_STACK_ACTIONS[action.objectName()]
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…")


def _menu_actions(menu: QMenu) -> list[QAction]:
    found = []
    for action in menu.actions():
        found += _menu_actions(action.menu()) if action.menu() else [action]
    return found


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(group, action, keys) for every action of `window` that has a shortcut, each once:
    first the menus' in menu order, then the tool bars', then the window-wide rest."""
    groups: list[tuple[str, list[QAction]]] = []
    for entry in window.menuBar().actions():
        if entry.menu() is not None:
            groups.append((entry.text().replace("&", ""), _menu_actions(entry.menu())))
    for bar in window.findChildren(QWidget):
        if bar.inherits("QToolBar"):
            groups.append((bar.windowTitle() or "Tool bar", list(bar.actions())))
    groups.append(("Canvas", window.findChildren(QAction)))
    rows, seen = [], set()
    for group, actions in groups:
        for action in actions:
            keys = _keys(action)
            if keys and id(action) not in seen:
                seen.add(id(action))
                rows.append((group, _name(action), keys))
    return rows


class ShortcutsDialog(QDialog):
    """The rows of `shortcut_rows`, grouped, in a window beside the main window."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard Shortcuts")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(("Action", "Keys"))
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        parents: dict[str, QTreeWidgetItem] = {}
        for group, name, keys in shortcut_rows(window):
            if group not in parents:
                parents[group] = QTreeWidgetItem(self.tree, [group])
                parents[group].setFirstColumnSpanned(True)
                font = parents[group].font(0)
                font.setBold(True)
                parents[group].setFont(0, font)
            QTreeWidgetItem(parents[group], [name, keys])
        self.tree.expandAll()
        note = QLabel("Canvas keys work anywhere in the window except while typing in a field.")
        note.setObjectName("mutedLabel")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(460, 560)

    def rows(self) -> list[tuple[str, str, str]]:
        """What the dialog shows, as (group, action, keys) (tests)."""
        shown = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            for c in range(group.childCount()):
                item = group.child(c)
                shown.append((group.text(0), item.text(0), item.text(1)))
        return shown


def show_shortcuts(window: QMainWindow) -> ShortcutsDialog:
    """Open (or raise) the window's keyboard reference."""
    dialog = getattr(window, "shortcuts_dialog", None)
    if dialog is None:
        dialog = window.shortcuts_dialog = ShortcutsDialog(window)
    dialog.show()
    dialog.raise_()
    return dialog
