"""What the window asks of the engine worker: the requests (plain data, built in the UI
thread, posted to the worker's thread) and composing the results of several face groups
of one photo into one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.io.psd import ResultLayers
from engine.params import EditedIDParams

__all__ = [
    "AnalyzeRequest",
    "ClassicRequest",
    "RestoreRequest",
    "is_out_of_memory",
    "merge_results",
]


@dataclass
class AnalyzeRequest:
    original: np.ndarray
    edited: np.ndarray
    overrides: dict[int, int | None] = field(default_factory=dict)
    generation: int = 0
    original_name: str = "the original photo"  # for messages: the file the user opened
    edited_name: str = "the edited photo"


@dataclass
class ClassicRequest:
    analysis: Any
    faces: list[int] | None = None
    masks: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None
    generation: int = 0


@dataclass
class RestoreRequest:
    """One diffusion restore. groups: (params, faces) per set of element words."""

    original: np.ndarray
    edited: np.ndarray
    analysis: Any
    groups: list[tuple[EditedIDParams, list[int]]]
    masks: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None
    overlaps: dict[int, tuple[float, float]] | None = None
    generation: int = 0


def is_out_of_memory(error: BaseException) -> bool:
    """The engine's test (torch OOM, our OutOfMemory, "out of memory" RuntimeErrors)."""
    from engine.models.memory_plan import is_out_of_memory as engine_is_out_of_memory

    return engine_is_out_of_memory(error)


def merge_results(edited: np.ndarray, results: list[Any]) -> Any:
    """Compose several PhotoResults of the same edited photo (different faces) into one."""
    if len(results) == 1:
        return results[0]
    image = edited.astype(np.float32)
    changed = np.zeros(edited.shape[:2], np.float32)
    faces: list[Any] = []
    warnings: list[str] = []
    for result in results:
        alpha = np.asarray(result.changed_alpha, np.float32)[..., None]
        image = image * (1.0 - alpha) + result.image.astype(np.float32) * alpha
        changed = np.maximum(changed, alpha[..., 0])
        faces.extend(result.faces)
        warnings.extend(result.warnings)
    merged = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    sidecar = dict(results[0].sidecar)
    sidecar["runs"] = [r.sidecar for r in results]
    return dataclasses.replace(
        results[0],
        image=merged,
        faces=faces,
        changed_alpha=changed,
        sidecar=sidecar,
        warnings=warnings,
        # no one blend made the merged image: a .psd shows it over a mask of what changed
        layers=ResultLayers(edited),
    )
