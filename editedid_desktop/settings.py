"""User preferences stored with QSettings (model, device, face backend, folders, window).

`Settings` is a thin typed wrapper: every preference has one property with its default,
so widgets never spell QSettings keys. Tests pass their own QSettings on an INI file
(`Settings.from_ini(path)`) so they never touch the user's real preferences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "EditedID"
APPLICATION = "EditedID Desktop"
MAX_RECENT = 10

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp16", "fp32")
FACE_BACKENDS = ("auto", "dlib", "insightface")
SAVE_FORMATS = ("png", "jpg", "tif")


def _to_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def from_ini(cls, path: str | Path) -> Settings:
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    # -- generic helpers --------------------------------------------------------------
    def _str(self, key: str, default: str) -> str:
        value = self.store.value(key, default)
        return default if value is None else str(value)

    def _set(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()

    # -- model --------------------------------------------------------------------------
    @property
    def model_source(self) -> str:
        from engine.models.loading import DEFAULT_SD_MODEL

        return self._str("model/source", DEFAULT_SD_MODEL)

    @model_source.setter
    def model_source(self, value: str) -> None:
        self._set("model/source", str(value))

    @property
    def device(self) -> str:
        value = self._str("model/device", "auto")
        return value if value in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self._set("model/device", value)

    @property
    def precision(self) -> str:
        value = self._str("model/precision", "auto")
        return value if value in PRECISIONS else "auto"

    @precision.setter
    def precision(self, value: str) -> None:
        self._set("model/precision", value)

    @property
    def low_vram(self) -> bool:
        return _to_bool(self.store.value("model/low_vram"), False)

    @low_vram.setter
    def low_vram(self, value: bool) -> None:
        self._set("model/low_vram", bool(value))

    @property
    def models_dir(self) -> str:
        """Folder of downloaded models; "" = engine.models.loading.default_models_dir()."""
        return self._str("model/models_dir", "")

    @models_dir.setter
    def models_dir(self, value: str) -> None:
        self._set("model/models_dir", str(value or ""))

    def resolved_models_dir(self) -> Path:
        from engine.models.loading import default_models_dir

        return Path(self.models_dir).expanduser() if self.models_dir else default_models_dir()

    # -- faces --------------------------------------------------------------------------
    @property
    def face_backend(self) -> str:
        value = self._str("faces/backend", "auto")
        return value if value in FACE_BACKENDS else "auto"

    @face_backend.setter
    def face_backend(self, value: str) -> None:
        self._set("faces/backend", value)

    @property
    def face_models_dir(self) -> str:
        """insightface models folder; "" = the models folder."""
        return self._str("faces/models_dir", "")

    @face_models_dir.setter
    def face_models_dir(self, value: str) -> None:
        self._set("faces/models_dir", str(value or ""))

    # -- folders and recent files ---------------------------------------------------
    def last_folder(self, kind: str) -> str:
        """Last folder used for kind ("open", "save", "project", "batch")."""
        return self._str(f"paths/last_{kind}", str(Path.home()))

    def set_last_folder(self, kind: str, folder: str | Path) -> None:
        self._set(f"paths/last_{kind}", str(folder))

    @property
    def recent_files(self) -> list[str]:
        value = self.store.value("paths/recent", [])
        if value is None:
            return []
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> list[str]:
        path = str(Path(path).expanduser().resolve())
        files = [f for f in self.recent_files if f != path]
        files.insert(0, path)
        files = files[:MAX_RECENT]
        self._set("paths/recent", files)
        return files

    def clear_recent_files(self) -> None:
        self._set("paths/recent", [])

    # -- window ---------------------------------------------------------------------
    def window_geometry(self) -> QByteArray | None:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.store.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._set("window/geometry", geometry)
        self._set("window/state", state)

    # -- saving ---------------------------------------------------------------------
    @property
    def save_format(self) -> str:
        value = self._str("save/format", "png")
        return value if value in SAVE_FORMATS else "png"

    @save_format.setter
    def save_format(self, value: str) -> None:
        self._set("save/format", value)

    @property
    def jpeg_quality(self) -> int:
        try:
            return max(50, min(100, int(self.store.value("save/jpeg_quality", 95))))
        except (TypeError, ValueError):
            return 95

    @jpeg_quality.setter
    def jpeg_quality(self, value: int) -> None:
        self._set("save/jpeg_quality", int(value))

    # -- first run ------------------------------------------------------------------
    @property
    def model_banner_dismissed(self) -> bool:
        return _to_bool(self.store.value("ui/model_banner_dismissed"), False)

    @model_banner_dismissed.setter
    def model_banner_dismissed(self, value: bool) -> None:
        self._set("ui/model_banner_dismissed", bool(value))

    # -- what the worker needs --------------------------------------------------------
    def model_config(self) -> dict[str, Any]:
        """Everything that decides which SD model the worker loads (compared for reuse)."""
        return {
            "source": self.model_source,
            "device": self.device,
            "precision": self.precision,
            "low_vram": self.low_vram,
            "models_dir": str(self.resolved_models_dir()),
        }

    def face_config(self) -> dict[str, Any]:
        return {
            "backend": self.face_backend,
            "models_dir": self.face_models_dir or str(self.resolved_models_dir()),
        }
