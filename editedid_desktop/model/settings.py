"""User preferences as an observable model over any key-value store. Qt-free.

Every preference is one `Setting`: its store key, its default and how a stored value is
read back (bad values fall back to the default). `SettingsModel` reads them all from
its store when made and writes each change back at once; listeners get the usual
``<name>_changed``. The store is anything with QSettings' ``value`` / ``setValue`` /
``sync``; the Qt layer passes a QSettings (`editedid_desktop.settings`), tests and
tools may use `MemoryStore`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .observable import Observable, Property

if TYPE_CHECKING:
    from engine.models.spec import ModelSpec

ORGANIZATION = "EditedID"
APPLICATION = "EditedID Desktop"
MAX_RECENT = 10

DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp16", "fp32")
FACE_BACKENDS = ("auto", "dlib", "insightface")
SAVE_FORMATS = ("png", "jpg", "tif")
# How the sidecar JSON beside a saved result names the input photos: "full" paths (to
# find them again), or file "names" only (no folders of this computer: for sharing).
SIDECAR_PATHS = ("full", "names")


class SettingsStore(Protocol):
    def value(self, key: str, defaultValue: Any = None) -> Any: ...  # noqa: N803 - Qt API
    def setValue(self, key: str, value: Any) -> None: ...  # noqa: N802 - Qt API
    def sync(self) -> None: ...


class MemoryStore:
    """A store in a dict (no file)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def value(self, key: str, defaultValue: Any = None) -> Any:  # noqa: N803 - Qt API
        return self.values.get(key, defaultValue)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 - Qt API
        self.values[key] = value

    def sync(self) -> None:
        pass


