"""Whole photos: detect and pair faces, align crops, masks, restore in one batch, paste back.

    analysis = analyze_photos(original, edited)          # faces, pairs, crops, auto masks
    result = restore_analysis(analysis, restorer, params, faces=[0, 2])
    result = restore_photo(original, edited, params, restorer=restorer)  # analyses first

The restorer (engine.photo.contract.CropRestorer) turns the aligned face pairs into
crops: the caller passes one in, e.g. `engine.restorers.get_restorer("classic")` or
`get_restorer("diffusion", model=model)`; this module never imports engine.restorers.

The edited photo defines the layout of the result; the original supplies identity
(DESIGN.md §3). Every pixel outside the pasted face regions stays identical to the
edited photo.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from engine import __version__
from engine.diffusion.progress import StepInfo, cancel_checker
from engine.errors import InputError
from engine.faces.identity import IdentityScore, identity_from_embeddings
from engine.faces.plausibility import (
    PLAUSIBILITY_RULE,
    FaceVerdict,
    default_reason,
    left_to_right,
    pair_verdict,
)
from engine.faces.types import Face, FaceAnalyzer, FaceCrop, FacePairing
from engine.params import EditedIDParams
from engine.photo.align import align_edited, align_original_to_edited, too_small_message
from engine.photo.contract import CropJob, CropRestorer, RestoredCrops
from engine.photo.masks import (
    combine_element_masks,
    crop_patch_to_photo,
    element_mask_from_attention,
    element_mask_from_difference,
    face_mask_from_landmarks,
    to_crop,
    to_photo,
)
from engine.photo.pasteback import PasteItem, paste_many
from engine.photo.roles import RoleCheck, check_roles

THUMB_SIZE = 96
MaskPair = tuple[np.ndarray | None, np.ndarray | None]


@dataclass
class PhotoFace:
    """One edited face, its original partner (if any), crops and automatic masks."""

    index: int
    original_index: int | None
    box: np.ndarray  # edited-photo coordinates
    edited_face: Face
    original_face: Face | None
    edited_crop: FaceCrop
    original_crop: FaceCrop | None
    auto_face_mask: np.ndarray  # edited-photo coordinates, uint8
    auto_element_mask: np.ndarray
    crop_face_mask: np.ndarray  # crop coordinates, uint8
    crop_element_mask: np.ndarray
    too_small: bool = False
    warnings: list[str] = field(default_factory=list)
    thumb_edited: np.ndarray | None = None
    thumb_original: np.ndarray | None = None
    id_before: IdentityScore | None = None
    verdict: FaceVerdict = field(default_factory=FaceVerdict)

    @property
    def restorable(self) -> bool:
        return self.original_crop is not None

    @property
    def number(self) -> int:
        """The face's number as shown everywhere: 1 = leftmost face of the edited photo."""
        return self.index + 1

    @property
    def plausible(self) -> bool:
        return self.verdict.plausible

    @property
    def changed(self) -> bool | None:
        """The edit changed the identity (ID before fails the threshold); None: unknown."""
        return None if self.id_before is None else not self.id_before.same_person

    @property
    def left_alone_reason(self) -> str | None:
        """Why this face is not restored by default (None: it is)."""
        return default_reason(
            paired=self.restorable, verdict=self.verdict, id_before=self.id_before
        )

    @property
    def restore_by_default(self) -> bool:
        return self.left_alone_reason is None


@dataclass
class PhotoAnalysis:
    original: np.ndarray
    edited: np.ndarray
    backend: str
    original_faces: list[Face]
    edited_faces: list[Face]
    pairing: FacePairing
    faces: list[PhotoFace]
    crop_size: int
    analyzer: FaceAnalyzer | None = None
    # whether the photo opened as the original looks like the AI edit (engine.photo.roles),
    # measured with the faces, before any preview is composed; None: nothing measured
    roles: RoleCheck | None = None

    def face(self, index: int) -> PhotoFace:
        for face in self.faces:
            if face.index == index:
                return face
        raise InputError(
            f"There is no face {index + 1} in the edited photo ({len(self.faces)} found, "
            "numbered left to right from 1)."
        )


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


