"""The "Advanced" panel: every global EditedIDParams field, bound two ways to the session.

Widget edits build a candidate EditedIDParams from all widgets; if the dataclass accepts
it, it becomes the session's params, otherwise its InputError message is shown inline and
the session keeps the last valid object (so a half-typed combination never reaches the
engine). Session changes (project load, reset) are written back into the widgets.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import InputError
from engine.params import GATE_BLOCK_NAMES, GATE_MODES, PARAM_HELP, EditedIDParams

from .session import Session, split_words


def _spin(minimum: int, maximum: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)
    return box


def _dspin(minimum: float, maximum: float, step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setKeyboardTracking(False)
    return box


class ParamsPanel(QWidget):
    """Advanced parameters, two-way bound to `session.params`."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._updating = False
        self.widgets: dict[str, Any] = {}

        w = self.widgets
        w["steps"] = _spin(1, 200)
        dpm_start, dpm_end = _spin(0, 200), _spin(0, 200)
        w["dpm_range"] = (dpm_start, dpm_end)
        w["init_mix"] = _dspin(0.0, 0.5, 0.01, 3)
        w["mix_lr"] = _dspin(0.0, 10.0, 0.01, 3)
        w["final_align_steps"] = _spin(1, 200)
        w["guidance"] = _dspin(1.0, 30.0, 0.5, 1)
        w["nulltext_iters"] = _spin(0, 100)
        w["nulltext_lr"] = _dspin(0.0, 1.0, 0.001, 4)
        overlap_o, overlap_e = _dspin(0.0, 1.0, 0.05, 2), _dspin(0.0, 1.0, 0.05, 2)
        w["overlap"] = (overlap_o, overlap_e)
        w["gate_mode"] = QComboBox()
        w["gate_mode"].addItems(list(GATE_MODES))
        w["gate_blocks"] = {name: QCheckBox(name) for name in GATE_BLOCK_NAMES}
        w["cross_attention"] = QCheckBox("Cross-attention swap")
        w["blend"] = QCheckBox("Keep edited outside masks")
        w["base_prompt"] = QLineEdit()
        w["element_words"] = QLineEdit()
        w["element_words"].setPlaceholderText("glasses, hat")
        w["seed"] = _spin(0, 2**31 - 1)
        w["resolution"] = _spin(64, 1024, 64)
        w["max_batch_faces"] = _spin(0, 64)
        w["max_batch_faces"].setSpecialValueText("all")
        w["alignment"] = QCheckBox("Alignment")
        w["hybrid_solver"] = QCheckBox("Hybrid solver")
        w["gating"] = QCheckBox("Attention gating")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        inner = QWidget()
        body = QVBoxLayout(inner)
        scroll.setWidget(inner)
        layout.addWidget(scroll)

        def row(form: QFormLayout, label: str, name: str, widget: QWidget | None = None) -> None:
            target = widget if widget is not None else w[name]
            caption = QLabel(label)
            tip = PARAM_HELP.get(name, "")
            caption.setToolTip(tip)
            target.setToolTip(tip)
            form.addRow(caption, target)

        def pair(a: QWidget, b: QWidget, sep: str) -> QWidget:
            box = QWidget()
            h = QHBoxLayout(box)
            h.setContentsMargins(0, 0, 0, 0)
            h.addWidget(a)
            h.addWidget(QLabel(sep))
            h.addWidget(b)
            return box

        steps_group = QGroupBox("Steps and solver")
        form = QFormLayout(steps_group)
        row(form, "Steps", "steps")
        row(form, "DPM-Solver++ steps", "dpm_range", pair(dpm_start, dpm_end, "to"))
        for sub in (dpm_start, dpm_end):
            sub.setToolTip(PARAM_HELP["dpm_range"])
        row(form, "Guidance", "guidance")
        row(form, "Seed", "seed")
        body.addWidget(steps_group)

        align_group = QGroupBox("Alignment and null-text")
        form = QFormLayout(align_group)
        row(form, "Initial mix", "init_mix")
        row(form, "Mix learning rate", "mix_lr")
        row(form, "Final align steps", "final_align_steps")
        row(form, "Null-text iterations", "nulltext_iters")
        row(form, "Null-text learning rate", "nulltext_lr")
        body.addWidget(align_group)

        gate_group = QGroupBox("Attention gating")
        form = QFormLayout(gate_group)
        row(form, "Gate mode", "gate_mode")
        blocks = QWidget()
        h = QHBoxLayout(blocks)
        h.setContentsMargins(0, 0, 0, 0)
        for box in w["gate_blocks"].values():
            box.setToolTip(PARAM_HELP["gate_blocks"])
            h.addWidget(box)
        row(form, "Gated blocks", "gate_blocks", blocks)
        row(form, "Default overlap λo / λe", "overlap", pair(overlap_o, overlap_e, "/"))
        for sub in (overlap_o, overlap_e):
            sub.setToolTip(PARAM_HELP["overlap"])
        for name in ("cross_attention", "blend"):
            w[name].setToolTip(PARAM_HELP[name])
            form.addRow(w[name])
        body.addWidget(gate_group)

        prompt_group = QGroupBox("Prompts and crops")
        form = QFormLayout(prompt_group)
        row(form, "Base prompt", "base_prompt")
        row(form, "Default elements", "element_words")
        row(form, "Crop size (px)", "resolution")
        row(form, "Faces per batch", "max_batch_faces")
        body.addWidget(prompt_group)

        ablation_group = QGroupBox("Ablations (leave on)")
        h = QHBoxLayout(ablation_group)
        for name in ("alignment", "hybrid_solver", "gating"):
            w[name].setToolTip(PARAM_HELP[name])
            h.addWidget(w[name])
        body.addWidget(ablation_group)

        self.error_label = QLabel()
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        body.addWidget(self.error_label)

        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setToolTip("Every parameter back to the paper's defaults.")
        self.reset_button.clicked.connect(self.reset_to_defaults)
        body.addWidget(self.reset_button, alignment=Qt.AlignmentFlag.AlignRight)
        body.addStretch(1)

        self._load(session.params)
        session.params_changed.connect(self._load)
        for widget in self._all_widgets():
            self._connect(widget)

    # -- binding ----------------------------------------------------------------------
    def _all_widgets(self) -> list[QWidget]:
        out: list[QWidget] = []
        for value in self.widgets.values():
            if isinstance(value, tuple):
                out.extend(value)
            elif isinstance(value, dict):
                out.extend(value.values())
            else:
                out.append(value)
        return out

    def _connect(self, widget: QWidget) -> None:
        if isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.valueChanged.connect(self._apply)
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(self._apply)
        elif isinstance(widget, QComboBox):
            widget.currentTextChanged.connect(self._apply)
        elif isinstance(widget, QLineEdit):
            widget.editingFinished.connect(self._apply)

    def _load(self, params: EditedIDParams) -> None:
        """Session -> widgets."""
        self._updating = True
        try:
            w = self.widgets
            for name in (
                "steps",
                "init_mix",
                "mix_lr",
                "final_align_steps",
                "guidance",
                "nulltext_iters",
                "nulltext_lr",
                "seed",
                "resolution",
            ):
                w[name].setValue(getattr(params, name))
            for box, value in zip(w["dpm_range"], params.dpm_range, strict=True):
                box.setValue(value)
            for box, value in zip(w["overlap"], params.overlap, strict=True):
                box.setValue(value)
            w["gate_mode"].setCurrentText(params.gate_mode)
            for name, box in w["gate_blocks"].items():
                box.setChecked(name in params.gate_blocks)
            for name in ("cross_attention", "blend", "alignment", "hybrid_solver", "gating"):
                w[name].setChecked(bool(getattr(params, name)))
            w["base_prompt"].setText(params.base_prompt)
            w["element_words"].setText(", ".join(params.element_words))
            w["max_batch_faces"].setValue(params.max_batch_faces or 0)
        finally:
            self._updating = False
        self._show_error("")

    def values(self) -> dict[str, Any]:
        """Widgets -> the changed fields of a parameters dict."""
        w = self.widgets
        values: dict[str, Any] = {
            name: w[name].value()
            for name in (
                "steps",
                "init_mix",
                "mix_lr",
                "final_align_steps",
                "guidance",
                "nulltext_iters",
                "nulltext_lr",
                "seed",
                "resolution",
            )
        }
        values["dpm_range"] = tuple(box.value() for box in w["dpm_range"])
        values["overlap"] = tuple(round(box.value(), 4) for box in w["overlap"])
        values["gate_mode"] = w["gate_mode"].currentText()
        values["gate_blocks"] = tuple(n for n, box in w["gate_blocks"].items() if box.isChecked())
        for name in ("cross_attention", "blend", "alignment", "hybrid_solver", "gating"):
            values[name] = w[name].isChecked()
        values["base_prompt"] = w["base_prompt"].text().strip() or "a photo of a face"
        values["element_words"] = split_words(w["element_words"].text()) or ("glasses",)
        values["max_batch_faces"] = w["max_batch_faces"].value() or None
        return values

    def _apply(self, *_: Any) -> None:
        if self._updating:
            return
        try:
            params = self.session.params.replace(**self.values())
        except InputError as exc:
            self._show_error(str(exc))
            return
        self._show_error("")
        self.session.set_params(params)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    @property
    def error(self) -> str:
        return self.error_label.text()

    def reset_to_defaults(self) -> None:
        self.session.set_params(EditedIDParams())
        self._load(self.session.params)
