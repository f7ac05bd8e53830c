"""The mask tool bar: brush / eraser, size, hardness, target mask, clear / invert / reset.

A thin view: every control forwards to the `LayeredCanvas` (tool, brush, active mask) or
to its `MaskDocument` (clear, invert, reset to auto), and follows their change signals so
the keyboard shortcuts (`[`, `]`, V, B, E, X) and the bar never disagree. A legend
names the overlay colours.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QToolBar, QWidget
from superqt import QLabeledSlider

from .canvas import DRAG_MODES, TOOLS, LayeredCanvas
from .imaging import ELEMENT_COLOR, FACE_COLOR, OVERLAP_COLOR

MAX_SLIDER_BRUSH = 1000  # larger sizes stay reachable with ]

# The bar's controls, left to right after the tool actions (which come from the canvas'
# tools table). Sliders (size, hardness): (label, object name, minimum, maximum, width, tip).
SLIDERS = (
    (" Size ", "brushSizeSlider", 1, MAX_SLIDER_BRUSH, 170,
     "Brush diameter in photo pixels ([ smaller, ] larger)"),
    (" Hardness ", "brushHardnessSlider", 0, 100, 140,
     "Edge hardness in % (0 soft, 100 hard; Shift+[ / Shift+] by 25 %)"),
)  # fmt: skip
# Target masks, exclusive (face, element): (text, object name, mask kind, tip).
TARGETS = (
    ("Face", "faceTargetAction", "face",
     "Paint the face mask: identity comes from the original"),
    ("Element", "elementTargetAction", "element",
     "Paint the element mask: what the edit added stays as edited"),
)  # fmt: skip
# Mask edits (clear, invert, reset): (text, object name, shortcut, tip, MaskDocument method).
EDITS = (
    ("Clear", "clearMaskAction", None, "Empty this mask", "clear"),
    ("Invert", "invertMaskAction", "Ctrl+Shift+I",
     "Invert this mask (Ctrl+Shift+I)", "invert"),
    ("Reset to auto", "resetMaskAction", None,
     "Back to the engine's automatic mask", "reset_to_auto"),
)  # fmt: skip


class MaskToolBar(QToolBar):
    """Mask tools wired to a canvas (and the canvas' mask document)."""

    def __init__(self, canvas: LayeredCanvas, parent: QWidget | None = None) -> None:
        super().__init__("Mask tools", parent)
        self.setObjectName("maskToolBar")
        self.canvas = canvas
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for add_group in (self._add_tools, self._add_sliders, self._add_targets, self._add_legend):
            add_group()
            self.addSeparator()
        self._add_edits()

        self.size_slider.valueChanged.connect(canvas.set_brush_size)
        self.hardness_slider.valueChanged.connect(
            lambda value: canvas.set_brush_hardness(value / 100.0)
        )
        canvas.brush_size_changed.connect(self._sync)
        canvas.brush_hardness_changed.connect(self._sync)
        canvas.tool_changed.connect(self._sync)
        canvas.active_mask_changed.connect(self._sync)
        self._sync()

    def _add_tools(self) -> None:
        """One checkable action per labelled tool of the canvas' tools table (not "none");
        clicking the checked tool again drops it."""
        self.tool_group = QActionGroup(self)
        self.tool_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.tool_actions: dict[str, QAction] = {}
        for tool in TOOLS:
            mode = DRAG_MODES[tool]
            if not mode.label:
                continue
            shortcut = QKeySequence(mode.shortcut).toString() if mode.shortcut else None
            action = self._action(mode.label, f"{tool}Action", shortcut, mode.tip)
            action.setCheckable(True)
            action.setData(tool)
            self.tool_group.addAction(action)
            self.addAction(action)
            self.tool_actions[tool] = action
        self.select_action = self.tool_actions["select"]
        self.brush_action = self.tool_actions["brush"]
        self.eraser_action = self.tool_actions["eraser"]
        self.tool_group.triggered.connect(self._on_tool_triggered)

    def _add_sliders(self) -> None:
        sliders = []
        for label, name, low, high, width, tip in SLIDERS:
            self.addWidget(QLabel(label))
            slider = QLabeledSlider(Qt.Orientation.Horizontal)
            slider.setObjectName(name)
            slider.setRange(low, high)
            slider.setFixedWidth(width)
            slider.setToolTip(tip)
            self.addWidget(slider)
            sliders.append(slider)
        self.size_slider, self.hardness_slider = sliders

    def _add_targets(self) -> None:
        """Face / Element (exclusive), and Swap target (X), which is a shortcut only."""
        self.target_group = QActionGroup(self)
        targets = []
        for text, name, kind, tip in TARGETS:
            action = self._action(text, name, None, tip)
            action.setCheckable(True)
            action.setData(kind)
            self.target_group.addAction(action)
            self.addAction(action)
            targets.append(action)
        self.face_target_action, self.element_target_action = targets
        self.face_target_action.setChecked(True)
        self.target_group.triggered.connect(self._on_target_triggered)
        self.swap_target_action = self._action(
            "Swap target", "swapTargetAction", "X", "Switch between face and element mask (X)"
        )
        self.swap_target_action.triggered.connect(self._swap_target)

    def _add_legend(self) -> None:
        """What the overlay colours mean: cyan face, magenta element, amber both."""
        swatches = " ".join(
            f"<span style='color:rgb{color}'>&#9632;</span>&nbsp;{text}"
            for color, text in (
                (FACE_COLOR, "face"),
                (ELEMENT_COLOR, "element"),
                (OVERLAP_COLOR, "both"),
            )
        )
        self.legend = QLabel(f" {swatches} ")
        self.legend.setObjectName("maskLegend")
        self.legend.setToolTip(
            "Mask colours: cyan = face (identity from the original), magenta = element "
            "(kept as edited), amber = both"
        )
        self.addWidget(self.legend)

    def _add_edits(self) -> None:
        edits = []
        for text, name, shortcut, tip, operation in EDITS:
            action = self._action(text, name, shortcut, tip)
            action.triggered.connect(lambda _checked=False, op=operation: self._edit(op))
            self.addAction(action)
            edits.append(action)
        self.edit_actions = tuple(edits)
        self.clear_action, self.invert_action, self.reset_action = edits

    def _action(self, text: str, name: str, shortcut: str | None, tip: str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            # Window-wide, but never while typing: line edits take plain keys first.
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        return action

    def _on_tool_triggered(self, action: QAction) -> None:
        self.canvas.set_tool(action.data() if action.isChecked() else "none")

    def _on_target_triggered(self, action: QAction) -> None:
        face, _ = self.canvas.active_mask()
        self.canvas.set_active_mask(face, action.data())

    def _swap_target(self) -> None:
        face, kind = self.canvas.active_mask()
        self.canvas.set_active_mask(face, "element" if kind == "face" else "face")

    def _edit(self, operation: str) -> None:
        face, kind = self.canvas.active_mask()
        document = self.canvas.mask_document()
        if face is None or document is None or document.image_size is None:
            return
        getattr(document, operation)(face, kind)

    def _sync(self, *_args) -> None:
        canvas = self.canvas
        with QSignalBlocker(self.size_slider):
            self.size_slider.setValue(min(MAX_SLIDER_BRUSH, canvas.brush_size))
        with QSignalBlocker(self.hardness_slider):
            self.hardness_slider.setValue(round(canvas.brush_hardness * 100))
        tool = canvas.tool()
        for name, action in self.tool_actions.items():
            action.setChecked(tool == name)
        face, kind = canvas.active_mask()
        self.face_target_action.setChecked(kind == "face")
        self.element_target_action.setChecked(kind == "element")
        has_face = face is not None
        for action in self.edit_actions:
            action.setEnabled(has_face)