@dataclass(frozen=True)
class FacePreview:
    """One face's live step preview, placed in the edited photo."""

    face: int  # edited-photo face index
    image: np.ndarray  # RGBA uint8: the crop's preview warped into the photo; alpha = the
    # face's restore region (face and element masks), 0 elsewhere
    box: tuple[int, int, int, int]  # where the patch goes: x0, y0, x1, y1 (end exclusive)


@dataclass(frozen=True)
class PhotoStepInfo(StepInfo):
    """The restorer's StepInfo with its per-face previews placed in the photo."""

    faces: tuple[FacePreview, ...] = ()


def _placing_previews(
    on_step: Callable | None, analysis: PhotoAnalysis, chosen: list[PhotoFace], jobs: list
) -> Callable | None:
    """on_step for the restorer: each step's face previews (by job) become FacePreviews,
    each in its own face's place, masked to its restore region (never one rectangle over
    several faces and what lies between them)."""
    if on_step is None:
        return None
    regions = [np.maximum(job.face_mask, job.element_mask) for job in jobs]
    shape = analysis.edited.shape

    def placed(stage: str, step: int, total: int, info: object = None) -> None:
        if isinstance(info, StepInfo) and info.previews:
            faces = []
            for slot, image in sorted(info.previews.items()):
                if 0 <= slot < len(chosen):
                    face = chosen[slot]
                    patch = crop_patch_to_photo(image, regions[slot], face.edited_crop, shape)
                    if patch is not None:
                        faces.append(FacePreview(face.index, *patch))
            info = PhotoStepInfo(info.previews, info.substep, info.unit, info.within,
                                 faces=tuple(faces))  # fmt: skip
        on_step(stage, step, total, info)

    return placed


# --- analysis -------------------------------------------------------------------------
def _thumb(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (THUMB_SIZE, THUMB_SIZE), interpolation=cv2.INTER_AREA)


def _identity(
    analyzer: FaceAnalyzer | None, a: Face | None, b: Face | None
) -> IdentityScore | None:
    if analyzer is None or a is None or b is None or a.embedding is None or b.embedding is None:
        return None
    return identity_from_embeddings(a.embedding, b.embedding, analyzer)


def _build_face(
    index: int,
    edited: np.ndarray,
    original: np.ndarray,
    edited_face: Face,
    original_face: Face | None,
    original_index: int | None,
    crop_size: int,
    analyzer: FaceAnalyzer | None,
) -> PhotoFace:
    crop_e = align_edited(edited, edited_face, size=crop_size)
    crop_o = None
    face_crop_mask = face_mask_from_landmarks(crop_e, edited_face)
    element_crop_mask = np.zeros_like(face_crop_mask)
    warnings: list[str] = []
    if original_face is not None:
        crop_o = align_original_to_edited(original, original_face, crop_e, edited_face)
        # Restore wherever either face is: the original's outline may be wider or taller.
        face_crop_mask = np.maximum(face_crop_mask, face_mask_from_landmarks(crop_o, original_face))
        element_crop_mask = element_mask_from_difference(crop_o.image, crop_e.image, face_crop_mask)
    else:
        warnings.append(
            f"Face {index + 1} has no partner in the original photo: choose one in its panel "
            "or leave it as edited."
        )
    small = bool(crop_e.too_small or (crop_o is not None and crop_o.too_small))
    if small:
        message = too_small_message(crop_e if crop_e.too_small else crop_o, f"Face {index + 1}")
        warnings.append(message or f"Face {index + 1} is small; the result may be soft.")
    return PhotoFace(
        index=index,
        original_index=original_index,
        box=np.asarray(edited_face.box, dtype=float),
        edited_face=edited_face,
        original_face=original_face,
        edited_crop=crop_e,
        original_crop=crop_o,
        auto_face_mask=to_photo(face_crop_mask, crop_e, edited.shape[:2]),
        auto_element_mask=to_photo(element_crop_mask, crop_e, edited.shape[:2]),
        crop_face_mask=face_crop_mask,
        crop_element_mask=element_crop_mask,
        too_small=small,
        warnings=warnings,
        thumb_edited=_thumb(crop_e.image),
        thumb_original=_thumb(crop_o.image) if crop_o is not None else None,
        id_before=_identity(analyzer, original_face, edited_face),
        verdict=pair_verdict(edited_face, original_face, getattr(analyzer, "name", None)),
    )


