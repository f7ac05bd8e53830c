"""The settings model stored with QSettings (the storage adapter of `model.settings`).

`Settings` is `model.settings.SettingsModel` on a QSettings store, plus the window
geometry and dock state (Qt byte arrays). Tests pass their own QSettings on an INI file
(`Settings.from_ini(path)`) so they never touch the user's real preferences.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from .model.settings import (
    APPLICATION,
    DEVICES,
    FACE_BACKENDS,
    MAX_RECENT,
    ORGANIZATION,
    PRECISIONS,
    SAVE_FORMATS,
    SIDECAR_PATHS,
    SettingsModel,
)

__all__ = [
    "APPLICATION",
    "DEVICES",
    "FACE_BACKENDS",
    "MAX_RECENT",
    "ORGANIZATION",
    "PRECISIONS",
    "SAVE_FORMATS",
    "SIDECAR_PATHS",
    "Settings",
]


class Settings(SettingsModel):
    """The app's preferences in QSettings."""

    def __init__(self, store: QSettings | None = None) -> None:
        super().__init__(store if store is not None else QSettings(ORGANIZATION, APPLICATION))

    @classmethod
    def from_ini(cls, path: str | Path) -> Settings:
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def window_geometry(self) -> QByteArray | None:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.store.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)
