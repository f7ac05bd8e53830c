"""The main window: a shell that builds the parts and wires them together.

The document is Qt-free (`model.session.Session`, the masks' `model.masks.MaskModel`
behind `mask_document.MaskDocument`); the `EngineHost` runs every engine call on its
worker thread; the canvas and the docks display the model and forward edits to it
(binder.bind); what the actions do lives in `controllers/` (files, projects, faces,
run, export) and the actions themselves in `actions.py`. The window keeps only its own
state: title, which actions are enabled, status labels, the first-run banner, dialogs.
Nothing slow runs on the UI thread except reading the two input photos and writing
the saved result.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import __version__
from . import actions as specs
from .actions import (
    build_menus,
    build_toolbars,
    compare_actions,
    layer_actions,
    make_action,
    make_recent_menu,
    undo_redo_actions,
)
from .binder import connect
from .canvas import LayeredCanvas
from .canvas.shortcuts import CanvasShortcuts
from .controllers.export import ExportController
from .controllers.faces import FacesController
from .controllers.files import FilesController
from .controllers.host import Document, FacesView, FilesView, ProjectsView, RunView, Shell
from .controllers.projects import ProjectsController
from .controllers.run import RunController
from .face_panel import FaceListPanel
from .mask_document import MaskDocument
from .model.session import Session
from .model_banner import ModelBanner
from .model_manager import ModelManagerDialog, check_model_source
from .params_panel import ParamsPanel
from .settings import Settings
from .theme import STYLE_SHEET, app_icon
from .watchdog import install_watchdog
from .worker import WARM_UP_MODULES, EngineHost

APP_NAME = "EditedID Desktop"
WARM_UP_GRACE_MS = 1000  # start loading the engine by then even if the window never painted


def engine_loaded() -> bool:
    """True when the modules the worker's warm-up imports are already in this process."""
    return all(m in sys.modules for _, modules in WARM_UP_MODULES for m in modules)


