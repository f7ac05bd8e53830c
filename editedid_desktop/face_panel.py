"""Per-face panels: one card per edited face, bound to the session's FaceSettings.

A card shows both faces' thumbnails, the enabled switch, element words, the overlap
weights (lambda_o, lambda_e; linked so they sum to 1, or free), the pairing override and
the identity score before / after with the same-person verdict. Cards only display and
forward: each widget is bound (binder.bind) to one field of a `Draft` of the face's
settings, whose edits go through `Session.update_face`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.params import PARAM_HELP

from .binder import bind, connect
from .model.draft import Draft
from .model.session import PAIRING_AUTO, FaceSettings, Session, split_words
from .panel_scroll import PanelScrollArea
from .theme import BAD, GOOD, MUTED
from .wheel_guard import guard_wheel

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


def face_thumbnail(image: np.ndarray | None, box: Any, margin: float = 0.25) -> np.ndarray | None:
    """A square crop of `image` around a face box (x0, y0, x1, y1) with `margin` of its
    size on each side, clipped to the image; None when there is nothing to show."""
    if image is None or box is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in list(box)[:4])
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    height, width = image.shape[:2]
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    right, bottom = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    if right <= left or bottom <= top:
        return None
    return image[top:bottom, left:right]


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


def verdict_text(face: Any, included: bool = False) -> tuple[str, str]:
    """(short label, reason) for a face the engine leaves alone by default, else ("", "").

    "not a face? — include": the detection looks like no face (engine.faces.plausibility);
    "unchanged — include?": the edit kept the identity, restoring it would only blur it.
    Once the user ticks such a face (`included`), the label says so: "... — included".
    """
    why = getattr(face, "left_alone_reason", None)
    if not why or face.original_index is None:
        return "", ""
    what = "not a face?" if not getattr(face, "plausible", True) else "unchanged"
    if included:
        return f"{what} — included", why
    return (f"{what} — include" if what == "not a face?" else f"{what} — include?"), why


def linked_overlap(settings: FaceSettings, which: int, percent: int) -> tuple[float, float]:
    """The overlap after one slider (0 = lambda_o, 1 = lambda_e) moved to `percent`.

    Linked weights sum to 1; free weights move alone. Rounded to the sliders' steps.
    """
    weights = list(settings.overlap)
    weights[which] = percent / 100.0
    if settings.overlap_linked:
        weights[1 - which] = 1.0 - weights[which]
    return (round(weights[0], 2), round(weights[1], 2))


class FacePanel(QFrame):
    """One face pair."""

    clicked = Signal(int)
    # (edited face index, the chosen pairing): the user chose another original face. The
    # window applies it as an undoable command (FacesController.change_pairing).
    pairing_changed = Signal(int, object)

    def __init__(self, session: Session, face: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.index = int(face.index)
        self.draft = Draft(
            lambda: session.settings_for(self.index),
            lambda settings: session.update_face(self.index, **vars(settings)),
            session.face_settings_changed,
        )
        self.destroyed.connect(self.draft.close)
        self.setObjectName("faceCard")
        self.setProperty("selected", False)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._make_widgets()
        self._lay_out()
        self.set_face(face)
        self._bind()
        self.pairing_combo.activated.connect(self._on_pairing_chosen)
        guard_wheel(self)  # scrolling the list over a card never changes its values

    def _make_widgets(self) -> None:
        self.enabled_box = QCheckBox(f"Face {self.index + 1}")
        self.enabled_box.setObjectName("faceTitle")
        self.enabled_box.setToolTip("Restore this face (unchecked faces stay as edited).")
        self.original_thumb = QLabel()
        self.edited_thumb = QLabel()
        self.result_thumb = QLabel()  # the face in the latest result, once there is one
        for label, caption in (
            (self.original_thumb, "Original"),
            (self.edited_thumb, "Edited"),
            (self.result_thumb, "Result"),
        ):
            label.setFixedSize(THUMB, THUMB)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setToolTip(caption)
        self.result_arrow = QLabel("→")
        self.result_arrow.setObjectName("mutedLabel")
        self.result_thumb.hide()
        self.result_arrow.hide()

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
            # A score is three lines and "—" one: reserve the three, so the cards below do not
            # jump under the mouse when a preview fills in or clears the scores (issue 20).
            label.setMinimumHeight(3 * label.fontMetrics().lineSpacing())
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.verdict = QLabel()  # why the face is left alone by default, if it is
        self.verdict.setObjectName("verdictLabel")
        self.verdict.setWordWrap(True)
        self.warnings = QLabel()
        self.warnings.setObjectName("warningLabel")
        self.warnings.setWordWrap(True)

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.enabled_box)
        top.addWidget(self.verdict, 1)
        thumbs = QHBoxLayout()
        thumbs.addWidget(self.original_thumb)
        arrow = QLabel("→")
        arrow.setObjectName("mutedLabel")
        thumbs.addWidget(arrow)
        thumbs.addWidget(self.edited_thumb)
        thumbs.addWidget(self.result_arrow)
        thumbs.addWidget(self.result_thumb)
        thumbs.addStretch(1)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        top_aligned = Qt.AlignmentFlag.AlignTop
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
        grid.addWidget(QLabel("ID before"), 5, 0, alignment=top_aligned)
        grid.addWidget(self.id_before, 5, 1, 1, 2)
        grid.addWidget(QLabel("ID after"), 6, 0, alignment=top_aligned)
        grid.addWidget(self.id_after, 6, 1, 1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addLayout(top)
        layout.addLayout(thumbs)
        layout.addLayout(grid)
        layout.addWidget(self.warnings)

    def _bind(self) -> None:
        draft = self.draft
        bind(draft, "enabled", self.enabled_box, "checked")
        self.enabled_box.toggled.connect(self._show_verdict)
        self._show_verdict()
        bind(
            draft,
            "element_words",
            self.words_edit,
            "text",
            from_widget=lambda text: ", ".join(split_words(text)),
        )
        for which, slider, value_label in (
            (0, self.lambda_o, self.lambda_o_value),
            (1, self.lambda_e, self.lambda_e_value),
        ):
            bind(
                draft,
                "overlap",
                slider,
                "value",
                to_widget=lambda overlap, which=which: round(overlap[which] * 100),
                from_widget=lambda percent, which=which: linked_overlap(
                    draft.value, which, percent
                ),
            )
            bind(
                draft,
                "overlap",
                value_label,
                "text",
                two_way=False,
                to_widget=lambda overlap, which=which: f"{overlap[which]:.2f}",
            )
        bind(draft, "overlap_linked", self.link_button, "checked")
        bind(
            draft,
            "overlap_linked",
            self.link_button,
            "text",
            two_way=False,
            to_widget=lambda linked: "Linked" if linked else "Free",
        )
        # One way: a pairing the user chooses is a command on the undo stack, not a
        # direct edit (see _on_pairing_chosen); the combo shows what the session holds.
        self.pairing_binding = bind(
            draft,
            "pairing",
            self.pairing_combo,
            "currentIndex",
            two_way=False,
            to_widget=self._pairing_position,
        )

    def _on_pairing_chosen(self, position: int) -> None:
        chosen = self.pairing_combo.itemData(position)
        if chosen != self.session.settings_for(self.index).pairing:
            self.pairing_changed.emit(self.index, chosen)
        self.pairing_binding.refresh()  # show what the session holds now

    def _pairing_position(self, pairing: int | str | None) -> int:
        if pairing is None:  # "None (keep as edited)" is the last item
            return self.pairing_combo.count() - 1
        return max(self.pairing_combo.findData(pairing), 0)

    # -- session -> widgets --------------------------------------------------------------
    def set_face(self, face: Any) -> None:
        self.face = face
        self.original_thumb.setPixmap(array_to_pixmap(getattr(face, "thumb_original", None)))
        self.edited_thumb.setPixmap(array_to_pixmap(getattr(face, "thumb_edited", None)))
        self.id_before.setText(score_text(getattr(face, "id_before", None)))
        self._show_verdict()
        self._fill_pairing_combo()
        notes = list(getattr(face, "warnings", []) or [])
        if getattr(face, "too_small", False) and not any("small" in n for n in notes):
            notes.insert(0, "Face is small: the restored face may look soft.")
        if face.original_index is None:
            notes.insert(0, "No matching face in the original photo: choose one below.")
        self.warnings.setText("\n".join(f"⚠ {n}" for n in notes))
        self.warnings.setVisible(bool(notes))

    def _show_verdict(self, *_: object) -> None:
        verdict, why = verdict_text(self.face, self.enabled_box.isChecked())
        self.verdict.setText(verdict)
        self.verdict.setToolTip(why)
        self.verdict.setVisible(bool(verdict))

    def _fill_pairing_combo(self) -> None:
        analysis = self.session.analysis
        count = len(getattr(analysis, "original_faces", []) or []) if analysis is not None else 0
        combo = self.pairing_combo
        with QSignalBlocker(combo):  # refilling is not the user choosing a pairing
            combo.clear()
            auto = self.face.original_index
            auto_text = f"Auto (face {auto + 1})" if auto is not None else "Auto (none found)"
            combo.addItem(auto_text, PAIRING_AUTO)
            for i in range(count):
                combo.addItem(f"Original face {i + 1}", i)
            combo.addItem("None (keep as edited)", None)
        if hasattr(self, "pairing_binding"):
            self.pairing_binding.refresh()

    def set_outcome(self, outcome: Any, image: np.ndarray | None = None, mode: str = "") -> None:
        """After a restore or a classic preview: the identity score (FaceOutcome, or None)
        and, beside the original and edited thumbnails, this face in the result `image`."""
        self.id_after.setText(score_text(getattr(outcome, "id_after", None)))
        thumb = face_thumbnail(image, getattr(outcome, "box", None))
        if thumb is not None:
            self.result_thumb.setPixmap(array_to_pixmap(thumb))
            what = "Classic preview" if mode == "classic" else "Restored"
            self.result_thumb.setToolTip(f"{what}: this face in the result")
        self.result_thumb.setVisible(thumb is not None)
        self.result_arrow.setVisible(thumb is not None)

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.clicked.emit(self.index)
        super().mousePressEvent(event)


class FaceListPanel(QWidget):
    """All face cards, rebuilt when the analysis changes."""

    face_selected = Signal(int)
    pairing_changed = Signal(int, object)  # FacePanel.pairing_changed of any card

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
        self.scroll_area = PanelScrollArea(self._cards)  # as wide as a card: never cut off
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll_area)

        connect(session.analysis_changed, self.rebuild, self)
        connect(session.result_changed, self._show_outcomes, self)
        connect(session.classic_result_changed, self._show_outcomes, self)

    def rebuild(self, *_: Any) -> None:
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

    def _show_outcomes(self, *_: Any) -> None:
        result = self.session.best_result
        outcomes = {o.index: o for o in getattr(result, "faces", []) or []}
        image, mode = getattr(result, "image", None), getattr(result, "mode", "")
        for index, panel in self.panels.items():
            panel.set_outcome(outcomes.get(index), image, mode)
