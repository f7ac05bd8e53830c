"""Model manager: which SD 1.x model, face backend, device and memory mode to use; downloads.

Checks never load weights: a folder is checked from its JSON configs
(`engine.models.loading.check_sd1_folder`), a hub id by looking for its local copy, a single file
by its suffix. Downloads run `engine.models.loading.download_sd_model` on a QThread with a
progress bar and Cancel; so does "Download face models" with
`engine.faces.detection.download_face_models` (insightface buffalo_l). An interrupted
download resumes where it stopped (partial files are kept).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EditedIDError

from .model.settings import DEVICES, FACE_BACKENDS, PRECISIONS
from .settings import Settings
from .theme import BAD, GOOD, MUTED
from .threads import PythonThread

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

LICENSE_URL = "https://huggingface.co/spaces/CompVis/stable-diffusion-license"
SOURCE_KINDS = (("hub", "Hub id"), ("folder", "Local diffusers folder"), ("file", "Single file"))


_OPEN_MANAGER_FOR_FACES = "open the Model Manager and download the face models"
_CLI_HINTS = (  # the engine's command-line advice -> what an app user does instead
    (
        re.compile(r"\s*\(allow the download, e\.g\. --allow-download\)"),
        " (File ▸ Model Manager… ▸ Download)",
    ),
    (re.compile(r"--allow-download"), "Download in the Model Manager"),
    (
        re.compile(r"[Rr]un `?editedid-cli models download faces`?"),
        _OPEN_MANAGER_FOR_FACES,
    ),
)


def for_app_users(message: str) -> str:
    """An engine message with its command-line hints put in the app's words."""
    for pattern, words in _CLI_HINTS:
        message = pattern.sub(words, message)
    return message


def check_model_source(source: str, models_dir: str | Path | None) -> tuple[bool, str]:
    """(usable, message) for an SD model source; reads only small JSON files."""
    from engine.models.loading import (
        DEFAULT_SD_MODEL,
        SAFE_SUFFIXES,
        SD15_DOWNLOAD_SIZE,
        check_sd1_folder,
        hub_folder_name,
        resolve_source,
    )

    source = (source or "").strip()
    if not source:
        return False, f"Name a hub id (e.g. {DEFAULT_SD_MODEL}), a folder or a .safetensors file."
    try:
        kind, path = resolve_source(source, models_dir=models_dir)
        if kind == "hub" and path is None:
            root = Path(models_dir) if models_dir else None
            where = (root / hub_folder_name(source)) if root else hub_folder_name(source)
            return False, (
                f"{source} is not downloaded yet ({SD15_DOWNLOAD_SIZE}). Press Download, or "
                f"copy the model folder to {where}."
            )
        if kind in ("hub", "folder"):
            check_sd1_folder(path)
            return True, f"Stable Diffusion 1.x folder: {path}"
        if path.suffix.lower() not in SAFE_SUFFIXES:
            return False, (
                f"{path.name} is not a .safetensors file. Pickle checkpoints (.ckpt, .bin) can "
                "run code when loaded; convert it to .safetensors first."
            )
        size_gb = path.stat().st_size / 1e9
        return True, f"Single-file checkpoint ({size_gb:.1f} GB), configured as SD 1.x."
    except EditedIDError as exc:
        return False, str(exc)


class DownloadJob(QObject):
    """Runs one download, fetch(progress, cancel) -> path, in its QThread; cancel() is
    thread-safe and the engine's downloaders poll it between chunks."""

    progress = Signal(object, object, str)  # done bytes, total bytes, label
    done = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fetch: Callable[[ProgressFn, CancelFn], Path]) -> None:
        super().__init__()
        self._fetch = fetch
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from engine.errors import Cancelled

        try:
            path = self._fetch(
                lambda done, total, label: self.progress.emit(done, total, label),
                self._cancel.is_set,
            )
        except Cancelled:
            self.cancelled.emit()
        except EditedIDError as exc:
            self.failed.emit(for_app_users(str(exc)))
        except OSError as exc:  # network down, disk full, folder not writable
            self.failed.emit(
                f"The download stopped: {exc.strerror or exc}. Press the button "
                "again to resume where it stopped."
            )
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a crash
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.done.emit(str(path))


def download_sd(hub_id: str, models_dir: str, variant: str | None) -> Callable:
    """The SD weights' fetch for a DownloadJob."""

    def fetch(progress: ProgressFn, cancel: CancelFn) -> Path:
        from engine.models.loading import download_sd_model

        return download_sd_model(
            hub_id,
            models_dir=models_dir or None,
            progress=progress,
            cancel=cancel,
            variant=variant,
        )

    return fetch


