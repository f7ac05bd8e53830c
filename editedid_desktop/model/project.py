"""The `.editedid` project file: inputs, per-face settings, parameters and masks. Qt-free.

Format: one JSON file (version, input paths, params, faces) plus the user's masks as
8-bit PNG files in a sibling folder `<name>.editedid-masks/`. Why PNG files and not base64
inside the JSON: masks are photo-sized (a 24 MP mask is 24 MB raw); as PNG they compress
to a few hundred KB, the JSON stays small and readable in a diff, and a retoucher can open
or repaint a mask in any image editor (a repainted mask is read back as it is).

The JSON is not written field by field: `to_json` / `from_json` walk any value by its
type hints (dataclasses, tuples, dicts with int keys, paths, unions, optionals), so a new
field of `ProjectData`, `EditedIDParams` or `FaceSettings` is saved and read without a
line here. A field's ``metadata["key"]`` ("inputs.original") says where it sits in the
file. `ProjectData`'s fields are the session's persisted properties plus the masks, so
`ProjectData.of(session, masks)` is generic too.

Input paths are stored relative to the project file when possible (a project folder
moved with its photos still opens) and absolute as a fallback. Every file is written
atomically (temp file + rename); the JSON is written last, so an interrupted save leaves
the previous project readable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.io.files import remove_stale_temp_files
from engine.io.images import read_mask, write_image_atomic, write_text_atomic
from engine.io.untrusted import MIB, read_json
from engine.params import EditedIDParams, load_params

from .masks import MASK_KINDS, MaskPairs
from .session import FaceSettings

PROJECT_SUFFIX = ".editedid"
PROJECT_FORMAT = "editedid-project"
PROJECT_VERSION = 1
# A project's JSON holds paths, parameters and a few entries per face (masks are files
# beside it): kilobytes. Far above any real one, far below what hurts to parse.
PROJECT_MAX_BYTES = 16 * MIB
PROJECT_MAX_ITEMS = 200_000


@dataclass
class ProjectData:
    """What a project file holds: the session's persisted properties and the user's masks."""

    original_path: Path | None = field(default=None, metadata={"key": "inputs.original"})
    edited_path: Path | None = field(default=None, metadata={"key": "inputs.edited"})
    params: EditedIDParams = field(default_factory=EditedIDParams)
    face_settings: dict[int, FaceSettings] = field(default_factory=dict, metadata={"key": "faces"})
    # edited face index -> (face_mask, element_mask), HxW uint8; None = the auto mask.
    # Stored as PNG files, not in the JSON.
    masks: MaskPairs = field(default_factory=dict, metadata={"files": True})

    @classmethod
    def of(cls, session: Any, masks: MaskPairs) -> ProjectData:
        """A snapshot of a `Session` (its persisted properties) and its user masks."""
        return cls(**session.persisted(), masks=masks)


# --------------------------------------------------------------------- generic codec
def _path_entry(path: Path, base: Path) -> dict[str, str]:
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
    if any(isinstance(v, str) and "\x00" in v for v in entry.values()):
        raise ValueError(f"a file name with a NUL character: {entry!r}")
    relative = entry.get("relative")
    if relative:
        candidate = (base / relative).resolve()
        if candidate.exists():
            return candidate
    absolute = entry.get("absolute")
    return Path(absolute) if absolute else None


def to_json(value: Any, base: Path) -> Any:
    """A JSON-ready copy of a model value; paths become entries relative to `base`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name), base) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return _path_entry(value, base)
    if isinstance(value, dict):
        return {str(k): to_json(v, base) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [to_json(v, base) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"Cannot save a {type(value).__name__} in a project file.")


def from_json(data: Any, hint: Any, base: Path) -> Any:
    """The value of type `hint` that `to_json` wrote as `data` (ValueError if it does not fit)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return from_json(data, option, base)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if hint is Any:
        return data
    if hint is Path:
        return _resolve_entry(data, base)
    if dataclasses.is_dataclass(hint):
        return _dataclass_from_json(data, hint, base)
    if origin is dict:
        key_type, value_type = args
        return {
            from_json(k, key_type, base): from_json(v, value_type, base) for k, v in data.items()
        }
    if origin is tuple:
        items = list(data)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(v, args[0], base) for v in items)
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} values, got {items}")
        return tuple(from_json(v, a, base) for v, a in zip(items, args, strict=True))
    return _scalar(data, hint)


def _scalar(data: Any, hint: Any) -> Any:
    if hint is float and isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if hint is int and isinstance(data, str):  # dict keys
        return int(data)
    if (
        isinstance(hint, type)
        and isinstance(data, hint)
        and not (hint is int and isinstance(data, bool))
    ):
        return data
    raise ValueError(f"expected {getattr(hint, '__name__', hint)}, got {data!r}")


def _dataclass_from_json(data: Any, cls: type, base: Path) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    return cls(**{name: from_json(value, hints[name], base) for name, value in data.items()})


def _key(f: dataclasses.Field) -> list[str]:
    return f.metadata.get("key", f.name).split(".")


def _stored_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(ProjectData) if not f.metadata.get("files")]


# ---------------------------------------------------------------------- the files
def masks_folder(project_path: str | Path) -> Path:
    path = Path(project_path)
    return path.with_name(path.stem + ".editedid-masks")


def _write_masks(path: Path, masks: MaskPairs) -> dict[str, dict[str, dict[str, str]]]:
    """PNG files of the masks, stale ones removed; their entries for the JSON."""
    folder = masks_folder(path)
    entries: dict[str, dict[str, dict[str, str]]] = {}
    written: set[str] = set()
    for index, pair in sorted(masks.items()):
        for kind, mask in zip(MASK_KINDS, pair, strict=True):
            if mask is None:
                continue
            folder.mkdir(exist_ok=True)
            name = f"face{int(index)}-{kind}.png"
            array = np.ascontiguousarray(np.asarray(mask, dtype=np.uint8))
            if array.ndim != 2:
                raise InputError(f"Mask of face {index} ({kind}) must be HxW, got {array.shape}.")
            write_image_atomic(folder / name, array)
            written.add(name)
            entries.setdefault(str(index), {})[kind] = {"file": f"{folder.name}/{name}"}
    if folder.is_dir():  # masks of an earlier save that no longer exist
        for stale in folder.glob("face*-*.png"):
            if stale.name not in written:
                stale.unlink(missing_ok=True)
    return entries


def _confined(path: Path, name: str) -> Path:
    """A file the project names, only inside the project's own folder: an absolute path
    or '../' would load another client's photo as a mask (and copy it on re-save)."""
    base = path.parent.resolve()
    candidate = (base / name).resolve()
    if Path(name).is_absolute() or not candidate.is_relative_to(base):
        raise InputError(
            f"{path}: the mask file {name!r} lies outside the project's folder; project "
            "files may only name files next to them. The project was not opened."
        )
    return candidate


def _read_masks(path: Path, entries: dict[str, Any]) -> MaskPairs:
    masks: MaskPairs = {}
    for index, kinds in entries.items():
        if not isinstance(kinds, dict) or not str(index).isdigit():
            raise InputError(f"{path}: the masks of face {index!r} are not readable.")
        if int(index) in masks:  # "0" and "00": one face, two sets of masks
            raise InputError(
                f"{path}: face {int(index)} has masks under two names ({index!r} and another); "
                "which ones are meant is ambiguous."
            )
        pair: list[np.ndarray | None] = [None, None]
        for slot, kind in enumerate(MASK_KINDS):
            entry = kinds.get(kind)
            if not entry:
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise InputError(f"{path}: the {kind} mask of face {index} names no file.")
            mask_path = _confined(path, entry["file"])
            if not mask_path.is_file():
                raise InputError(
                    f"{path}: the mask {mask_path} is missing; keep the "
                    f"'{masks_folder(path).name}' folder next to the project file."
                )
            pair[slot] = read_mask(mask_path)
        masks[int(index)] = (pair[0], pair[1])
    return masks


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
    # A save killed -9 leaves its temp files (ours by name, their writer's pid gone):
    # each save removes those of earlier saves here, never a file of a live write.
    for folder in (base, masks_folder(path)):
        remove_stale_temp_files(folder)

    document: dict[str, Any] = {"format": PROJECT_FORMAT, "version": PROJECT_VERSION}
    for f in _stored_fields():
        *parents, leaf = _key(f)
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = to_json(getattr(data, f.name), base)
    document["masks"] = _write_masks(path, data.masks)
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def load_project(path: str | Path) -> ProjectData:
    """Read a project file. Raises InputError naming the file on any problem."""
    path = Path(path)
    # regular file, size and entry caps, no duplicate keys (engine.io.untrusted)
    document = read_json(
        path,
        what="project file",
        limit=PROJECT_MAX_BYTES,
        max_items=PROJECT_MAX_ITEMS,
        allow_nan=False,
    )
    if not isinstance(document, dict) or document.get("format") != PROJECT_FORMAT:
        raise InputError(f"{path}: not an EditedID project file.")
    version = document.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InputError(f"{path}: the project version {version!r} is not a version number.")
    if version > PROJECT_VERSION:
        raise InputError(
            f"{path}: made by a newer EditedID (project version {version}); update the app."
        )
    base = path.parent.resolve()
    hints = typing.get_type_hints(ProjectData)
    values: dict[str, Any] = {}
    try:
        for f in _stored_fields():
            node: Any = document
            for part in _key(f):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                continue
            if f.name == "params":
                # the one validator of parameters from files (field and file named)
                params = load_params(node, source=path)
                if params is not None:
                    values[f.name] = params
            else:
                values[f.name] = from_json(node, hints[f.name], base)
    except InputError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise InputError(f"{path}: {exc}") from exc
    except (OSError, RuntimeError) as exc:  # a name too long, a symbolic link loop
        raise InputError(f"{path}: names a file that cannot be reached ({exc}).") from exc
    masks = document.get("masks", {})
    if not isinstance(masks, dict):
        raise InputError(f"{path}: 'masks' must be an object of face numbers.")
    try:
        return ProjectData(**values, masks=_read_masks(path, masks))
    except InputError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # NUL, too long, a link loop
        raise InputError(f"{path}: a mask file it names cannot be read ({exc}).") from exc
