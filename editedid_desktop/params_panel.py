"""The "Advanced" panel: every global EditedIDParams field, bound two ways to the session.

Each widget is bound (binder.bind) to one field of a `Draft` of ``session.params``: an
edit that makes a valid EditedIDParams becomes the session's params; otherwise the
draft's error (the engine's InputError message) is shown inline and the session keeps
the last valid object, so a half-typed combination never reaches the engine: while the
draft has an error, Restore is disabled with it (`MainWindow.gate_restore`). Session
changes (project load, reset) flow back into the widgets through the same bindings.
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
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.diffusion.cost import describe_presets
from engine.params import (
    GATE_BLOCK_NAMES,
    GATE_MODES,
    PARAM_HELP,
    PRESETS,
    EditedIDParams,
    preset_of,
    with_preset,
)

from .binder import bind
from .model.draft import Draft
from .model.session import Session, split_words
from .panel_scroll import PanelScrollArea
from .wheel_guard import guard_wheel


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


def _pair(a: QWidget, b: QWidget, sep: str) -> QWidget:
    box = QWidget()
    h = QHBoxLayout(box)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(a)
    h.addWidget(QLabel(sep))
    h.addWidget(b)
    return box


def _row(form: QFormLayout, label: str, name: str, widget: QWidget) -> None:
    caption = QLabel(label)
    tip = PARAM_HELP.get(name, "")
    caption.setToolTip(tip)
    widget.setToolTip(tip)
    form.addRow(caption, widget)


# Fields shown in one widget whose value is the field's value as it is.
_PLAIN_FIELDS = (
    "steps",
    "init_mix",
    "mix_lr",
    "final_align_steps",
    "guidance",
    "nulltext_iters",
    "nulltext_lr",
    "seed",
    "resolution",
    "gate_mode",
    "cross_attention",
    "blend",
    "alignment",
    "hybrid_solver",
    "gating",
)


class ParamsPanel(QWidget):
    """Advanced parameters, two-way bound to `session.params` through a `Draft`."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.draft = Draft(lambda: session.params, self._write_params, session.params_changed)
        self.destroyed.connect(self.draft.close)
        self.widgets: dict[str, Any] = self._make_widgets()
        self.preset_box = self._make_preset_box()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        inner = QWidget()
        body = QVBoxLayout(inner)
        self.scroll_area = PanelScrollArea(inner)  # as wide as the fields need: never cut off
        layout.addWidget(self.scroll_area)
        for group in self._groups():
            body.addWidget(group)

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
        self._bind()
        session.params_changed.connect(self._show_preset)
        self._show_preset()
        guard_wheel(self)  # scrolling the panel never changes a value it passes over

    # -- quality preset (steps, null-text iterations: the paper's speed knob) ------------
    def _make_preset_box(self) -> QComboBox:
        box = QComboBox()
        costs = describe_presets()
        for name in PRESETS:
            box.addItem(name.capitalize(), name)
            box.setItemData(box.count() - 1, costs[name], Qt.ItemDataRole.ToolTipRole)
        box.addItem("Custom", None)
        box.setItemData(
            box.count() - 1,
            "Steps or null-text iterations set by hand.",
            Qt.ItemDataRole.ToolTipRole,
        )
        box.setToolTip(
            "Speed against quality: diffusion steps and null-text iterations. Cost per face "
            "(UNet samples, TFLOP at 512 px, simulated peak memory):\n"
            + "\n".join(f"{name.capitalize()} - {text}" for name, text in costs.items())
        )
        box.activated.connect(self._apply_preset)
        return box

    def _apply_preset(self, index: int) -> None:
        name = self.preset_box.itemData(index)
        if name is None:  # "Custom" names what the fields hold; choosing it changes nothing
            self._show_preset()
            return
        self.session.params = with_preset(self.session.params, name)
        self.draft.revert()

    def _show_preset(self, *_args) -> None:
        index = self.preset_box.findData(preset_of(self.session.params))
        self.preset_box.blockSignals(True)
        self.preset_box.setCurrentIndex(index if index >= 0 else self.preset_box.count() - 1)
        self.preset_box.blockSignals(False)

    def _write_params(self, params: EditedIDParams) -> None:
        self.session.params = params

    @staticmethod
    def _make_widgets() -> dict[str, Any]:
        w: dict[str, Any] = {}
        w["steps"] = _spin(1, 200)
        w["dpm_range"] = (_spin(0, 200), _spin(0, 200))
        w["init_mix"] = _dspin(0.0, 0.5, 0.01, 3)
        w["mix_lr"] = _dspin(0.0, 10.0, 0.01, 3)
        w["final_align_steps"] = _spin(1, 200)
        w["guidance"] = _dspin(1.0, 30.0, 0.5, 1)
        w["nulltext_iters"] = _spin(0, 100)
        w["nulltext_lr"] = _dspin(0.0, 1.0, 0.001, 4)
        w["overlap"] = (_dspin(0.0, 1.0, 0.05, 2), _dspin(0.0, 1.0, 0.05, 2))
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
        for name in ("cross_attention", "blend", "alignment", "hybrid_solver", "gating"):
            w[name].setToolTip(PARAM_HELP[name])
        for name in ("dpm_range", "overlap"):
            for sub in w[name]:
                sub.setToolTip(PARAM_HELP[name])
        for box in w["gate_blocks"].values():
            box.setToolTip(PARAM_HELP["gate_blocks"])
        return w

    def _groups(self) -> list[QGroupBox]:
        w = self.widgets
        steps = QGroupBox("Steps and solver")
        form = QFormLayout(steps)
        quality = QLabel("Quality")
        quality.setToolTip(self.preset_box.toolTip())
        form.addRow(quality, self.preset_box)
        _row(form, "Steps", "steps", w["steps"])
        _row(form, "DPM-Solver++ steps", "dpm_range", _pair(*w["dpm_range"], "to"))
        _row(form, "Guidance", "guidance", w["guidance"])
        _row(form, "Seed", "seed", w["seed"])

        align = QGroupBox("Alignment and null-text")
        form = QFormLayout(align)
        _row(form, "Initial mix", "init_mix", w["init_mix"])
        _row(form, "Mix learning rate", "mix_lr", w["mix_lr"])
        _row(form, "Final align steps", "final_align_steps", w["final_align_steps"])
        _row(form, "Null-text iterations", "nulltext_iters", w["nulltext_iters"])
        _row(form, "Null-text learning rate", "nulltext_lr", w["nulltext_lr"])

        gate = QGroupBox("Attention gating")
        form = QFormLayout(gate)
        _row(form, "Gate mode", "gate_mode", w["gate_mode"])
        blocks = QWidget()
        h = QHBoxLayout(blocks)
        h.setContentsMargins(0, 0, 0, 0)
        for box in w["gate_blocks"].values():
            h.addWidget(box)
        _row(form, "Gated blocks", "gate_blocks", blocks)
        _row(form, "Default overlap λo / λe", "overlap", _pair(*w["overlap"], "/"))
        form.addRow(w["cross_attention"])
        form.addRow(w["blend"])

        prompts = QGroupBox("Prompts and crops")
        form = QFormLayout(prompts)
        _row(form, "Base prompt", "base_prompt", w["base_prompt"])
        _row(form, "Default elements", "element_words", w["element_words"])
        _row(form, "Crop size (px)", "resolution", w["resolution"])
        _row(form, "Faces per batch", "max_batch_faces", w["max_batch_faces"])

        ablations = QGroupBox("Ablations (leave on)")
        h = QHBoxLayout(ablations)
        for name in ("alignment", "hybrid_solver", "gating"):
            h.addWidget(w[name])
        return [steps, align, gate, prompts, ablations]

    # -- binding ----------------------------------------------------------------------
    def _bind(self) -> None:
        """Every widget to its field of the draft (see binder.bind)."""
        draft, w = self.draft, self.widgets
        for name in _PLAIN_FIELDS:
            widget = w[name]
            prop = (
                "checked"
                if isinstance(widget, QCheckBox)
                else "currentText"
                if isinstance(widget, QComboBox)
                else "value"
            )
            bind(draft, name, widget, prop)
        for name, rounding in (("dpm_range", None), ("overlap", 4)):
            for slot, box in enumerate(w[name]):
                bind(
                    draft,
                    name,
                    box,
                    "value",
                    to_widget=lambda pair, slot=slot: pair[slot],
                    from_widget=lambda v, slot=slot, name=name, r=rounding: _with_item(
                        draft.get(name), slot, v if r is None else round(v, r)
                    ),
                )
        for block, box in w["gate_blocks"].items():
            bind(
                draft,
                "gate_blocks",
                box,
                "checked",
                to_widget=lambda blocks, block=block: block in blocks,
                from_widget=lambda on, block=block: _toggled(draft.get("gate_blocks"), block, on),
            )
        bind(
            draft,
            "base_prompt",
            w["base_prompt"],
            "text",
            from_widget=lambda text: text.strip() or "a photo of a face",
        )
        bind(
            draft,
            "element_words",
            w["element_words"],
            "text",
            to_widget=", ".join,
            from_widget=lambda text: split_words(text) or ("glasses",),
        )
        bind(
            draft,
            "max_batch_faces",
            w["max_batch_faces"],
            "value",
            to_widget=lambda n: n or 0,
            from_widget=lambda n: n or None,
        )
        bind(draft, "error", self.error_label, "text", two_way=False)
        bind(draft, "error", self.error_label, "visible", two_way=False, to_widget=bool)

    @property
    def error(self) -> str:
        return self.error_label.text()

    def commit_edits(self) -> None:
        """Take in what is typed but not yet entered (a spin box commits on Enter or
        focus-out; a run started from a toolbar or shortcut takes neither)."""
        for widget in self._spin_boxes():
            widget.interpretText()

    def _spin_boxes(self) -> list[QSpinBox | QDoubleSpinBox]:
        boxes: list[QSpinBox | QDoubleSpinBox] = []
        for value in self.widgets.values():
            for widget in value if isinstance(value, tuple) else (value,):
                if isinstance(widget, QSpinBox | QDoubleSpinBox):
                    boxes.append(widget)
        return boxes

    @property
    def blocked_reason(self) -> str:
        """Why the panel's values cannot run ("" when they make valid parameters)."""
        self.commit_edits()
        return self.draft.error

    def reset_to_defaults(self) -> None:
        self.session.params = EditedIDParams()
        self.draft.revert()


def _with_item(pair: tuple, slot: int, value: Any) -> tuple:
    items = list(pair)
    items[slot] = value
    return tuple(items)


def _toggled(blocks: tuple[str, ...], block: str, on: bool) -> tuple[str, ...]:
    """gate_blocks with `block` switched on or off, in GATE_BLOCK_NAMES order."""
    chosen = (set(blocks) | {block}) if on else (set(blocks) - {block})
    return tuple(name for name in GATE_BLOCK_NAMES if name in chosen)
