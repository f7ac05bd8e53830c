"""One generic binding between a model property and a widget property.

    bind(params_draft, "steps", steps_spin, "value")             # two ways
    bind(params_draft, "error", error_label, "text", two_way=False)

The model side is anything with `get_property`, `set_property` and `property_changed`
(`model.observable.Observable` and `model.draft.Draft`); the widget side is a row of
`_WIDGET_PROPERTIES`: how to read it, write it and which Qt signal says the user changed
it. ``to_widget`` / ``from_widget`` convert between the two (a tuple field shown in two
spin boxes, words in a line edit). Writing the model value into the widget never writes
it back, and the binding ends by itself when the widget is destroyed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QWidget,
)

from .model.observable import Emitter

Reader = Callable[[Any], Any]
Writer = Callable[[Any, Any], None]


# (widget class, property) -> read, write, the signal that reports a user change (None:
# the model writes the widget only). The first row whose class matches wins.
_WIDGET_PROPERTIES: list[tuple[type, str, Reader, Writer, str | None]] = [
    (QAbstractSpinBox, "value", lambda w: w.value(), lambda w, v: w.setValue(v), "valueChanged"),
    (QAbstractSlider, "value", lambda w: w.value(), lambda w, v: w.setValue(v), "valueChanged"),
    (QAbstractButton, "checked", lambda w: w.isChecked(), lambda w, v: w.setChecked(v), "toggled"),
    (QAbstractButton, "text", lambda w: w.text(), lambda w, v: w.setText(v), None),
    (QLineEdit, "text", lambda w: w.text(), lambda w, v: w.setText(v), "editingFinished"),
    (
        QComboBox,
        "currentText",
        lambda w: w.currentText(),
        lambda w, v: w.setCurrentText(v),
        "currentTextChanged",
    ),
    (
        QComboBox,
        "currentIndex",
        lambda w: w.currentIndex(),
        lambda w, v: w.setCurrentIndex(v),
        "currentIndexChanged",
    ),
    (QLabel, "text", lambda w: w.text(), lambda w, v: w.setText(v), None),
    (QWidget, "visible", lambda w: not w.isHidden(), lambda w, v: w.setVisible(v), None),
]


def _widget_property(widget: QWidget, name: str) -> tuple[Reader, Writer, str | None]:
    for klass, prop, read, write, signal in _WIDGET_PROPERTIES:
        if prop == name and isinstance(widget, klass):
            return read, write, signal
    raise TypeError(f"Cannot bind {type(widget).__name__}.{name}")


def _identity(value: Any) -> Any:
    return value


class Binding:
    """A live binding; `refresh` re-reads the model, `unbind` ends it."""

    def __init__(
        self,
        model: Any,
        prop: str,
        widget: QWidget,
        widget_prop: str,
        two_way: bool,
        to_widget: Callable[[Any], Any] | None,
        from_widget: Callable[[Any], Any] | None,
    ) -> None:
        self.model = model
        self.prop = prop
        self.widget = widget
        self._read, self._write, signal = _widget_property(widget, widget_prop)
        self._to_widget = to_widget or _identity
        self._from_widget = from_widget or _identity
        self._updating = False
        self._two_way = two_way
        self._model_changed: Emitter = model.property_changed(prop)
        # strong: nothing else holds a Binding; unbind() (widget destroyed) lets it go
        self._model_changed.connect(self.refresh, weak=False)
        if two_way:
            if signal is None:
                raise TypeError(f"{type(widget).__name__}.{widget_prop} is display-only")
            getattr(widget, signal).connect(self._on_widget_changed)
        widget.destroyed.connect(self.unbind)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Model -> widget (a two-way widget that shows the value already is left alone)."""
        value = self._to_widget(self.model.get_property(self.prop))
        if self._two_way and self._read(self.widget) == value:
            return
        self._updating = True
        try:
            self._write(self.widget, value)
        finally:
            self._updating = False

    def _on_widget_changed(self, *_: Any) -> None:
        if not self._updating:
            self.model.set_property(self.prop, self._from_widget(self._read(self.widget)))

    def unbind(self, *_: Any) -> None:
        self._model_changed.disconnect(self.refresh)


def bind(
    model: Any,
    prop: str,
    widget: QWidget,
    widget_prop: str = "value",
    two_way: bool = True,
    *,
    to_widget: Callable[[Any], Any] | None = None,
    from_widget: Callable[[Any], Any] | None = None,
) -> Binding:
    """Keep `widget.widget_prop` showing `model.prop`; with `two_way`, user edits go back."""
    return Binding(model, prop, widget, widget_prop, two_way, to_widget, from_widget)


def connect(emitter: Emitter, slot: Callable[..., Any], owner: QObject) -> None:
    """`emitter.connect(slot)` for as long as `owner` lives (a Qt-style connection)."""
    emitter.connect(slot)
    owner.destroyed.connect(lambda *_: emitter.disconnect(slot))
