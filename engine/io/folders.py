"""Image files of a folder, and originals paired with edited photos by file name.

    pairing = pair_by_name(image_files(originals_dir), image_files(edited_dir))
    for original, edited in pairing.pairs: ...

The rule (batch folder mode and the evaluation's sub-folder layout): an edited photo
belongs to the original with the same name, ignoring the extension, upper/lower case and
the Unicode normal form (macOS writes names decomposed, NFD: "café" from a Mac and from
Windows are the same name);
with rule "stem" an edited name may also carry an editing marker (EDIT_MARKERS) before or
after the name, joined by _ - . or a space, and an exact name match wins over a marked
one. Several originals of one name, or several equally good edited photos for one
original, are ambiguous and pair with nothing, except a camera RAW beside the camera's
own JPEG of the same frame (RAW + JPEG shooting): the RAW is the original.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from engine.io.camera import AVIF_EXTENSIONS, HEIF_EXTENSIONS, RAW_EXTENSIONS

# Originals and edits alike: a shoot's RAW originals pair with the PNG/JPEG edits by name.
IMAGE_EXTENSIONS = (
    (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp")
    + HEIF_EXTENSIONS
    + AVIF_EXTENSIONS
    + RAW_EXTENSIONS
)
RULES = ("stem", "exact")
EDIT_MARKERS = ("edited", "edit", "ai", "retouched", "result", "final")
NAME_SEPARATOR = r"[ _.\-]+"
_SUFFIX_RE = re.compile(
    rf"^(?P<name>.+?){NAME_SEPARATOR}(?:{'|'.join(EDIT_MARKERS)})$", re.IGNORECASE
)
_PREFIX_RE = re.compile(
    rf"^(?:{'|'.join(EDIT_MARKERS)}){NAME_SEPARATOR}(?P<name>.+)$", re.IGNORECASE
)


def image_files(folder: Path, ignored: list[Path] | None = None) -> list[Path]:
    """The image files directly in `folder`, by name ignoring case; hidden files skipped.

    Other (non-image) files are appended to `ignored` when a list is given.
    """
    files = []
    for path in sorted(Path(folder).iterdir(), key=lambda p: p.name.casefold()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            files.append(path)
        elif ignored is not None:
            ignored.append(path)
    return files


def name_key(stem: str) -> str:
    """What two names must share to be the same name: case and Unicode normal form
    ignored (NFC after case folding, which may decompose)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", stem).casefold())


def edited_keys(stem: str, rule: str = "stem") -> list[tuple[str, int]]:
    """(key, priority) an edited file's stem may pair under: 0 = exact, 1 = marked name."""
    stem = unicodedata.normalize("NFC", stem)  # a decomposed marker or name still matches
    keys = [(name_key(stem), 0)]
    if rule == "stem":
        for pattern in (_SUFFIX_RE, _PREFIX_RE):
            match = pattern.match(stem)
            if match:
                keys.append((name_key(match.group("name")), 1))
    return keys


@dataclass
class NamePairing:
    pairs: list[tuple[Path, Path]]  # (original, edited), in the originals' order
    unpaired_originals: list[Path] = field(default_factory=list)
    unpaired_edited: list[Path] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)  # one message per unresolved name


def pair_by_name(
    originals: list[Path], edited_files: list[Path], rule: str = "stem"
) -> NamePairing:
    """Pair edited files with originals by the rule of the module docstring."""
    by_key: dict[str, list[Path]] = {}
    for path in originals:
        by_key.setdefault(name_key(path.stem), []).append(path)
    pairing = NamePairing(pairs=[])
    blocked = set()
    for key, paths in by_key.items():
        raws = [p for p in paths if p.suffix.lower() in RAW_EXTENSIONS]
        if len(paths) > 1 and len(raws) == 1:
            # RAW + JPEG shooting: the RAW is the original, the camera's JPEG a copy of
            # it (not an original left without its edit)
            by_key[key] = raws
        elif len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            pairing.ambiguous.append(f"several originals share the name {key!r}: {names}")
            blocked.add(key)

    # Each edited file goes to its best-priority key that has an original.
    claims: dict[str, list[tuple[int, Path]]] = {}
    for path in edited_files:
        for key, priority in edited_keys(path.stem, rule):
            if key in by_key:
                claims.setdefault(key, []).append((priority, path))
                break
        else:
            pairing.unpaired_edited.append(path)

    for key, paths in by_key.items():
        candidates = sorted(claims.get(key, []), key=lambda c: c[0])
        if key in blocked:
            pairing.unpaired_edited.extend(p for _, p in candidates)
        elif not candidates:
            pairing.unpaired_originals.extend(paths)
        else:
            best = [p for priority, p in candidates if priority == candidates[0][0]]
            if len(best) > 1:
                names = ", ".join(p.name for p in best)
                pairing.ambiguous.append(f"several edited photos match {paths[0].name}: {names}")
                pairing.unpaired_edited.extend(p for _, p in candidates)
                continue
            pairing.pairs.append((paths[0], best[0]))
            pairing.unpaired_edited.extend(p for _, p in candidates if p != best[0])
    return pairing
