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
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import cv2
import numpy as np

from engine.errors import Cancelled, DownloadError, InputError, ModelError, ModelNotFoundError
from engine.faces.types import Face, FaceAnalyzer, FacePairing
from engine.models.places import default_models_dir

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
CancelFn = Callable[[], bool]

# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------
DLIB_THRESHOLD = 0.6  # L2 distance; dlib's documented tolerance for its ResNet model.

# ArcFace (buffalo_l w600k_r50) cosine similarity at or above which two faces are taken as
# the same person. insightface's own recognition demo (deepinsight/insightface,
# web-demos/src_recognition/main.py, which loads buffalo_l det_10g + w600k_r50) reads
# sim < 0.2 as "NOT the same person", 0.2-0.28 as "LIKELY", >= 0.28 as "the same person".
# Community code often uses 0.4-0.5 for stricter verification; for an identity-restoration
# score the demo's 0.28 is the right "same person" line.
ARCFACE_THRESHOLD = 0.28

INSIGHTFACE_PACK = "buffalo_l"
BUFFALO_L_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
# sha256 of buffalo_l.zip. Not pinned yet: this was written on a machine without network
# access, so the real digest could not be read. While it is None, download_face_models
# computes the digest, logs it and records it in <pack>/.download.json, and still checks
# the zip's own CRCs and that the pack holds a detector and a recogniser. Pin it by
# running `sha256sum buffalo_l.zip` on a trusted copy; a mismatch then deletes the file
# and raises DownloadError.
BUFFALO_L_SHA256: str | None = None
BUFFALO_L_SIZE = "about 280 MB"

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

_MIB = 1 << 20


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
def as_rgb_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A C-contiguous HxWx3 uint8 RGB copy-or-view of `image` (gray and RGBA accepted)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise InputError(f"The {what} must be 8-bit (uint8), got {array.dtype}.")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"The {what} must be an HxWx3 RGB array, got shape {array.shape}.")
    if array.shape[0] < 8 or array.shape[1] < 8:
        raise InputError(f"The {what} is too small ({array.shape[1]}x{array.shape[0]} px).")
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------------------
# dlib backend
# ---------------------------------------------------------------------------------------
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


def _dlib_status() -> str:
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


# ---------------------------------------------------------------------------------------
# insightface backend
# ---------------------------------------------------------------------------------------
_INSIGHTFACE_LOCK = threading.Lock()
_INSIGHTFACE_APPS: dict[tuple[str, tuple[str, ...], tuple[int, int]], Any] = {}


def insightface_pack_dir(
    models_dir: str | Path | None = None, pack: str = INSIGHTFACE_PACK
) -> Path:
    """Where the app keeps an insightface model pack: <models_dir>/insightface/models/<pack>."""
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return root / "insightface" / "models" / pack


def _onnx_files(folder: Path) -> list[Path]:
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
        if _onnx_files(candidate):
            return candidate.resolve()
    raise ModelNotFoundError(_missing_pack_message(folder, "the folder has no .onnx files"))


