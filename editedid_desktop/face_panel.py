"""Per-face panels: one card per edited face, bound to the session's FaceSettings.

A card shows both faces' thumbnails, the enabled switch, element words, the overlap
weights (lambda_o, lambda_e; linked so they sum to 1, or free), the pairing override and
the identity score before / after with the same-person verdict. Cards only display and
forward: every edit goes through `Session.update_face`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.params import PARAM_HELP

from .session import PAIRING_AUTO, Session, split_words
from .theme import BAD, GOOD, MUTED

THUMB = 84


def array_to_pixmap(image: np.ndarray | None, side: int = THUMB) -> QPixmap:
    """A square-fitted pixmap of an RGB uint8 array (blank when None)."""
    if image is None:
        pixmap = QPixmap(side, side)
        pixmap.fill(Qt.GlobalColor.darkGray)
        return pixmap
    array = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    h, w = array.shape[:2]
    qimage = QImage(array.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaled(
        side,
        side,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )


def score_text(score: Any) -> str:
    """ "0.82 ✓ same person (threshold 0.60, l2)" or "—"."""
    if score is None:
        return "—"
    verdict = "same person" if score.same_person else "different person"
    colour = GOOD if score.same_person else BAD
    mark = "✓" if score.same_person else "✗"
    return (
        f"<b>{score.similarity:.0%}</b> <span style='color:{colour}'>{mark} {verdict}</span>"
        f"<br><span style='color:{MUTED}'>{score.metric} {score.value:.3f}, "
        f"threshold {score.threshold:.2f}<br>{score.model}</span>"
    )


class FacePanel(QFrame):
    """One face pair."""

    clicked = Signal(int)
    pairing_changed = Signal(int)

    def __init__(self, session: Session, face: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.index = int(face.index)
        self._updating = False
        self.setObjectName("faceCard")
        self.setProperty("selected", False)
        self.setFrameShape(QFrame.Shape.StyledPanel)

        self.enabled_box = QCheckBox(f"Face {self.index + 1}")
        self.enabled_box.setObjectName("faceTitle")
        self.enabled_box.setToolTip("Restore this face (unchecked faces stay as edited).")
        self.original_thumb = QLabel()
        self.edited_thumb = QLabel()
        for label, caption in ((self.original_thumb, "Original"), (self.edited_thumb, "Edited")):
            label.setFixedSize(THUMB, THUMB)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setToolTip(caption)

        self.words_edit = QLineEdit()
        self.words_edit.setPlaceholderText("glasses, hat")
        self.words_edit.setToolTip(PARAM_HELP["element_words"] + " Separate with commas.")

        self.lambda_o = QSlider(Qt.Orientation.Horizontal)
        self.lambda_e = QSlider(Qt.Orientation.Horizontal)
        for slider in (self.lambda_o, self.lambda_e):
            slider.setRange(0, 100)
            slider.setToolTip(PARAM_HELP["overlap"])
        self.lambda_o_value = QLabel()
        self.lambda_e_value = QLabel()
        self.link_button = QToolButton()
        self.link_button.setText("Linked")
        self.link_button.setCheckable(True)
        self.link_button.setToolTip("Linked: λo + λe = 1. Unlinked: set each weight freely.")

        self.pairing_combo = QComboBox()
        self.pairing_combo.setToolTip(
            "Which face of the original photo supplies this face's identity."
        )
        self.id_before = QLabel("—")
        self.id_after = QLabel("—")
        for label in (self.id_before, self.id_after):
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
            label.setMinimumWidth(60)
        self.warnings = QLabel()
        self.warnings.setObjectName("warningLabel")
        self.warnings.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.enabled_box)
        top.addStretch(1)
        thumbs = QHBoxLayout()
        thumbs.addWidget(self.original_thumb)
        arrow = QLabel("→")
        arrow.setObjectName("mutedLabel")
        thumbs.addWidget(arrow)
        thumbs.addWidget(self.edited_thumb)
        thumbs.addStretch(1)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.addWidget(QLabel("Elements"), 0, 0)
        grid.addWidget(self.words_edit, 0, 1, 1, 2)
        grid.addWidget(QLabel("λo (face)"), 1, 0)
        grid.addWidget(self.lambda_o, 1, 1)
        grid.addWidget(self.lambda_o_value, 1, 2)
        grid.addWidget(QLabel("λe (element)"), 2, 0)
        grid.addWidget(self.lambda_e, 2, 1)
        grid.addWidget(self.lambda_e_value, 2, 2)
        grid.addWidget(self.link_button, 3, 1, alignment=Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(QLabel("Original face"), 4, 0)
        grid.addWidget(self.pairing_combo, 4, 1, 1, 2)
        grid.addWidget(QLabel("ID before"), 5, 0, alignment=Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.id_before, 5, 1, 1, 2)
        grid.addWidget(QLabel("ID after"), 6, 0, alignment=Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.id_after, 6, 1, 1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addLayout(top)
        layout.addLayout(thumbs)
        layout.addLayout(grid)
        layout.addWidget(self.warnings)

        self.set_face(face)
        self.enabled_box.toggled.connect(self._on_enabled)
        self.words_edit.editingFinished.connect(self._on_words)
        self.lambda_o.valueChanged.connect(lambda v: self._on_lambda("o", v))
        self.lambda_e.valueChanged.connect(lambda v: self._on_lambda("e", v))
        self.link_button.toggled.connect(self._on_link)
        self.pairing_combo.activated.connect(self._on_pairing)
        session.face_changed.connect(self._on_session_face_changed)

    # -- session -> widgets --------------------------------------------------------------
    def set_face(self, face: Any) -> None:
        self.face = face
        self.original_thumb.setPixmap(array_to_pixmap(getattr(face, "thumb_original", None)))
        self.edited_thumb.setPixmap(array_to_pixmap(getattr(face, "thumb_edited", None)))
        self.id_before.setText(score_text(getattr(face, "id_before", None)))
        self._fill_pairing_combo()
        notes = list(getattr(face, "warnings", []) or [])
        if getattr(face, "too_small", False) and not any("small" in n for n in notes):
            notes.insert(0, "Face is small: the restored face may look soft.")
        if face.original_index is None:
            notes.insert(0, "No matching face in the original photo: choose one below.")
        self.warnings.setText("\n".join(f"⚠ {n}" for n in notes))
        self.warnings.setVisible(bool(notes))
        self.refresh()

    def _fill_pairing_combo(self) -> None:
        analysis = self.session.analysis
        count = len(getattr(analysis, "original_faces", []) or []) if analysis is not None else 0
        self.pairing_combo.clear()
        auto = self.face.original_index
        auto_text = f"Auto (face {auto + 1})" if auto is not None else "Auto (none found)"
        self.pairing_combo.addItem(auto_text, PAIRING_AUTO)
        for i in range(count):
            self.pairing_combo.addItem(f"Original face {i + 1}", i)
        self.pairing_combo.addItem("None (keep as edited)", None)

    def refresh(self) -> None:
        settings = self.session.settings_for(self.index)
        self._updating = True
        try:
            self.enabled_box.setChecked(settings.enabled)
            self.words_edit.setText(settings.element_words)
            self.lambda_o.setValue(round(settings.overlap[0] * 100))
            self.lambda_e.setValue(round(settings.overlap[1] * 100))
            self.lambda_o_value.setText(f"{settings.overlap[0]:.2f}")
            self.lambda_e_value.setText(f"{settings.overlap[1]:.2f}")
            self.link_button.setChecked(settings.overlap_linked)
            self.link_button.setText("Linked" if settings.overlap_linked else "Free")
            position = self.pairing_combo.findData(settings.pairing)
            if settings.pairing is None:
                position = self.pairing_combo.count() - 1
            self.pairing_combo.setCurrentIndex(max(position, 0))
        finally:
            self._updating = False

    def set_outcome(self, outcome: Any) -> None:
        """The identity score after a restore (FaceOutcome) or None."""
        self.id_after.setText(score_text(getattr(outcome, "id_after", None)))

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def _on_session_face_changed(self, index: int) -> None:
        if index == self.index:
            self.refresh()

    # -- widgets -> session --------------------------------------------------------------
    def _on_enabled(self, checked: bool) -> None:
        if not self._updating:
            self.session.update_face(self.index, enabled=checked)

    def _on_words(self) -> None:
        if not self._updating:
            text = ", ".join(split_words(self.words_edit.text()))
            self.session.update_face(self.index, element_words=text)

    def _on_lambda(self, which: str, value: int) -> None:
        if self._updating:
            return
        settings = self.session.settings_for(self.index)
        lam_o, lam_e = settings.overlap
        if which == "o":
            lam_o = value / 100.0
            if settings.overlap_linked:
                lam_e = 1.0 - lam_o
        else:
            lam_e = value / 100.0
            if settings.overlap_linked:
                lam_o = 1.0 - lam_e
        self.session.update_face(self.index, overlap=(round(lam_o, 2), round(lam_e, 2)))

    def _on_link(self, linked: bool) -> None:
        if not self._updating:
            self.session.update_face(self.index, overlap_linked=linked)

    def _on_pairing(self, position: int) -> None:
        if self._updating:
            return
        choice = self.pairing_combo.itemData(position)
        self.session.update_face(self.index, pairing=choice)
        self.pairing_changed.emit(self.index)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.clicked.emit(self.index)
        super().mousePressEvent(event)


class FaceListPanel(QWidget):
    """All face cards, rebuilt when the analysis changes."""

    face_selected = Signal(int)
    pairing_changed = Signal(int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.panels: dict[int, FacePanel] = {}
        self.selected: int | None = None

        self.placeholder = QLabel(
            "Open an original and an edited photo\n(File menu, or drop both files on the "
            "canvas).\nDetected faces appear here."
        )
        self.placeholder.setObjectName("mutedLabel")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)

        self._cards = QWidget()
        self._cards_layout = QVBoxLayout(self._cards)
        self._cards_layout.setContentsMargins(6, 6, 6, 6)
        self._cards_layout.setSpacing(8)
        self._cards_layout.addWidget(self.placeholder)
        self._cards_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._cards)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

        session.analysis_changed.connect(self.rebuild)
        session.result_changed.connect(self._show_outcomes)

    def rebuild(self) -> None:
        for panel in self.panels.values():
            panel.setParent(None)
            panel.deleteLater()
        self.panels = {}
        faces = self.session.faces
        self.placeholder.setVisible(not faces)
        if self.session.analysis is not None and not faces:
            self.placeholder.setText("No face found in the edited photo.")
        for position, face in enumerate(faces):
            panel = FacePanel(self.session, face)
            panel.clicked.connect(self.select)
            panel.pairing_changed.connect(self.pairing_changed)
            self._cards_layout.insertWidget(1 + position, panel)
            self.panels[panel.index] = panel
        if self.selected not in self.panels:
            self.selected = None
        if self.selected is None and self.panels:
            self.select(next(iter(self.panels)))
        self._show_outcomes()

    def select(self, index: int) -> None:
        if index not in self.panels:
            return
        changed = index != self.selected
        self.selected = index
        for i, panel in self.panels.items():
            panel.set_selected(i == index)
        if changed:
            self.face_selected.emit(index)

    def _show_outcomes(self) -> None:
        result = self.session.best_result
        outcomes = {o.index: o for o in getattr(result, "faces", []) or []}
        for index, panel in self.panels.items():
            panel.set_outcome(outcomes.get(index))
