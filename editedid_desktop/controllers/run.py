"""Runs on the worker: the classic preview (debounced) and the diffusion restore, with
progress, live preview, cancel and the worker's messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QTimer, Signal

from ..binder import connect
from ..jobs import ClassicRequest, RestoreRequest
from . import Controller

if TYPE_CHECKING:
    from .host import Document, RunView, Shell

RERUN_DELAY_MS = 350  # classic preview re-runs this long after the last mask/setting change


class RunController(Controller):
    """Starts runs from the session and shows what the worker reports."""

    model_state_changed = Signal(str)  # "loaded, cuda float16", "not installed"
    restored = Signal(object)  # a diffusion result is in the session and on the canvas

    def __init__(self, document: Document, shell: Shell, view: RunView) -> None:
        super().__init__(document, shell)
        self.view = view
        self.canvas = view.canvas
        self.preview_held = False  # hold_preview: the roles of the photos are in question
        self.rerun_timer = QTimer(self)
        self.rerun_timer.setSingleShot(True)
        self.rerun_timer.setInterval(RERUN_DELAY_MS)
        self.rerun_timer.timeout.connect(self.run_classic)

    def connect_worker(self) -> None:
        """Worker signals to this controller (bound methods: queued into the UI thread)."""
        worker = self.engine.worker
        self.engine.busy_changed.connect(self.on_busy_changed)
        worker.progress.connect(self.on_progress)
        worker.substep.connect(self.on_substep)
        worker.preview.connect(self.on_preview)
        worker.classic_ready.connect(self.on_classic)
        worker.finished.connect(self.on_finished)
        worker.failed.connect(self.on_failed)
        worker.cancelled.connect(self.on_cancelled)
        worker.status.connect(self.on_status)
        worker.model_loaded.connect(self.on_model_loaded)
        draft = self.view.params_panel.draft
        connect(draft.property_changed("error"), self.on_params_error, self)

    # -- the Advanced panel's values ---------------------------------------------------
    def restore_blocked_reason(self) -> str:
        """Why Restore cannot run what the Advanced panel shows ("" when it can)."""
        error = self.view.params_panel.blocked_reason
        return f"Fix the Advanced settings first: {error}" if error else ""

    def on_params_error(self, *_: Any) -> None:
        self.state_changed.emit()  # the window gates Restore on restore_blocked_reason

    # -- classic ----------------------------------------------------------------------
    def hold_preview(self, held: bool) -> None:
        """No classic preview while the roles of the photos are in question (the files
        controller's swap-roles notice): it would paste the AI face into the real photo."""
        self.preview_held = held

    def schedule_classic(self) -> None:
        """Re-run the classic preview shortly after the last change (debounced)."""
        if self.session.analysis is not None:
            self.rerun_timer.start()

    def run_classic(self) -> None:
        session = self.session
        if session.analysis is None or self.preview_held:
            return  # no preview while the roles are in question (hold_preview)
        faces = session.enabled_faces()
        if not faces:
            session.classic_result = None
            if session.result is None:
                self.canvas.set_image("result", None)
            self.state_changed.emit()
            return
        self.engine.classic(
            ClassicRequest(session.analysis, faces=faces, masks=self.masks.user_masks())
        )

    def on_classic(self, result: Any) -> None:
        self.session.classic_result = result
        if self.session.result is None:
            self.canvas.set_image("result", result.image)
        self.state_changed.emit()

    # -- diffusion --------------------------------------------------------------------
    def restore_request(self) -> RestoreRequest | None:
        """The diffusion job for the current session, or None (with a message) if none."""
        s = self.session
        if s.analysis is None:
            self.status("Open both photos first.", 5000)
            return None
        groups = [
            (s.params.replace(element_words=words), faces)
            for words, faces in s.word_groups().items()
        ]
        if not groups:
            self.show_error(
                "Nothing to restore",
                "No face is enabled and paired with a face of the original photo. Tick a face "
                "in the Faces panel, or choose its original face.",
            )
            return None
        return RestoreRequest(
            s.original,
            s.edited,
            s.analysis,
            groups,
            masks=self.masks.user_masks(),
            overlaps=s.overlaps(),
        )

    def run_restore(self) -> None:
        if self.engine.pending("restore"):
            return
        reason = self.restore_blocked_reason()
        if reason:  # never run older values than the panel shows
            self.status(reason, 10000)
            self.state_changed.emit()  # Restore off, with the reason
            return
        request = self.restore_request()
        if request is None:
            return
        self.engine.configure(self.settings.model_spec(), self.settings.face_config())
        self.engine.restore(request)
        self.view.stage_label.setText("Starting…")
        self.state_changed.emit()

    def cancel(self) -> None:
        if self.engine.busy:
            self.engine.cancel()
            self.view.stage_label.setText("Cancelling…")

    # -- what the worker reports ----------------------------------------------------------
    def on_busy_changed(self, busy: bool) -> None:
        view = self.view
        for widget in (view.stage_label, view.progress_bar, view.cancel_button):
            widget.setVisible(busy)
        if busy:
            view.progress_bar.setRange(0, 0)
        else:
            self.canvas.set_preview(None, None)
        self.state_changed.emit()

    def on_progress(self, stage: str, step: int, total: int) -> None:
        bar, label = self.view.progress_bar, self.view.stage_label
        if total > 0:
            bar.setRange(0, total)
            bar.setValue(step)
            bar.setFormat(f"{step}/{total}")
            label.setText(f"{stage.capitalize()} {step}/{total}")
        else:
            bar.setRange(0, 0)
            label.setText(stage.capitalize() + "…")

    def on_substep(self, stage: str, step: int, total: int, detail: str) -> None:
        """Inside a step (a UNet or VAE call, a heartbeat from inside a slow one): the
        label says which, so a minute-long step shows it is moving."""
        running = f" {min(step + 1, total)}/{total}" if total > 0 else ""
        self.view.stage_label.setText(f"{stage.capitalize()}{running}{detail}")

    def on_preview(self, image: np.ndarray, where: Any) -> None:
        """One face's preview, over that face alone (worker.preview)."""
        face, box = where
        self.canvas.set_preview(image, box, face=face)

    def on_finished(self, result: Any) -> None:
        self.canvas.set_preview(None, None)
        self.session.set_result(result)
        self.canvas.set_image("result", result.image)
        self.canvas.set_layer_visible("result", True)
        self.restored.emit(result)  # View ▸ Show Result follows
        seconds = result.sidecar.get("seconds") if isinstance(result.sidecar, dict) else None
        took = f" in {seconds:.1f} s" if isinstance(seconds, int | float) else ""
        note = f" {' '.join(result.warnings)}" if result.warnings else ""
        self.status(f"Restored {len(result.faces)} face(s){took}.{note}", 15000)
        self.state_changed.emit()

    def on_status(self, text: str) -> None:
        self.status(text, 8000)

    def on_cancelled(self) -> None:
        self.canvas.set_preview(None, None)
        self.status("Cancelled. Nothing was changed.", 8000)

    def on_failed(self, title: str, message: str) -> None:
        self.canvas.set_preview(None, None)
        if "not on this machine" in message or "not downloaded" in message:
            self.model_state_changed.emit("not installed")
        from ..model_manager import for_app_users

        self.show_error(title, for_app_users(message))

    def on_model_loaded(self, info: dict) -> None:
        state = f"loaded, {info.get('device', '?')} {info.get('dtype', '')}".strip()
        self.model_state_changed.emit(state)
