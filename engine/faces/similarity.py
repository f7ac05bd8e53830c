"""Identity embeddings compared: each backend's same-person threshold (dlib's L2 0.6,
ArcFace's cosine 0.28, with where the numbers come from), the distance between two
embeddings (`identity_distance`) and a threshold read as a distance (`distance_threshold`).
Shared by the backends, the pairing and engine.faces.identity.
"""

from __future__ import annotations

import numpy as np

from engine.errors import InputError

DLIB_THRESHOLD = 0.6  # L2 distance; dlib's documented tolerance for its ResNet model.

# ArcFace (buffalo_l w600k_r50) cosine similarity at or above which two faces are taken as
# the same person. insightface's own recognition demo (deepinsight/insightface,
# web-demos/src_recognition/main.py, which loads buffalo_l det_10g + w600k_r50) reads
# sim < 0.2 as "NOT the same person", 0.2-0.28 as "LIKELY", >= 0.28 as "the same person".
# Community code often uses 0.4-0.5 for stricter verification; for an identity-restoration
# score the demo's 0.28 is the right "same person" line.
ARCFACE_THRESHOLD = 0.28


def identity_distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """Distance between two embeddings: L2 ("l2") or 1 - cosine similarity ("cosine")."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"Embeddings differ in length ({a.size} vs {b.size}).")
    if metric == "l2":
        return float(np.linalg.norm(a - b))
    if metric == "cosine":
        denom = float(np.linalg.norm(a) * np.linalg.norm(b))
        return 1.0 - (float(a @ b) / denom if denom > 0 else 0.0)
    raise InputError(f"Unknown embedding metric {metric!r}.")


def distance_threshold(metric: str, threshold: float) -> float:
    """The backend's same-person threshold as a distance (cosine similarity -> 1 - sim)."""
    return threshold if metric == "l2" else 1.0 - threshold
