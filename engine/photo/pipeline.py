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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.diffusion.progress import StepInfo, cancel_checker
from engine.faces.types import FaceAnalyzer
from engine.io.psd import FaceMasks, Patch, ResultLayers
from engine.params import EditedIDParams
from engine.photo.analysis import (
    THUMB_SIZE,
    PhotoAnalysis,
    PhotoFace,
    analyze_photos,
    ensure_crop_size,
)
from engine.photo.contract import CropJob, CropRestorer, RestoredCrops
from engine.photo.masks import (
    as_mask_u8,
    combine_element_masks,
    crop_patch_to_photo,
    element_mask_from_attention,
    to_photo,
)
from engine.photo.pasteback import Composition, PasteItem, compose
from engine.photo.report import FaceOutcome, PhotoResult, face_outcomes, photo_sidecar
from engine.photo.selection import (
    FACE_SELECTIONS,
    FACES_DEFAULT,
    FaceSelection,
    MaskPair,
    crop_masks,
    faces_left_alone,
    select_faces,
)

__all__ = [
    "FACES_DEFAULT",
    "FACE_SELECTIONS",
    "THUMB_SIZE",
    "FaceOutcome",
    "FacePreview",
    "FaceSelection",
    "MaskPair",
    "PhotoAnalysis",
    "PhotoFace",
    "PhotoResult",
    "PhotoStepInfo",
    "analyze_photos",
    "restore_analysis",
    "restore_photo",
    "restore_photo_files",
]


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


# --- composition (engine.photo.report: outcomes and sidecar) ------------------------
def _compose(
    analysis: PhotoAnalysis, chosen: list[PhotoFace], restored: RestoredCrops
) -> Composition:
    """Paste all faces in one composition (no face re-blends another's pixels)."""
    items = [
        PasteItem(crop, face.edited_crop, region, keep)
        for face, crop, region, keep in zip(
            chosen, restored.crops, restored.regions, restored.keeps, strict=True
        )
    ]
    return compose(analysis.edited, items)


def _result_layers(
    analysis: PhotoAnalysis,
    chosen: list[PhotoFace],
    composition: Composition,
    masks: dict[int, MaskPair] | None,
    params: EditedIDParams,
) -> ResultLayers:
    """The layers of a .psd: the restoration at full strength, each chosen face's
    original aligned into the edited photo, and the masks the restore used (the
    user's where painted, else the automatic ones), in photo coordinates."""
    restored = None
    if composition.restored is not None and composition.box is not None:
        restored = Patch(composition.box, composition.restored)
    element = " and ".join(w.strip() for w in params.element_words if w.strip()) or "element"
    faces = []
    for face in chosen:
        user_face, user_element = (masks or {}).get(face.index, (None, None))
        faces.append(
            FaceMasks(
                face.number,
                _kept(user_face, "face mask", face.auto_face_mask),
                _kept(user_element, "element mask", face.auto_element_mask),
                element,
            )
        )
    return ResultLayers(
        analysis.edited, restored, _aligned_original(analysis, chosen), tuple(faces)
    )


def _kept(user: np.ndarray | None, what: str, auto: np.ndarray) -> np.ndarray:
    """A user mask as this run used it: a copy (a mask document may be painted in place
    after the run), as 0..255 whatever its type; else the automatic one."""
    return auto if user is None else np.array(as_mask_u8(user, what), copy=True)


def _aligned_original(analysis: PhotoAnalysis, chosen: list[PhotoFace]) -> Patch | None:
    """Each chosen face of the original, aligned into its edited face's place (RGBA,
    transparent where the original was not seen), over the union of their boxes."""
    shape = analysis.edited.shape
    patches = []
    for face in chosen:
        crop = face.original_crop
        if crop is None:
            continue
        known = (
            crop.valid if crop.valid is not None else np.full(crop.image.shape[:2], 255, np.uint8)
        )
        placed = crop_patch_to_photo(crop.image, known, face.edited_crop, shape)
        if placed is not None:
            patches.append(placed)
    if not patches:
        return None
    x0 = min(box[0] for _, box in patches)
    y0 = min(box[1] for _, box in patches)
    x1 = max(box[2] for _, box in patches)
    y1 = max(box[3] for _, box in patches)
    union = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
    for rgba, (a0, b0, a1, b1) in patches:
        spot = union[b0 - y0 : b1 - y0, a0 - x0 : a1 - x0]
        seen = rgba[..., 3] > 0
        spot[seen] = rgba[seen]
    return Patch((x0, y0, x1, y1), union)


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
        analysis = ensure_crop_size(analysis, size)
    chosen = select_faces(analysis, faces)
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
    composition = _compose(analysis, chosen, restored)
    image, alpha = composition.image, composition.alpha
    outcomes = face_outcomes(analysis, chosen, image, check_cancel)
    extra = {**restored.sidecar, "seconds": round(time.perf_counter() - start, 3)}
    sidecar = photo_sidecar(analysis, chosen, outcomes, restorer.name, restored.params, extra)
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
        left_alone=faces_left_alone(analysis, chosen),
        layers=_result_layers(analysis, chosen, composition, masks, params),
    )


def _unchanged_result(
    analysis: PhotoAnalysis, restorer: CropRestorer, params: EditedIDParams, start: float
) -> PhotoResult:
    """No face to restore by default: the edited photo unchanged, saying why per face."""
    left = faces_left_alone(analysis, [])
    extra = {"seconds": round(time.perf_counter() - start, 3)}
    sidecar = photo_sidecar(analysis, [], [], restorer.name, params, extra)
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
        layers=ResultLayers(analysis.edited),
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
    face_mask, element_mask = crop_masks(face, masks)
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
            layers=result.layers,
        ),
        result.sidecar,
        protected_paths=inputs,
        overwrite=overwrite,
    )
