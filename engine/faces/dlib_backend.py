"""The offline dlib face backend (`DlibAnalyzer`): HOG detector, 68-point landmarks and
the 128-d ResNet embedding from face-recognition-models' .dat files, loaded once per process
(detection and embedding run under `_DLIB_LOCK`);
where those files are (`dlib_models_dir`), whether the backend can run (`dlib_status`), and
the search-size limits for huge photos. dlib is imported inside the functions that need it.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import InputError, ModelError, ModelNotFoundError
from engine.faces.rgb import as_rgb_uint8
from engine.faces.similarity import DLIB_THRESHOLD
from engine.faces.types import Face

DLIB_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}

# HOG upsampling, measured on the sample photos (see tests/test_faces.py): upsample 0 finds
# exactly 1/1/6 faces on grace_hopper (512x600), astronaut (512x512) and t1 (1280x886) in
# 0.03/0.03/0.12 s; upsample 1 takes 4x longer and adds a false face on astronaut (score
# 0.12). HOG needs faces of about 80 px at upsample 0 and 40 px at upsample 1, so small
# photos start at 1, and a photo where nothing is found is searched once more, upsampled.
DLIB_SMALL_IMAGE_SIDE = 400
DLIB_MAX_UPSAMPLED_SIDE = 2000


_DLIB_LOCK = threading.RLock()  # loading once per process, and inference (dlib objects)
_DLIB_MODELS: dict[str, Any] = {}


def dlib_models_dir() -> Path:
    """Folder of face-recognition-models' .dat files, found without importing the package.

    (Importing face_recognition_models needs pkg_resources, which newer setuptools lacks.)
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise ModelNotFoundError(
            "The offline face models are not installed. Run: pip install face-recognition-models"
        )
    return Path(spec.origin).parent / "models"


def dlib_status() -> str:
    if importlib.util.find_spec("dlib") is None:
        return "dlib is not installed (pip install dlib-bin)"
    try:
        folder = dlib_models_dir()
    except ModelNotFoundError as exc:
        return str(exc)
    missing = [name for name in DLIB_FILES.values() if not (folder / name).is_file()]
    if missing:
        return f"missing {', '.join(missing)} in {folder} (pip install face-recognition-models)"
    return "ready"


def _dlib_models() -> dict[str, Any]:
    """The dlib detector, shape predictors and recogniser, loaded once per process."""
    with _DLIB_LOCK:
        if _DLIB_MODELS:
            return _DLIB_MODELS
        try:
            import dlib
        except ImportError as exc:
            raise ModelNotFoundError(
                "dlib is not installed, so the offline face backend cannot run. "
                "Run: pip install dlib-bin face-recognition-models"
            ) from exc
        folder = dlib_models_dir()
        paths = {key: folder / name for key, name in DLIB_FILES.items()}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise ModelNotFoundError(
                f"dlib face model file(s) missing: {', '.join(missing)}. "
                "Run: pip install --force-reinstall face-recognition-models"
            )
        try:
            models = {
                "detector": dlib.get_frontal_face_detector(),
                "landmarks68": dlib.shape_predictor(str(paths["landmarks68"])),
                "recognition": dlib.face_recognition_model_v1(str(paths["recognition"])),
                "dlib": dlib,
            }
        except RuntimeError as exc:  # a truncated or corrupt .dat file
            raise ModelError(
                f"Could not load the dlib face models from {folder}: {exc}. "
                "Run: pip install --force-reinstall face-recognition-models"
            ) from exc
        _DLIB_MODELS.update(models)
        return _DLIB_MODELS


def landmarks5_from_68(points: np.ndarray) -> np.ndarray:
    """insightface-order 5 points from dlib's 68: eye centres, nose tip, mouth corners."""
    pts = np.asarray(points, dtype=np.float64)
    return np.stack(
        [
            pts[36:42].mean(axis=0),  # eye on the image's left (the subject's right eye)
            pts[42:48].mean(axis=0),
            pts[30],
            pts[48],
            pts[54],
        ]
    )


