"""Faces in whole photos: detection, landmarks, identity embeddings and pairing.

Two backends implement `FaceAnalyzer` (engine/face_types.py):
- `DlibAnalyzer` — the offline default that installs with pip (`dlib-bin` +
  `face-recognition-models`): HOG detector, 68-point landmarks, 128-d ResNet embedding
  compared with L2 distance (same person below 0.6).
- `InsightFaceAnalyzer` — insightface `buffalo_l` (SCRFD detector, 5 + 106 landmarks,
  ArcFace 512-d embedding compared with cosine similarity) from a model folder that
  `download_face_models` fills or the user names.

`get_analyzer("auto")` picks insightface when its models are on disk, dlib otherwise.

Pairing (`pair_faces`) matches each face of the edited photo with its face in the original
photo. The two photos may differ in size, crop and position, so geometry comes first: the
global similarity transform between the photos (`estimate_photo_transform`, ORB features +
RANSAC) maps each edited face centre into the original photo. Identity embeddings help but
weigh less: the edit changed the identity, which is the whole problem this app solves.

Nothing here touches the network except `download_face_models`, and only when called.
dlib, insightface and onnxruntime are imported inside the functions that need them.

This module chooses a backend (`get_analyzer`, `available_backends`) and is the entry
point for the rest: the code lives in dlib_backend, insightface_backend, pairing,
model_download, similarity (thresholds, embedding distances) and rgb (the input check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.faces.dlib_backend import (  # noqa: F401 - re-exported, see __all__
    DETECT_FALLBACK_MAX_SIDE,
    DETECT_MAX_SIDE,
    DLIB_FILES,
    DLIB_MAX_UPSAMPLED_SIDE,
    DLIB_SMALL_IMAGE_SIDE,
    DlibAnalyzer,
    dlib_models_dir,
    dlib_status,
    landmarks5_from_68,
)
from engine.faces.insightface_backend import (  # noqa: F401 - re-exported, see __all__
    BUFFALO_L_SIZE,
    INSIGHTFACE_PACK,
    InsightFaceAnalyzer,
    insightface_pack_dir,
    insightface_status,
    onnx_files,
    onnx_providers,
    resolve_insightface_dir,
)
from engine.faces.model_download import (  # noqa: F401 - re-exported, see __all__
    BUFFALO_L_SHA256,
    BUFFALO_L_URL,
    CancelFn,
    ProgressFn,
    download_face_models,
)
from engine.faces.pairing import (  # noqa: F401 - re-exported, see __all__
    DEFAULT_MAX_COST,
    GEOMETRY_WEIGHT,
    IDENTITY_WEIGHT,
    SIZE_WEIGHT,
    estimate_photo_transform,
    pair_faces,
    pairing_costs,
)
from engine.faces.rgb import (  # noqa: F401 - re-exported, see __all__
    as_rgb_uint8,
)
from engine.faces.similarity import (  # noqa: F401 - re-exported, see __all__
    ARCFACE_THRESHOLD,
    DLIB_THRESHOLD,
    distance_threshold,
    identity_distance,
)
from engine.faces.types import (  # noqa: F401 - re-exported, see __all__
    Face,
    FaceAnalyzer,
    FacePairing,
)

__all__ = [
    "ARCFACE_THRESHOLD",
    "BACKENDS",
    "BUFFALO_L_SHA256",
    "BUFFALO_L_SIZE",
    "BUFFALO_L_URL",
    "CancelFn",
    "DEFAULT_MAX_COST",
    "DETECT_FALLBACK_MAX_SIDE",
    "DETECT_MAX_SIDE",
    "DLIB_FILES",
    "DLIB_MAX_UPSAMPLED_SIDE",
    "DLIB_SMALL_IMAGE_SIDE",
    "DLIB_THRESHOLD",
    "DlibAnalyzer",
    "Face",
    "FaceAnalyzer",
    "FacePairing",
    "GEOMETRY_WEIGHT",
    "IDENTITY_WEIGHT",
    "INSIGHTFACE_PACK",
    "InsightFaceAnalyzer",
    "ProgressFn",
    "SIZE_WEIGHT",
    "as_rgb_uint8",
    "available_backends",
    "distance_threshold",
    "dlib_models_dir",
    "dlib_status",
    "download_face_models",
    "estimate_photo_transform",
    "get_analyzer",
    "identity_distance",
    "insightface_pack_dir",
    "insightface_status",
    "landmarks5_from_68",
    "onnx_files",
    "onnx_providers",
    "pair_faces",
    "pairing_costs",
    "resolve_insightface_dir",
]

# ---------------------------------------------------------------------------------------
# Choosing a backend
# ---------------------------------------------------------------------------------------
BACKENDS = ("auto", "dlib", "insightface")


def available_backends(models_dir: str | Path | None = None) -> dict[str, str]:
    """Backend name -> "ready" or why it cannot run (nothing is loaded)."""
    return {"insightface": insightface_status(models_dir), "dlib": dlib_status()}


def get_analyzer(
    backend: str = "auto", models_dir: str | Path | None = None, **options: Any
) -> FaceAnalyzer:
    """A face backend: "insightface", "dlib", or "auto" (insightface when buffalo_l is on disk).

    options go to the backend's constructor (upsample for dlib; model_dir, det_size,
    providers for insightface).
    """
    choice = (backend or "auto").strip().lower()
    if choice not in BACKENDS:
        raise InputError(f"Unknown face backend {backend!r}: use one of {', '.join(BACKENDS)}.")
    if choice == "auto":
        ready = bool(options.get("model_dir")) or onnx_files(insightface_pack_dir(models_dir))
        choice = "insightface" if ready else "dlib"
        # Options meant for the backend that was not chosen are dropped.
        own = _INSIGHTFACE_OPTIONS if choice == "insightface" else _DLIB_OPTIONS
        options = {key: value for key, value in options.items() if key in own}
    if choice == "insightface":
        return InsightFaceAnalyzer(models_dir=models_dir, **options)
    return DlibAnalyzer(**options)


_INSIGHTFACE_OPTIONS = frozenset({"model_dir", "pack", "det_size", "providers"})
_DLIB_OPTIONS = frozenset({"upsample", "with_embeddings"})
