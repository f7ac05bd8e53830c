"""What a controller is given, instead of the window: the `Document` it works on, the
`Shell` (the parent of its dialogs, the status line, message boxes) and, for a controller
that drives widgets, its own view (`FilesView`, `FacesView`, `RunView`: the few widgets
and callables it really uses).

The window (main_window.MainWindow) builds them and hands each controller its own; what
one controller tells another is a Qt signal of its own, which the window connects in one
place (MainWindow._connect_controllers). Declared here, beside the controllers, so that
they never import main_window, which imports them (that was an import circle, issue 21).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import (
        QLabel,
        QMenu,
        QProgressBar,
        QPushButton,
        QStatusBar,
        QWidget,
    )

    from ..canvas import LayeredCanvas
    from ..face_panel import FaceListPanel
    from ..mask_document import MaskDocument
    from ..model.session import Session
    from ..params_panel import ParamsPanel
    from ..settings import Settings
    from ..worker import EngineHost


@dataclass(frozen=True)
class Document:
    """The document every controller works on: the session, its masks, the app's
    settings and the engine that analyses and restores it."""

    session: Session
    masks: MaskDocument
    settings: Settings
    engine: EngineHost


@dataclass(frozen=True)
class Shell:
    """What every controller uses of its window: `parent` owns the controller (so worker
    signals connected to its methods are queued into the UI thread) and parents its
    dialogs; the status bar shows its messages; `show_error` its problems."""

    parent: QWidget
    status_bar: QStatusBar
    show_error: Callable[[str, str], None]


@dataclass(frozen=True)
class FilesView:
    """What the files controller drives: the canvas shows the photos, `recent_menu` is
    File ▸ Open Recent; `save_project` saves the project when the user answers Save before
    other photos replace unsaved work (the path written, None when not saved)."""

    canvas: LayeredCanvas
    recent_menu: QMenu
    save_project: Callable[[], Path | None]


@dataclass(frozen=True)
class ProjectsView:
    """What the projects controller uses to open a project's photos: `open_photo(kind,
    path, analyze=False)`, False when the photo did not open (the user was told)."""

    open_photo: Callable[..., bool]


@dataclass(frozen=True)
class FacesView:
    """What the faces controller drives: the face boxes and the active mask on the
    canvas, the selected face in the Faces panel."""

    canvas: LayeredCanvas
    face_list: FaceListPanel


@dataclass(frozen=True)
class RunView:
    """What the run controller drives: previews and results on the canvas, the Advanced
    panel's values (checked before a restore), the status bar's progress and Cancel."""

    canvas: LayeredCanvas
    params_panel: ParamsPanel
    stage_label: QLabel
    progress_bar: QProgressBar
    cancel_button: QPushButton