def analyze_photos(
    original: np.ndarray,
    edited: np.ndarray,
    *,
    backend: str = "auto",
    analyzer: FaceAnalyzer | None = None,
    overrides: dict[int, int | None] | None = None,
    crop_size: int = 512,
    original_name: str = "the original photo",
    edited_name: str = "the edited photo",
) -> PhotoAnalysis:
    """Detect, pair and align every face; automatic masks in edited-photo coordinates.

    Faces of both photos are indexed left to right (index 0 = face 1, the leftmost)."""
    from engine.faces.detection import get_analyzer, pair_faces

    analyzer = analyzer or get_analyzer(backend)
    edited_faces = left_to_right(analyzer.detect(edited))
    if not edited_faces:
        raise InputError(
            f"No face found in {edited_name}. EditedID restores faces: use a photo where the "
            "face is visible and at least about 64 pixels wide."
        )
    original_faces = left_to_right(analyzer.detect(original))
    if not original_faces:
        raise InputError(
            f"No face found in {original_name}, so there is no identity to restore. Check that "
            "the original photo shows the same person's face."
        )
    pairing = pair_faces(edited_faces, original_faces, edited, original, overrides=overrides)
    partner = dict(pairing.pairs)
    faces = []
    for j, face in enumerate(edited_faces):
        i = partner.get(j)
        faces.append(
            _build_face(
                j,
                edited,
                original,
                face,
                original_faces[i] if i is not None else None,
                i,
                crop_size,
                analyzer,
            )
        )
    return PhotoAnalysis(
        original,
        edited,
        analyzer.name,
        original_faces,
        edited_faces,
        pairing,
        faces,
        crop_size,
        analyzer,
        roles=_check_roles(original, edited, faces),
    )


def _check_roles(original: np.ndarray, edited: np.ndarray, faces: list[PhotoFace]):
    """The role check on the paired faces (None when no face is paired)."""
    pairs = [(f.original_face.box, f.edited_face.box) for f in faces if f.original_face]
    return check_roles(original, edited, pairs) if pairs else None


def _ensure_crop_size(analysis: PhotoAnalysis, size: int) -> PhotoAnalysis:
    """Re-align crops when the run's resolution differs from the analysis' (cheap)."""
    if analysis.crop_size == size:
        return analysis
    faces = [
        _build_face(
            f.index,
            analysis.edited,
            analysis.original,
            f.edited_face,
            f.original_face,
            f.original_index,
            size,
            analysis.analyzer,
        )
        for f in analysis.faces
    ]
    return PhotoAnalysis(
        analysis.original,
        analysis.edited,
        analysis.backend,
        analysis.original_faces,
        analysis.edited_faces,
        analysis.pairing,
        faces,
        size,
        analysis.analyzer,
        roles=analysis.roles,
    )


FACES_DEFAULT = "changed"  # restore only faces whose identity the edit changed
FACE_SELECTIONS = ("changed", "all")
FaceSelection = Sequence[int] | str | None


