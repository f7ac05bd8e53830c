"""A face's pairing as an undoable command on the window's undo stack (Edit ▸ Undo).

Choosing another original face for an edited face re-runs the analysis; so does undoing
or redoing the choice. The stack is the masks' `QUndoStack` (mask_document), the one
Edit ▸ Undo / Redo act on. A new analysis clears that stack, because mask commands hold
pixels of auto masks it replaces; pairing commands hold no pixels and stay valid, so
`PairingHistory` takes them out before and puts them back after, done and undone ones
alike, without running them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QUndoCommand, QUndoStack

from .model.session import PAIRING_AUTO

Pairing = int | str | None
Apply = Callable[[int, Pairing], None]  # (edited face index, pairing): set it, re-analyse


def pairing_text(pairing: Pairing) -> str:
    """How the face panel's combo names a pairing."""
    if pairing == PAIRING_AUTO:
        return "Auto"
    if pairing is None:
        return "None (keep as edited)"
    return f"Original face {int(pairing) + 1}"


class PairingCommand(QUndoCommand):
    """Face `index` paired with `after` instead of `before`. `silent`: redo and undo
    only move the stack's index (putting history back, see PairingHistory)."""

    def __init__(
        self, apply: Apply, index: int, before: Pairing, after: Pairing, *, silent: bool = False
    ) -> None:
        super().__init__(f"Pair face {index + 1} with {pairing_text(after)}")
        self.apply = apply
        self.index, self.before, self.after = index, before, after
        self.silent = silent

    def redo(self) -> None:
        if not self.silent:
            self.apply(self.index, self.after)

    def undo(self) -> None:
        if not self.silent:
            self.apply(self.index, self.before)


@dataclass(frozen=True)
class PairingHistory:
    """The pairing commands of a stack, in order, and how many of them are done."""

    entries: tuple[tuple[int, Pairing, Pairing], ...]
    done: int

    @classmethod
    def take(cls, stack: QUndoStack | None) -> PairingHistory:
        """The stack's pairing commands (none when `stack` is None)."""
        entries, done = [], 0
        for position in range(stack.count() if stack is not None else 0):
            command = stack.command(position)
            if isinstance(command, PairingCommand):
                entries.append((command.index, command.before, command.after))
                done += position < stack.index()
        return cls(tuple(entries), done)

    def put_back(self, stack: QUndoStack, apply: Apply) -> None:
        """Push the commands again (nothing runs), then step back over the undone ones."""
        commands = [PairingCommand(apply, *entry, silent=True) for entry in self.entries]
        for command in commands:
            stack.push(command)
        for _ in range(len(commands) - self.done):
            stack.undo()
        for command in commands:
            command.silent = False
