"""Evaluation metrics: identity similarity between two face images, and PSNR.

`id_similarity` uses ArcFace cosine similarity (insightface buffalo_l) when those models are
on disk, dlib's 128-d ResNet L2 distance otherwise; the result names the model and its
same-person threshold, so numbers from different machines are never mixed up silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.faces.detection import as_rgb_uint8, get_analyzer, identity_distance
from engine.faces.types import Face, FaceAnalyzer


@dataclass(frozen=True)
class IdentityScore:
    """How alike two faces are, on the backend's own scale.

    value: cosine similarity (metric "cosine": higher = more alike, same person at or above
    the threshold) or L2 distance (metric "l2": lower = more alike, same person below it).
    similarity: a display score in [0, 1] with the threshold at 0.5 for both metrics.
    """

    value: float
    metric: str  # "cosine" | "l2"
    model: str  # "arcface-buffalo_l" | "dlib-resnet-v1"
    threshold: float
    same_person: bool
    similarity: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("value", "threshold", "similarity"):
            out[key] = round(float(out[key]), 4)
        return out


def display_similarity(value: float, metric: str, threshold: float) -> float:
    """The "% same person" every view shows: a backend's raw value (L2 distance or cosine
    similarity) on [0, 1] with the same-person threshold at 0.5."""
    if metric == "l2":  # 0 -> 1, threshold -> 0.5, twice the threshold or more -> 0
        return float(np.clip(1.0 - value / (2.0 * threshold), 0.0, 1.0))
    if value >= threshold:  # cosine: threshold -> 0.5, 1 -> 1, 0 or less -> 0
        return float(0.5 + 0.5 * (value - threshold) / (1.0 - threshold))
    return float(0.5 * max(value, 0.0) / threshold)


def score_embeddings(
    a: np.ndarray, b: np.ndarray, metric: str, threshold: float, model: str
) -> IdentityScore:
    """IdentityScore of two embeddings of one backend."""
    distance = identity_distance(a, b, metric)
    if metric == "cosine":
        value = 1.0 - distance
        same = value >= threshold
    else:
        value = distance
        same = value < threshold
    return IdentityScore(
        value=float(value),
        metric=metric,
        model=model,
        threshold=float(threshold),
        same_person=bool(same),
        similarity=display_similarity(value, metric, threshold),
    )


def _model_id(analyzer: FaceAnalyzer) -> str:
    model = getattr(analyzer, "model_id", None)
    if model:
        return str(model)
    return "arcface-buffalo_l" if analyzer.name == "insightface" else "dlib-resnet-v1"


def _main_face(analyzer: FaceAnalyzer, image: np.ndarray, which: str) -> tuple[Face, np.ndarray]:
    rgb = as_rgb_uint8(image, which)
    faces = analyzer.detect(rgb)
    if not faces:
        raise InputError(
            f"No face found in the {which} ({analyzer.name} detector). Use a photo where the "
            "face is frontal, at least about 80 pixels wide and not cut off."
        )
    face = max(faces, key=lambda f: f.size)
    embedding = face.embedding if face.embedding is not None else analyzer.embed(rgb, face)
    return face, np.asarray(embedding)


def id_similarity(
    a: np.ndarray,
    b: np.ndarray,
    analyzer: FaceAnalyzer | None = None,
    *,
    models_dir: str | Path | None = None,
) -> IdentityScore:
    """Identity similarity of the largest face in RGB image `a` and in RGB image `b`.

    analyzer: a face backend; default get_analyzer("auto") (ArcFace when insightface's
    buffalo_l is in the models folder, dlib otherwise). No face in an image: InputError
    naming the image ("first image" / "second image").
    """
    if analyzer is None:
        analyzer = get_analyzer("auto", models_dir)
    _, emb_a = _main_face(analyzer, a, "first image")
    _, emb_b = _main_face(analyzer, b, "second image")
    return score_embeddings(
        emb_a,
        emb_b,
        analyzer.embedding_metric,
        analyzer.same_person_threshold,
        _model_id(analyzer),
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images of one shape (inf if identical)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise InputError(f"psnr needs 8-bit images, got {a.dtype} and {b.dtype}.")
    if a.shape != b.shape:
        raise InputError(f"psnr needs images of one size, got {a.shape} and {b.shape}.")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def identity_from_embeddings(a: np.ndarray, b: np.ndarray, analyzer: FaceAnalyzer) -> IdentityScore:
    """IdentityScore of two embeddings made by `analyzer` (its metric and threshold)."""
    return score_embeddings(
        a, b, analyzer.embedding_metric, analyzer.same_person_threshold, _model_id(analyzer)
    )