# -- readers: stored value (any type the store gives back) -> the setting's value --------
def _text(value: Any) -> str:
    return str(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        if str(value) not in choices:
            raise ValueError(value)
        return str(value)

    return read


def _quality(value: Any) -> int:
    return max(50, min(100, int(value)))


def _paths(value: Any) -> list[str]:
    if isinstance(value, str):  # an INI file gives one string for a one-item list
        value = [value] if value else []
    return [str(v) for v in value][:MAX_RECENT]


def _pairs(value: Any) -> list[tuple[str, str]]:
    """Recent photo pairs: each stored as JSON {"original": path, "edited": path}."""
    if isinstance(value, str):
        value = [value] if value else []
    pairs: list[tuple[str, str]] = []
    for item in value:
        try:
            entry = json.loads(item) if isinstance(item, str) else item
            pair = (str(entry["original"]), str(entry["edited"]))
        except (TypeError, ValueError, KeyError):
            continue  # a damaged entry is dropped, the others stay
        pairs.append(pair)
    return pairs[:MAX_RECENT]


def _stored_pairs(pairs: list[tuple[str, str]]) -> list[str]:
    return [json.dumps({"original": o, "edited": e}) for o, e in pairs]


class Setting(Property):
    """A persisted preference: store key, default, reader of stored values."""

    def __init__(
        self,
        key: str,
        default: Any = None,
        read: Callable[[Any], Any] = _text,
        *,
        factory: Callable[[], Any] | None = None,
        write: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(default, factory=factory, persist=True)
        self.key = key
        self.read = read
        self.write = write  # value -> what the store keeps (None: the value itself)

    def load(self, store: SettingsStore) -> Any:
        stored = store.value(self.key)
        if stored is None:
            return self.initial()
        try:
            return self.read(stored)
        except (TypeError, ValueError):
            return self.initial()


def _default_sd_model() -> str:
    from engine.models.places import DEFAULT_SD_MODEL

    return DEFAULT_SD_MODEL


class SettingsModel(Observable):
    """Typed preferences; each change is written to the store at once."""

    model_source = Setting("model/source", factory=_default_sd_model)
    device = Setting("model/device", "auto", _one_of(DEVICES))
    precision = Setting("model/precision", "auto", _one_of(PRECISIONS))
    low_vram = Setting("model/low_vram", False, _flag)
    models_dir = Setting("model/models_dir", "")  # "" = engine default_models_dir()
    face_backend = Setting("faces/backend", "auto", _one_of(FACE_BACKENDS))
    face_models_dir = Setting("faces/models_dir", "")  # "" = the models folder
    recent_files = Setting("paths/recent", read=_paths, factory=list)
    # photo pairs with their roles, so Open Recent never swaps original and edited
    recent_pairs = Setting("paths/recent_pairs", read=_pairs, factory=list, write=_stored_pairs)
    save_format = Setting("save/format", "png", _one_of(SAVE_FORMATS))
    jpeg_quality = Setting("save/jpeg_quality", 95, _quality)
    # results carry no GPS position unless the user keeps it (engine.io.export says why)
    strip_location = Setting("save/strip_location", True, _flag)
    sidecar_paths = Setting("save/sidecar_paths", "full", _one_of(SIDECAR_PATHS))
    model_banner_dismissed = Setting("ui/model_banner_dismissed", False, _flag)

    def __init__(self, store: SettingsStore | None = None) -> None:
        super().__init__()
        self.store: SettingsStore = store if store is not None else MemoryStore()
        for name, setting in self.properties().items():
            if isinstance(setting, Setting):
                self.__dict__[name] = setting.load(self.store)

    def _property_set(self, prop: Property, value: Any) -> None:
        if isinstance(prop, Setting):
            if prop.write is not None:
                value = prop.write(value)
            self.store.setValue(prop.key, list(value) if isinstance(value, tuple) else value)

    def sync(self) -> None:
        self.store.sync()

    # -- keyed by kind ------------------------------------------------------------------
    def last_folder(self, kind: str) -> str:
        """Last folder used for kind ("open", "save", "project", "batch")."""
        value = self.store.value(f"paths/last_{kind}")
        return str(Path.home()) if value is None else str(value)

    def set_last_folder(self, kind: str, folder: str | Path) -> None:
        self.store.setValue(f"paths/last_{kind}", str(folder))

    # -- recent files ---------------------------------------------------------------------
    def add_recent_file(self, path: str | Path) -> list[str]:
        path = str(Path(path).expanduser().resolve())
        files = [path, *(f for f in self.recent_files if f != path)][:MAX_RECENT]
        self.recent_files = files
        return files

    def add_recent_pair(self, original: str | Path, edited: str | Path) -> list[tuple[str, str]]:
        """Remember a photo pair with its roles, most recent first."""
        pair = tuple(str(Path(p).expanduser().resolve()) for p in (original, edited))
        pairs = [pair, *(p for p in self.recent_pairs if tuple(p) != pair)][:MAX_RECENT]
        self.recent_pairs = pairs
        return pairs

    def forget_recent_files(self, *paths: str | Path) -> None:
        """Drop these files from the recent files (a pair now holds them)."""
        gone = {str(Path(p).expanduser().resolve()) for p in paths}
        if any(f in gone for f in self.recent_files):
            self.recent_files = [f for f in self.recent_files if f not in gone]

    def clear_recent_files(self) -> None:
        self.recent_files = []
        self.recent_pairs = []

    # -- what the worker needs --------------------------------------------------------
    def resolved_models_dir(self) -> Path:
        from engine.models.places import default_models_dir

        return Path(self.models_dir).expanduser() if self.models_dir else default_models_dir()

    def model_spec(self) -> ModelSpec:
        """The SD model the worker loads: an equal spec keeps the loaded model. "auto"
        device and precision are the spec's None (the engine picks)."""
        from engine.models.spec import ModelSpec

        return ModelSpec(
            source=self.model_source,
            device=self.device,
            dtype=self.precision,
            low_vram=self.low_vram,
            models_dir=str(self.resolved_models_dir()),
        )

    def face_config(self) -> dict[str, Any]:
        return {
            "backend": self.face_backend,
            "models_dir": self.face_models_dir or str(self.resolved_models_dir()),
        }
