"""The restorer plugin contract and its registry (FaceFusion's checked processor contract).

    restorer = get_restorer("diffusion", model=model)   # or "classic"
    restorer.check()                                    # models present? (else an error)
    crops = restorer.restore(jobs, params)              # aligned pairs -> restored crops

A restorer turns aligned face pairs (engine.photo.contract.CropJob) into restored crops.
Each is a class registered with `@register`: registration fails at import when a method
of the contract is missing, so a half-written plugin never reaches a user. The command
line asks each registered restorer for its options (`register_options`) and builds the
chosen one from the parsed arguments (`from_options`); the app and the batch build
them with `get_restorer`. Nothing outside engine.restorers switches on the mode string.
"""

from __future__ import annotations

import argparse
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from engine.errors import InputError
from engine.params import EditedIDParams
from engine.photo.contract import CropJob, RestoredCrops


class Restorer(ABC):
    """One way of restoring aligned face crops; see the module docstring."""

    name: ClassVar[str]  # "classic" | "diffusion": the --mode value and the result's mode
    summary: ClassVar[str]  # one line for --mode help and the app
    needs_model: ClassVar[bool] = False  # True: built with a loaded SD model

    @classmethod
    @abstractmethod
    def register_options(cls, parser: argparse.ArgumentParser) -> None:
        """Add this restorer's command-line options to `parser` (a parser or an argument
        group; it may add none)."""

    @classmethod
    @abstractmethod
    def from_options(cls, args: argparse.Namespace) -> Restorer:
        """The restorer the parsed options ask for (loads its models)."""

    @abstractmethod
    def check(self) -> None:
        """Raise an EditedIDError naming what is missing when it cannot run."""

    @abstractmethod
    def crop_size(self, params: EditedIDParams) -> int | None:
        """The crop size it works at for `params`; None = any."""

    @abstractmethod
    def element_maps(
        self,
        edited_crops: Sequence[np.ndarray],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
    ) -> list[np.ndarray] | None:
        """Maps of the element words in the edited crops, or None. A restorer that runs
        a model here reports it as a stage through on_step and honours cancel."""

    @abstractmethod
    def restore(
        self,
        jobs: Sequence[CropJob],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
        on_message: Callable[[str], None] | None = None,
    ) -> RestoredCrops:
        """Restore every job; on_message gets each warning as it happens (they are
        also in the result's `warnings`)."""


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
