"""The main window: menus, layered canvas, face and parameter docks, status and progress.

It wires the parts and owns no engine logic: the `Session` holds the document, the
`EngineHost` runs every engine call on its worker thread, the canvas and its
`MaskDocument` show and edit pixels, the docks display the session. Nothing slow runs on
the UI thread except reading the two input photos and writing the saved result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EditedIDError, InputError

from . import __version__
from .canvas import IMAGE_SUFFIXES, LayeredCanvas
from .face_panel import FaceListPanel
from .mask_document import MaskDocument
from .model_manager import LICENSE_URL, ModelManagerDialog, check_model_source
from .params_panel import ParamsPanel
from .project import PROJECT_SUFFIX, ProjectData, load_project, save_project
from .session import Session
from .settings import Settings
from .theme import STYLE_SHEET, app_icon
from .worker import AnalyzeRequest, ClassicRequest, EngineHost, RestoreRequest

APP_NAME = "EditedID Desktop"
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ")"
SAVE_FILTERS = "PNG (*.png);;JPEG (*.jpg *.jpeg);;TIFF (*.tif *.tiff)"
PROJECT_FILTER = f"EditedID project (*{PROJECT_SUFFIX})"
RERUN_DELAY_MS = 350  # classic preview re-runs this long after the last mask/setting change
COMPARE_MODES = (("off", "Compare off"), ("split", "Split view"), ("hold", "Hold to compare"))


def _guess_roles(paths: list[Path]) -> tuple[Path, Path] | None:
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


class ModelBanner(QFrame):
    """Non-modal first-run notice: no SD model yet; what to download; classic meanwhile."""

    open_manager = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from engine.models.loading import DEFAULT_SD_MODEL, SD15_DOWNLOAD_SIZE

        self.setObjectName("modelBanner")
        self.label = QLabel(
            f"<b>No Stable Diffusion model installed yet.</b> The identity restore needs "
            f"{DEFAULT_SD_MODEL} ({SD15_DOWNLOAD_SIZE}; "
            f"<a href='{LICENSE_URL}' style='color:#ffd98a'>licence</a>). "
            "Until then the <b>classic preview</b> works: open two photos and it appears at once."
        )
        self.label.setWordWrap(True)
        self.label.setOpenExternalLinks(True)
        self.manager_button = QPushButton("Open Model Manager…")
        self.manager_button.clicked.connect(self.open_manager)
        self.classic_button = QPushButton("Use classic mode")
        self.classic_button.setToolTip("Hide this notice; the classic preview stays available.")
        self.classic_button.clicked.connect(self.dismissed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.manager_button)
        layout.addWidget(self.classic_button)


class MainWindow(QMainWindow):
    """EditedID's editor window."""

    def __init__(
        self,
        settings: Settings | None = None,
        engine: EngineHost | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else Settings()
        self.session = Session(self)
        self.masks = MaskDocument(self)
        self.engine = engine or EngineHost(
            self.settings.model_config(), self.settings.face_config(), self
        )
        self._owns_engine = engine is None
        self._pending_masks: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
        self._applying_masks = False
        self._opening_project = False
        self._result_path: Path | None = None
        self._model_state = "not loaded"
        self.error_box: QMessageBox | None = None
        self._rerun_timer = QTimer(self)
        self._rerun_timer.setSingleShot(True)
        self._rerun_timer.setInterval(RERUN_DELAY_MS)
        self._rerun_timer.timeout.connect(self.run_classic)

        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setStyleSheet(STYLE_SHEET)
        self.setObjectName("mainWindow")
        self.setDockNestingEnabled(True)
        self.resize(1440, 900)

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_status_bar()
        self._connect()
        self._restore_window()
        self._update_actions()
        self._update_status_labels()
        self.check_model_installed()

    # ================================================================ construction
    def _build_central(self) -> None:
        self.canvas = LayeredCanvas()
        self.canvas.set_mask_document(self.masks)
        self.banner = ModelBanner()
        self.banner.hide()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        banner_row = QWidget()
        banner_layout = QVBoxLayout(banner_row)
        banner_layout.setContentsMargins(8, 8, 8, 0)
        banner_layout.addWidget(self.banner)
        self._banner_row = banner_row
        layout.addWidget(banner_row)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.face_list = FaceListPanel(self.session)
        self.faces_dock = QDockWidget("Faces", self)
        self.faces_dock.setObjectName("facesDock")
        self.faces_dock.setWidget(self.face_list)
        self.faces_dock.setMinimumWidth(320)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.faces_dock)

        self.params_panel = ParamsPanel(self.session)
        self.params_dock = QDockWidget("Advanced", self)
        self.params_dock.setObjectName("advancedDock")
        self.params_dock.setWidget(self.params_panel)
        self.params_dock.setMinimumWidth(300)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.params_dock)

    def _action(
        self,
        text: str,
        slot: Callable[..., Any] | None,
        shortcut: str | QKeySequence | list | None = None,
        name: str = "",
        tip: str = "",
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        if name:
            action.setObjectName(name)
        if shortcut is not None:
            if isinstance(shortcut, list):
                action.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{text.replace('&', '').rstrip('…')} — {tip}")
        action.setCheckable(checkable)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_original_action = a(
            "Open &Original…",
            lambda: self.choose_photo("original"),
            "Ctrl+O",
            "openOriginalAction",
            "the photo with the client's real face",
        )
        self.open_edited_action = a(
            "Open &Edited…",
            lambda: self.choose_photo("edited"),
            "Ctrl+Shift+O",
            "openEditedAction",
            "the AI-edited photo whose face changed",
        )
        self.open_project_action = a(
            "Open &Project…", self.choose_project, "Ctrl+Alt+O", "openProjectAction"
        )
        self.save_action = a("&Save Result", self.save_result, "Ctrl+S", "saveAction")
        self.save_as_action = a(
            "Save Result &As…", self.save_result_as, "Ctrl+Shift+S", "saveAsAction"
        )
        self.save_project_action = a(
            "Save Pro&ject", self.save_project, "Ctrl+Alt+S", "saveProjectAction"
        )
        self.batch_action = a("&Batch…", self.open_batch, "Ctrl+B", "batchAction")
        self.model_manager_action = a(
            "&Model Manager…", self.open_model_manager, None, "modelManagerAction"
        )
        self.settings_action = a(
            "Se&ttings…", self.open_settings, QKeySequence.StandardKey.Preferences, "settingsAction"
        )
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.quit_action = a("&Quit", self.close, "Ctrl+Q", "quitAction")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        self.undo_action = self.masks.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.undo_action.setObjectName("undoAction")
        self.redo_action = self.masks.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.setObjectName("redoAction")
        self.addActions([self.undo_action, self.redo_action])

        self.fit_action = a("&Fit to Window", self.canvas.fit, "Ctrl+0", "fitAction")
        self.zoom100_action = a("&100 %", self.canvas.zoom_100, "Ctrl+1", "zoom100Action")
        self.zoom_in_action = a("Zoom &In", self.canvas.zoom_in, ["Ctrl++", "Ctrl+="], "zoomIn")
        self.zoom_out_action = a("Zoom O&ut", self.canvas.zoom_out, "Ctrl+-", "zoomOut")
        self.layer_actions: dict[str, QAction] = {}
        for layer, key in (("original", "1"), ("edited", "2"), ("result", "3"), ("masks", "4")):
            action = a(
                f"Show {layer.title()}",
                None,
                f"Alt+{key}",
                f"layer_{layer}",
                checkable=True,
            )
            action.setChecked(True)
            action.toggled.connect(lambda on, layer=layer: self.canvas.set_layer_visible(layer, on))
            self.layer_actions[layer] = action
        self.compare_group = QActionGroup(self)
        self.compare_actions: dict[str, QAction] = {}
        for mode, text in COMPARE_MODES:
            action = a(text, None, None, f"compare_{mode}", checkable=True)
            action.toggled.connect(lambda on, mode=mode: on and self.set_compare_mode(mode))
            self.compare_group.addAction(action)
            self.compare_actions[mode] = action
        self.compare_actions["off"].setChecked(True)

        self.restore_action = a(
            "&Restore (diffusion)",
            self.run_restore,
            "Ctrl+R",
            "restoreAction",
            "restore each person's identity with EditedID on Stable Diffusion",
        )
        self.classic_action = a(
            "&Classic Preview",
            self.run_classic,
            "Ctrl+Shift+R",
            "classicAction",
            "instant blend of the original face (no diffusion model)",
        )
        self.cancel_action = a("Ca&ncel", self.cancel, "Esc", "cancelAction", "stop the run")
        self.cancel_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_original_action, self.open_edited_action])
        file_menu.addAction(self.open_project_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.setObjectName("recentMenu")
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action, self.save_project_action])
        file_menu.addSeparator()
        file_menu.addAction(self.batch_action)
        file_menu.addSeparator()
        file_menu.addActions([self.model_manager_action, self.settings_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self._fill_recent_menu()

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.undo_action, self.redo_action])

        view_menu = bar.addMenu("&View")
        view_menu.addActions(
            [self.fit_action, self.zoom100_action, self.zoom_in_action, self.zoom_out_action]
        )
        view_menu.addSeparator()
        view_menu.addActions(list(self.layer_actions.values()))
        view_menu.addSeparator()
        view_menu.addActions(list(self.compare_actions.values()))
        view_menu.addSeparator()
        view_menu.addAction(self.faces_dock.toggleViewAction())
        view_menu.addAction(self.params_dock.toggleViewAction())

        run_menu = bar.addMenu("&Run")
        run_menu.addActions([self.restore_action, self.classic_action, self.cancel_action])

        help_menu = bar.addMenu("&Help")
        about = QAction("&About EditedID", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _build_toolbars(self) -> None:
        main = QToolBar("Main", self)
        main.setObjectName("mainToolBar")
        main.setMovable(False)
        main.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        main.addAction(self.open_original_action)
        main.addAction(self.open_edited_action)
        main.addSeparator()
        main.addAction(self.classic_action)
        self.run_button = QPushButton("Restore")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Restore identity with diffusion (Ctrl+R)")
        self.run_button.clicked.connect(self.run_restore)
        main.addWidget(self.run_button)
        main.addSeparator()
        self.compare_combo = QComboBox()
        self.compare_combo.setObjectName("compareCombo")
        for mode, text in COMPARE_MODES:
            self.compare_combo.addItem(text, mode)
        self.compare_combo.setToolTip("Before/after compare (hold \\ to compare)")
        self.compare_combo.currentIndexChanged.connect(
            lambda i: self.set_compare_mode(self.compare_combo.itemData(i))
        )
        main.addWidget(self.compare_combo)
        main.addWidget(QLabel("  Result opacity "))
        self.result_opacity = QSlider(Qt.Orientation.Horizontal)
        self.result_opacity.setRange(0, 100)
        self.result_opacity.setValue(100)
        self.result_opacity.setFixedWidth(110)
        self.result_opacity.valueChanged.connect(
            lambda v: self.canvas.set_layer_opacity("result", v / 100.0)
        )
        main.addWidget(self.result_opacity)
        main.addSeparator()
        main.addAction(self.fit_action)
        main.addAction(self.zoom100_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, main)
        self.main_toolbar = main

        self.mask_toolbar = None
        try:
            from .tool_bar import MaskToolBar
        except ImportError:  # the mask tool bar lands separately; the canvas still paints
            return
        self.mask_toolbar = MaskToolBar(self.canvas, self)
        self.mask_toolbar.setObjectName("maskToolBar")
        self.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.mask_toolbar)

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
        self.cancel_button.clicked.connect(self.cancel)
        self.device_label = QLabel()
        self.model_label = QLabel()
        self.face_label = QLabel()
        self.zoom_label = QLabel("100 %")
        for widget in (self.stage_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(widget)
            widget.hide()
        for widget in (self.device_label, self.model_label, self.face_label, self.zoom_label):
            bar.addPermanentWidget(widget)
        bar.showMessage("Open an original and an edited photo to start.")

    def _connect(self) -> None:
        s, w = self.session, self.engine.worker
        s.dirty_changed.connect(lambda _: self._update_title())
        s.photos_changed.connect(self._update_title)
        s.face_changed.connect(self._on_face_changed)
        s.params_changed.connect(lambda _: self._update_actions())
        self.face_list.face_selected.connect(self._on_face_selected)
        self.face_list.pairing_changed.connect(lambda _: self.start_analysis())
        self.canvas.face_clicked.connect(self.face_list.select)
        self.canvas.files_dropped.connect(self.open_dropped)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.masks.changed.connect(self._on_mask_changed)
        self.banner.open_manager.connect(self.open_model_manager)
        self.banner.dismissed.connect(self._dismiss_banner)

        self.engine.busy_changed.connect(self._on_busy_changed)
        w.progress.connect(self._on_progress)
        w.preview.connect(self._on_preview)
        w.analyzed.connect(self._on_analyzed)
        w.classic_ready.connect(self._on_classic)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        w.status.connect(self._on_status)  # bound methods: queued into the UI thread
        w.model_loaded.connect(self._on_model_loaded)

    # ================================================================ window state
    def _restore_window(self) -> None:
        geometry = self.settings.window_geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)

    def _update_title(self) -> None:
        name = self.session.edited_path.name if self.session.edited_path else ""
        if self.session.project_path is not None:
            name = self.session.project_path.name
        title = f"{name} — {APP_NAME}" if name else APP_NAME
        self.setWindowTitle(("• " if self.session.dirty else "") + title)

    def _update_actions(self) -> None:
        busy = self.engine.busy
        running = self.engine.pending("restore") > 0
        has_analysis = self.session.analysis is not None
        self.restore_action.setEnabled(has_analysis and not running)
        self.run_button.setEnabled(has_analysis and not running)
        self.classic_action.setEnabled(has_analysis)
        has_result = self.session.best_result is not None
        self.save_action.setEnabled(has_result)
        self.save_as_action.setEnabled(has_result)
        self.save_project_action.setEnabled(self.session.has_photos)
        self.cancel_action.setEnabled(busy)

    def _update_status_labels(self) -> None:
        device = self.settings.device
        try:
            import torch

            gpu = torch.cuda.is_available()
            if device == "cpu" or (device == "auto" and not gpu):
                device_text = "CPU"
            else:
                device_text = f"GPU: {torch.cuda.get_device_name(0)}" if gpu else "GPU (missing)"
        except Exception:  # noqa: BLE001
            device_text = device
        self.device_label.setText(f"Device: {device_text}")
        source = self.settings.model_source
        short = Path(source).name if ("/" in source and Path(source).exists()) else source
        self.model_label.setText(f"Model: {short} ({self._model_state})")
        self.model_label.setToolTip(source)
        backend = self.settings.face_backend
        if self.session.analysis is not None:
            backend = self.session.analysis.backend
        self.face_label.setText(f"Faces: {backend}")

    # ================================================================ first run
    def check_model_installed(self) -> bool:
        """Show the first-run banner when the configured SD model is not on disk."""
        ok, message = check_model_source(
            self.settings.model_source, str(self.settings.resolved_models_dir())
        )
        if not ok:
            self._model_state = "not installed"
        elif self._model_state == "not installed":
            self._model_state = "not loaded"
        show = not ok and not self.settings.model_banner_dismissed
        self.banner.setVisible(show)
        self._banner_row.setVisible(show)
        self.banner.setToolTip(message)
        self._update_status_labels()
        return ok

    def _dismiss_banner(self) -> None:
        self.settings.model_banner_dismissed = True
        self.banner.hide()
        self._banner_row.hide()
        self.statusBar().showMessage(
            "Classic mode: the preview blends the original face in without diffusion. "
            "File ▸ Model Manager installs the diffusion model.",
            10000,
        )

    # ================================================================ opening files
    def choose_photo(self, kind: str) -> None:
        title = "Open original photo" if kind == "original" else "Open edited photo"
        path, _ = QFileDialog.getOpenFileName(
            self, title, self.settings.last_folder("open"), IMAGE_FILTER
        )
        if path:
            self.open_photo(kind, path)

    def open_photo(self, kind: str, path: str | Path, *, analyze: bool = True) -> bool:
        """Load one input photo; starts the analysis when both are there."""
        from engine.io.images import read_rgb

        path = Path(path)
        try:
            image = read_rgb(path)
        except InputError as exc:
            self.show_error("Cannot open the photo", str(exc))
            return False
        self.session.set_photo(kind, path, image)
        self._result_path = None
        self.canvas.set_image(kind, image)
        self.canvas.set_image("result", None)
        self.canvas.set_face_boxes([])
        if kind == "edited":
            self.masks.reset((image.shape[1], image.shape[0]))
            self.canvas.fit()
        elif self.session.edited is None:
            self.canvas.fit()
        self.settings.set_last_folder("open", path.parent)
        self.settings.add_recent_file(path)
        self._fill_recent_menu()
        self.statusBar().showMessage(f"Opened {kind} photo {path.name}", 5000)
        self._update_actions()
        if analyze and self.session.has_photos:
            self.start_analysis()
        return True

    def open_photos(self, original: str | Path, edited: str | Path) -> bool:
        ok = self.open_photo("original", original, analyze=False)
        ok = ok and self.open_photo("edited", edited, analyze=False)
        if ok:
            self.start_analysis()
        return ok

    def ask_which_is_original(self, a: Path, b: Path) -> tuple[Path, Path] | None:
        """Ask the user which dropped photo is the original; (original, edited) or None."""
        box = QMessageBox(self)
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
        box = QMessageBox(self)
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

    def open_dropped(self, paths: list[str]) -> None:
        """Drop: two photos = original + edited (asked when the names do not say)."""
        files = [Path(p) for p in paths]
        projects = [p for p in files if p.suffix == PROJECT_SUFFIX]
        if projects:
            self.open_project(projects[0])
            return
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if len(files) >= 2:
            if len(files) > 2:
                self.statusBar().showMessage("Only the first two dropped photos are used.", 6000)
            roles = _guess_roles(files[:2]) or self.ask_which_is_original(files[0], files[1])
            if roles is not None:
                self.open_photos(*roles)
        elif len(files) == 1:
            if self.session.original is None:
                slot = "original"
            elif self.session.edited is None:
                slot = "edited"
            else:
                slot = self.ask_slot_for(files[0])
            if slot:
                self.open_photo(slot, files[0])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda _=False, p=path: self.open_recent(p))
        if recent:
            self.recent_menu.addSeparator()
            clear = self.recent_menu.addAction("Clear Recent Files")
            clear.triggered.connect(self._clear_recent)
        self.recent_menu.setEnabled(bool(recent))

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    def open_recent(self, path: str) -> None:
        p = Path(path)
        if p.suffix == PROJECT_SUFFIX:
            self.open_project(p)
        elif self.session.original is None:
            self.open_photo("original", p)
        elif self.session.edited is None:
            self.open_photo("edited", p)
        else:
            slot = self.ask_slot_for(p)
            if slot:
                self.open_photo(slot, p)

    # ================================================================ analysis / runs
    def start_analysis(self) -> None:
        if not self.session.has_photos:
            return
        self.statusBar().showMessage("Detecting and pairing faces…")
        self.engine.configure(None, self.settings.face_config())
        self.engine.analyze(
            AnalyzeRequest(
                self.session.original,
                self.session.edited,
                self.session.pairing_overrides(),
                original_name=_display_name(self.session.original_path, "the original photo"),
                edited_name=_display_name(self.session.edited_path, "the edited photo"),
            )
        )
        self._update_actions()

    def _on_analyzed(self, analysis: Any) -> None:
        if analysis.edited is not self.session.edited or analysis.original is not (
            self.session.original
        ):
            return  # photos changed while it ran
        previous_user = self.masks.user_masks()
        self.masks.reset((analysis.edited.shape[1], analysis.edited.shape[0]))
        self.session.set_analysis(analysis)
        for face in analysis.faces:
            self.masks.set_auto(face.index, "face", face.auto_face_mask)
            self.masks.set_auto(face.index, "element", face.auto_element_mask)
        from_project = bool(self._pending_masks) or self._opening_project
        pending = self._pending_masks or previous_user
        self._pending_masks = {}
        self._applying_masks = True
        for index, pair in pending.items():
            if any(f.index == index for f in analysis.faces):
                for kind, mask in zip(("face", "element"), pair, strict=True):
                    if mask is not None:
                        self._set_user_mask(index, kind, mask)
        self._applying_masks = False
        self.masks.undo_stack.clear()
        if from_project:
            self._opening_project = False
            self.session.set_dirty(False)
        self._update_face_boxes()
        if analysis.faces:
            first = self.face_list.selected
            if first is None:
                first = analysis.faces[0].index
            self.face_list.select(first)
            self._on_face_selected(first)
        n = len(analysis.faces)
        paired = len(self.session.enabled_faces())
        self.statusBar().showMessage(
            f"{n} face{'s' if n != 1 else ''} found, {paired} to restore "
            f"({analysis.backend}). Classic preview shown; Ctrl+R restores with diffusion.",
            10000,
        )
        self._update_status_labels()
        self._update_actions()
        self.run_classic()

    def _set_user_mask(self, face: int, kind: str, mask: np.ndarray) -> None:
        """Put a saved user mask back as the current (edited) mask of face/kind."""
        size = self.masks.image_size
        mask = np.asarray(mask, np.uint8)
        if size is None or mask.shape != (size[1], size[0]):
            self.statusBar().showMessage(
                f"Saved {kind} mask of face {face + 1} does not fit the photo; "
                "using the auto mask.",
                8000,
            )
            return
        self.masks.set_user_mask(face, kind, mask.copy())

    def _update_face_boxes(self) -> None:
        boxes = []
        for face in self.session.faces:
            settings = self.session.settings_for(face.index)
            label = f"{face.index + 1}"
            boxes.append((face.index, tuple(float(v) for v in face.box), label, settings.enabled))
        self.canvas.set_face_boxes(boxes)

    def _on_face_selected(self, index: int) -> None:
        self.canvas.select_face(index)
        _, kind = self.canvas.active_mask()
        self.canvas.set_active_mask(index, kind)

    def _on_face_changed(self, index: int) -> None:
        self._update_face_boxes()
        self._update_actions()
        self.schedule_classic()

    def _on_mask_changed(self, face: int, kind: str, rect: QRect) -> None:
        if self._applying_masks:
            return
        if self.session.analysis is not None and self.masks.is_edited(face, kind):
            self.session.mark_dirty()
            self.schedule_classic()

    def schedule_classic(self) -> None:
        """Re-run the classic preview shortly after the last change (debounced)."""
        if self.session.analysis is not None:
            self._rerun_timer.start()

    def run_classic(self) -> None:
        if self.session.analysis is None:
            return
        faces = self.session.enabled_faces()
        if not faces:
            self.session.set_classic_result(None)
            if self.session.result is None:
                self.canvas.set_image("result", None)
            self._update_actions()
            return
        self.engine.classic(
            ClassicRequest(self.session.analysis, faces=faces, masks=self.masks.user_masks())
        )

    def _on_classic(self, result: Any) -> None:
        self.session.set_classic_result(result)
        if self.session.result is None:
            self.canvas.set_image("result", result.image)
        self._update_actions()

    def restore_request(self) -> RestoreRequest | None:
        """The diffusion job for the current session, or None (with a message) if none."""
        s = self.session
        if s.analysis is None:
            self.statusBar().showMessage("Open both photos first.", 5000)
            return None
        groups = [
            (s.params.replace(element_words=words), faces)
            for words, faces in s.word_groups().items()
        ]
        if not groups:
            self.show_error(
                "Nothing to restore",
                "No face is enabled and paired with a face of the original photo. Tick a face "
                "in the Faces panel, or choose its original face.",
            )
            return None
        return RestoreRequest(
            s.original,
            s.edited,
            s.analysis,
            groups,
            masks=self.masks.user_masks(),
            overlaps=s.overlaps(),
        )

    def run_restore(self) -> None:
        if self.engine.pending("restore"):
            return
        request = self.restore_request()
        if request is None:
            return
        self.engine.configure(self.settings.model_config(), self.settings.face_config())
        self.engine.restore(request)
        self.stage_label.setText("Starting…")
        self._update_actions()

    def cancel(self) -> None:
        if self.engine.busy:
            self.engine.cancel()
            self.stage_label.setText("Cancelling…")

    # -- worker signals ---------------------------------------------------------------
    def _on_busy_changed(self, busy: bool) -> None:
        for widget in (self.stage_label, self.progress_bar, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress_bar.setRange(0, 0)
        else:
            self.canvas.set_preview(None, None)
        self._update_actions()

    def _on_progress(self, stage: str, step: int, total: int) -> None:
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(step)
            self.progress_bar.setFormat(f"{step}/{total}")
            self.stage_label.setText(f"{stage.capitalize()} {step}/{total}")
        else:
            self.progress_bar.setRange(0, 0)
            self.stage_label.setText(stage.capitalize() + "…")

    def _on_preview(self, image: np.ndarray, box: Any) -> None:
        if box is not None:
            self.canvas.set_preview(image, box)

    def _on_finished(self, result: Any) -> None:
        self.canvas.set_preview(None, None)
        self.session.set_result(result)
        self.canvas.set_image("result", result.image)
        self.canvas.set_layer_visible("result", True)
        self.layer_actions["result"].setChecked(True)
        seconds = result.sidecar.get("seconds") if isinstance(result.sidecar, dict) else None
        took = f" in {seconds:.1f} s" if isinstance(seconds, int | float) else ""
        note = f" {' '.join(result.warnings)}" if result.warnings else ""
        self.statusBar().showMessage(f"Restored {len(result.faces)} face(s){took}.{note}", 15000)
        self._update_actions()

    def _on_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def _on_cancelled(self) -> None:
        self.canvas.set_preview(None, None)
        self.statusBar().showMessage("Cancelled. Nothing was changed.", 8000)

    def _on_failed(self, title: str, message: str) -> None:
        self.canvas.set_preview(None, None)
        if "not on this machine" in message or "not downloaded" in message:
            self._model_state = "not installed"
            self._update_status_labels()
        self.show_error(title, message)

    def _on_model_loaded(self, info: dict) -> None:
        self._model_state = f"loaded, {info.get('device', '?')} {info.get('dtype', '')}".strip()
        self._update_status_labels()

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

    # ================================================================ view
    def set_compare_mode(self, mode: str) -> None:
        self.canvas.set_compare_mode(mode)
        self.compare_actions[mode].setChecked(True)
        combo = getattr(self, "compare_combo", None)
        index = combo.findData(mode) if combo is not None else -1
        if combo is not None and combo.currentIndex() != index:
            self.compare_combo.setCurrentIndex(index)

    # ================================================================ saving
    def default_result_name(self, suffix: str | None = None) -> str:
        suffix = suffix or "." + self.settings.save_format
        stem = self.session.edited_path.stem if self.session.edited_path else "result"
        return f"{stem}-restored{suffix}"

    def save_result(self) -> None:
        if self._result_path is None:
            self.save_result_as()
        else:
            self.write_result(self._result_path, overwrite=True)

    def save_result_as(self) -> None:
        if self.session.best_result is None:
            return
        start = Path(self.settings.last_folder("save")) / self.default_result_name()
        path, _ = QFileDialog.getSaveFileName(self, "Save result", str(start), SAVE_FILTERS)
        if path:
            self.write_result(Path(path), overwrite=True)  # the dialog asked already

    def write_result(self, path: Path, *, overwrite: bool = False) -> Path | None:
        """Save the best result (diffusion, else classic) and its sidecar JSON."""
        from engine.io.export import save_result
        from engine.io.images import write_text_atomic

        result = self.session.best_result
        if result is None:
            return None
        if path.suffix == "":
            path = path.with_suffix(".png")
        protected = [p for p in (self.session.original_path, self.session.edited_path) if p]
        notes: list[str] = []
        try:
            written = save_result(
                path,
                result.image,
                reference_path=self.session.edited_path,
                changed_alpha=result.changed_alpha,
                quality=self.settings.jpeg_quality,
                overwrite=overwrite,
                protected_paths=protected,
                warnings=notes,
            )
            sidecar = dict(result.sidecar)
            sidecar["inputs"] = {
                "original": str(self.session.original_path or ""),
                "edited": str(self.session.edited_path or ""),
            }
            write_text_atomic(
                written.with_name(written.name + ".json"),
                json.dumps(sidecar, indent=2, default=str) + "\n",
            )
        except (EditedIDError, OSError) as exc:
            self.show_error("Cannot save the result", str(exc))
            return None
        self._result_path = written
        self.settings.set_last_folder("save", written.parent)
        mode = "diffusion" if result is self.session.result else "classic"
        extra = f" ({' '.join(notes)})" if notes else ""
        self.statusBar().showMessage(f"Saved {mode} result to {written}{extra}", 10000)
        return written

    # -- project --------------------------------------------------------------------------
    def project_data(self) -> ProjectData:
        s = self.session
        return ProjectData(
            original_path=s.original_path,
            edited_path=s.edited_path,
            params=s.params,
            faces=dict(s.face_settings),
            masks=self.masks.user_masks(),
        )

    def save_project(self) -> Path | None:
        path = self.session.project_path
        if path is None:
            start = Path(self.settings.last_folder("project")) / (
                (self.session.edited_path.stem if self.session.edited_path else "untitled")
                + PROJECT_SUFFIX
            )
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save project", str(start), PROJECT_FILTER
            )
            if not chosen:
                return None
            path = Path(chosen)
        return self.save_project_to(path)

    def save_project_to(self, path: Path) -> Path | None:
        try:
            written = save_project(path, self.project_data())
        except (EditedIDError, OSError) as exc:
            self.show_error("Cannot save the project", str(exc))
            return None
        self.session.project_path = written
        self.session.set_dirty(False)
        self.settings.set_last_folder("project", written.parent)
        self.settings.add_recent_file(written)
        self._fill_recent_menu()
        self._update_title()
        self.statusBar().showMessage(f"Project saved to {written}", 8000)
        return written

    def choose_project(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open project", self.settings.last_folder("project"), PROJECT_FILTER
        )
        if path:
            self.open_project(Path(path))

    def open_project(self, path: Path) -> bool:
        try:
            data = load_project(path)
        except InputError as exc:
            self.show_error("Cannot open the project", str(exc))
            return False
        if data.original_path is None or data.edited_path is None:
            self.show_error("Cannot open the project", f"{path}: it names no input photos.")
            return False
        self.session.clear()
        self.session.set_params(data.params)
        if not self.open_photos_for_project(data):
            return False
        self.session.face_settings = dict(data.faces)
        self._pending_masks = dict(data.masks)
        self._opening_project = True
        self.session.project_path = Path(path)
        self.session.set_dirty(False)
        self.settings.add_recent_file(path)
        self._fill_recent_menu()
        self._update_title()
        self.start_analysis()
        return True

    def open_photos_for_project(self, data: ProjectData) -> bool:
        return self.open_photo("original", data.original_path, analyze=False) and self.open_photo(
            "edited", data.edited_path, analyze=False
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
        self.engine.configure(self.settings.model_config(), self.settings.face_config())
        self._model_state = "not loaded"
        self.check_model_installed()

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self._fill_recent_menu)
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
            model_provider=lambda: self.engine.worker.model,
            parent=self,
            backend=self.settings.face_backend,
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
            return self.save_project() is not None
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


def _display_name(path, fallback: str) -> str:
    return str(path) if path else fallback
