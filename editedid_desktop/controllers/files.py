"""Opening photos: File ▸ Open, drops on the canvas, the recent-files menu.

Opening other photos over hand-painted masks or an unsaved result asks first
(Save / Discard / Cancel). Recent photos are remembered as PAIRS with their roles, so
reopening one never swaps the original and the edited photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox

from engine.errors import InputError

from ..canvas import IMAGE_SUFFIXES
from ..decoding import decode_photo
from ..model.project import PROJECT_SUFFIX
from ..role_notice import RoleNotice
from . import Controller

if TYPE_CHECKING:
    from engine.photo.roles import RoleCheck

    from .host import Document, FilesView, Shell

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"


def guess_roles(paths: list[Path]) -> tuple[Path, Path] | None:
    """(original, edited) from file names like 'x-original.jpg' / 'x_edited.png', or None."""
    if len(paths) != 2:
        return None
    marks = [
        ("orig" in p.stem.lower(), any(w in p.stem.lower() for w in ("edit", "gpt", "flux")))
        for p in paths
    ]
    if marks[0][0] and not marks[1][0] or marks[1][1] and not marks[0][1]:
        return paths[0], paths[1]
    if marks[1][0] and not marks[0][0] or marks[0][1] and not marks[1][1]:
        return paths[1], paths[0]
    return None


def recent_pair_labels(pairs: list[tuple[str, str]]) -> list[str]:
    """Open Recent's labels: "orig.jpg  →  edit.jpg", with the original's folder added
    where two pairs would otherwise read the same (shoots reuse names: IMG_0001.jpg)."""
    names = [f"{Path(o).name}  →  {Path(e).name}" for o, e in pairs]
    return [
        f"{name}  (in {_short_folder(Path(o).parent)})" if names.count(name) > 1 else name
        for name, (o, _) in zip(names, pairs, strict=True)
    ]


def _short_folder(folder: Path) -> str:
    home = Path.home()
    return f"~/{folder.relative_to(home)}" if folder.is_relative_to(home) else str(folder)


class FilesController(Controller):
    """Reads the input photos into the session and shows them."""

    photo_opened = Signal()  # a new photo: the next Save asks for a file again
    analysis_wanted = Signal()  # both photos are there: find and pair their faces
    roles_confirmed = Signal()  # "Keep": the classic preview held back may run
    project_requested = Signal(object)  # a project (its Path) was dropped or picked
    roles_question_changed = Signal(bool)  # roles_in_question, when it changes

    def __init__(self, document: Document, shell: Shell, view: FilesView) -> None:
        super().__init__(document, shell)
        self.view = view
        self.canvas = view.canvas
        self._role_notice: RoleNotice | None = None
        # pairs whose roles the user confirmed with "Keep" (this app session): asked once
        self._roles_confirmed: set[tuple[Path, Path]] = set()
        self._roles_in_question = False

    @property
    def roles_in_question(self) -> bool:
        """The swap-roles notice awaits an answer: no preview is composed until then (it
        would paste the AI face into the real photo; roles_question_changed says so)."""
        return self._roles_in_question

    @roles_in_question.setter
    def roles_in_question(self, value: bool) -> None:
        if value != self._roles_in_question:
            self._roles_in_question = value
            self.roles_question_changed.emit(value)

    def choose_original(self) -> None:
        self.choose_photo("original")

    def choose_edited(self) -> None:
        self.choose_photo("edited")

    def choose_photo(self, kind: str) -> None:
        title = "Open original photo" if kind == "original" else "Open edited photo"
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent, title, self.settings.last_folder("open"), IMAGE_FILTER
        )
        if path and self.confirm_replace():
            self.open_photo(kind, path)

    # -- unsaved work -------------------------------------------------------------------
    def has_unsaved_work(self) -> bool:
        """Hand-painted masks, or a diffusion result not saved in a project (the classic
        preview is remade in a moment: it is no work to lose)."""
        session = self.session
        if session.original is None and session.edited is None:
            return False
        if self.masks.user_masks():
            return True
        return bool(session.dirty and session.result is not None)

    def confirm_replace(self) -> bool:
        """Ask before other photos replace unsaved work; True = go ahead."""
        if not self.has_unsaved_work():
            return True
        box = QMessageBox(self.dialog_parent)
        box.setObjectName("confirmReplaceBox")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Unsaved changes")
        box.setText("Save your painted masks and settings before opening other photos?")
        box.setInformativeText(
            "Opening other photos discards the masks you painted and the current result."
        )
        box.setStandardButtons(
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.view.save_project() is not None
        return answer == QMessageBox.StandardButton.Discard

    def open_photo(self, kind: str, path: str | Path, *, analyze: bool = True) -> bool:
        """Load one input photo; starts the analysis when both are there."""
        from engine.io.images import read_rgb

        path = Path(path)
        self.status(f"Opening {kind} photo {path.name}\u2026")
        try:
            image = decode_photo(path, read_rgb)  # off the UI thread: decoding.py
        except InputError as exc:
            self.status("")
            self.show_error("Cannot open the photo", str(exc))
            return False
        self.session.set_photo(kind, path, image)
        self.role_notice.hide()  # the roles of other photos are checked after analysis
        self.roles_in_question = False
        self.photo_opened.emit()
        canvas = self.canvas
        canvas.set_image(kind, image)
        canvas.set_image("result", None)
        canvas.set_face_boxes([])
        if kind == "edited":
            self.masks.reset((image.shape[1], image.shape[0]))
            canvas.fit()
        elif self.session.edited is None:
            canvas.fit()
        self.settings.set_last_folder("open", path.parent)
        if analyze:  # open_photos and projects remember what they open themselves
            self.remember(path)
        self.status(f"Opened {kind} photo {path.name}", 5000)
        self.state_changed.emit()
        if analyze and self.session.has_photos:
            self.analysis_wanted.emit()
        return True

    def open_photos(
        self,
        original: str | Path,
        edited: str | Path,
        *,
        confirm: bool = True,
        keep_project: bool = False,
    ) -> bool:
        """Open a pair: a new document (the window's title follows it), unless
        `keep_project` (the same pair of an open project, roles swapped)."""
        if confirm and not self.confirm_replace():
            return False
        if not keep_project:
            self.session.project_path = None  # no longer the project's photos
        ok = self.open_photo("original", original, analyze=False)
        ok = ok and self.open_photo("edited", edited, analyze=False)
        if ok:
            self.remember(Path(edited))
            self.analysis_wanted.emit()
        return ok

    # -- which photo is the original (issue 12 D3) -------------------------------------
    @property
    def role_notice(self) -> RoleNotice:
        """The swap-roles warning over the canvas, made on first use."""
        if self._role_notice is None:
            self._role_notice = RoleNotice(self.canvas)
            self._role_notice.swap_requested.connect(self.swap_roles)
            self._role_notice.dismissed.connect(self._confirm_roles)
        return self._role_notice

    def check_roles(self, analysis) -> RoleCheck | None:
        """After an analysis, before any preview: warn (never block) when the photo
        opened as the original looks like the edited one (the analysis' own role check,
        engine.photo.roles); the classic preview then waits for Keep (roles_in_question).
        None when nothing was measured."""
        check = analysis.roles
        if check is None:
            return None
        current = (self.session.original_path, self.session.edited_path)
        self.roles_in_question = check.looks_swapped and current not in self._roles_confirmed
        if self.roles_in_question:
            original = self.session.original_path
            name = original.name if original is not None else "The original"
            self.role_notice.show_message(
                f"<b>Is {name} really the original?</b> Its face is smoother (less fine "
                "grain) than the edited photo's, as AI output usually is. If the photos "
                "were opened the wrong way round, the restore would paste the AI face "
                "into the real photo."
            )
        return check

    def _confirm_roles(self) -> None:
        self._roles_confirmed.add((self.session.original_path, self.session.edited_path))
        self.roles_in_question = False
        self.roles_confirmed.emit()  # the preview held back for the answer

    def swap_roles(self) -> bool:
        """Open the current pair again, each photo in the other role."""
        original, edited = self.session.original_path, self.session.edited_path
        if original is None or edited is None:
            return False
        self.role_notice.hide()
        ok = self.open_photos(edited, original, keep_project=True)
        if ok:
            self.status(f"Swapped: {edited.name} is now the original.", 6000)
        return ok

    def remember(self, path: Path) -> None:
        """Open Recent: the pair with its roles once both photos are there. A photo alone
        is no document to come back to (its folder is remembered for File ▸ Open), and
        never a half-pair in the menu: single entries of the pair's photos go."""
        session = self.session
        if session.has_photos and session.original_path and session.edited_path:
            self.settings.add_recent_pair(session.original_path, session.edited_path)
            self.settings.forget_recent_files(session.original_path, session.edited_path)
            self.fill_recent_menu()

    # -- drops ------------------------------------------------------------------------
    def ask_which_is_original(self, a: Path, b: Path) -> tuple[Path, Path] | None:
        """Ask the user which dropped photo is the original; (original, edited) or None."""
        box = QMessageBox(self.dialog_parent)
        box.setWindowTitle("Which photo is the original?")
        box.setText("Two photos were dropped. Which one shows the client's real face?")
        first = box.addButton(f"{a.name} is the original", QMessageBox.ButtonRole.AcceptRole)
        second = box.addButton(f"{b.name} is the original", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(first)
        box.exec()
        if box.clickedButton() is first:
            return a, b
        if box.clickedButton() is second:
            return b, a
        return None

    def ask_slot_for(self, path: Path) -> str | None:
        """Ask whether one dropped photo replaces the original or the edited photo."""
        box = QMessageBox(self.dialog_parent)
        box.setWindowTitle("Replace which photo?")
        box.setText(f"Use {path.name} as the original or as the edited photo?")
        original = box.addButton("Original", QMessageBox.ButtonRole.AcceptRole)
        edited = box.addButton("Edited", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is original:
            return "original"
        if box.clickedButton() is edited:
            return "edited"
        return None

    def _slot_for_one(self, path: Path) -> str | None:
        """Where one more photo goes: the empty slot, else the user says."""
        if self.session.original is None:
            return "original"
        if self.session.edited is None:
            return "edited"
        return self.ask_slot_for(path)

    def open_dropped(self, paths: list[str]) -> None:
        """Drop: two photos = original + edited (asked when the names do not say)."""
        files = [Path(p) for p in paths]
        projects = [p for p in files if p.suffix == PROJECT_SUFFIX]
        if projects:
            self.project_requested.emit(projects[0])
            return
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if files and not self.confirm_replace():
            return
        if len(files) >= 2:
            if len(files) > 2:
                self.status("Only the first two dropped photos are used.", 6000)
            roles = guess_roles(files[:2]) or self.ask_which_is_original(files[0], files[1])
            if roles is not None:
                self.open_photos(*roles, confirm=False)
        elif len(files) == 1:
            slot = self._slot_for_one(files[0])
            if slot:
                self.open_photo(slot, files[0])

    # -- recent files -------------------------------------------------------------------
    def fill_recent_menu(self) -> None:
        """Pairs (original → edited) and projects; a pair whose photo is gone is shown,
        disabled, as missing. Single photos (half-pairs of older versions) are not."""
        menu = self.view.recent_menu
        menu.clear()
        pairs = self.settings.recent_pairs
        for (original, edited), label in zip(pairs, recent_pair_labels(pairs), strict=True):
            missing = [p for p in (original, edited) if not Path(p).is_file()]
            action = menu.addAction(f"{label}  (missing)" if missing else label)
            tip = f"Original: {original}\nEdited: {edited}"
            if missing:
                tip += "\nNot found: " + ", ".join(missing)
            action.setToolTip(tip)
            action.setStatusTip(tip.replace("\n", "; "))
            action.setEnabled(not missing)
            action.triggered.connect(
                lambda _=False, o=original, e=edited: self.open_recent_pair(o, e)
            )
        recent = [p for p in self.settings.recent_files if Path(p).suffix == PROJECT_SUFFIX]
        if pairs and recent:
            menu.addSeparator()
        for path in recent:
            action = menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_recent(p))
        if recent or pairs:
            menu.addSeparator()
            clear = menu.addAction("Clear Recent Files")
            clear.triggered.connect(self.clear_recent)
        menu.setEnabled(bool(recent or pairs))

    def clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self.fill_recent_menu()

    def open_recent(self, path: str) -> None:
        """Reopen a recent project (the only single files Open Recent lists)."""
        self.project_requested.emit(Path(path))

    def open_recent_pair(self, original: str, edited: str) -> None:
        """Reopen a recent pair in the roles it had."""
        self.open_photos(original, edited)
