"""What the photo pipeline asks of a restorer: aligned face pairs in, restored crops out.

The pipeline (engine.photo.pipeline) detects, pairs and aligns faces and pastes crops
back; HOW a pair of aligned crops becomes a restored crop is the restorer's business.
The caller hands the pipeline an object with this shape (dependency injection); the
implementations are the plugins of engine.restorers, which this package never imports.

`CropRestorer` is THE restorer contract, declared here once: engine.restorers.base.Restorer
subclasses it (its methods are abstract, so a plugin missing one cannot register), and
anything else with these methods (a test's stand-in, the runtime's locking wrapper) is
one too, structurally.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from engine.params import EditedIDParams


@dataclass
class CropJob:
    """One aligned face pair in the edited face's crop frame.

    original / edited: HxWx3 uint8 RGB crops of one size (the original already warped
    into the edited face's frame). face_mask / element_mask: HxW uint8 0..255.
    original_valid: HxW uint8, where the original crop has pixels (255) rather than
    padding; None = everywhere. overlap: this face's (lambda_o, lambda_e), None = the
    parameters'. require_element: False when an empty element mask means "restore the
    identity only" (whole photos) rather than a mistake (a single crop pair).
    """

    original: np.ndarray
    edited: np.ndarray
    face_mask: np.ndarray
    element_mask: np.ndarray
    original_valid: np.ndarray | None = None
    overlap: tuple[float, float] | None = None
    name: str = ""
    require_element: bool = True


@dataclass
class RestoredCrops:
    """A restorer's answer, one entry per job in the jobs' order.

    regions: where each crop may be pasted (crop coordinates, uint8); keeps: pixels that
    stay exactly as edited (None: none). params: the parameters the crops were made with,
    None for a restorer that uses none. sidecar: entries for the result's sidecar JSON
    (model, engine diagnostics). element_attention: HxW maps in [0, 1] of the element
    words in the edited crop, where the restorer has them.
    """

    crops: list[np.ndarray]
    regions: list[np.ndarray]
    keeps: list[np.ndarray | None]
    params: EditedIDParams | None = None
    sidecar: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    element_attention: list[np.ndarray | None] = field(default_factory=list)
    engine_result: object | None = None


@runtime_checkable
class CropRestorer(Protocol):
    """What a restorer does: the methods the pipeline calls, and the name it records."""

    name: str  # the result's mode: "classic" | "diffusion"

    @abstractmethod
    def check(self) -> None:
        """Raise an EditedIDError naming what is missing when this restorer cannot run
        (e.g. no model loaded)."""

    @abstractmethod
    def crop_size(self, params: EditedIDParams) -> int | None:
        """The crop size it works at for `params`; None = any (the analysis' own)."""

    @abstractmethod
    def element_maps(
        self,
        edited_crops: Sequence[np.ndarray],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
    ) -> list[np.ndarray] | None:
        """Maps of the element words in each edited crop, to sharpen the automatic
        element masks before the restore; None when it has none. A restorer that runs
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
        """Restore every job (in one batch where it can); on_message gets each warning
        as it happens (they are also in the result's `warnings`)."""
