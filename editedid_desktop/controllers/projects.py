"""Opening and saving `.editedid` projects (the file format is model.project's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog

from engine.errors import EditedIDError

from ..model.project import PROJECT_SUFFIX, ProjectData, load_project, save_project
from . import Controller

if TYPE_CHECKING:
    from .host import Document, ProjectsView, Shell

PROJECT_FILTER = f"EditedID project (*{PROJECT_SUFFIX})"


class ProjectsController(Controller):
    """The session (with the user's masks) to and from a project file."""

    masks_loaded = Signal(object)  # a project's saved masks, for after its analysis
    analysis_wanted = Signal()  # its photos are open: find and pair their faces
    recent_changed = Signal()  # a project joined the recent files

    def __init__(self, document: Document, shell: Shell, view: ProjectsView) -> None:
        super().__init__(document, shell)
        self.view = view

    def save(self) -> Path | None:
        """Save to the session's project file, asking for one the first time."""
        path = self.session.project_path
        if path is None:
            stem = self.session.edited_path.stem if self.session.edited_path else "untitled"
            start = Path(self.settings.last_folder("project")) / (stem + PROJECT_SUFFIX)
            chosen, _ = QFileDialog.getSaveFileName(
                self.dialog_parent, "Save project", str(start), PROJECT_FILTER
            )
            if not chosen:
                return None
            path = Path(chosen)
        return self.save_to(path)

    def save_to(self, path: Path) -> Path | None:
        try:
            written = save_project(path, ProjectData.of(self.session, self.masks.user_masks()))
        except (EditedIDError, OSError) as exc:
            self.show_error("Cannot save the project", str(exc))
            return None
        self.session.project_path = written
        self.session.dirty = False
        self._remember(written)
        self.status(f"Project saved to {written}", 8000)
        return written

    def choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent, "Open project", self.settings.last_folder("project"), PROJECT_FILTER
        )
        if path:
            self.open(Path(path))

    def open(self, path: Path) -> bool:
        """Open a project: its photos, parameters, face settings, then (after the
        analysis) its saved masks."""
        try:
            data = load_project(path)
        except (EditedIDError, OSError) as exc:  # every error of ours, and the disk's
            message = str(exc) or type(exc).__name__
            if str(path) not in message:
                message = f"{path}: {message}"
            self.show_error("Cannot open the project", message)
            return False
        if data.original_path is None or data.edited_path is None:
            self.show_error("Cannot open the project", f"{path}: it names no input photos.")
            return False
        session, open_photo = self.session, self.view.open_photo
        session.clear()
        session.params = data.params
        if not (
            open_photo("original", data.original_path, analyze=False)
            and open_photo("edited", data.edited_path, analyze=False)
        ):
            return False
        session.face_settings = dict(data.face_settings)
        self.masks_loaded.emit(data.masks)
        session.project_path = Path(path)
        session.dirty = False
        self._remember(Path(path), folder=False)
        self.analysis_wanted.emit()
        return True

    def _remember(self, path: Path, folder: bool = True) -> None:
        if folder:
            self.settings.set_last_folder("project", path.parent)
        self.settings.add_recent_file(path)
        self.recent_changed.emit()
