"""Field-by-field editing of a frozen dataclass that a model holds (for bound widgets).

`EditedIDParams` and `FaceSettings` are values: a change makes a new object. Widgets
edit one field at a time, and one field alone may not make a valid object (lowering
``steps`` below ``dpm_range``'s end is refused until ``dpm_range`` follows). A `Draft`
keeps the fields the user typed that did not validate yet, retries them with every
further edit, and writes the whole object back to the model as soon as it validates;
until then `error` holds the validation message and the model keeps its last valid
object, so a half-typed combination never reaches the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .observable import Emitter, Observable, Property, same_value


class Draft(Observable):
    """The fields of ``read()`` as bindable properties (see `binder.bind`)."""

    error = Property("")  # why the pending fields do not make a valid object, or ""

    def __init__(
        self,
        read: Callable[[], Any],
        write: Callable[[Any], None],
        source_changed: Emitter,
    ) -> None:
        super().__init__()
        self._read = read
        self._write = write
        self._source_changed = source_changed
        self._pending: dict[str, Any] = {}
        self._field_names = {f.name for f in dataclasses.fields(read())}
        self._shown = self._values()
        self._field_emitters: dict[str, Emitter] = {}
        source_changed.connect(self.revert)

    def close(self) -> None:
        """Stop following the model (the widgets are gone)."""
        self._source_changed.disconnect(self.revert)

    @property
    def value(self) -> Any:
        """The model's current (valid) object."""
        return self._read()

    def _values(self) -> dict[str, Any]:
        current = self._read()
        return {name: getattr(current, name) for name in self._field_names}

    # -- edits ------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The field as the user sees it: a pending edit, else the model's value."""
        if name in self._pending:
            return self._pending[name]
        return getattr(self._read(), name)

    def set(self, name: str, value: Any) -> None:
        """Edit one field. Every listener of a field the edit changed hears of it, not
        only the widget that made it: a label bound to the same field, or the other
        overlap slider that a linked edit moved, follow at once."""
        self._pending[name] = value
        try:
            candidate = dataclasses.replace(self._read(), **self._pending)
        except (TypeError, ValueError) as exc:  # engine InputError is a ValueError
            self._shown[name] = value  # shown as typed until it validates or reverts
            self.error = str(exc)
            return
        self._pending.clear()
        self.error = ""
        self._write(candidate)
        # The model's change notification reverts (and so notifies) already; this covers
        # a model that stored the object without notifying. Nothing is announced twice:
        # revert emits only what differs from what was last announced.
        self.revert()

    def revert(self, *_: Any) -> None:
        """Drop pending edits and show the model's object (also on outside changes)."""
        self._pending.clear()
        self.error = ""
        values = self._values()
        changed = [n for n in values if not same_value(self._shown.get(n), values[n])]
        self._shown = values
        for name in changed:
            self.property_changed(name).emit(values[name])

    # -- binder protocol --------------------------------------------------------------
    def get_property(self, name: str) -> Any:
        return self.get(name) if name in self._field_names else super().get_property(name)

    def set_property(self, name: str, value: Any) -> None:
        if name in self._field_names:
            self.set(name, value)
        else:
            super().set_property(name, value)

    def property_changed(self, name: str) -> Emitter:
        if name not in self._field_names:
            return super().property_changed(name)
        emitter = self._field_emitters.get(name)
        if emitter is None:
            emitter = self._field_emitters[name] = Emitter(f"{name}_changed")
        return emitter
