"""binder.bind: one generic two-way binding for every widget kind the app uses."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
)

from editedid_desktop.binder import bind
from editedid_desktop.model.observable import Observable, Property


class Model(Observable):
    count = Property(3)
    ratio = Property(0.5)
    on = Property(False)
    name = Property("a")
    mode = Property("map")


def test_two_way_for_each_widget_kind(qtbot):
    model = Model()
    spin, dspin, slider = QSpinBox(), QDoubleSpinBox(), QSlider()
    check, edit, combo = QCheckBox(), QLineEdit(), QComboBox()
    combo.addItems(["map", "output"])
    for widget in (spin, dspin, slider, check, edit, combo):
        qtbot.addWidget(widget)
    bind(model, "count", spin, "value")
    bind(model, "ratio", dspin, "value")
    bind(model, "count", slider, "value")
    bind(model, "on", check, "checked")
    bind(model, "name", edit, "text")
    bind(model, "mode", combo, "currentText")
    assert (spin.value(), dspin.value(), slider.value()) == (3, 0.5, 3)  # model -> widgets

    spin.setValue(7)  # widget -> model -> the other widget bound to the same property
    assert model.count == 7 and slider.value() == 7
    dspin.setValue(0.25)
    check.setChecked(True)
    edit.setText("b")
    edit.editingFinished.emit()  # line edits commit when editing finishes
    combo.setCurrentIndex(1)
    assert (model.ratio, model.on, model.name, model.mode) == (0.25, True, "b", "output")
    model.mode = "map"
    assert combo.currentText() == "map"


def test_converters_one_way_and_unbinding_with_the_widget(qtbot):
    model = Model()
    edit = QLineEdit()
    label = QLabel()
    qtbot.addWidget(edit)
    writes = []
    model.count_changed.connect(writes.append)
    bind(model, "count", edit, "text", to_widget=str, from_widget=int)
    bind(model, "count", label, "text", two_way=False, to_widget=lambda n: f"{n} faces")
    assert edit.text() == "3" and label.text() == "3 faces"
    edit.setText("4")
    edit.editingFinished.emit()
    assert model.count == 4 and label.text() == "4 faces" and writes == [4]
    listeners = len(model.count_changed)
    label.deleteLater()
    qtbot.waitUntil(lambda: len(model.count_changed) == listeners - 1, timeout=2000)
    model.count = 5  # the deleted label's binding is gone: no error
    assert edit.text() == "5"
