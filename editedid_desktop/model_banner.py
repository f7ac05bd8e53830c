"""The first-run notice over the canvas: no Stable Diffusion model yet, what to download,
and that the classic preview works meanwhile (non-modal; the main window shows it)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from .model_manager import LICENSE_URL


class ModelBanner(QFrame):
    """Non-modal first-run notice: no SD model yet; what to download; classic meanwhile."""

    open_manager = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelBanner")
        self.label = QLabel()  # words set by describe(), once the engine is loaded
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

    def describe(self) -> None:
        from engine.models.places import DEFAULT_SD_MODEL, SD15_DOWNLOAD_SIZE

        self.label.setText(
            f"<b>No Stable Diffusion model installed yet.</b> The identity restore needs "
            f"{DEFAULT_SD_MODEL} ({SD15_DOWNLOAD_SIZE}; "
            f"<a href='{LICENSE_URL}' style='color:#ffd98a'>licence</a>). "
            "Until then the <b>classic preview</b> works: open two photos and it appears at once."
        )
