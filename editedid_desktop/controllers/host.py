"""What the controllers use of the main window: the `WindowHost` protocol.

`main_window.MainWindow` satisfies it. It is declared here, beside the controllers, so that
they never import main_window, which imports them (that was an import circle, issue 21).
The other controllers a controller calls through the window are protocols too
(`FilesPort`, ...), for the same reason: each lists only what is called today.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QLabel, QMenu, QProgressBar, QStatusBar

    from engine.photo.roles import RoleCheck

    from ..canvas import LayeredCanvas
    from ..face_panel import FaceListPanel
    from ..mask_document import MaskDocument
    from ..model.masks import MaskPairs
    from ..model.session import Session
    from ..params_panel import ParamsPanel
    from ..settings import Settings
    from ..worker import EngineHost


class FilesPort(Protocol):
    """controllers.files.FilesController, as the other controllers call it."""

    roles_in_question: bool

    def open_photo(self, kind: str, path: str | Path, *, analyze: bool = True) -> bool: ...

    def check_roles(self, analysis: Any) -> RoleCheck | None: ...

    def fill_recent_menu(self) -> None: ...


class ProjectsPort(Protocol):
    """controllers.projects.ProjectsController, as the other controllers call it."""

    def open(self, path: Path) -> bool: ...

    def save(self) -> Path | None: ...


class FacesPort(Protocol):
    """controllers.faces.FacesController, as the other controllers call it."""

    def start_analysis(self) -> None: ...

    def expect_saved_masks(self, masks: MaskPairs) -> None: ...

    def on_analyzed(self, analysis: Any) -> None: ...


class RunPort(Protocol):
    """controllers.run.RunController, as the other controllers call it."""

    def run_classic(self) -> None: ...

    def schedule_classic(self) -> None: ...


class ExportPort(Protocol):
    """controllers.export.ExportController, as the other controllers call it."""

    def forget_result_path(self) -> None: ...


class WindowHost(Protocol):
    """The window's model, widgets, controllers and methods the controllers use
    (read-only: a controller never replaces any of them)."""

    @property
    def session(self) -> Session: ...
    @property
    def masks(self) -> MaskDocument: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> EngineHost: ...
    @property
    def canvas(self) -> LayeredCanvas: ...
    @property
    def face_list(self) -> FaceListPanel: ...
    @property
    def params_panel(self) -> ParamsPanel: ...
    @property
    def stage_label(self) -> QLabel: ...
    @property
    def progress_bar(self) -> QProgressBar: ...
    @property
    def recent_menu(self) -> QMenu: ...
    @property
    def layer_actions(self) -> dict[str, QAction]: ...
    @property
    def files(self) -> FilesPort: ...
    @property
    def projects(self) -> ProjectsPort: ...
    @property
    def faces(self) -> FacesPort: ...
    @property
    def runner(self) -> RunPort: ...
    @property
    def exporter(self) -> ExportPort: ...

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 - Qt's name

    def update_actions(self, *_: object) -> None: ...

    def update_status_labels(self) -> None: ...

    def set_model_state(self, state: str) -> None: ...

    def show_error(self, title: str, message: str) -> None: ...
