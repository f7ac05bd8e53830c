"""Observable models without Qt (napari's events, krita-ai-diffusion's `Property`).

A model class declares its state as `Property` attributes and any other notification as
an `Event`::

    class Session(Observable):
        params = Property(EditedIDParams(), persist=True)  # emits params_changed(value)
        face_changed = Event()                              # emitted by hand: (index)

    session.params_changed.connect(lambda params: ...)
    session.changed.connect(lambda name, value: ...)        # every property

Assigning a property emits ``<name>_changed(value)`` and ``changed(name, value)``, but
only when the value really changed: ``==`` decides, and values without a usable ``==``
(numpy arrays, dataclasses holding arrays) count as changed unless they are the same
object. ``with model.batch():`` holds the notifications back until the block ends, so a
listener never sees a half-updated model (one notification per property, latest value).

Listeners are plain callables, called at once in the emitting thread. The Qt layer
(`editedid_desktop.binder`) disconnects a widget's listeners when the widget goes away.

Bound methods are held weakly (as Qt holds a connection's receiver): a Qt object that
listens to a model it owns (MaskDocument -> MaskModel -> MaskDocument._forward_change)
would otherwise form a reference cycle that only Python's cyclic garbage collector
frees - at an arbitrary moment, possibly inside a Qt call that holds Qt's connection
mutex (QObject::disconnect), where destroying the QObject locks that mutex again and the
process deadlocks (seen in the test suite: pytest-qt's waitSignal cleanup). With weak
bound methods such objects are freed by reference counting, when their owner lets go.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Callback = Callable[..., Any]

_MISSING = object()


def same_value(old: Any, new: Any) -> bool:
    """Whether assigning `new` over `old` changes nothing (never raises)."""
    if old is new:
        return True
    if type(old) is not type(new):
        return False
    try:
        equal = old == new
    except Exception:  # noqa: BLE001 - e.g. dataclasses holding numpy arrays
        return False
    return equal if isinstance(equal, bool) else False  # numpy: an array of booleans


def _reference(callback: Callback, weak: bool) -> Callable[[], Callback | None]:
    """A bound method weakly (see the module docstring), anything else strongly."""
    if weak and inspect.ismethod(callback):
        return weakref.WeakMethod(callback)
    return lambda: callback


class Emitter:
    """The listeners of one event of one model object."""

    __slots__ = ("name", "_callbacks")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callable[[], Callback | None]] = []

    def connect(self, callback: Callback, *, weak: bool = True) -> Callback:
        """Call `callback(*args)` on every emit. weak=False keeps a bound method's object
        alive until disconnect (for helper objects nothing else holds, such as a widget
        binding, which disconnects itself when its widget is destroyed)."""
        self._callbacks.append(_reference(callback, weak))
        return callback

    def disconnect(self, callback: Callback) -> None:
        """Remove one connection of `callback` (no error when it is not connected)."""
        for index, ref in enumerate(self._callbacks):
            if ref() == callback:
                del self._callbacks[index]
                return

    def emit(self, *args: Any) -> None:
        for ref in list(self._callbacks):  # a listener may disconnect itself
            callback = ref()
            if callback is None:  # its object is gone: the connection goes with it
                if ref in self._callbacks:
                    self._callbacks.remove(ref)
                continue
            callback(*args)

    def __len__(self) -> int:
        return sum(1 for ref in self._callbacks if ref() is not None)

    def __repr__(self) -> str:
        return f"<Emitter {self.name} ({len(self._callbacks)} listeners)>"


class Event:
    """Declares an event on an `Observable` class; each instance has its own `Emitter`."""

    def __init__(self) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        emitters = obj.__dict__.setdefault("_emitters", {})
        emitter = emitters.get(self.name)
        if emitter is None:
            emitter = emitters[self.name] = Emitter(self.name)
        return emitter


class Property(Generic[T]):
    """A value of an `Observable` that notifies its listeners when it changes.

    ``default`` is shared by every instance (keep it immutable); ``factory`` makes a
    fresh default per instance (``factory=dict``). ``persist`` marks what belongs to the
    saved document or the stored settings; what that means is the owner's business
    (`Observable._property_set`). ``eq=False`` compares by identity only: for photos,
    analyses and results, where a new object is a change and ``==`` would compare
    megapixels.
    """

    def __init__(
        self,
        default: T | None = None,
        *,
        factory: Callable[[], T] | None = None,
        persist: bool = False,
        eq: bool = True,
    ) -> None:
        self.default = default
        self.factory = factory
        self.persist = persist
        self.eq = eq
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def initial(self) -> T:
        return self.factory() if self.factory is not None else self.default  # type: ignore[return-value]

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__.get(self.name, _MISSING)
        if value is _MISSING:
            value = obj.__dict__[self.name] = self.initial()
        return value

    def __set__(self, obj: Observable, value: T) -> None:
        old = self.__get__(obj)
        if old is value or (self.eq and same_value(old, value)):
            return
        obj.__dict__[self.name] = value
        obj._property_set(self, value)
        obj._notify(self.name, value)


class Observable:
    """Base of the app's models: declared properties and events, no Qt."""

    changed = Event()  # (name, value) after any property changed

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, prop in list(vars(cls).items()):
            if isinstance(prop, Property) and not hasattr(cls, f"{name}_changed"):
                event = Event()
                event.__set_name__(cls, f"{name}_changed")
                setattr(cls, f"{name}_changed", event)

    def __init__(self, **values: Any) -> None:
        self._batch_depth = 0
        self._held: dict[str, Any] = {}
        known = self.properties()
        for name, value in values.items():
            if name not in known:
                raise TypeError(f"{type(self).__name__} has no property {name!r}")
            self.__dict__[name] = value  # initial values: nothing to notify

    @classmethod
    def properties(cls) -> dict[str, Property]:
        """The declared properties by name, base classes first."""
        found: dict[str, Property] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Property):
                    found[name] = value
        return found

    def persisted(self) -> dict[str, Any]:
        """The values of the properties declared with ``persist=True``."""
        return {name: getattr(self, name) for name, p in self.properties().items() if p.persist}

    # -- notifications ----------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold property notifications back until the outermost block ends."""
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                held, self._held = self._held, {}
                for name, value in held.items():
                    self._emit_change(name, value)

    def _notify(self, name: str, value: Any) -> None:
        if self._batch_depth:
            self._held[name] = value
        else:
            self._emit_change(name, value)

    def _emit_change(self, name: str, value: Any) -> None:
        getattr(self, f"{name}_changed").emit(value)
        self.changed.emit(name, value)

    def _property_set(self, prop: Property, value: Any) -> None:
        """Called synchronously after a property took a new value (before notifying)."""

    # -- what binder.bind needs -------------------------------------------------------
    def get_property(self, name: str) -> Any:
        return getattr(self, name)

    def set_property(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def property_changed(self, name: str) -> Emitter:
        return getattr(self, f"{name}_changed")