def onnx_providers() -> tuple[list[str], int]:
    """onnxruntime providers (CUDA first when onnxruntime-gpu can use it) and insightface ctx_id."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], 0
    return ["CPUExecutionProvider"], -1


def _insightface_status(models_dir: str | Path | None) -> str:
    for module in ("insightface", "onnxruntime"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {module})"
    folder = insightface_pack_dir(models_dir)
    if not _onnx_files(folder):
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


# ---------------------------------------------------------------------------------------
# Choosing a backend
# ---------------------------------------------------------------------------------------
BACKENDS = ("auto", "dlib", "insightface")


def available_backends(models_dir: str | Path | None = None) -> dict[str, str]:
    """Backend name -> "ready" or why it cannot run (nothing is loaded)."""
    return {"insightface": _insightface_status(models_dir), "dlib": _dlib_status()}


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
        ready = bool(options.get("model_dir")) or _onnx_files(insightface_pack_dir(models_dir))
        choice = "insightface" if ready else "dlib"
        # Options meant for the backend that was not chosen are dropped.
        own = _INSIGHTFACE_OPTIONS if choice == "insightface" else _DLIB_OPTIONS
        options = {key: value for key, value in options.items() if key in own}
    if choice == "insightface":
        return InsightFaceAnalyzer(models_dir=models_dir, **options)
    return DlibAnalyzer(**options)


_INSIGHTFACE_OPTIONS = frozenset({"model_dir", "pack", "det_size", "providers"})
_DLIB_OPTIONS = frozenset({"upsample", "with_embeddings"})


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


# ---------------------------------------------------------------------------------------
# Download of buffalo_l (model manager / `editedid-cli models download faces`)
# ---------------------------------------------------------------------------------------
def download_face_models(
    models_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    url: str = BUFFALO_L_URL,
    sha256: str | None = BUFFALO_L_SHA256,
    pack: str = INSIGHTFACE_PACK,
    timeout: float = 30.0,
) -> Path:
    """Download and unpack insightface buffalo_l into <models_dir>/insightface/models/<pack>.

    Streams with progress(done, total, label), resumes an interrupted `.part` file with an
    HTTP Range request, verifies sha256 (a mismatch deletes the file: DownloadError),
    extracts safely (no absolute paths, `..`, links or special files) into a temporary
    folder and renames it into place. Cancel raises Cancelled and keeps the `.part` file
    so the next call resumes. Returns the pack folder; does nothing if it already holds
    .onnx files.
    """
    target = insightface_pack_dir(models_dir, pack)
    if _onnx_files(target):
        return target
    downloads = target.parent.parent / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urllib.request.urlparse(url).path).name or f"{pack}.zip"
    part = downloads / f"{name}.part"
    label = name
    _fetch(url, part, progress, cancel, label, timeout)

    digest = _sha256_file(part, cancel)
    if sha256 is not None and digest.lower() != sha256.strip().lower():
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{name} did not verify: sha256 {digest} instead of {sha256}. The file was "
            "deleted; download it again (if this repeats, the server's file changed)."
        )
    if sha256 is None:
        log.warning("%s downloaded without a pinned sha256; its sha256 is %s", name, digest)
    if cancel is not None and cancel():
        raise Cancelled(f"Download of {name} cancelled (the file is kept for next time).")
    if progress is not None:
        progress(0, 1, f"unpacking {name}")
    try:
        _safe_extract_pack(part, target)
    except zipfile.BadZipFile as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{name} is not a valid zip file ({exc}); it was deleted.") from exc
    record = {"url": url, "sha256": digest, "pinned_sha256": sha256}
    (target / ".download.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    part.unlink(missing_ok=True)
    if progress is not None:
        progress(1, 1, f"unpacking {name}")
    return target


def _fetch(
    url: str,
    part: Path,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
    label: str,
    timeout: float,
) -> None:
    """Stream `url` into `part`, resuming from its current size with a Range request."""
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "EditedID-Desktop"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - https/http
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # nothing left to send: the part file is complete
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total is None or total == done:
                if progress is not None:
                    progress(done, done, label)
                return
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"The partial download of {label} did not match the server's file and was "
                "deleted; run the download again."
            ) from exc
        raise DownloadError(
            f"Could not download {label} from {url}: HTTP {exc.code} {exc.reason}."
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"Could not download {label} from {url}: {reason}. Check the internet connection "
            "and run the download again (it resumes where it stopped)."
        ) from exc
    with response:
        status = getattr(response, "status", 200)
        if status == 206:
            total = _total_from_content_range(response.headers.get("Content-Range"))
            mode = "ab"
        else:  # 200: the server sent the whole file (it ignored or never got a Range)
            done = 0
            total = None
            mode = "wb"
        length = response.headers.get("Content-Length")
        if total is None and length is not None and length.isdigit():
            total = done + int(length)
        total = total or 0
        if progress is not None:
            progress(done, total, label)
        try:
            with open(part, mode) as handle:
                while True:
                    if cancel is not None and cancel():
                        raise Cancelled(
                            f"Download of {label} cancelled; run it again to resume from "
                            f"{done / _MIB:.1f} MiB."
                        )
                    chunk = response.read(_MIB)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, max(total, done), label)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise DownloadError(
                f"The download of {label} was interrupted at {done / _MIB:.1f} MiB ({exc}); "
                "run it again to resume."
            ) from exc
    if total and done != total:
        raise DownloadError(
            f"The download of {label} stopped at {done} of {total} bytes; run it again to resume."
        )


def _total_from_content_range(value: str | None) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _sha256_file(path: Path, cancel: CancelFn | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * _MIB), b""):
            if cancel is not None and cancel():
                raise Cancelled(f"Verification of {path.name} cancelled.")
            h.update(block)
    return h.hexdigest()


def _check_member(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's safe relative path (None for directories); DownloadError if unsafe."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"Refusing to unpack {name!r}: the archive contains a link.")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DownloadError(f"Refusing to unpack {name!r}: not a regular file.")
    posix = PurePosixPath(name.replace("\\", "/"))
    if (
        name.startswith(("/", "\\"))
        or posix.is_absolute()
        or PureWindowsPath(name).drive
        or PureWindowsPath(name).is_absolute()
        or ".." in posix.parts
        or "\x00" in name
    ):
        raise DownloadError(f"Refusing to unpack {name!r}: the path leaves the model folder.")
    if info.is_dir() or name.endswith(("/", "\\")):
        return None
    parts = [p for p in posix.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _safe_extract_pack(archive: Path, target: Path) -> None:
    """Unpack `archive` into a temp folder beside `target`, check it, rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        members = [(info, _check_member(info)) for info in zf.infolist()]  # check all first
        bad = zf.testzip()
        if bad is not None:
            raise DownloadError(f"{archive.name} is damaged ({bad} fails its CRC check).")
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            root = staging.resolve()
            for info, relative in members:
                if relative is None:
                    continue
                destination = (root / relative).resolve()
                if root not in destination.parents:
                    raise DownloadError(
                        f"Refusing to unpack {info.filename!r}: outside the folder."
                    )
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, _MIB)
            pack_root = staging
            if not _onnx_files(staging):  # the zip may hold one folder (e.g. buffalo_l/)
                subdirs = [p for p in staging.iterdir() if p.is_dir() and _onnx_files(p)]
                if len(subdirs) != 1:
                    raise DownloadError(
                        f"{archive.name} holds no .onnx model files: it is not an insightface pack."
                    )
                pack_root = subdirs[0]
            _replace_dir(pack_root, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(source: Path, target: Path) -> None:
    """Move `source` to `target` with renames only (an old target is moved aside first)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(source, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