# Longest side of the copy that dlib's HOG detector searches (see DlibAnalyzer.detect).
DETECT_MAX_SIDE = 3000
# Longest side of the second search when the first found nothing: never the full size of a
# huge photo (HOG's time and memory grow with the pixel count: a 19000x19000 photo took
# 5.2 GB and 3 min). Faces of ~80 px at this scale are found (~190 px in a 14000 px photo).
DETECT_FALLBACK_MAX_SIDE = 6000


def _search_copy(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`rgb` shrunk to at most max_side (each side at least 1 px), and the scale used."""
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


class DlibAnalyzer:
    """dlib HOG detector + 68-point landmarks + 128-d ResNet embedding (L2, 0.6)."""

    name = "dlib"
    embedding_metric = "l2"
    same_person_threshold = DLIB_THRESHOLD
    model_id = "dlib-resnet-v1"

    def __init__(self, upsample: int | None = None, *, with_embeddings: bool = True) -> None:
        """upsample: HOG upsampling (None: 1 below 400 px, else 0; retried once if empty)."""
        if upsample is not None and not 0 <= int(upsample) <= 3:
            raise InputError(f"upsample must be 0-3, got {upsample}.")
        self.upsample = None if upsample is None else int(upsample)
        self.with_embeddings = with_embeddings

    def _upsample_plan(self, height: int, width: int) -> list[int]:
        if self.upsample is not None:
            return [self.upsample]
        side = max(height, width)
        first = 1 if side < DLIB_SMALL_IMAGE_SIDE else 0
        plan = [first]
        if side * 2 ** (first + 1) <= DLIB_MAX_UPSAMPLED_SIDE:
            plan.append(first + 1)
        return plan

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = as_rgb_uint8(image)
        models = _dlib_models()
        # Huge photos: search a copy no larger than DETECT_MAX_SIDE (HOG time and memory
        # grow with the pixel count), then fit landmarks and identity on the full image.
        search, scale = _search_copy(rgb, DETECT_MAX_SIDE)
        with _DLIB_LOCK:
            rects, scores = [], []
            for upsample in self._upsample_plan(*search.shape[:2]):
                rects, scores, _ = models["detector"].run(search, upsample, 0.0)
                if len(rects):
                    break
            if scale < 1.0 and not len(rects):
                # Faces too small for the reduced copy: search a larger one, bounded.
                del search
                search, scale = _search_copy(rgb, DETECT_FALLBACK_MAX_SIDE)
                rects, scores, _ = models["detector"].run(search, 0, 0.0)
            if scale < 1.0:
                rects = [
                    models["dlib"].rectangle(
                        round(r.left() / scale),
                        round(r.top() / scale),
                        round(r.right() / scale),
                        round(r.bottom() / scale),
                    )
                    for r in rects
                ]
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                shape = models["landmarks68"](rgb, rect)
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                embedding = None
                if self.with_embeddings:
                    embedding = self._descriptor(rgb, shape)
                faces.append(
                    Face(
                        box=np.array(
                            [rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1],
                            dtype=np.float64,
                        ),
                        landmarks5=landmarks5_from_68(points),
                        score=float(score),
                        landmarks=points,
                        embedding=embedding,
                        backend=self.name,
                    )
                )
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces

    def _descriptor(self, rgb: np.ndarray, shape: Any) -> np.ndarray:
        models = _dlib_models()
        vector = models["recognition"].compute_face_descriptor(rgb, shape)
        return np.asarray(vector, dtype=np.float32)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """128-d embedding of the face in `face.box` (landmarks re-fitted by dlib)."""
        rgb = as_rgb_uint8(image)
        models = _dlib_models()
        x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise InputError(f"The face box {list(face.box)} is too small to embed.")
        with _DLIB_LOCK:
            rect = models["dlib"].rectangle(x0, y0, x1 - 1, y1 - 1)
            shape = models["landmarks68"](rgb, rect)
            return self._descriptor(rgb, shape)
