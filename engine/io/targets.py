"""Where a result may be written, checked before any work: the formats a result is saved
in (FORMATS), whether two paths are the same file (through links, so an input is never
overwritten), where a result's sidecar JSON lives (`sidecar_path`), and
`check_result_target`, which refuses an output or sidecar that is an input, a folder, or
an existing file (unless overwriting). engine.io.export and engine.io.sidecars both use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import InputError
from engine.io.files import OutputFolderError

DEFAULT_NAME_MAX = 255  # bytes of one name on ext4, APFS, NTFS (UTF-16 units), exFAT
FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
    ".psd": "PSD", ".psb": "PSD",  # layered (engine.io.psd); .psb: the large-document form
}  # fmt: skip
FORMAT_WORDS = "use .png, .jpg, .tif or .psd"


def same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(str(_resolved(a))) == os.path.normcase(str(_resolved(b)))


def _resolved(path: Path) -> Path:
    """`path.resolve()`, with a symbolic-link loop as our error, not a traceback."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:
        raise InputError(f"{path}: is a symbolic link loop (or unreadable link).") from error


def sidecar_path(output: str | Path) -> Path:
    """Where the sidecar JSON of an output lives (`result.png.json`)."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def check_result_target(
    out: str | Path,
    *,
    protected_paths=(),
    overwrite: bool = False,
    formats: dict[str, str] | None = FORMATS,
) -> Path:
    """Refuse, before any work, what `write_with_sidecar` must never do (InputError).

    The output and its sidecar may not be an input (also through links), a folder, or an
    existing file unless `overwrite`; the output's folder must exist. protected_paths:
    the inputs, as {name: path} or a sequence. `formats`: the extensions allowed (None:
    any).
    """
    out = Path(out)
    side = sidecar_path(out)
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give a file name for the result.")
    if formats is not None and out.suffix.lower() not in formats:
        raise InputError(
            f"{out}: cannot save as {out.suffix or 'a file without extension'!r}; {FORMAT_WORDS}."
        )
    folder = out.parent
    if not folder.is_dir():
        raise OutputFolderError(
            f"{folder}: the output folder does not exist"
            + (" (it is a file)" if folder.exists() else "")
            + ". Create it first or choose another folder."
        )
    _check_name_length(out, side, folder)
    named = _named_inputs(protected_paths)
    for target, what in ((out, "output"), (side, "sidecar")):
        _resolved(target)
        for name, protected in named:
            if protected is not None and same_file(target, Path(protected)):
                which = f"the {name} input" if name else "an input file"
                raise InputError(
                    f"{target}: the {what} would overwrite {which} ({protected}); inputs are "
                    "never overwritten. Choose another name or folder."
                )
        if target.is_dir():
            raise InputError(f"{target}: is a folder; the {what} cannot be written there.")
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise InputError(
                f"{target}: already exists (the {what}). Allow overwriting or choose "
                "another name or folder."
            )
        if target.exists() and not target.is_file():
            raise InputError(f"{target}: is not a regular file; the {what} cannot replace it.")
    return out


def _check_name_length(out: Path, side: Path, folder: Path) -> None:
    """The sidecar's name (the output's + ".json") must fit the folder's file system;
    found out only after the run otherwise, with the result written and no sidecar."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # Windows, or a file system that won't say
        limit = DEFAULT_NAME_MAX
    size = len(os.fsencode(side.name))
    if size > limit:
        room = limit - (size - len(os.fsencode(out.name)))
        raise InputError(
            f"{out}: the name is too long: its sidecar {side.name!r} would take {size} bytes "
            f"and this folder allows {limit}. Choose a name of at most {room} bytes."
        )


def _named_inputs(protected_paths) -> list[tuple[str, str | Path]]:
    """(name, path) pairs from {name: path}, or ("", path) from a plain sequence."""
    if isinstance(protected_paths, dict):
        return list(protected_paths.items())
    return [("", p) for p in protected_paths or ()]
