"""Restorers: the ways a pair of aligned face crops becomes a restored crop. Each is a
plugin with the same checked contract (base.Restorer): the instant classic blend
(classic) and the EditedID diffusion method (diffusion). Importing this package
registers both.
"""

from engine.restorers import classic, diffusion
from engine.restorers.base import RESTORERS, Restorer, get_restorer, register, restorer_class

__all__ = [
    "RESTORERS",
    "Restorer",
    "classic",
    "diffusion",
    "get_restorer",
    "register",
    "restorer_class",
]
