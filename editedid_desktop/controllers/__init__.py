"""What the main window's actions do, one controller per concern.

files     open photos (dialog, drop, recent files)
projects  open and save .editedid projects
faces     the engine's analysis: faces, their auto and saved masks, selection
run       classic previews and diffusion restores on the worker: progress, cancel
export    save the result and its sidecar

A controller never sees the window nor another controller. It is built with the
`host.Document` it works on, the window's `host.Shell` (its Qt parent, the parent of its
dialogs, the status line, message boxes) and, where it drives widgets, its own view
(`host.FilesView`, ...). What it has to tell the window or another controller is a
signal of its own (`state_changed`: what the window enables may have changed), which
the window connects (main_window.MainWindow._connect_controllers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from ..mask_document import MaskDocument
    from ..model.session import Session
    from ..settings import Settings
    from ..worker import EngineHost
    from .host import Document, Shell


class Controller(QObject):
    """Base: the document, the shell and short names for what every controller touches."""

    state_changed = Signal()  # the window's actions may need enabling or disabling

    def __init__(self, document: Document, shell: Shell) -> None:
        super().__init__(shell.parent)
        self.document = document
        self.shell = shell

    @property
    def session(self) -> Session:
        return self.document.session

    @property
    def masks(self) -> MaskDocument:
        return self.document.masks

    @property
    def settings(self) -> Settings:
        return self.document.settings

    @property
    def engine(self) -> EngineHost:
        return self.document.engine

    @property
    def dialog_parent(self) -> QWidget:
        return self.shell.parent

    def status(self, text: str, timeout_ms: int = 0) -> None:
        self.shell.status_bar.showMessage(text, timeout_ms)

    def show_error(self, title: str, message: str) -> None:
        self.shell.show_error(title, message)
