"""The insightface face backend (`InsightFaceAnalyzer`): buffalo_l's SCRFD detector,
5 + 106 landmarks and ArcFace 512-d embedding through onnxruntime, from a local model
folder; where that folder is (`insightface_pack_dir`, `resolve_insightface_dir`), whether
it holds models (`onnx_files`, `insightface_status`) and which onnxruntime providers run
it. insightface and onnxruntime are imported inside the functions that need them.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelError, ModelNotFoundError
from engine.faces.rgb import as_rgb_uint8
from engine.faces.similarity import ARCFACE_THRESHOLD
from engine.faces.types import Face
from engine.models.places import default_models_dir

INSIGHTFACE_PACK = "buffalo_l"
BUFFALO_L_SIZE = "about 280 MB"


_INSIGHTFACE_LOCK = threading.Lock()
_INSIGHTFACE_APPS: dict[tuple[str, tuple[str, ...], tuple[int, int]], Any] = {}


def insightface_pack_dir(
    models_dir: str | Path | None = None, pack: str = INSIGHTFACE_PACK
) -> Path:
    """Where the app keeps an insightface model pack: <models_dir>/insightface/models/<pack>."""
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return root / "insightface" / "models" / pack


def onnx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def _missing_pack_message(folder: Path, why: str) -> str:
    return (
        f"No insightface face models in {folder} ({why}). Run `editedid-cli models download "
        f"faces` ({BUFFALO_L_SIZE}), or copy the buffalo_l folder (det_10g.onnx, "
        f"w600k_r50.onnx, ...) into {insightface_pack_dir()}, or use the dlib backend."
    )


def resolve_insightface_dir(
    model_dir: str | Path | None = None,
    *,
    models_dir: str | Path | None = None,
    pack: str = INSIGHTFACE_PACK,
) -> Path:
    """The folder holding the pack's .onnx files; ModelNotFoundError when there is none.

    model_dir may be the pack folder itself or an insightface root (<root>/models/<pack>);
    without it, the app's models folder is used.
    """
    if model_dir is None:
        folder = insightface_pack_dir(models_dir, pack)
        candidates = [folder]
    else:
        folder = Path(model_dir).expanduser()
        candidates = [folder, folder / "models" / pack, folder / pack]
    if not folder.exists():
        raise ModelNotFoundError(_missing_pack_message(folder, "the folder does not exist"))
    for candidate in candidates:
        if onnx_files(candidate):
            return candidate.resolve()
    raise ModelNotFoundError(_missing_pack_message(folder, "the folder has no .onnx files"))


def onnx_providers() -> tuple[list[str], int]:
    """onnxruntime providers (CUDA first when onnxruntime-gpu can use it) and insightface ctx_id."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], 0
    return ["CPUExecutionProvider"], -1


def insightface_status(models_dir: str | Path | None) -> str:
    for module in ("insightface", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    folder = insightface_pack_dir(models_dir)
    if not onnx_files(folder):
        return (
            f"models not downloaded: run `editedid-cli models download faces` "
            f"({BUFFALO_L_SIZE}) or copy buffalo_l into {folder}"
        )
    return "ready"


class InsightFaceAnalyzer:
    """insightface FaceAnalysis (SCRFD + landmarks + ArcFace) on a local model folder."""

    name = "insightface"
    embedding_metric = "cosine"
    same_person_threshold = ARCFACE_THRESHOLD

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        models_dir: str | Path | None = None,
        pack: str = INSIGHTFACE_PACK,
        det_size: tuple[int, int] = (640, 640),
        providers: Sequence[str] | None = None,
    ) -> None:
        """Checks the folder now (ModelNotFoundError); the ONNX sessions load on first use."""
        self.model_dir = resolve_insightface_dir(model_dir, models_dir=models_dir, pack=pack)
        self.model_id = f"arcface-{pack if model_dir is None else self.model_dir.name}"
        self.det_size = (int(det_size[0]), int(det_size[1]))
        if providers is None:
            self.providers, self.ctx_id = onnx_providers()
        else:
            self.providers = list(providers)
            self.ctx_id = 0 if self.providers[0].startswith("CUDA") else -1

    def _app(self) -> Any:
        key = (str(self.model_dir), tuple(self.providers), self.det_size)
        with _INSIGHTFACE_LOCK:
            app = _INSIGHTFACE_APPS.get(key)
            if app is not None:
                return app
            try:
                from insightface.app import FaceAnalysis
            except ImportError as exc:
                raise ModelNotFoundError(
                    "insightface is not installed. Run: pip install insightface onnxruntime"
                ) from exc
            try:
                app = FaceAnalysis(name=str(self.model_dir), providers=self.providers)
            except AssertionError as exc:  # insightface's way to say "no detector here"
                raise ModelNotFoundError(
                    _missing_pack_message(self.model_dir, "no face detector model among its .onnx")
                ) from exc
            except Exception as exc:  # onnxruntime / onnx parse errors
                raise ModelError(
                    f"Could not load the insightface models in {self.model_dir}: {exc}. "
                    "The files may be incomplete: download them again."
                ) from exc
            app.prepare(ctx_id=self.ctx_id, det_size=self.det_size)
            _INSIGHTFACE_APPS[key] = app
            return app

    @property
    def tasks(self) -> list[str]:
        """insightface tasks found in the folder (detection, recognition, landmark_2d_106...)."""
        return sorted(self._app().models)

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = as_rgb_uint8(image)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        found = self._app().get(bgr)
        faces = [self._to_face(f) for f in found]
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces

    def _to_face(self, found: Any) -> Face:
        kps = found.get("kps")
        box = np.asarray(found["bbox"], dtype=np.float64)[:4]
        if kps is None:  # a detector without keypoints: box-based guess (never for SCRFD)
            x0, y0, x1, y1 = box
            w, h = x1 - x0, y1 - y0
            rel = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]])
            kps = np.array([x0, y0]) + rel * np.array([w, h])
        dense = found.get("landmark_2d_106")
        embedding = found.get("embedding")
        if embedding is not None:
            embedding = _l2_normalise(np.asarray(embedding, dtype=np.float32).ravel())
        return Face(
            box=box,
            landmarks5=np.asarray(kps, dtype=np.float64).reshape(5, 2),
            score=float(found.get("det_score", 1.0)),
            landmarks=None if dense is None else np.asarray(dense, dtype=np.float64),
            embedding=embedding,
            backend=self.name,
        )

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Normalised ArcFace embedding of the face aligned from its 5 landmarks."""
        rgb = as_rgb_uint8(image)
        app = self._app()
        recogniser = app.models.get("recognition")
        if recogniser is None:
            raise ModelNotFoundError(
                _missing_pack_message(self.model_dir, "no recognition (ArcFace) model")
            )
        from insightface.app.common import Face as InsightFace

        target = InsightFace(bbox=np.asarray(face.box, np.float32), kps=face.landmarks5)
        vector = recogniser.get(np.ascontiguousarray(rgb[:, :, ::-1]), target)
        return _l2_normalise(np.asarray(vector, dtype=np.float32).ravel())


def _l2_normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