def download_faces(models_dir: str) -> Callable:
    """The insightface buffalo_l pack's fetch for a DownloadJob."""

    def fetch(progress: ProgressFn, cancel: CancelFn) -> Path:
        from engine.faces import detection

        return detection.download_face_models(models_dir or None, progress, cancel)

    return fetch


class DownloadRow(QWidget):
    """[button] [extras] [progress bar] [Cancel download]: one download on its QThread.

    `start(fetch)` runs it; `finished(ok, message)` reports the end (ok, a failure's
    reason, or a cancel) after the thread has stopped.
    """

    finished = Signal(bool, str)

    def __init__(self, text: str, tooltip: str, *extras: QWidget) -> None:
        super().__init__()
        self.button = QPushButton(text)
        self.button.setToolTip(tooltip)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        self._thread: QThread | None = None
        self._job: DownloadJob | None = None
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.button)
        for widget in extras:
            h.addWidget(widget)
        h.addWidget(self.progress, 1)
        h.addWidget(self.cancel_button)

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, fetch: Callable[[ProgressFn, CancelFn], Path]) -> None:
        if self._job is not None:
            return
        self._job = DownloadJob(fetch)
        self._thread = PythonThread("editedid-download", self)  # threads.py
        self._job.moveToThread(self._thread)
        self._thread.started.connect(self._job.run)
        self._job.progress.connect(self._on_progress)
        self._job.done.connect(self._on_done)
        self._job.failed.connect(self._on_failed)
        self._job.cancelled.connect(self._on_cancelled)
        self.progress.setValue(0)
        self.progress.setFormat("Connecting…")
        self.progress.show()
        self.cancel_button.show()
        self.button.setEnabled(False)
        self._thread.start()

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.progress.setFormat("Cancelling…")

    def stop(self) -> None:
        """Cancel and wait for the thread (the dialog closes); the download resumes later."""
        if self._job is not None:
            self._job.cancel()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(5000)

    def _on_progress(self, done: int, total: int, label: str) -> None:
        if total:
            self.progress.setValue(int(1000 * done / total))
        mb = 1 << 20
        if total > mb:
            self.progress.setFormat(f"{label}: {done / mb:.0f} / {total / mb:.0f} MB")
        else:  # the unpacking step counts files, not bytes
            self.progress.setFormat(label[:1].upper() + label[1:] + "…")

    def _end(self, ok: bool, format_: str, message: str) -> None:
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait(5000)
        self._thread = None
        self._job = None
        self.cancel_button.hide()
        self.progress.setFormat(format_)
        self.finished.emit(ok, message)

    def _on_done(self, path: str) -> None:
        self.progress.setValue(1000)
        self._end(True, f"Downloaded to {path}", path)

    def _on_failed(self, message: str) -> None:
        self._end(False, "Download failed", message)

    def _on_cancelled(self) -> None:
        self._end(False, f"Cancelled — press {self.button.text()} again to resume", "")


def _browse_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    h = QHBoxLayout(row)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(edit, 1)
    h.addWidget(button)
    return row


