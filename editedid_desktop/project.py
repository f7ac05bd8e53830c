"""The `.editedid` project file: inputs, per-face settings, parameters and masks.

Format: one JSON file (version, input paths, params, faces) plus the user's masks as
8-bit PNG files in a sibling folder `<name>.editedid-masks/`. Why PNG files and not base64
inside the JSON: masks are photo-sized (a 24 MP mask is 24 MB raw); as PNG they compress
to a few hundred KB, the JSON stays small and readable in a diff, and a retoucher can open
or repaint a mask in any image editor (a repainted mask is read back as it is).

Input paths are stored relative to the project file when possible (a project folder
moved with its photos still opens) and absolute as a fallback. Every file is written
atomically (temp file + rename); the JSON is written last, so an interrupted save leaves
the previous project readable. Qt-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.io.images import read_mask, write_image_atomic, write_text_atomic
from engine.params import EditedIDParams

from .session import FaceSettings

PROJECT_SUFFIX = ".editedid"
PROJECT_VERSION = 1
MASK_KINDS = ("face", "element")


@dataclass
class ProjectData:
    original_path: Path | None = None
    edited_path: Path | None = None
    params: EditedIDParams = field(default_factory=EditedIDParams)
    faces: dict[int, FaceSettings] = field(default_factory=dict)
    # edited face index -> (face_mask, element_mask), HxW uint8; None = the auto mask
    masks: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)


def masks_folder(project_path: str | Path) -> Path:
    path = Path(project_path)
    return path.with_name(path.stem + ".editedid-masks")


def _path_entry(path: Path | None, base: Path) -> dict[str, str] | None:
    if path is None:
        return None
    absolute = Path(path).expanduser().resolve()
    entry = {"absolute": str(absolute)}
    try:
        entry["relative"] = Path(os.path.relpath(absolute, base)).as_posix()
    except ValueError:  # another drive on Windows
        pass
    return entry


def _resolve_entry(entry: Any, base: Path) -> Path | None:
    if not entry:
        return None
    if isinstance(entry, str):
        entry = {"absolute": entry}
    relative = entry.get("relative")
    if relative:
        candidate = (base / relative).resolve()
        if candidate.exists():
            return candidate
    absolute = entry.get("absolute")
    return Path(absolute) if absolute else None


def save_project(path: str | Path, data: ProjectData) -> Path:
    """Write data to path (.editedid added when missing) and its masks folder."""
    path = Path(path)
    if path.suffix != PROJECT_SUFFIX:
        path = path.with_name(path.name + PROJECT_SUFFIX)
    base = path.parent.resolve()
    if not base.is_dir():
        raise InputError(f"{base}: the folder does not exist.")
    for input_path in (data.original_path, data.edited_path):
        if input_path is not None and Path(input_path).resolve() == path.resolve():
            raise InputError(f"{path}: would overwrite an input photo; choose another name.")

    folder = masks_folder(path)
    mask_entries: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for index, pair in sorted(data.masks.items()):
        for kind, mask in zip(MASK_KINDS, pair, strict=True):
            if mask is None:
                continue
            folder.mkdir(exist_ok=True)
            name = f"face{int(index)}-{kind}.png"
            target = folder / name
            array = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
            if array.ndim != 2:
                raise InputError(f"Mask of face {index} ({kind}) must be HxW, got {array.shape}.")
            write_image_atomic(target, array)
            written.add(name)
            mask_entries.setdefault(str(index), {})[kind] = {"file": f"{folder.name}/{name}"}
    if folder.is_dir():  # masks of an earlier save that no longer exist
        for stale in folder.glob("face*-*.png"):
            if stale.name not in written:
                stale.unlink(missing_ok=True)

    document = {
        "format": "editedid-project",
        "version": PROJECT_VERSION,
        "inputs": {
            "original": _path_entry(data.original_path, base),
            "edited": _path_entry(data.edited_path, base),
        },
        "params": data.params.to_dict(),
        "faces": {str(i): s.to_dict() for i, s in sorted(data.faces.items())},
        "masks": mask_entries,
    }
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def load_project(path: str | Path) -> ProjectData:
    """Read a project file. Raises InputError naming the file on any problem."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: project file not found.") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable EditedID project ({exc}).") from exc
    if not isinstance(document, dict) or document.get("format") != "editedid-project":
        raise InputError(f"{path}: not an EditedID project file.")
    version = int(document.get("version", 0))
    if version > PROJECT_VERSION:
        raise InputError(
            f"{path}: made by a newer EditedID (project version {version}); update the app."
        )
    base = path.parent.resolve()
    inputs = document.get("inputs", {})
    try:
        params = EditedIDParams.from_dict(document.get("params", {}))
        faces = {int(i): FaceSettings.from_dict(s) for i, s in document.get("faces", {}).items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from exc

    masks: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = {}
    for index, entries in document.get("masks", {}).items():
        pair: list[np.ndarray | None] = [None, None]
        for slot, kind in enumerate(MASK_KINDS):
            entry = entries.get(kind)
            if not entry:
                continue
            mask_path = base / entry["file"]
            if not mask_path.is_file():
                raise InputError(
                    f"{path}: the mask {mask_path} is missing; keep the "
                    f"'{masks_folder(path).name}' folder next to the project file."
                )
            pair[slot] = read_mask(mask_path)
        masks[int(index)] = (pair[0], pair[1])

    return ProjectData(
        original_path=_resolve_entry(inputs.get("original"), base),
        edited_path=_resolve_entry(inputs.get("edited"), base),
        params=params,
        faces=faces,
        masks=masks,
    )
