"""What a photo restore reports: PhotoResult (the composed image, each face's outcome,
the sidecar, warnings and the faces left alone), the identity scores after the restore
(face_outcomes) and the sidecar JSON that records the run (photo_sidecar).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from engine import __version__
from engine.faces.identity import IdentityScore, identity_from_embeddings
from engine.faces.plausibility import PLAUSIBILITY_RULE
from engine.faces.types import Face
from engine.io.psd import ResultLayers
from engine.photo.analysis import PhotoAnalysis, PhotoFace
from engine.photo.selection import faces_left_alone


@dataclass
class FaceOutcome:
    index: int
    original_index: int | None
    box: list[float]
    id_before: IdentityScore | None
    id_after: IdentityScore | None


@dataclass
class PhotoResult:
    image: np.ndarray
    faces: list[FaceOutcome]
    sidecar: dict
    mode: str
    backend: str
    changed_alpha: np.ndarray
    warnings: list[str] = field(default_factory=list)
    engine_result: object | None = None
    attention_element_masks: dict[int, np.ndarray] = field(default_factory=dict)
    left_alone: list[tuple[int, str]] = field(default_factory=list)  # (face index, why)
    # what a layered file (.psd) holds besides the image: the edited photo, the
    # restoration at full strength, the aligned original, the faces' masks
    layers: ResultLayers | None = None


def face_outcomes(
    analysis: PhotoAnalysis,
    chosen: list[PhotoFace],
    image: np.ndarray,
    check_cancel: Callable[[], None] = lambda: None,
) -> list[FaceOutcome]:
    analyzer = analysis.analyzer
    outcomes = []
    for face in chosen:
        check_cancel()  # one identity embedding per face
        after = None
        if (
            analyzer is not None
            and face.original_face is not None
            and face.original_face.embedding is not None
        ):
            restored = Face(
                face.edited_face.box,
                face.edited_face.landmarks5,
                face.edited_face.score,
                face.edited_face.landmarks,
                None,
                analyzer.name,
            )
            restored.embedding = analyzer.embed(image, restored)
            after = identity_from_embeddings(
                face.original_face.embedding, restored.embedding, analyzer
            )
        outcomes.append(
            FaceOutcome(
                face.index, face.original_index, [float(v) for v in face.box], face.id_before, after
            )
        )
    return outcomes


def photo_sidecar(analysis, chosen, outcomes, mode, params, extra) -> dict:
    return {
        "tool": "EditedID Desktop",
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "face_backend": analysis.backend,
        "params": params.to_dict() if params is not None else None,
        "face_numbering": "faces are numbered left to right from 1 (index = number - 1)",
        "plausibility_rule": PLAUSIBILITY_RULE,
        "faces": [
            {
                "face": o.index + 1,
                "original_face": None if o.original_index is None else o.original_index + 1,
                "index": o.index,
                "original_index": o.original_index,
                "box": o.box,
                "original_box": (
                    [float(v) for v in f.original_face.box] if f.original_face is not None else None
                ),
                "too_small": f.too_small,
                "id_before": _score_dict(o.id_before),
                "id_after": _score_dict(o.id_after),
                "plausibility": f.verdict.to_dict(),
            }
            for f, o in zip(chosen, outcomes, strict=True)
        ],
        "left_alone": [
            {"face": index + 1, "reason": why} for index, why in faces_left_alone(analysis, chosen)
        ],
        "unpaired_edited_faces": list(analysis.pairing.unpaired_edited),
        **extra,
    }


def _score_dict(score: IdentityScore | None) -> dict | None:
    if score is None:
        return None
    return {
        "value": round(float(score.value), 4),
        "metric": score.metric,
        "model": score.model,
        "threshold": score.threshold,
        "same_person": bool(score.same_person),
    }