class ModelManagerDialog(QDialog):
    """Edit the model settings; OK stores them (Settings) and emits settings_applied."""

    settings_applied = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Model Manager")
        self.setMinimumWidth(760)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_sd_group())
        layout.addWidget(self._build_face_group())
        layout.addWidget(self._build_device_group())
        layout.addWidget(buttons)

        self.kind_combo.setCurrentIndex(self._guess_kind(settings.model_source))
        self.kind_combo.currentIndexChanged.connect(self._update_check)
        self.source_edit.textChanged.connect(self._update_check)
        self.models_dir_edit.textChanged.connect(self._update_check)
        self.face_dir_edit.textChanged.connect(self._update_face_status)
        self._update_check()
        self._update_face_status()
        self._update_device_info()

    def _build_sd_group(self) -> QGroupBox:
        from engine.models.places import DEFAULT_SD_MODEL, SD15_DOWNLOAD_SIZE, default_models_dir

        settings = self.settings
        self.kind_combo = QComboBox()
        for key, text in SOURCE_KINDS:
            self.kind_combo.addItem(text, key)
        self.source_edit = QLineEdit(settings.model_source)
        self.source_edit.setPlaceholderText(DEFAULT_SD_MODEL)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse_source)
        self.models_dir_edit = QLineEdit(settings.models_dir)
        self.models_dir_edit.setPlaceholderText(str(default_models_dir()))
        self.models_dir_button = QPushButton("Browse…")
        self.models_dir_button.clicked.connect(self._browse_models_dir)
        self.check_label = QLabel()
        self.check_label.setWordWrap(True)
        self.check_label.setTextFormat(Qt.TextFormat.RichText)

        self.fp16_box = QCheckBox("fp16 weights (half the size)")
        self.fp16_box.setChecked(True)
        self.sd_download = DownloadRow(
            "Download",
            f"Download the hub id's safetensors weights ({SD15_DOWNLOAD_SIZE}); resumes "
            "where an interrupted download stopped.",
            self.fp16_box,
        )
        self.download_button = self.sd_download.button
        self.download_progress = self.sd_download.progress
        self.cancel_download_button = self.sd_download.cancel_button
        self.download_button.clicked.connect(self.start_download)
        self.sd_download.finished.connect(self._on_download_finished)

        sd_group = QGroupBox("Stable Diffusion 1.x model")
        form = QFormLayout(sd_group)
        form.addRow("Source type", self.kind_combo)
        form.addRow("Model", _browse_row(self.source_edit, self.browse_button))
        form.addRow("Models folder", _browse_row(self.models_dir_edit, self.models_dir_button))
        form.addRow(self.check_label)
        form.addRow(self.sd_download)
        offline = QLabel(
            f"<span style='color:{MUTED}'>Offline? Download the diffusers folder of "
            f"{DEFAULT_SD_MODEL} on another computer and copy it into the models folder as "
            f"<code>{DEFAULT_SD_MODEL.replace('/', '--')}</code>, or choose “Local diffusers "
            "folder” / “Single file” and point to it. By downloading you accept the model's "
            f"<a href='{LICENSE_URL}'>CreativeML OpenRAIL-M licence</a>.</span>"
        )
        offline.setWordWrap(True)
        offline.setOpenExternalLinks(True)
        for label in (offline, self.check_label):
            label.setMinimumHeight(label.fontMetrics().lineSpacing() * 3)
        form.addRow(offline)
        return sd_group

    def _build_face_group(self) -> QGroupBox:
        settings = self.settings
        self.face_backend_combo = QComboBox()
        self.face_backend_combo.addItems(list(FACE_BACKENDS))
        self.face_backend_combo.setCurrentText(settings.face_backend)
        self.face_dir_edit = QLineEdit(settings.face_models_dir)
        self.face_dir_edit.setPlaceholderText("models folder (insightface buffalo_l)")
        self.face_dir_button = QPushButton("Browse…")
        self.face_dir_button.clicked.connect(self._browse_face_dir)
        self.face_status = QLabel()
        self.face_status.setWordWrap(True)
        self.face_status.setMinimumHeight(self.face_status.fontMetrics().lineSpacing() * 4)
        self.face_status.setTextFormat(Qt.TextFormat.RichText)
        from engine.faces.detection import BUFFALO_L_SIZE

        self.face_download = DownloadRow(
            "Download face models",
            f"Download insightface's buffalo_l face models ({BUFFALO_L_SIZE}) into the "
            "insightface folder; resumes where an interrupted download stopped.",
        )
        self.face_download_button = self.face_download.button
        self.face_download_button.clicked.connect(self.start_face_download)
        self.face_download.finished.connect(self._on_face_download_finished)
        face_group = QGroupBox("Face models")
        form = QFormLayout(face_group)
        form.addRow("Backend", self.face_backend_combo)
        form.addRow("insightface folder", _browse_row(self.face_dir_edit, self.face_dir_button))
        form.addRow(self.face_status)
        form.addRow(self.face_download)
        return face_group

    def _build_device_group(self) -> QGroupBox:
        settings = self.settings
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setCurrentText(settings.device)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setCurrentText(settings.precision)
        self.low_vram_box = QCheckBox(
            "Low-VRAM mode (VAE and text encoder off the GPU, VAE tiles, one face at a time)"
        )
        self.low_vram_box.setChecked(settings.low_vram)
        self.low_vram_box.setToolTip(
            "For GPUs with little memory: the VAE and the text encoder wait in RAM while the "
            "UNet works, images are encoded and decoded in tiles, null-text fits one face at a "
            "time, and the attention recorded for the final stage (~0.4 GB per face) is kept "
            "in RAM. Slower; the results do not change beyond rounding."
        )
        self.device_info = QLabel()
        self.device_info.setObjectName("mutedLabel")
        device_group = QGroupBox("Device")
        form = QFormLayout(device_group)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow(self.low_vram_box)
        form.addRow(self.device_info)
        return device_group

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _guess_kind(source: str) -> int:
        path = Path(source).expanduser()
        if path.is_dir():
            return 1
        if path.suffix.lower() in (".safetensors", ".ckpt"):
            return 2
        return 0

    def models_dir(self) -> str:
        return self.models_dir_edit.text().strip() or self.models_dir_edit.placeholderText()

    def _browse_source(self) -> None:
        kind = self.kind_combo.currentData()
        start = self.source_edit.text() or str(Path.home())
        if kind == "file":
            path, _ = QFileDialog.getOpenFileName(
                self, "SD 1.x checkpoint", start, "Safetensors (*.safetensors)"
            )
        else:
            path = QFileDialog.getExistingDirectory(self, "Diffusers model folder", start)
            if path:
                self.kind_combo.setCurrentIndex(1)
        if path:
            self.source_edit.setText(path)

    def _browse_models_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir())
        if path:
            self.models_dir_edit.setText(path)

    def _browse_face_dir(self) -> None:
        title = "insightface models folder"
        path = QFileDialog.getExistingDirectory(self, title, self.models_dir())
        if path:
            self.face_dir_edit.setText(path)

    def _update_check(self) -> None:
        ok, message = check_model_source(self.source_edit.text(), self.models_dir())
        colour, mark = (GOOD, "✓") if ok else (BAD, "✗")
        self.check_label.setText(f"<span style='color:{colour}'>{mark}</span> {message}")
        self.check_label.setProperty("ok", ok)
        is_hub = self.kind_combo.currentData() == "hub"
        self.download_button.setEnabled(is_hub and not ok and not self.sd_download.running)
        self.fp16_box.setEnabled(is_hub)

    def face_models_dir(self) -> str:
        return self.face_dir_edit.text().strip() or self.models_dir()

    def _update_face_status(self) -> None:
        try:
            from engine.faces.detection import available_backends, insightface_pack_dir

            folder = self.face_models_dir()
            status = available_backends(folder)
            present = any(insightface_pack_dir(folder).glob("*.onnx"))
        except Exception as exc:  # noqa: BLE001 - the engine may be mid-change; say dlib
            status = {"dlib": f"ready (default) — {exc}"}
            present = False
        self.face_download_button.setEnabled(not present and not self.face_download.running)
        if present and not self.face_download.running:
            self.face_download.progress.hide()
        lines = []
        for name, state in status.items():
            ready = state == "ready" or state.startswith("ready")
            colour = GOOD if ready else MUTED
            state = for_app_users(state).replace(
                _OPEN_MANAGER_FOR_FACES, "press Download face models"
            )
            lines.append(f"<span style='color:{colour}'>{name}</span>: {state}")
        self.face_status.setText("<br>".join(lines))

    def _update_device_info(self) -> None:
        try:
            import torch

            if torch.cuda.is_available():
                name = torch.cuda.get_device_name(0)
                total = torch.cuda.get_device_properties(0).total_memory / 2**30
                text = f"CUDA: {name}, {total:.0f} GB"
            else:
                text = "No NVIDIA GPU found: restores run on the CPU (slow)."
        except Exception as exc:  # noqa: BLE001
            text = f"Cannot query the GPU: {exc}"
        self.device_info.setText(text)

    # -- downloads --------------------------------------------------------------------
    def start_download(self) -> None:
        variant = "fp16" if self.fp16_box.isChecked() else None
        self.sd_download.start(
            download_sd(self.source_edit.text().strip(), self.models_dir(), variant)
        )

    def cancel_download(self) -> None:
        self.sd_download.cancel()

    def _on_download_finished(self, ok: bool, message: str) -> None:
        self._update_check()
        if not ok and message:
            self.check_label.setText(f"<span style='color:{BAD}'>✗</span> {message}")

    def start_face_download(self) -> None:
        self.face_download.start(download_faces(self.face_models_dir()))

    def _on_face_download_finished(self, ok: bool, message: str) -> None:
        self._update_face_status()
        if ok and self.face_backend_combo.currentText() == "dlib":
            self.face_status.setText(
                self.face_status.text() + "<br>Choose the insightface (or auto) backend to "
                "use the downloaded models."
            )
        elif not ok and message:
            self.face_status.setText(
                f"<span style='color:{BAD}'>✗ The face models were not downloaded:</span> "
                f"{message}<br>{self.face_status.text()}"
            )

    # -- accept ---------------------------------------------------------------------------
    def apply(self) -> None:
        s = self.settings
        s.model_source = self.source_edit.text().strip() or self.source_edit.placeholderText()
        s.models_dir = self.models_dir_edit.text().strip()
        s.face_backend = self.face_backend_combo.currentText()
        s.face_models_dir = self.face_dir_edit.text().strip()
        s.device = self.device_combo.currentText()
        s.precision = self.precision_combo.currentText()
        s.low_vram = self.low_vram_box.isChecked()
        s.sync()
        self.settings_applied.emit()

    def accept(self) -> None:
        self.apply()
        super().accept()

    def done(self, result: int) -> None:
        # Closing cancels running downloads (they resume where they stopped next time).
        self.sd_download.stop()
        self.face_download.stop()
        super().done(result)
