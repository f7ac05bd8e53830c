"""Saving the result (diffusion, else the classic preview) and its sidecar JSON.

The sidecar (result.png.json: parameters, model, seed, the inputs' SHA-256 and paths) is
named in the save dialog's title and in the status line after every save; Settings
chooses whether it names the inputs by full path or by file name only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog

from engine.errors import EditedIDError, InputError

from . import Controller

if TYPE_CHECKING:
    from .host import Document, Shell

SAVE_FILTERS = (
    "PNG (*.png);;JPEG (*.jpg *.jpeg);;TIFF (*.tif *.tiff);;Photoshop document (*.psd *.psb)"
)
# The sidecar is a documented feature, and says where the inputs are: the user is told.
SAVE_CAPTION = "Save result (its settings go beside it in a .json sidecar)"
SIDECAR_PATH_WORDS = {"full": "full paths", "names": "file names (no folders)"}


def filter_suffix(chosen: str) -> str:
    """The first extension of a file dialog filter ("TIFF (*.tif *.tiff)" -> ".tif");
    ".png" for none."""
    inside = chosen.partition("(*")[2]
    suffix = inside.split()[0].rstrip(")") if inside.strip() else ""
    return suffix if suffix.startswith(".") else ".png"


class ExportController(Controller):
    """File ▸ Save Result (to the last file) and Save Result As."""

    def __init__(self, document: Document, shell: Shell) -> None:
        super().__init__(document, shell)
        self.result_path: Path | None = None  # where Save writes without asking

    def forget_result_path(self) -> None:
        """New photos: the next Save asks for a file again."""
        self.result_path = None

    def default_result_name(self, suffix: str | None = None) -> str:
        suffix = suffix or "." + self.settings.save_format
        stem = self.session.edited_path.stem if self.session.edited_path else "result"
        return f"{stem}-restored{suffix}"

    def save_result(self) -> None:
        if self.result_path is None:
            self.save_result_as()
        else:
            self.write_result(self.result_path, overwrite=True)

    def save_result_as(self) -> None:
        if self.session.best_result is None:
            return
        start = Path(self.settings.last_folder("save")) / self.default_result_name()
        path, chosen = QFileDialog.getSaveFileName(
            self.dialog_parent, SAVE_CAPTION, str(start), SAVE_FILTERS
        )
        if path:
            target = Path(path)
            if target.suffix == "":  # the chosen type's: a name typed under "Photoshop
                # document" is a .psd; the dialog asked about the bare name, not this one
                target = target.with_suffix(filter_suffix(chosen))
                self.write_result(target, overwrite=False)
            else:
                self.write_result(target, overwrite=True)  # the dialog asked already

    def write_result(self, path: Path, *, overwrite: bool = False) -> Path | None:
        """Save the best result (diffusion, else classic) and its sidecar JSON, as one unit
        and by the CLI's rules (`engine.io.export.write_with_sidecar`): never over an input,
        never an existing file unless `overwrite`, and never over a `.json` beside it that
        is not a sidecar of ours, even when the file dialog asked about the image. Any
        problem is a message box, never a traceback."""
        session = self.session
        result = session.best_result
        if result is None:
            return None
        if path.suffix == "":
            path = path.with_suffix(".png")
        notes: list[str] = []
        try:
            written = self._write(path, result, overwrite, notes)
        except (EditedIDError, OSError, ValueError, RuntimeError) as exc:
            # OSError / ValueError / RuntimeError: what an image encoder may raise
            self.show_error("Cannot save the result", str(exc) or type(exc).__name__)
            return None
        self.result_path = written
        self.settings.set_last_folder("save", written.parent)
        mode = "diffusion" if result is session.result else "classic"
        extra = f" ({' '.join(notes)})" if notes else ""
        names = SIDECAR_PATH_WORDS[self.settings.sidecar_paths]
        from engine.io.export import sidecar_path

        self.status(
            f"Saved {mode} result to {written}{extra}, and beside it "
            f"{sidecar_path(written).name}: its settings and the inputs' {names} "
            "(Settings chooses full paths or file names).",
            15000,
        )
        return written

    def _write(self, path: Path, result, overwrite: bool, notes: list[str]) -> Path:  # noqa: ANN001
        from engine.io.export import (
            read_sidecar,
            save_result,
            sidecar_inputs,
            sidecar_path,
            write_with_sidecar,
        )
        from engine.io.files import sha256_file

        session = self.session
        side = sidecar_path(path)
        if overwrite and (side.exists() or side.is_symlink()) and read_sidecar(path) is None:
            raise InputError(
                f"{side}: already exists and is not an EditedID sidecar; it is never "
                "replaced. Choose another name or folder for the result."
            )
        inputs = {
            name: Path(p)
            for name, p in (("original", session.original_path), ("edited", session.edited_path))
            if p is not None
        }
        hashes = {name: sha256_file(p) for name, p in inputs.items()}
        sidecar = dict(result.sidecar)
        sidecar["inputs"] = sidecar_inputs(inputs, hashes)
        sidecar["output"] = str(path.resolve())
        if self.settings.sidecar_paths == "names":  # no folder of this computer in it
            for entry in sidecar["inputs"].values():
                entry["path"] = Path(entry["path"]).name
            sidecar["output"] = path.name
        return write_with_sidecar(
            path,
            lambda: save_result(
                path,
                result.image,
                reference_path=session.edited_path,
                changed_alpha=result.changed_alpha,
                quality=self.settings.jpeg_quality,
                overwrite=overwrite,
                protected_paths=list(inputs.values()),
                warnings=notes,
                strip_location=self.settings.strip_location,
                layers=getattr(result, "layers", None),
            ),
            sidecar,
            protected_paths=inputs,
            overwrite=overwrite,
        )