def _selected(analysis: PhotoAnalysis, faces: FaceSelection) -> list[PhotoFace]:
    """The faces to restore: indices, "all" (every paired face) or "changed"/None (the
    default: paired, plausible and with a changed identity, see engine.faces.plausibility).
    """
    if faces is None or isinstance(faces, str):
        which = FACES_DEFAULT if faces is None else faces
        if which not in FACE_SELECTIONS:
            raise InputError(f"Faces to restore: {which!r}; use face numbers, 'changed' or 'all'.")
        restorable = [f for f in analysis.faces if f.restorable]
        chosen = restorable if which == "all" else [f for f in restorable if f.restore_by_default]
        if not restorable:
            raise InputError(
                "No face of the edited photo could be paired with a face of the original "
                "photo. Check that both photos show the same people, or pair the faces by hand."
            )
        return chosen
    chosen = []
    for index in faces:
        face = analysis.face(index)
        if not face.restorable:
            raise InputError(
                f"Face {index + 1} has no partner in the original photo; pair it by hand "
                "or leave it out."
            )
        chosen.append(face)
    if not chosen:
        raise InputError(
            "No face of the edited photo could be paired with a face of the original photo. "
            "Check that both photos show the same people, or pair the faces by hand."
        )
    return chosen


def _left_alone(analysis: PhotoAnalysis, chosen: list[PhotoFace]) -> list[tuple[int, str]]:
    """(face index, why) of every face not restored; "not selected" when the caller chose."""
    picked = {f.index for f in chosen}
    return [
        (f.index, f.left_alone_reason or "not selected")
        for f in analysis.faces
        if f.index not in picked
    ]


def _crop_masks(
    face: PhotoFace, masks: dict[int, MaskPair] | None
) -> tuple[np.ndarray, np.ndarray]:
    """User masks (edited-photo coordinates) always win over the automatic ones."""
    user_face, user_element = (masks or {}).get(face.index, (None, None))
    face_mask = (
        to_crop(user_face, face.edited_crop) if user_face is not None else face.crop_face_mask
    )
    element = (
        to_crop(user_element, face.edited_crop)
        if user_element is not None
        else face.crop_element_mask
    )
    return face_mask, element


# --- composition and sidecar ----------------------------------------------------------
def _compose(
    analysis: PhotoAnalysis, chosen: list[PhotoFace], restored: RestoredCrops
) -> tuple[np.ndarray, np.ndarray]:
    """Paste all faces in one composition (no face re-blends another's pixels)."""
    items = [
        PasteItem(crop, face.edited_crop, region, keep)
        for face, crop, region, keep in zip(
            chosen, restored.crops, restored.regions, restored.keeps, strict=True
        )
    ]
    return paste_many(analysis.edited, items, return_alpha=True)


