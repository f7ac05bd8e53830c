"""Folder mode's plan: pair originals with edited photos by file name, before any work.

`plan_batch` reads the two folders' listings and the output folder's sidecars (no image)
and returns a `BatchPlan`: the pairs to restore (`BatchItem`), those finished earlier,
the files without a partner, ambiguous names and outputs in the way. `rule_text` is the
pairing rule in words, `is_finished` what resume skips, `output_name` a result's name;
`resolve_folder` and `path_exists` are the checks the report and the run share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputError
from engine.io.export import FORMATS, read_sidecar, sidecar_matches_inputs, sidecar_path
from engine.io.folders import (
    EDIT_MARKERS,
    IMAGE_EXTENSIONS,
    RULES,
    NamePairing,
    image_files,
    name_key,
    pair_by_name,
)


def rule_text(rule: str = "stem") -> str:
    """The pairing rule in words, as shown to the user before a batch starts."""
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    common = (
        "Pairs are made by file name: an edited photo belongs to the original with the same "
        "name, ignoring the extension and upper/lower case (portrait01.jpg \u2194 "
        "PORTRAIT01.png). "
    )
    if rule == "stem":
        common += (
            "An edited name may also carry an editing marker before or after the name, "
            "joined by _ - . or a space: "
            + ", ".join(EDIT_MARKERS)
            + " (portrait01_edited.png, portrait01-edit.jpg, edited_portrait01.png). "
            "An exact name match wins over a marked one. "
        )
    return common + (
        "A camera RAW beside the camera's JPEG of the same name (RAW + JPEG shooting): "
        "the RAW is the original. "
        f"Image files: {exts}; other files and hidden files are ignored; sub-folders are "
        "not searched. Each result is saved in the output folder under the edited file's "
        "name (PNG, JPEG and TIFF keep their format, others become PNG; an output format "
        "chosen for the batch, such as PSD, applies to every result) with a .json "
        "sidecar; a result whose sidecar says it finished from the same input files "
        "(same sha256) is skipped, so a stopped batch resumes where it left off."
    )


# --- plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchItem:
    original: Path
    edited: Path
    output: Path


@dataclass
class BatchPlan:
    original_dir: Path
    edited_dir: Path
    output_dir: Path
    rule: str
    rule_text: str
    items: list[BatchItem]  # to process (includes `conflicts`)
    unpaired_originals: list[Path] = field(default_factory=list)
    unpaired_edited: list[Path] = field(default_factory=list)
    skipped_existing: list[BatchItem] = field(default_factory=list)  # finished earlier
    ambiguous: list[str] = field(default_factory=list)  # one message per unresolved name
    conflicts: list[BatchItem] = field(default_factory=list)  # output exists, not finished
    changed: list[BatchItem] = field(default_factory=list)  # conflicts: ours, inputs changed
    ignored: list[Path] = field(default_factory=list)  # non-image files in the input folders

    @property
    def total(self) -> int:
        return len(self.items) + len(self.skipped_existing)

    def problems(self) -> list[str]:
        """Everything the user should see before starting, one line each."""
        lines = [f"No edited photo for original: {p.name}" for p in self.unpaired_originals]
        lines += [f"No original for edited photo: {p.name}" for p in self.unpaired_edited]
        lines += [f"Ambiguous: {m}" for m in self.ambiguous]
        changed = {c.output for c in self.changed}
        lines += [
            (
                f"An input changed since this output was made (redone only when overwriting "
                f"is allowed): {c.output.name}"
                if c.output in changed
                else f"Output exists but is not marked finished (no sidecar of ours; replaced "
                f"only when overwriting is allowed): {c.output.name}"
            )
            for c in self.conflicts
        ]
        return lines

    def summary(self) -> str:
        return (
            f"{len(self.items)} pairs to process, {len(self.skipped_existing)} already "
            f"finished, {len(self.unpaired_originals)} originals and "
            f"{len(self.unpaired_edited)} edited photos without a partner"
            + (f", {len(self.ambiguous)} ambiguous names" if self.ambiguous else "")
            + "."
        )


OUTPUT_FORMATS = ("png", "jpg", "tif", "psd")  # a batch's --format choices


def output_name(edited: Path, out_format: str | None = None) -> str:
    """The result's file name: the edited file's, with PNG for formats we cannot write,
    or with `out_format`'s extension (e.g. "psd": a layered document per photo)."""
    if out_format:
        return f"{edited.stem}.{out_format}"
    suffix = edited.suffix if edited.suffix.lower() in FORMATS else ".png"
    return edited.stem + suffix


