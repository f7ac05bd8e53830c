"""The observable document of one restoration job (krita-ai-diffusion's `model/` layer).

`Session` holds what the user is working on: the two photos, the engine's analysis, the
per-face settings, the ONE `EditedIDParams` object, the classic and diffusion results and
the dirty flag. Widgets display it and write to it through its setters; every change
emits a signal, so two widgets bound to the same value stay in step. Nothing here draws
or runs the engine (the worker does); masks live in the canvas's MaskDocument.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.params import EditedIDParams

PAIRING_AUTO = "auto"  # FaceSettings.pairing: let the engine pair this face


def split_words(text: str) -> tuple[str, ...]:
    """ "black-framed glasses, hat" -> ("black-framed glasses", "hat")."""
    parts = [p.strip() for p in re.split(r"[,;\n]", text or "")]
    return tuple(p for p in parts if p)


@dataclass
class FaceSettings:
    """What the user chose for one edited face."""

    enabled: bool = True
    element_words: str = "glasses"
    overlap: tuple[float, float] = (0.5, 0.5)  # (lambda_o, lambda_e)
    overlap_linked: bool = True  # moving one slider moves the other (sum 1)
    pairing: int | str | None = PAIRING_AUTO  # "auto", an original face index, None = no pair

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["overlap"] = list(self.overlap)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "overlap" in values:
            values["overlap"] = tuple(float(v) for v in values["overlap"])
        return cls(**values)


class Session(QObject):
    """Observable state of the photo pair being restored."""

    photos_changed = Signal()
    analysis_changed = Signal()
    face_changed = Signal(int)  # edited face index
    params_changed = Signal(object)  # EditedIDParams
    result_changed = Signal()
    dirty_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.original_path: Path | None = None
        self.edited_path: Path | None = None
        self.original: np.ndarray | None = None
        self.edited: np.ndarray | None = None
        self.analysis: Any = None  # engine.photo.pipeline.PhotoAnalysis
        self.face_settings: dict[int, FaceSettings] = {}
        self._params = EditedIDParams()
        self.classic_result: Any = None  # engine.photo.pipeline.PhotoResult (mode "classic")
        self.result: Any = None  # engine.photo.pipeline.PhotoResult (mode "diffusion")
        self.project_path: Path | None = None
        self._dirty = False

    # -- photos ---------------------------------------------------------------------
    def set_photo(self, kind: str, path: str | Path | None, image: np.ndarray | None) -> None:
        """kind: "original" or "edited". Clears the analysis, face settings and results."""
        if kind not in ("original", "edited"):
            raise ValueError(f"kind must be 'original' or 'edited', got {kind!r}")
        setattr(self, f"{kind}_path", Path(path) if path is not None else None)
        setattr(self, kind, image)
        self.face_settings = {}  # face indices and pairings belong to the old photos
        self.analysis = None
        self.classic_result = None
        self.result = None
        self.photos_changed.emit()
        self.analysis_changed.emit()
        self.result_changed.emit()
        self.mark_dirty()

    @property
    def has_photos(self) -> bool:
        return self.original is not None and self.edited is not None

    def clear(self) -> None:
        self.original_path = self.edited_path = self.project_path = None
        self.original = self.edited = None
        self.analysis = self.classic_result = self.result = None
        self.face_settings = {}
        self.photos_changed.emit()
        self.analysis_changed.emit()
        self.result_changed.emit()
        self.set_dirty(False)

    # -- analysis and faces ---------------------------------------------------------------
    def set_analysis(self, analysis: Any) -> None:
        """Adopt the engine's analysis; faces keep settings the user already made."""
        self.analysis = analysis
        default_words = ", ".join(self._params.element_words)
        if analysis is not None:
            for face in analysis.faces:
                if face.index not in self.face_settings:
                    self.face_settings[face.index] = FaceSettings(
                        enabled=not getattr(face, "too_small", False)
                        and face.original_index is not None,
                        element_words=default_words,
                        overlap=tuple(self._params.overlap),
                    )
        self.analysis_changed.emit()

    @property
    def faces(self) -> list[Any]:
        return list(self.analysis.faces) if self.analysis is not None else []

    def face(self, index: int) -> Any:
        for face in self.faces:
            if face.index == index:
                return face
        raise KeyError(index)

    def settings_for(self, index: int) -> FaceSettings:
        return self.face_settings.setdefault(index, FaceSettings())

    def update_face(self, index: int, **changes: Any) -> None:
        """Change one face's settings (enabled, element_words, overlap, ...)."""
        current = self.settings_for(index)
        updated = dataclasses.replace(current, **changes)
        if updated == current:
            return
        self.face_settings[index] = updated
        self.face_changed.emit(index)
        self.mark_dirty()

    def pairing_overrides(self) -> dict[int, int | None]:
        """Overrides for engine.photo.pipeline.analyze_photos (faces on "auto" are absent)."""
        return {
            index: s.pairing for index, s in self.face_settings.items() if s.pairing != PAIRING_AUTO
        }

    def enabled_faces(self) -> list[int]:
        """Edited face indices to restore: enabled and paired with an original face."""
        out = []
        for face in self.faces:
            settings = self.settings_for(face.index)
            if settings.enabled and face.original_index is not None:
                out.append(face.index)
        return out

    def overlaps(self) -> dict[int, tuple[float, float]]:
        return {i: tuple(self.settings_for(i).overlap) for i in self.enabled_faces()}

    def word_groups(self) -> dict[tuple[str, ...], list[int]]:
        """Enabled faces grouped by their element words (one engine run per group)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index in self.enabled_faces():
            words = split_words(self.settings_for(index).element_words)
            groups.setdefault(words or self._params.element_words, []).append(index)
        return groups

    # -- parameters -------------------------------------------------------------------
    @property
    def params(self) -> EditedIDParams:
        return self._params

    def set_params(self, params: EditedIDParams) -> None:
        if params == self._params:
            return
        self._params = params
        self.params_changed.emit(params)
        self.mark_dirty()

    # -- results ----------------------------------------------------------------------
    def set_classic_result(self, result: Any) -> None:
        self.classic_result = result
        self.result_changed.emit()

    def set_result(self, result: Any) -> None:
        self.result = result
        self.result_changed.emit()
        self.mark_dirty()

    @property
    def best_result(self) -> Any:
        """The diffusion result when there is one, else the classic preview."""
        return self.result if self.result is not None else self.classic_result

    # -- dirty flag -------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self._dirty

    def set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirty_changed.emit(dirty)

    def mark_dirty(self) -> None:
        self.set_dirty(True)