def _outcomes(
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


def _sidecar(analysis, chosen, outcomes, mode, params, extra) -> dict:
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
            {"face": index + 1, "reason": why} for index, why in _left_alone(analysis, chosen)
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


# --- restore --------------------------------------------------------------------------
def restore_analysis(
    analysis: PhotoAnalysis,
    restorer: CropRestorer,
    params: EditedIDParams | None = None,
    *,
    faces: FaceSelection = None,
    masks: dict[int, MaskPair] | None = None,
    overlaps: dict[int, tuple[float, float]] | None = None,
    on_step: Callable | None = None,
    cancel=None,
) -> PhotoResult:
    """Restore the selected faces of an analysed photo pair with `restorer`, all faces
    in one restorer call, and paste them into the edited photo in one composition.

    faces: edited-photo face indices (0 = face 1, the leftmost), "all" (every paired face)
    or "changed" / None (the default: only plausible paired faces whose identity changed;
    the others are listed in `left_alone` with the reason, and when none is left the
    result is the edited photo unchanged). masks: per face, user
    (face, element) masks in edited-photo coordinates; None entries fall back to the
    automatic ones. overlaps: per face (lambda_o, lambda_e) for restorers that use them.
    """
    restorer.check()
    params = params or EditedIDParams()
    start = time.perf_counter()
    # 1. the crops at the size the restorer works at, the faces to restore
    size = restorer.crop_size(params)
    if size is not None:
        analysis = _ensure_crop_size(analysis, size)
    chosen = _selected(analysis, faces)
    if not chosen:  # every face left alone by default: the edited photo as it is
        return _unchanged_result(analysis, restorer, params, start)
    # 2. sharpen the automatic element masks with the restorer's maps of the element words
    _sharpen_element_masks(analysis, chosen, masks, restorer, params, on_step, cancel)
    # 3. every chosen face restored in one call
    jobs = [_crop_job(face, masks, overlaps) for face in chosen]
    placed = _placing_previews(on_step, analysis, chosen, jobs)
    restored = restorer.restore(jobs, params, on_step=placed, cancel=cancel)
    # 4. one paste-back composition, identity scores, sidecar (a cancel still counts)
    check_cancel = cancel_checker(cancel)
    check_cancel()
    image, alpha = _compose(analysis, chosen, restored)
    outcomes = _outcomes(analysis, chosen, image, check_cancel)
    extra = {**restored.sidecar, "seconds": round(time.perf_counter() - start, 3)}
    sidecar = _sidecar(analysis, chosen, outcomes, restorer.name, restored.params, extra)
    return PhotoResult(
        image,
        outcomes,
        sidecar,
        restorer.name,
        analysis.backend,
        alpha,
        [w for f in chosen for w in f.warnings] + restored.warnings,
        engine_result=restored.engine_result,
        attention_element_masks=_attention_masks(analysis, chosen, restored),
        left_alone=_left_alone(analysis, chosen),
    )


def _unchanged_result(
    analysis: PhotoAnalysis, restorer: CropRestorer, params: EditedIDParams, start: float
) -> PhotoResult:
    """No face to restore by default: the edited photo unchanged, saying why per face."""
    left = _left_alone(analysis, [])
    extra = {"seconds": round(time.perf_counter() - start, 3)}
    sidecar = _sidecar(analysis, [], [], restorer.name, params, extra)
    warnings = [f"Face {index + 1} left as edited: {why}." for index, why in left]
    return PhotoResult(
        analysis.edited.copy(),
        [],
        sidecar,
        restorer.name,
        analysis.backend,
        np.zeros(analysis.edited.shape[:2], np.float32),
        warnings,
        left_alone=left,
    )


def restore_photo(
    original: np.ndarray,
    edited: np.ndarray,
    params: EditedIDParams | None = None,
    faces: FaceSelection = None,
    on_step: Callable | None = None,
    cancel=None,
    *,
    restorer: CropRestorer,
    analysis: PhotoAnalysis | None = None,
    masks: dict[int, MaskPair] | None = None,
    overlaps: dict[int, tuple[float, float]] | None = None,
    backend: str = "auto",
    overrides: dict[int, int | None] | None = None,
) -> PhotoResult:
    """`restore_analysis` on a photo pair, analysing it first unless `analysis` is given."""
    start = time.perf_counter()
    if analysis is None:
        size = restorer.crop_size(params or EditedIDParams())
        analysis = analyze_photos(
            original, edited, backend=backend, overrides=overrides, crop_size=size or 512
        )
    result = restore_analysis(
        analysis,
        restorer,
        params,
        faces=faces,
        masks=masks,
        overlaps=overlaps,
        on_step=on_step,
        cancel=cancel,
    )
    result.sidecar["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _sharpen_element_masks(
    analysis: PhotoAnalysis,
    chosen: list[PhotoFace],
    masks: dict[int, MaskPair] | None,
    restorer: CropRestorer,
    params: EditedIDParams,
    on_step: Callable | None = None,
    cancel=None,
) -> None:
    """Automatic element masks combined with the restorer's element maps (its own
    progress stage, cancellable), in place; user-painted element masks are left alone."""
    auto = [f for f in chosen if (masks or {}).get(f.index, (None, None))[1] is None]
    if not auto:
        return
    maps = restorer.element_maps(
        [f.edited_crop.image for f in auto], params, on_step=on_step, cancel=cancel
    )
    for face, amap in zip(auto, maps or [], strict=False):
        attention = element_mask_from_attention(amap)
        face.crop_element_mask = combine_element_masks(face.crop_element_mask, attention)
        face.auto_element_mask = to_photo(
            face.crop_element_mask, face.edited_crop, analysis.edited.shape[:2]
        )


def _crop_job(
    face: PhotoFace,
    masks: dict[int, MaskPair] | None,
    overlaps: dict[int, tuple[float, float]] | None,
) -> CropJob:
    face_mask, element_mask = _crop_masks(face, masks)
    return CropJob(
        face.original_crop.image,
        face.edited_crop.image,
        face_mask,
        element_mask,
        original_valid=face.original_crop.valid,
        overlap=(overlaps or {}).get(face.index),
        name=f"face {face.index + 1}",
        require_element=False,  # no element found: restore the identity only
    )


def _attention_masks(
    analysis: PhotoAnalysis, chosen: list[PhotoFace], restored: RestoredCrops
) -> dict[int, np.ndarray]:
    """The restorer's element maps of the edited branch as photo-sized masks the user can
    adopt (prompt-to-prompt style local masks), by face index."""
    masks = {}
    for face, attention in zip(chosen, restored.element_attention, strict=False):
        if attention is not None:
            masks[face.index] = to_photo(
                element_mask_from_attention(attention), face.edited_crop, analysis.edited.shape[:2]
            )
    return masks


# --- files ----------------------------------------------------------------------------
def restore_photo_files(
    original_path: str | Path,
    edited_path: str | Path,
    out_path: str | Path,
    params: EditedIDParams | None = None,
    *,
    restorer: CropRestorer,
    backend: str = "auto",
    faces: FaceSelection = None,
    on_step: Callable | None = None,
    cancel=None,
    overwrite: bool = False,
    analyzer: FaceAnalyzer | None = None,
    strip_location: bool = True,
) -> PhotoResult:
    """Read two files, restore, write the result and its sidecar JSON (one unit).

    The output and the sidecar are checked (never an input, a folder or, without
    `overwrite`, an existing file) before any work; the sidecar records the sha256 of the
    bytes that were read. strip_location: the result carries no GPS position (see
    engine.io.export)."""
    from engine.io.export import check_result_target
    from engine.io.files import read_hashed
    from engine.io.images import read_rgb

    original_path, edited_path, out_path = Path(original_path), Path(edited_path), Path(out_path)
    inputs = {"original": original_path, "edited": edited_path}
    check_result_target(out_path, protected_paths=inputs, overwrite=overwrite)
    restorer.check()  # before any file is read
    params = params or EditedIDParams()
    original, original_sha = read_hashed(original_path, read_rgb)
    edited, edited_sha = read_hashed(edited_path, read_rgb)
    analysis = analyze_photos(
        original,
        edited,
        backend=backend,
        analyzer=analyzer,
        crop_size=params.resolution,
        original_name=str(original_path),
        edited_name=str(edited_path),
    )
    result = restore_analysis(
        analysis, restorer, params, faces=faces, on_step=on_step, cancel=cancel
    )
    hashes = {"original": original_sha, "edited": edited_sha}
    _write_result_files(result, inputs, hashes, out_path, overwrite, strip_location)
    return result


def _write_result_files(
    result: PhotoResult, inputs: dict[str, Path], hashes: dict[str, str], out_path: Path,
    overwrite: bool, strip_location: bool = True,
) -> None:  # fmt: skip
    """The result image with the edited file's metadata and its sidecar, as one unit."""
    from engine.io.export import save_result, sidecar_inputs, write_with_sidecar

    result.sidecar["inputs"] = sidecar_inputs(inputs, hashes)
    result.sidecar["output"] = str(out_path.resolve())
    write_with_sidecar(
        out_path,
        lambda: save_result(
            out_path,
            result.image,
            reference_path=inputs["edited"],
            changed_alpha=result.changed_alpha,
            overwrite=overwrite,
            protected_paths=tuple(inputs.values()),
            strip_location=strip_location,
        ),
        result.sidecar,
        protected_paths=inputs,
        overwrite=overwrite,
    )
