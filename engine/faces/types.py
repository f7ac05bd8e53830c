"""Data types shared by the face stages (detect, pair, align, mask, paste back).

Coordinates are in pixels of the photo they belong to, x to the right, y down.
`landmarks5` follow insightface's order, as seen in the image: left eye centre, right eye
centre, nose tip, left mouth corner, right mouth corner ("left" = smaller x for a frontal
face). Every backend converts its own points to this order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Face:
    box: np.ndarray  # (4,) float: x0, y0, x1, y1
    landmarks5: np.ndarray  # (5, 2) float
    score: float = 1.0
    landmarks: np.ndarray | None = None  # (N, 2) dense points (dlib 68, insightface 106)
    embedding: np.ndarray | None = None  # identity vector of the backend's recogniser
    backend: str = ""

    @property
    def size(self) -> float:
        """Face size in pixels: the larger side of the box."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    @property
    def center(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks5": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks5],
            "score": round(float(self.score), 4),
            "backend": self.backend,
        }


@runtime_checkable
class FaceAnalyzer(Protocol):
    """A face backend: detection, landmarks and identity embeddings."""

    name: str  # "dlib" | "insightface"
    embedding_metric: str  # "l2" (dlib) | "cosine" (ArcFace)
    same_person_threshold: float  # on that metric

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces of an HxWx3 uint8 RGB image, largest first, with embeddings."""
        ...

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Identity embedding of one face (landmarks given) in an RGB image."""
        ...


@dataclass
class FacePairing:
    """Which original face goes with which edited face."""

    pairs: list[tuple[int, int]]  # (edited index, original index)
    unpaired_edited: list[int] = field(default_factory=list)
    unpaired_original: list[int] = field(default_factory=list)
    transform: np.ndarray | None = None  # 2x3 similarity, edited photo -> original photo
    costs: dict[tuple[int, int], float] = field(default_factory=dict)


@dataclass
class FaceCrop:
    """A face warped into a square crop frame."""

    image: np.ndarray  # S x S x 3 uint8
    matrix: np.ndarray  # 2x3 affine: photo -> crop
    size: int  # S
    scale: float  # crop pixels per photo pixel
    too_small: bool = False  # the face was upscaled a lot: restoration will be soft
    valid: np.ndarray | None = None  # S x S uint8: 255 where the crop saw real photo pixels