class MainWindow(QMainWindow):
    """EditedID's editor window."""

    def __init__(
        self,
        settings: Settings | None = None,
        engine: EngineHost | None = None,
        parent: QWidget | None = None,
        *,
        defer_engine: bool = False,
    ) -> None:
        """defer_engine: paint first and load the engine on the worker meanwhile (the app's
        start, see start_engine); False loads what the first-run check needs at once."""
        super().__init__(parent)
        self.defer_engine = defer_engine
        self.settings = settings if settings is not None else Settings()
        self.session = Session()
        self.masks = MaskDocument(self)
        # Configured by _on_engine_ready: the settings' model paths import the engine (torch).
        self.engine = engine or EngineHost(parent=self)
        self._owns_engine = engine is None
        self.model_state = "not loaded"
        self.error_box: QMessageBox | None = None
        self._default_tips: dict[int, str] = {}  # gate_restore's tool tips while allowed

        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setStyleSheet(STYLE_SHEET)
        self.setObjectName("mainWindow")
        self.setDockNestingEnabled(True)
        self.resize(1440, 900)

        # The widgets the controllers drive first, then the controllers, then the actions
        # that call them.
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self.recent_menu = make_recent_menu(self)
        self._build_controllers()
        self._build_actions()
        self._build_bars()
        self.watchdog = install_watchdog(self)  # "the engine has not answered for N s"
        self._connect()
        self.files.fill_recent_menu()
        self._restore_window()
        self.update_actions()
        self.update_status_labels()
        self.start_engine()

    # ================================================================ construction
    def _build_controllers(self) -> None:
        """One controller per concern, each given the document, this window's shell and
        its own view; _connect wires their signals."""
        document = Document(self.session, self.masks, self.settings, self.engine)
        shell = Shell(self, self.statusBar(), self.show_error)
        # open_photo: the window's entry point, which the files controller (built next,
        # with the projects' save) serves.
        self.projects = ProjectsController(document, shell, ProjectsView(self.open_photo))
        self.files = FilesController(
            document, shell, FilesView(self.canvas, self.recent_menu, self.projects.save)
        )
        self.faces = FacesController(document, shell, FacesView(self.canvas, self.face_list))
        self.runner = RunController(
            document,
            shell,
            RunView(
                self.canvas,
                self.params_panel,
                self.stage_label,
                self.progress_bar,
                self.cancel_button,
            ),
        )
        self.exporter = ExportController(document, shell)

    def _build_central(self) -> None:
        self.canvas = LayeredCanvas()
        self.canvas.set_mask_document(self.masks)
        self.banner = ModelBanner()
        self.banner.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self._banner_row = QWidget()
        banner_layout = QVBoxLayout(self._banner_row)
        banner_layout.setContentsMargins(8, 8, 8, 0)
        banner_layout.addWidget(self.banner)
        layout.addWidget(self._banner_row)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        """Faces and Advanced share one column of tabs (the photo keeps the width, as in
        Lightroom); Advanced starts closed (View ▸ Advanced opens it as a tab)."""
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.face_list = FaceListPanel(self.session)
        self.faces_dock = self._dock("Faces", "facesDock", self.face_list, right)
        self.faces_dock.setMinimumWidth(300)
        self.params_panel = ParamsPanel(self.session)
        self.params_dock = self._dock("Advanced", "advancedDock", self.params_panel, right)
        self.params_dock.setMinimumWidth(280)
        self.tabifyDockWidget(self.faces_dock, self.params_dock)
        self.params_dock.hide()
        self.faces_dock.raise_()

    def _build_actions(self) -> None:
        """The window's actions (actions.py has their texts and keys), each calling its
        slot; undo/redo of the mask stack; layer and compare toggles; canvas keys."""
        files, projects, exporter, runner, canvas = (
            self.files, self.projects, self.exporter, self.runner, self.canvas
        )  # fmt: skip
        self.open_original_action = make_action(self, specs.OPEN_ORIGINAL, files.choose_original)
        self.open_edited_action = make_action(self, specs.OPEN_EDITED, files.choose_edited)
        self.open_project_action = make_action(self, specs.OPEN_PROJECT, projects.choose)
        self.save_action = make_action(self, specs.SAVE, exporter.save_result)
        self.save_as_action = make_action(self, specs.SAVE_AS, exporter.save_result_as)
        self.save_project_action = make_action(self, specs.SAVE_PROJECT, projects.save)
        self.batch_action = make_action(self, specs.BATCH, self.open_batch)
        self.model_manager_action = make_action(self, specs.MODEL_MANAGER, self.open_model_manager)
        self.settings_action = make_action(self, specs.SETTINGS, self.open_settings)
        self.quit_action = make_action(self, specs.QUIT, self.close)
        self.fit_action = make_action(self, specs.FIT, canvas.fit)
        self.zoom100_action = make_action(self, specs.ZOOM_100, canvas.zoom_100)
        self.zoom_in_action = make_action(self, specs.ZOOM_IN, canvas.zoom_in)
        self.zoom_out_action = make_action(self, specs.ZOOM_OUT, canvas.zoom_out)
        self.restore_action = make_action(self, specs.RESTORE, runner.run_restore)
        self.classic_action = make_action(self, specs.CLASSIC, runner.run_classic)
        self.cancel_action = make_action(self, specs.CANCEL, runner.cancel)
        self.undo_action, self.redo_action = undo_redo_actions(self, self.masks.undo_stack)
        self.layer_actions = layer_actions(self, canvas)
        self.compare_group, self.compare_actions = compare_actions(self, self.set_compare_mode)
        self.compare_actions["off"].setChecked(True)
        # [ ] Shift+[ ] Space \ anywhere in the window, never while typing.
        self.canvas_shortcuts = CanvasShortcuts(canvas, self)

    def _build_bars(self) -> None:
        self.shortcuts_action = build_menus(self, self).shortcuts_action
        bars = build_toolbars(
            self, self, self.canvas, self.runner.run_restore, self.set_compare_mode
        )
        self.main_toolbar, self.mask_toolbar = bars.main_toolbar, bars.mask_toolbar
        self.run_button, self.compare_combo = bars.run_button, bars.compare_combo
        self.result_opacity = bars.result_opacity

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.stage_label = QLabel()
        self.stage_label.setObjectName("stageLabel")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setFixedWidth(180)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop the run (Esc)")
        self.device_label = QLabel()
        self.model_label = QLabel()
        self.face_label = QLabel()
        self.zoom_label = QLabel("100 %")
        for widget in (self.stage_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(widget)
            widget.hide()
        # While start_engine loads the heavy modules (hidden once they are loaded).
        self.loading_label = QLabel("Loading the engine (torch, diffusers, face models)…")
        self.loading_label.setObjectName("loadingLabel")
        self.loading_bar = QProgressBar()
        self.loading_bar.setRange(0, 0)  # busy: the imports cannot say how far they are
        self.loading_bar.setFixedWidth(120)
        for widget in (self.loading_label, self.loading_bar):
            bar.addPermanentWidget(widget)
            widget.hide()
        for widget in (self.device_label, self.model_label, self.face_label, self.zoom_label):
            bar.addPermanentWidget(widget)
        bar.showMessage("Open an original and an edited photo to start.")

    def _connect(self) -> None:
        s = self.session
        for event in (s.dirty_changed, s.edited_path_changed, s.project_path_changed):
            connect(event, self.update_title, self)
        connect(s.face_changed, self.faces.on_face_changed, self)
        connect(s.params_changed, self.update_actions, self)
        self.face_list.face_selected.connect(self.faces.on_face_selected)
        self.face_list.pairing_changed.connect(self.faces.change_pairing)
        self.canvas.face_clicked.connect(self.face_list.select)
        self.canvas.files_dropped.connect(self.files.open_dropped)
        self.canvas.paint_refused.connect(self._on_paint_refused)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.masks.changed.connect(self.faces.on_mask_changed)
        self.banner.open_manager.connect(self.open_model_manager)
        self.banner.dismissed.connect(self.dismiss_banner)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self._connect_controllers()
        self.runner.connect_worker()

    def _connect_controllers(self) -> None:
        """What one controller tells another, and the window, in one place."""
        files = self.files
        files.state_changed.connect(self.update_actions)
        files.photo_opened.connect(self.exporter.forget_result_path)
        files.analysis_wanted.connect(self.faces.start_analysis)
        files.roles_confirmed.connect(self.runner.run_classic)
        files.project_requested.connect(self.projects.open)
        projects = self.projects
        projects.masks_loaded.connect(self.faces.expect_saved_masks)
        projects.analysis_wanted.connect(self.faces.start_analysis)
        projects.recent_changed.connect(files.fill_recent_menu)
        faces = self.faces
        faces.state_changed.connect(self.update_actions)
        faces.analysis_shown.connect(self._on_analysis_shown)
        faces.preview_stale.connect(self.runner.schedule_classic)
        self.engine.worker.analyzed.connect(faces.on_analyzed)  # queued: a UI-thread object
        runner = self.runner
        runner.state_changed.connect(self.update_actions)
        runner.model_state_changed.connect(self.set_model_state)
        runner.restored.connect(self._on_restored)
        files.roles_question_changed.connect(runner.hold_preview)

    def _on_restored(self, _result: object) -> None:
        self.layer_actions["result"].setChecked(True)

    def _on_analysis_shown(self, analysis: object) -> None:
        """Labels and actions for the new faces; then, in this order, the roles check
        (which may hold the preview back) and the classic preview."""
        self.update_status_labels()
        self.update_actions()
        self.files.check_roles(analysis)
        self.runner.run_classic()

    def _on_paint_refused(self, selected: int, other: int) -> None:
        self.statusBar().showMessage(
            f"Face {selected + 1} is selected: nothing painted on Face {other + 1}. "
            f"Select Face {other + 1} (V and click its box, or in the Faces panel) to paint it.",
            8000,
        )

    # ================================================================ entry points
    def open_photo(self, kind: str, path: str | Path, *, analyze: bool = True) -> bool:
        return self.files.open_photo(kind, path, analyze=analyze)

    def open_photos(self, original: str | Path, edited: str | Path) -> bool:
        return self.files.open_photos(original, edited)

    def open_project(self, path: Path) -> bool:
        return self.projects.open(path)

    # ================================================================ window state
    def _restore_window(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

    def update_title(self, *_: object) -> None:
        name = self.session.edited_path.name if self.session.edited_path else ""
        if self.session.project_path is not None:
            name = self.session.project_path.name
        # "[*]": Qt shows "name* — EditedID Desktop" while there is unsaved work (the
        # asterisk Photoshop users know; macOS marks the close button instead).
        self.setWindowTitle(f"{name}[*] — {APP_NAME}" if name else APP_NAME)
        self.setWindowModified(bool(self.session.dirty and name))

    def update_actions(self, *_: object) -> None:
        running = self.engine.pending("restore") > 0
        has_analysis = self.session.analysis is not None
        self.restore_action.setEnabled(has_analysis and not running)
        self.run_button.setEnabled(has_analysis and not running)
        self.classic_action.setEnabled(has_analysis)
        has_result = self.session.best_result is not None
        self.save_action.setEnabled(has_result)
        self.save_as_action.setEnabled(has_result)
        self.save_project_action.setEnabled(self.session.has_photos)
        self.cancel_action.setEnabled(self.engine.busy)
        self.gate_restore()  # last: invalid Advanced values keep Restore off (D5)

    def gate_restore(self) -> None:
        """Restore (menu, toolbar, Run button) off, with the reason, while the Advanced
        values are invalid: a run would otherwise use older values than those shown."""
        reason = self.runner.restore_blocked_reason()
        for widget in (self.restore_action, self.run_button):
            default = self._default_tips.setdefault(id(widget), widget.toolTip())
            if reason:
                widget.setEnabled(False)
            widget.setToolTip(reason or default)

    def set_model_state(self, state: str) -> None:
        self.model_state = state
        self.update_status_labels()

    def update_status_labels(self) -> None:
        device = self.settings.device
        try:
            # start_engine imports torch off the UI thread. "torch" in sys.modules is not
            # enough: it is there from the first line of its import, and `import torch`
            # here would wait on the import lock until the worker's import ends (a frozen
            # window for seconds, caught by tests/user_paths: issue 20).
            if "torch" not in sys.modules or not getattr(self, "engine_ready", False):
                raise LookupError
            import torch

            gpu = torch.cuda.is_available()
            if device == "cpu" or (device == "auto" and not gpu):
                device_text = "CPU"
            else:
                device_text = f"GPU: {torch.cuda.get_device_name(0)}" if gpu else "GPU (missing)"
        except LookupError:
            device_text = f"{device} (checking…)"
        except Exception:  # noqa: BLE001
            device_text = device
        self.device_label.setText(f"Device: {device_text}")
        source = self.settings.model_source
        short = Path(source).name if ("/" in source and Path(source).exists()) else source
        self.model_label.setText(f"Model: {short} ({self.model_state})")
        self.model_label.setToolTip(source)
        backend = self.settings.face_backend
        if self.session.analysis is not None:
            backend = self.session.analysis.backend
        self.face_label.setText(f"Faces: {backend}")

    def show_error(self, title: str, message: str) -> None:
        """A window-modal message box that does not block the event loop."""
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _: setattr(self, "error_box", None))
        self.error_box = box
        box.open()
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0]}", 10000)

    def set_compare_mode(self, mode: str) -> None:
        self.canvas.set_compare_mode(mode)
        self.compare_actions[mode].setChecked(True)
        combo = getattr(self, "compare_combo", None)
        index = combo.findData(mode) if combo is not None else -1
        if combo is not None and combo.currentIndex() != index:
            combo.setCurrentIndex(index)

    # ================================================================ start-up
    def start_engine(self) -> None:
        """Load torch, diffusers, the engine and the face models on the worker thread, so
        the window paints at once (they take 5-25 s on a cold disk); a note in the status
        bar says so meanwhile. Photos opened meanwhile are analysed once they are loaded."""
        self.engine_ready = False
        self.engine.worker.warmed_up.connect(self._on_engine_ready)
        if not self.defer_engine or engine_loaded():  # nothing to wait for
            self._on_engine_ready("")
            return
        self.loading_label.show()
        self.loading_bar.show()
        # Start once the window has painted: the imports hold the GIL for long stretches
        # (loading libtorch), which would hold back the first paint. The timer covers a
        # window that is never shown.
        self._warm_up_started = False
        self.installEventFilter(self)
        QTimer.singleShot(WARM_UP_GRACE_MS, self._start_warm_up)

    def _start_warm_up(self) -> None:
        if not self._warm_up_started:
            self._warm_up_started = True
            self.removeEventFilter(self)
            self.engine.warm_up()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self and event.type() == QEvent.Type.Paint:
            QTimer.singleShot(0, self._start_warm_up)  # after this paint has reached the screen
        return super().eventFilter(watched, event)

    def _on_engine_ready(self, problem: str) -> None:
        if self.engine_ready:
            return
        self.engine_ready = True
        self.engine.configure(self.settings.model_spec(), self.settings.face_config())
        self.loading_label.hide()
        self.loading_bar.hide()
        self.check_model_installed()
        if problem:  # the first analysis or restore reports it in full
            self.statusBar().showMessage(f"The engine did not load: {problem}", 15000)
        elif not self.session.has_photos:
            self.statusBar().showMessage("Open an original and an edited photo to start.")

    # ================================================================ first run
    def check_model_installed(self) -> bool:
        """Show the first-run banner when the configured SD model is not on disk."""
        ok, message = check_model_source(
            self.settings.model_source, str(self.settings.resolved_models_dir())
        )
        if not ok:
            self.model_state = "not installed"
        elif self.model_state == "not installed":
            self.model_state = "not loaded"
        show = not ok and not self.settings.model_banner_dismissed
        if show:
            self.banner.describe()
        self.banner.setVisible(show)
        self._banner_row.setVisible(show)
        self.banner.setToolTip(message)
        self.update_status_labels()
        return ok

    def dismiss_banner(self) -> None:
        self.settings.model_banner_dismissed = True
        self.banner.hide()
        self._banner_row.hide()
        self.statusBar().showMessage(
            "Classic mode: the preview blends the original face in without diffusion. "
            "File ▸ Model Manager installs the diffusion model.",
            10000,
        )

    # ================================================================ dialogs
    def open_model_manager(self) -> ModelManagerDialog:
        dialog = ModelManagerDialog(self.settings, self)
        dialog.settings_applied.connect(self._on_settings_applied)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.model_manager = dialog
        return dialog

    def _on_settings_applied(self) -> None:
        self.engine.configure(self.settings.model_spec(), self.settings.face_config())
        self.model_state = "not loaded"
        self.check_model_installed()

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self.files.fill_recent_menu)
        dialog.accepted.connect(self.check_model_installed)
        dialog.open()
        self.settings_dialog = dialog

    def open_batch(self) -> None:
        try:
            from .batch_dialog import BatchDialog
        except ImportError as exc:
            self.show_error("Batch mode unavailable", f"The batch dialog could not load: {exc}")
            return
        dialog = BatchDialog(
            params_provider=lambda: self.session.params,
            engine=self.engine.runtime,
            parent=self,
            backend=self.settings.face_backend,
            strip_location=self.settings.strip_location,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.batch_dialog = dialog

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<h3>{APP_NAME} {__version__}</h3><p>Restores each person's original facial "
            "identity in AI-edited portraits while keeping the edited elements exactly as "
            "edited (EditedID on Stable Diffusion 1.x).</p><p>Everything runs on this "
            "computer; nothing is sent anywhere.</p>",
        )

    # ================================================================ closing
    def confirm_discard(self) -> bool:
        """Ask before losing unsaved work; True = go ahead."""
        if not self.session.dirty or self.session.best_result is None:
            return True
        answer = QMessageBox.question(
            self,
            "Unsaved changes",
            "Save the project before closing?",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.projects.save() is not None
        return answer == QMessageBox.StandardButton.Discard

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self.confirm_discard():
            event.ignore()
            return
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        if self._owns_engine:
            self.engine.shutdown()
        super().closeEvent(event)
