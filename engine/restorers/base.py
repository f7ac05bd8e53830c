"""The restorer plugins and their registry (FaceFusion's checked processor contract).

    restorer = get_restorer("diffusion", model=model)   # or "classic"
    restorer = restorer_class("diffusion").from_spec(spec)   # loads the spec's model
    restorer.check()                                    # models present? (else an error)
    crops = restorer.restore(jobs, params)              # aligned pairs -> restored crops

A restorer turns aligned face pairs (engine.photo.contract.CropJob) into restored crops.
What it must do is declared once, in engine.photo.contract.CropRestorer; `Restorer` adds
what a plugin is known by (name, summary, whether it needs a model) and how it is built.
Each is a class registered with `@register`: registration fails at import when a method
of the contract is missing, so a half-written plugin never reaches a user. A plugin that
needs a model takes the loaded model as its one argument (`get_restorer(name, model=)`)
or loads it from a ModelSpec (`from_spec`); options and their parsing belong to the
command line (engine.cli.options). Nothing outside engine.restorers switches on the mode
string.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar

from engine.errors import InputError
from engine.models.spec import ModelSpec
from engine.photo.contract import CropRestorer


class Restorer(CropRestorer):
    """One way of restoring aligned face crops; see the module docstring."""

    name: ClassVar[str]  # "classic" | "diffusion": the --mode value and the result's mode
    summary: ClassVar[str]  # one line for --mode help and the app
    needs_model: ClassVar[bool] = False  # True: built with a loaded SD model

    @classmethod
    def from_spec(
        cls, spec: ModelSpec | None = None, *, on_message: Callable[[str], None] | None = None
    ) -> Restorer:
        """The restorer, with the model `spec` names loaded when it needs one (None = the
        default model; ModelError when it cannot load); a restorer without a model
        ignores `spec`. on_message: notes of the load (a --compile that fell back)."""
        if not cls.needs_model:
            return cls()
        return cls((spec or ModelSpec()).load(on_message=on_message))


RESTORERS: dict[str, type[Restorer]] = {}


def register(cls: type[Restorer]) -> type[Restorer]:
    """Class decorator: check the contract and add `cls` to RESTORERS under its name."""
    if not (isinstance(cls, type) and issubclass(cls, Restorer)):
        raise TypeError(f"{cls!r} is not a Restorer subclass.")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"Restorer {cls.__name__} does not implement {', '.join(missing)}.")
    for attribute in ("name", "summary"):
        value = inspect.getattr_static(cls, attribute, None)
        if not isinstance(value, str) or not value:
            message = f"Restorer {cls.__name__} needs a non-empty class attribute {attribute!r}."
            raise TypeError(message)
    if cls.name in RESTORERS and RESTORERS[cls.name] is not cls:
        raise TypeError(f"Two restorers are named {cls.name!r}.")
    RESTORERS[cls.name] = cls
    return cls


def get_restorer(name: str, model=None) -> Restorer:
    """A ready restorer by name; `model` (a loaded SD model, or None) goes to the
    restorers that need one (`needs_model`) and is ignored by the others."""
    cls = restorer_class(name)
    return cls(model) if cls.needs_model else cls()


def restorer_class(name: str) -> type[Restorer]:
    try:
        return RESTORERS[name]
    except KeyError:
        raise InputError(
            f"Unknown mode {name!r}: use {' or '.join(repr(n) for n in RESTORERS)}."
        ) from None
