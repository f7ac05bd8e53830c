"""Finding the (original, edited, restored) sets of an evaluation folder, in either
layout the evaluate module's docstring describes (flat files named `<name>_original`,
`<name>_edited`, `<name>_restored[_<variant>]`, or the sub-folders original/, edited/ and
restored[-<variant>]/): `discover_sets` returns the `EvalSet`s and one line per problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError
from engine.io.folders import NAME_SEPARATOR, image_files, pair_by_name

_ORIGINAL_RE = re.compile(rf"^(?P<name>.+){NAME_SEPARATOR}original$", re.IGNORECASE)
_EDITED_RE = re.compile(rf"^(?P<name>.+){NAME_SEPARATOR}edited$", re.IGNORECASE)
_RESTORED_RE = re.compile(
    rf"^(?P<name>.+?){NAME_SEPARATOR}restored(?:{NAME_SEPARATOR}(?P<variant>.+))?$", re.IGNORECASE
)
_RESTORED_DIR_RE = re.compile(rf"^restored(?:{NAME_SEPARATOR}(?P<variant>.+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class EvalSet:
    name: str
    original: Path
    edited: Path
    restored: Path
    variant: str = "restored"


# --- discovery ----------------------------------------------------------------------------
def _sub(folder: Path, names: Sequence[str]) -> Path | None:
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.casefold() in names:
            return child
    return None


def discover_sets(folder: str | Path) -> tuple[list[EvalSet], list[str]]:
    """The (original, edited, restored) sets of `folder` and one line per problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: the evaluation folder does not exist or is not a folder.")
    original_dir = _sub(folder, ("original", "originals"))
    edited_dir = _sub(folder, ("edited",))
    if original_dir is not None and edited_dir is not None:
        return _discover_subfolders(folder, original_dir, edited_dir)
    return _discover_flat(folder)


def _discover_flat(folder: Path) -> tuple[list[EvalSet], list[str]]:
    originals: dict[str, list[Path]] = {}
    edited: dict[str, list[Path]] = {}
    restored: dict[str, list[tuple[str, Path]]] = {}
    keys: dict[str, str] = {}
    for path in image_files(folder):
        stem = path.stem
        if m := _RESTORED_RE.match(stem):
            key = m.group("name").casefold()
            restored.setdefault(key, []).append((m.group("variant") or "restored", path))
        elif m := _ORIGINAL_RE.match(stem):
            key = m.group("name").casefold()
            originals.setdefault(key, []).append(path)
        elif m := _EDITED_RE.match(stem):
            key = m.group("name").casefold()
            edited.setdefault(key, []).append(path)
        else:
            continue
        keys.setdefault(key, m.group("name"))
    sets, problems = [], []
    for key in sorted(keys):
        name = keys[key]
        o, e, r = originals.get(key, []), edited.get(key, []), restored.get(key, [])
        if len(o) != 1 or len(e) != 1 or not r:
            missing = [
                what
                for what, files in (("original", o), ("edited", e), ("restored", r))
                if not files
            ]
            several = [what for what, files in (("original", o), ("edited", e)) if len(files) > 1]
            why = (
                f"no {' and no '.join(missing)} file"
                if missing
                else f"several {' and '.join(several)} files"
            )
            problems.append(f"Set {name!r} skipped: {why} (see the naming rules).")
            continue
        seen: set[str] = set()
        for variant, path in sorted(r, key=lambda vp: vp[0].casefold()):
            if variant.casefold() in seen:
                problems.append(
                    f"Set {name!r}: several restored files for variant {variant!r}; "
                    f"{path.name} skipped."
                )
                continue
            seen.add(variant.casefold())
            sets.append(EvalSet(name, o[0], e[0], path, variant))
    if not sets and not problems:
        problems.append(
            f"{folder}: no evaluation sets found. Name files <name>_original.jpg, "
            "<name>_edited.jpg, <name>_restored.png, or use sub-folders original/, edited/ and "
            "restored/."
        )
    return sets, problems


def _discover_subfolders(
    folder: Path, original_dir: Path, edited_dir: Path
) -> tuple[list[EvalSet], list[str]]:
    pairing = pair_by_name(image_files(original_dir), image_files(edited_dir), "stem")
    problems = [f"No original for edited photo: {p.name}" for p in pairing.unpaired_edited]
    problems += [f"Ambiguous: {message}" for message in pairing.ambiguous]
    restored_dirs = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name.casefold()):
        if child.is_dir() and (m := _RESTORED_DIR_RE.match(child.name)):
            restored_dirs.append((m.group("variant") or "restored", child))
    if not restored_dirs:
        problems.append(f"{folder}: no restored/ folder next to original/ and edited/.")
    pairs = sorted(pairing.pairs, key=lambda pair: pair[0].stem.casefold())
    sets = []
    for variant, rdir in restored_dirs:
        by_stem = {p.stem.casefold(): p for p in image_files(rdir)}
        for original, edited in pairs:
            path = _restored_file(by_stem, edited.stem, original.stem)
            if path is None:
                problems.append(f"{rdir.name}/: no restored file for {edited.name}")
                continue
            sets.append(EvalSet(original.stem, original, edited, path, variant))
    return sets, problems


def _restored_file(by_stem: dict[str, Path], edited_stem: str, original_stem: str) -> Path | None:
    """The restored file of a pair: the edited file's name, the original's, or the
    original's name with the `restored` marker (`anna_restored.png`)."""
    key = original_stem.casefold()
    path = by_stem.get(edited_stem.casefold()) or by_stem.get(key)
    if path is not None:
        return path
    for stem, candidate in by_stem.items():
        m = _RESTORED_RE.match(stem)
        if m and m.group("name").casefold() == key and not m.group("variant"):
            return candidate
    return None
