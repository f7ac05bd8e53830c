"""Pairing each face of the edited photo with its face in the original photo
(`pair_faces`): the global similarity transform between the two photos
(`estimate_photo_transform`, ORB features + RANSAC) maps edited face centres into the
original, and a cost matrix (`pairing_costs`: geometry first, size, identity weighing
least) goes to an optimal assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from engine.errors import InputError
from engine.faces.rgb import as_rgb_uint8
from engine.faces.similarity import (
    ARCFACE_THRESHOLD,
    DLIB_THRESHOLD,
    distance_threshold,
    identity_distance,
)
from engine.faces.types import Face, FacePairing


# ---------------------------------------------------------------------------------------
# Pairing edited faces with original faces
# ---------------------------------------------------------------------------------------
def _gray_small(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    rgb = as_rgb_uint8(image)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, max_side / max(gray.shape))
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, scale


def estimate_photo_transform(
    edited: np.ndarray,
    original: np.ndarray,
    *,
    max_side: int = 800,
    min_inliers: int = 12,
) -> np.ndarray | None:
    """2x3 similarity (rotation, uniform scale, shift) mapping edited-photo pixels to original.

    ORB features on downscaled grayscale copies, ratio-tested matches, RANSAC
    (cv2.estimateAffinePartial2D). None when too few consistent matches exist (unrelated or
    heavily repainted photos).
    """
    gray_e, scale_e = _gray_small(edited, max_side)
    gray_o, scale_o = _gray_small(original, max_side)
    orb = cv2.ORB_create(nfeatures=3000)
    kp_e, desc_e = orb.detectAndCompute(gray_e, None)
    kp_o, desc_o = orb.detectAndCompute(gray_o, None)
    if desc_e is None or desc_o is None or len(kp_e) < min_inliers or len(kp_o) < min_inliers:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = []
    for candidates in matcher.knnMatch(desc_e, desc_o, k=2):
        if len(candidates) == 2 and candidates[0].distance < 0.75 * candidates[1].distance:
            good.append(candidates[0])
    if len(good) < min_inliers:
        return None
    src = np.float32([kp_e[m.queryIdx].pt for m in good]) / scale_e
    dst = np.float32([kp_o[m.trainIdx].pt for m in good]) / scale_o
    matrix, inliers = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=3.0 / scale_o,
        maxIters=4000,
        confidence=0.995,
    )
    if matrix is None or inliers is None or int(inliers.sum()) < min_inliers:
        return None
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not 0.05 < scale < 20.0:
        return None
    return matrix.astype(np.float64)


# Cost weights: geometry leads, identity only helps (the edit changed the identity).
GEOMETRY_WEIGHT = 1.0
SIZE_WEIGHT = 0.5
IDENTITY_WEIGHT = 0.25
DEFAULT_MAX_COST = 1.5


def pairing_costs(
    edited_faces: Sequence[Face],
    original_faces: Sequence[Face],
    edited_shape: tuple[int, ...],
    original_shape: tuple[int, ...],
    transform: np.ndarray | None,
    *,
    metric: str | None = None,
    threshold: float | None = None,
) -> np.ndarray:
    """Matrix [edited, original] of pairing costs (lower is better), see `pair_faces`."""
    costs = np.zeros((len(edited_faces), len(original_faces)))
    if transform is not None:
        linear = np.asarray(transform, dtype=np.float64)[:, :2]
        shift = np.asarray(transform, dtype=np.float64)[:, 2]
        scale = float(np.sqrt(abs(np.linalg.det(linear))))
        centres_e = [linear @ f.center + shift for f in edited_faces]
        sizes_e = [f.size * scale for f in edited_faces]
        centres_o = [f.center for f in original_faces]
        sizes_o = [f.size for f in original_faces]
    else:  # relative positions: centre / image size, size / longest side
        he, we = edited_shape[:2]
        ho, wo = original_shape[:2]
        centres_e = [f.center / np.array([we, he]) for f in edited_faces]
        sizes_e = [f.size / max(he, we) for f in edited_faces]
        centres_o = [f.center / np.array([wo, ho]) for f in original_faces]
        sizes_o = [f.size / max(ho, wo) for f in original_faces]
    limit = None
    if metric is not None and threshold is not None:
        limit = distance_threshold(metric, threshold)
    for i, face_e in enumerate(edited_faces):
        for j, face_o in enumerate(original_faces):
            size_e, size_o = max(sizes_e[i], 1e-9), max(sizes_o[j], 1e-9)
            reach = 0.5 * (size_e + size_o)
            geometry = float(np.linalg.norm(centres_e[i] - centres_o[j])) / reach
            size_term = abs(float(np.log(size_e / size_o)))
            identity = 0.0
            if (
                limit is not None
                and face_e.embedding is not None
                and face_o.embedding is not None
                and np.size(face_e.embedding) == np.size(face_o.embedding)
            ):
                distance = identity_distance(face_e.embedding, face_o.embedding, metric or "l2")
                identity = min(distance / limit, 2.0)
            costs[i, j] = (
                GEOMETRY_WEIGHT * geometry + SIZE_WEIGHT * size_term + IDENTITY_WEIGHT * identity
            )
    return costs


def pair_faces(
    edited_faces: Sequence[Face],
    original_faces: Sequence[Face],
    edited_image: np.ndarray,
    original_image: np.ndarray,
    *,
    transform: np.ndarray | None = None,
    overrides: Mapping[int, int | None] | None = None,
    max_cost: float = DEFAULT_MAX_COST,
    metric: str | None = None,
    threshold: float | None = None,
    estimate: bool = True,
) -> FacePairing:
    """Match each edited face to its original face (optimal assignment on a cost matrix).

    cost = 1.0 * centre distance / face size (edited centre mapped into the original photo)
         + 0.5 * |log size ratio| + 0.25 * min(identity distance / threshold, 2).
    The photo transform is estimated when not given (estimate=False skips it); when it
    cannot be, relative positions (centre / image size) stand in. Pairs costing more than
    `max_cost` are left unpaired, except that one face on each side is always paired.
    `overrides` maps edited index -> original index (or None: do not pair) and always wins.
    metric/threshold default to the faces' backend (l2/0.6 for dlib, cosine/0.28 for
    insightface).
    """
    n_e, n_o = len(edited_faces), len(original_faces)
    overrides = dict(overrides or {})
    for e, o in overrides.items():
        if not 0 <= int(e) < n_e:
            raise InputError(f"Face override {e}: the edited photo has faces 0-{n_e - 1}.")
        if o is not None and not 0 <= int(o) < n_o:
            raise InputError(f"Face override {e}->{o}: the original photo has faces 0-{n_o - 1}.")
    forced = {int(e): int(o) for e, o in overrides.items() if o is not None}
    if len(set(forced.values())) != len(forced):
        raise InputError("Two edited faces were paired with the same original face.")

    if transform is None and estimate and n_e and n_o:
        transform = estimate_photo_transform(edited_image, original_image)
    if metric is None or threshold is None:
        backend = next((f.backend for f in [*edited_faces, *original_faces] if f.backend), "dlib")
        default = (
            ("cosine", ARCFACE_THRESHOLD) if backend == "insightface" else ("l2", DLIB_THRESHOLD)
        )
        metric = metric or default[0]
        threshold = threshold if threshold is not None else default[1]
    edited_shape = np.shape(edited_image)
    original_shape = np.shape(original_image)
    costs = pairing_costs(
        edited_faces,
        original_faces,
        edited_shape,
        original_shape,
        transform,
        metric=metric,
        threshold=threshold,
    )
    pairs: list[tuple[int, int]] = sorted(forced.items())
    free_e = [i for i in range(n_e) if i not in overrides]
    free_o = [j for j in range(n_o) if j not in forced.values()]
    if free_e and free_o:
        from scipy.optimize import linear_sum_assignment

        sub = costs[np.ix_(free_e, free_o)]
        rows, cols = linear_sum_assignment(sub)
        always = n_e == 1 and n_o == 1 and not overrides
        for r, c in zip(rows, cols, strict=True):
            if always or sub[r, c] <= max_cost:
                pairs.append((free_e[r], free_o[c]))
    pairs.sort()
    paired_e = {e for e, _ in pairs}
    paired_o = {o for _, o in pairs}
    return FacePairing(
        pairs=pairs,
        unpaired_edited=[i for i in range(n_e) if i not in paired_e],
        unpaired_original=[j for j in range(n_o) if j not in paired_o],
        transform=transform,
        costs={(i, j): float(costs[i, j]) for i in range(n_e) for j in range(n_o)},
    )
