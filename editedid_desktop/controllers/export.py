"""Saving the result (diffusion, else the classic preview) and its sidecar JSON."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from engine.errors import EditedIDError

from . import Controller

SAVE_FILTERS = "PNG (*.png);;JPEG (*.jpg *.jpeg);;TIFF (*.tif *.tiff)"


class ExportController(Controller):
    """File ▸ Save Result (to the last file) and Save Result As."""

    def __init__(self, window) -> None:  # noqa: ANN001 - MainWindow
        super().__init__(window)
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
        path, _ = QFileDialog.getSaveFileName(self.window, "Save result", str(start), SAVE_FILTERS)
        if path:
            self.write_result(Path(path), overwrite=True)  # the dialog asked already

    def write_result(self, path: Path, *, overwrite: bool = False) -> Path | None:
        """Save the best result (diffusion, else classic) and its sidecar JSON."""
        from engine.io.export import save_result
        from engine.io.images import write_text_atomic

        session = self.session
        result = session.best_result
        if result is None:
            return None
        if path.suffix == "":
            path = path.with_suffix(".png")
        notes: list[str] = []
        try:
            written = save_result(
                path,
                result.image,
                reference_path=session.edited_path,
                changed_alpha=result.changed_alpha,
                quality=self.settings.jpeg_quality,
                overwrite=overwrite,
                protected_paths=[p for p in (session.original_path, session.edited_path) if p],
                warnings=notes,
            )
            sidecar = dict(result.sidecar)
            sidecar["inputs"] = {
                "original": str(session.original_path or ""),
                "edited": str(session.edited_path or ""),
            }
            write_text_atomic(
                written.with_name(written.name + ".json"),
                json.dumps(sidecar, indent=2, default=str) + "\n",
            )
        except (EditedIDError, OSError) as exc:
            self.window.show_error("Cannot save the result", str(exc))
            return None
        self.result_path = written
        self.settings.set_last_folder("save", written.parent)
        mode = "diffusion" if result is session.result else "classic"
        extra = f" ({' '.join(notes)})" if notes else ""
        self.status(f"Saved {mode} result to {written}{extra}", 10000)
        return written
