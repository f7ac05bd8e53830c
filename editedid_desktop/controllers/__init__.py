"""What the main window's actions do, one controller per concern.

files     open photos (dialog, drop, recent files)
projects  open and save .editedid projects
faces     the engine's analysis: faces, their auto and saved masks, selection
run       classic previews and diffusion restores on the worker: progress, cancel
export    save the result and its sidecar

Each controller is a QObject child of the window (so worker signals connected to its
methods are queued into the UI thread) and reaches the window's model and widgets
through it; the window itself only builds and wires (main_window.MainWindow). What a
controller may use of the window is `host.WindowHost`: the controllers never import
main_window (which imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMainWindow

if TYPE_CHECKING:
    from ..canvas import LayeredCanvas
    from ..mask_document import MaskDocument
    from ..model.session import Session
    from ..settings import Settings
    from ..worker import EngineHost
    from .host import WindowHost


class Controller(QObject):
    """Base: the window and short names for what every controller touches."""

    def __init__(self, window: QMainWindow) -> None:
        """`window`: the main window, a WindowHost (its Qt parent, and the parent of the
        controller's dialogs)."""
        super().__init__(window)
        self.window = cast("WindowHost", window)

    @property
    def session(self) -> Session:
        return self.window.session

    @property
    def masks(self) -> MaskDocument:
        return self.window.masks

    @property
    def canvas(self) -> LayeredCanvas:
        return self.window.canvas

    @property
    def settings(self) -> Settings:
        return self.window.settings

    @property
    def engine(self) -> EngineHost:
        return self.window.engine

    def status(self, text: str, timeout_ms: int = 0) -> None:
        self.window.statusBar().showMessage(text, timeout_ms)