def is_finished(
    output: str | Path, original: str | Path | None = None, edited: str | Path | None = None
) -> bool:
    """True when `output` exists and its sidecar is ours and says it finished; with the
    inputs given, also only when the sha256 it stores of each matches the file now (a
    re-exported input makes the result stale). Resume skips what this accepts."""
    output = Path(output)
    try:
        if not output.is_file() or output.stat().st_size == 0:
            return False
    except OSError:
        return False
    data = read_sidecar(output)
    if data is None or str(data.get("status", "")).lower() != "ok":
        return False
    inputs = {n: p for n, p in (("original", original), ("edited", edited)) if p is not None}
    return sidecar_matches_inputs(data, inputs) if inputs else True


def resolve_folder(folder: Path) -> Path:
    try:
        return folder.resolve()
    except (OSError, RuntimeError) as error:
        raise InputError(f"{folder}: is a symbolic link loop (or unreadable link).") from error


def _check_dirs(original_dir: Path, edited_dir: Path, output_dir: Path) -> None:
    for name, folder in (("original", original_dir), ("edited", edited_dir)):
        if not folder.is_dir():
            raise InputError(f"{folder}: the {name} folder does not exist or is not a folder.")
    if resolve_folder(original_dir) == resolve_folder(edited_dir):
        raise InputError(
            f"{edited_dir}: the edited folder is the original folder ({original_dir}); every "
            "photo would be paired with itself. Choose the folder of the edited photos."
        )
    out = resolve_folder(output_dir)
    for name, folder in (("original", original_dir), ("edited", edited_dir)):
        if out == resolve_folder(folder):
            raise InputError(
                f"{output_dir}: the output folder must differ from the {name} folder, so no "
                "input can ever be overwritten. Choose or create a separate folder."
            )
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"{output_dir}: is a file; choose a folder for the results.")


def plan_batch(
    original_dir: str | Path,
    edited_dir: str | Path,
    output_dir: str | Path,
    *,
    rule: str = "stem",
    out_format: str | None = None,
) -> BatchPlan:
    """Pair the two folders by file name (see `rule_text`) and look at what is done.

    Reads only directory listings and sidecars; opens no image. The output folder may not
    exist yet (`run_batch` creates it).
    """
    if rule not in RULES:
        raise InputError(f"Unknown pairing rule {rule!r}; use one of {', '.join(RULES)}.")
    original_dir, edited_dir, output_dir = Path(original_dir), Path(edited_dir), Path(output_dir)
    _check_dirs(original_dir, edited_dir, output_dir)
    ignored: list[Path] = []
    pairing = pair_by_name(
        image_files(original_dir, ignored), image_files(edited_dir, ignored), rule
    )
    if out_format is not None and out_format not in OUTPUT_FORMATS:
        raise InputError(f"Output format {out_format!r}; use one of {', '.join(OUTPUT_FORMATS)}.")
    items = _unclashing_items(pairing, output_dir, out_format)
    todo, done, conflicts, changed = [], [], [], []
    for item in sorted(items, key=lambda i: i.edited.name.casefold()):
        if is_finished(item.output, item.original, item.edited):
            done.append(item)
        else:
            todo.append(item)
            if path_exists(item.output) or path_exists(sidecar_path(item.output)):
                conflicts.append(item)
                if is_finished(item.output):  # ours and finished, but from other inputs
                    changed.append(item)
    return BatchPlan(
        original_dir=original_dir,
        edited_dir=edited_dir,
        output_dir=output_dir,
        rule=rule,
        rule_text=rule_text(rule),
        items=todo,
        unpaired_originals=sorted(pairing.unpaired_originals, key=lambda p: p.name.casefold()),
        unpaired_edited=sorted(pairing.unpaired_edited, key=lambda p: p.name.casefold()),
        skipped_existing=done,
        ambiguous=pairing.ambiguous,
        conflicts=conflicts,
        changed=changed,
        ignored=ignored,
    )


def path_exists(path: Path) -> bool:
    """Something (a file, folder, or a link, even a dangling one) is at `path`."""
    return path.exists() or path.is_symlink()


def _unclashing_items(
    pairing: NamePairing, output_dir: Path, out_format: str | None = None
) -> list[BatchItem]:
    """One item per pair; two edited files that would be saved under one output name
    are both ambiguous (moved to `pairing.unpaired_edited`, message in `ambiguous`)."""
    items: list[BatchItem] = []
    used_outputs: dict[str, Path] = {}
    for original, edited in pairing.pairs:
        output = output_dir / output_name(edited, out_format)
        clash = used_outputs.get(name_key(output.name))
        if clash is not None:
            pairing.ambiguous.append(
                f"{edited.name} and {clash.name} would both be saved as {output.name}"
            )
            pairing.unpaired_edited.append(edited)
            continue
        used_outputs[name_key(output.name)] = edited
        items.append(BatchItem(original, edited, output))
    return items
