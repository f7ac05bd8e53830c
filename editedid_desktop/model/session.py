"""The document of one restoration job (krita-ai-diffusion's `model/` layer), Qt-free.

`Session` holds what the user is working on: the two photos, the engine's analysis, the
per-face settings, the ONE `EditedIDParams` object, the classic and diffusion results and
the dirty flag. Widgets display it and write to it (binder.bind); every change notifies
its listeners, so two widgets bound to the same value stay in step. Nothing here draws
or runs the engine (the worker does); masks live in `model.masks.MaskModel`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.params import EditedIDParams

from .observable import Event, Observable, Property

PAIRING_AUTO = "auto"  # FaceSettings.pairing: let the engine pair this face
PHOTO_KINDS = ("original", "edited")


def split_words(text: str) -> tuple[str, ...]:
    """ "black-framed glasses, hat" -> ("black-framed glasses", "hat")."""
    parts = [p.strip() for p in re.split(r"[,;\n]", text or "")]
    return tuple(p for p in parts if p)


@dataclass(frozen=True)
class FaceSettings:
    """What the user chose for one edited face."""

    enabled: bool = True
    element_words: str = "glasses"
    overlap: tuple[float, float] = (0.5, 0.5)  # (lambda_o, lambda_e)
    overlap_linked: bool = True  # moving one slider moves the other (sum 1)
    pairing: int | str | None = PAIRING_AUTO  # "auto", an original face index, None = no pair


class Session(Observable):
    """Observable state of the photo pair being restored.

    Properties declared ``persist=True`` are saved in the project file (model.project);
    changing one makes the session dirty.
    """

    original_path: Property[Path | None] = Property(None, persist=True)
    edited_path: Property[Path | None] = Property(None, persist=True)
    params: Property[EditedIDParams] = Property(EditedIDParams(), persist=True)
    face_settings: Property[dict[int, FaceSettings]] = Property(factory=dict, persist=True)
    original: Property[np.ndarray | None] = Property(None, eq=False)
    edited: Property[np.ndarray | None] = Property(None, eq=False)
    analysis: Property[Any] = Property(None, eq=False)  # engine.photo.pipeline.PhotoAnalysis
    classic_result: Property[Any] = Property(None, eq=False)  # PhotoResult, mode "classic"
    result: Property[Any] = Property(None, eq=False)  # PhotoResult, mode "diffusion"
    project_path: Property[Path | None] = Property(None)
    dirty: Property[bool] = Property(False)

    face_changed = Event()  # (edited face index) after update_face

    def _property_set(self, prop: Property, value: Any) -> None:
        if prop.persist:
            self.dirty = True

    # -- photos ---------------------------------------------------------------------
    def set_photo(self, kind: str, path: str | Path | None, image: np.ndarray | None) -> None:
        """kind: "original" or "edited". Clears the analysis, face settings and results.

        Opening photos is no unsaved work (both are on disk, nothing was made yet), so
        the session stays clean, as in Photoshop or Lightroom; only an open project
        whose photo was replaced has changed."""
        if kind not in PHOTO_KINDS:
            raise ValueError(f"kind must be 'original' or 'edited', got {kind!r}")
        with self.batch():
            setattr(self, f"{kind}_path", Path(path) if path is not None else None)
            setattr(self, kind, image)
            self.face_settings = {}  # face indices and pairings belong to the old photos
            self.analysis = None
            self.classic_result = None
            self.result = None
            self.dirty = self.project_path is not None

    @property
    def has_photos(self) -> bool:
        return self.original is not None and self.edited is not None

    def clear(self) -> None:
        """Back to an empty session; the parameters stay (they are the user's defaults)."""
        with self.batch():
            for name, prop in self.properties().items():
                if name != "params":
                    setattr(self, name, prop.initial())
            self.dirty = False

    # -- analysis and faces ---------------------------------------------------------------
    def set_analysis(self, analysis: Any) -> None:
        """Adopt the engine's analysis; faces keep settings the user already made.

        New faces get default settings; that is not a change of the user's (the dirty
        flag stays as it was). A new face is ticked only when the engine restores it by
        default (paired, plausible, identity changed: `restore_by_default`) and is not
        too small; the face panel offers the others ("unchanged — include?").
        """
        default_words = ", ".join(self.params.element_words)
        settings = dict(self.face_settings)
        for face in analysis.faces if analysis is not None else []:
            if face.index not in settings:
                settings[face.index] = FaceSettings(
                    enabled=not getattr(face, "too_small", False)
                    and face.original_index is not None
                    and getattr(face, "restore_by_default", True),
                    element_words=default_words,
                    overlap=tuple(self.params.overlap),
                )
        with self.batch():
            dirty = self.dirty
            self.face_settings = settings
            self.analysis = analysis
            self.dirty = dirty

    @property
    def faces(self) -> list[Any]:
        return list(self.analysis.faces) if self.analysis is not None else []

    def face(self, index: int) -> Any:
        for face in self.faces:
            if face.index == index:
                return face
        raise KeyError(index)

    def settings_for(self, index: int) -> FaceSettings:
        return self.face_settings.get(index, FaceSettings())

    def update_face(self, index: int, **changes: Any) -> None:
        """Change one face's settings (enabled, element_words, overlap, ...)."""
        current = self.settings_for(index)
        updated = dataclasses.replace(current, **changes)
        if updated == current and index in self.face_settings:
            return
        self.face_settings = {**self.face_settings, index: updated}
        self.face_changed.emit(index)

    def pairing_overrides(self) -> dict[int, int | None]:
        """Overrides for engine.photo.pipeline.analyze_photos (faces on "auto" are absent)."""
        return {
            index: s.pairing for index, s in self.face_settings.items() if s.pairing != PAIRING_AUTO
        }

    def enabled_faces(self) -> list[int]:
        """Edited face indices to restore: enabled and paired with an original face."""
        return [
            face.index
            for face in self.faces
            if self.settings_for(face.index).enabled and face.original_index is not None
        ]

    def overlaps(self) -> dict[int, tuple[float, float]]:
        return {i: tuple(self.settings_for(i).overlap) for i in self.enabled_faces()}

    def word_groups(self) -> dict[tuple[str, ...], list[int]]:
        """Enabled faces grouped by their element words (one engine run per group)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index in self.enabled_faces():
            words = split_words(self.settings_for(index).element_words)
            groups.setdefault(words or self.params.element_words, []).append(index)
        return groups

    # -- results and the dirty flag -----------------------------------------------------
    def set_result(self, result: Any) -> None:
        """A new diffusion result: unsaved work."""
        with self.batch():
            self.result = result
            self.dirty = True

    @property
    def best_result(self) -> Any:
        """The diffusion result when there is one, else the classic preview."""
        return self.result if self.result is not None else self.classic_result

    def set_dirty(self, dirty: bool) -> None:
        """``session.dirty = dirty`` as a call (for callbacks and older callers)."""
        self.dirty = dirty
