"""Preferences that are not about models (those live in the Model Manager)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .settings import SAVE_FORMATS, SIDECAR_PATHS, Settings

SIDECAR_PATH_TEXTS = ("Full paths (to find them again)", "File names only (no folders)")


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings")
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(SAVE_FORMATS))
        self.format_combo.setCurrentText(settings.save_format)
        self.format_combo.setToolTip("Format proposed by Save Result As.")
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(50, 100)
        self.quality_spin.setValue(settings.jpeg_quality)
        self.location_box = QCheckBox("Remove the location (GPS) from saved results")
        self.location_box.setChecked(settings.strip_location)
        self.location_box.setToolTip(
            "Results go to clients, who share them: the edited photo's GPS position is left "
            "out of the result's metadata. Camera, dates and copyright are always kept."
        )
        self.sidecar_combo = QComboBox()
        for value, text in zip(SIDECAR_PATHS, SIDECAR_PATH_TEXTS, strict=True):
            self.sidecar_combo.addItem(text, value)
        self.sidecar_combo.setCurrentIndex(self.sidecar_combo.findData(settings.sidecar_paths))
        self.sidecar_combo.setToolTip(
            "Every saved result gets a .json sidecar beside it (result.png.json) with the "
            "parameters, the model, the seed and the input photos (their SHA-256, and their "
            "paths). Give the client the image alone, or choose file names only: the sidecar "
            "then holds no folder of this computer."
        )
        self.banner_box = QCheckBox("Show the 'no model installed' notice")
        self.banner_box.setChecked(not settings.model_banner_dismissed)
        self.clear_recent_button = QPushButton("Clear recent files")
        self.clear_recent_button.clicked.connect(settings.clear_recent_files)
        form = QFormLayout()
        form.addRow("Save format", self.format_combo)
        form.addRow("JPEG quality", self.quality_spin)
        form.addRow(self.location_box)
        form.addRow("Sidecar (.json) names the inputs by", self.sidecar_combo)
        form.addRow(self.banner_box)
        form.addRow(self.clear_recent_button)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def accept(self) -> None:
        self.settings.save_format = self.format_combo.currentText()
        self.settings.jpeg_quality = self.quality_spin.value()
        self.settings.strip_location = self.location_box.isChecked()
        self.settings.sidecar_paths = self.sidecar_combo.currentData()
        self.settings.model_banner_dismissed = not self.banner_box.isChecked()
        self.settings.sync()
        super().accept()
