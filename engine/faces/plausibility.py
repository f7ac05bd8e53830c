"""Is a detection a real face, and which faces to restore by default (issue 12, D1/D2/D15).

The rule, named `plausibility_rule` in sidecars and reports, flags a detection as "not a
face?" when any of these holds:

1. low detector score: below `MIN_DETECTOR_SCORE` of its backend. dlib's HOG scores the
   real faces of the sample photos 0.2-2.8 and the face it finds on the astronaut's mission
   patch 0.12; insightface's SCRFD keeps detections from 0.5 and scores real faces above
   0.7.
2. implausible landmarks: in the frame of the eye line, the eyes are less than 8 % of the
   box apart, or more than 80 %; the nose tip is not below the eye line; the mouth is not
   below the nose; the mouth is not between 0.4 and 2.5 eye distances wide.
3. unpaired: no matching face in the other photo (reported, and nothing to restore from).

A face is restored by default only when it is plausible, paired and its identity changed
(ID before fails the backend's same-person threshold); `default_reason` says in words why
a face is left alone. Faces are numbered left to right from 1 (`left_to_right`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.faces.types import Face

PLAUSIBILITY_RULE = "detector score, landmark geometry, pairing (engine.faces.plausibility)"
MIN_DETECTOR_SCORE = {"dlib": 0.15, "insightface": 0.6}
EYE_DISTANCE_RANGE = (0.08, 0.8)  # eye distance / box width
MOUTH_WIDTH_RANGE = (0.4, 2.5)  # mouth width / eye distance


@dataclass(frozen=True)
class FaceVerdict:
    """plausible: looks like a real face (score and landmarks); reasons: why not, in words."""

    plausible: bool = True
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"plausible": self.plausible, "reasons": list(self.reasons)}


def left_to_right(faces: Sequence[Face]) -> list[Face]:
    """Faces in reading order: by the box centre's x, then y (face 1 is the leftmost)."""
    return sorted(faces, key=lambda f: (float(f.center[0]), float(f.center[1])))


def _landmark_problems(face: Face) -> list[str]:
    points = np.asarray(face.landmarks5, dtype=float)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        return ["no usable landmarks"]
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    axis = right_eye - left_eye
    eyes = float(np.linalg.norm(axis))
    width = max(float(face.box[2] - face.box[0]), 1.0)
    low, high = EYE_DISTANCE_RANGE
    if not low * width <= eyes <= high * width:
        return [f"eyes {eyes / width:.0%} of the face width apart"]
    unit = axis / eyes
    down = np.array([-unit[1], unit[0]])  # image y grows downwards
    middle = (left_eye + right_eye) / 2.0
    nose_depth = float((nose - middle) @ down) / eyes
    mouth_depth = float(((mouth_left + mouth_right) / 2.0 - middle) @ down) / eyes
    mouth_width = float(np.linalg.norm(mouth_right - mouth_left)) / eyes
    problems = []
    if nose_depth <= 0.05:
        problems.append("nose not below the eyes")
    if mouth_depth <= nose_depth:
        problems.append("mouth not below the nose")
    if not MOUTH_WIDTH_RANGE[0] <= mouth_width <= MOUTH_WIDTH_RANGE[1]:
        problems.append("mouth width unlike a face's")
    return problems


def face_verdict(face: Face, backend: str | None = None) -> FaceVerdict:
    """The plausibility of one detection (rules 1 and 2 of the module docstring)."""
    reasons = []
    minimum = MIN_DETECTOR_SCORE.get(backend or face.backend)
    if minimum is not None and float(face.score) < minimum:
        reasons.append(f"low detector score {float(face.score):.2f} (< {minimum:.2f})")
    reasons.extend(_landmark_problems(face))
    return FaceVerdict(not reasons, tuple(reasons))


def pair_verdict(edited: Face, original: Face | None, backend: str | None = None) -> FaceVerdict:
    """An edited face with its partner: implausible when either detection is."""
    verdict = face_verdict(edited, backend)
    reasons = list(verdict.reasons)
    if original is not None:
        reasons.extend(f"original: {r}" for r in face_verdict(original, backend).reasons)
    return FaceVerdict(not reasons, tuple(reasons))


def default_reason(*, paired: bool, verdict: FaceVerdict, id_before: Any | None) -> str | None:
    """Why a face is left alone by default, or None when it is restored by default."""
    if not paired:
        return "no matching face in the original photo"
    if not verdict.plausible:
        return "not a face? " + "; ".join(verdict.reasons)
    if id_before is not None and bool(getattr(id_before, "same_person", False)):
        similarity = getattr(id_before, "similarity", None)
        how = f" ({similarity:.0%} same person)" if similarity is not None else ""
        return f"unchanged: the edit kept the identity{how}"
    return None
