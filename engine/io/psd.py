"""A result as a layered Photoshop document (.psd; the large-document .psb form when a
side is over 30000 px), for the retouch that follows EditedID in Photoshop, GIMP, Krita
or Affinity.

Layers, bottom to top:

1. "Edited photo": the AI edit as it came in (its own 16-bit pixels for a 16-bit edit).
2. "Restored photo": the restoration at full strength, with ONE layer mask that is the
   blend EditedID used (white = restored), so painting the mask takes more or less of it.
3. "Original (aligned)", hidden: each restored face of the original, warped into the
   edited photo's frame; transparent where no face was aligned (the pipeline aligns
   faces, not whole photos).
4. The group "EditedID masks", its layers hidden: "Face 2 — face", "Face 2 — glasses"
   (the element words of the run), white = in the mask.

The document's own composite (the merged image Photoshop shows before it renders the
layers, and what viewers read) is exactly the PNG EditedID writes for the same result;
the layers rebuild it within one level (the mask is stored at the document's depth).
16-bit edits give a 16-bit document. The edited photo's ICC profile is embedded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError

PSB_SIDE = 30000  # Photoshop's limit of a .psd side; beyond it only the .psb form holds it
EDITED_LAYER = "Edited photo"
RESTORED_LAYER = "Restored photo"
ORIGINAL_LAYER = "Original (aligned)"
MASKS_GROUP = "EditedID masks"
MAX_NAME = 255  # characters of a layer name (Photoshop's limit, the legacy name's)
_ICC_RESOURCE = 1039  # Photoshop's image resource id of the ICC profile
_DPI_RESOURCE = 1005  # ResolutionInfo
_EXIF_RESOURCE = 1058  # EXIF data 1


@dataclass(frozen=True)
class Patch:
    """Pixels of a box of the photo: x0, y0, x1, y1 (end exclusive)."""

    box: tuple[int, int, int, int]
    pixels: np.ndarray


@dataclass(frozen=True)
class FaceMasks:
    """One restored face's masks in photo coordinates (HxW uint8, 255 = in the mask)."""

    number: int  # as the app shows it: 1 = leftmost face of the edited photo
    face: np.ndarray
    element: np.ndarray | None
    element_name: str  # the run's element words, e.g. "glasses"


@dataclass(frozen=True)
class ResultLayers:
    """What a layered file needs beyond the result image and its blend (changed_alpha):
    the edited photo (8-bit, upright), the restoration at full strength (RGB uint8) where
    the blend is above 0, the aligned original (RGBA uint8, alpha = where it is known) and
    each restored face's masks. With `restored` None the result layer is the result image
    itself under a mask of where it differs from the edit (merged runs carry no
    restoration of their own)."""

    edited: np.ndarray
    restored: Patch | None = None
    original: Patch | None = None
    faces: tuple[FaceMasks, ...] = ()


def psd_layers(
    image8: np.ndarray,
    blend: np.ndarray | None,
    layers: ResultLayers,
    *,
    edited16: np.ndarray | None = None,
    composite16: np.ndarray | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray | None, bool]]:
    """The document's layers bottom to top as (name, pixels, mask, visible), at the
    document's depth (uint16 pixels and masks when `edited16` is given, with the 16-bit
    result `composite16`; else uint8); the face masks are the last ones, in the group."""
    h, w = image8.shape[:2]
    edited8 = np.asarray(layers.edited)
    if edited8.shape != image8.shape:
        raise InputError(
            f"The edited photo is {edited8.shape[1]}x{edited8.shape[0]}, the result "
            f"{w}x{h}; a layered file needs both the same size."
        )
    alpha = np.zeros((h, w), np.float64) if blend is None else np.asarray(blend, np.float64)
    deep = edited16 is not None
    top = 65535.0 if deep else 255.0
    dtype = np.uint16 if deep else np.uint8
    bottom = edited16 if deep else edited8
    if layers.restored is None:  # no blend of its own: the result where it differs
        changed = np.any(image8 != edited8, axis=2) | (alpha > 0)
        alpha = changed.astype(np.float64)
    if layers.restored is None:
        restored = image8 if not deep else composite16 if composite16 is not None else bottom
    else:
        restored = _restored_pixels(image8, edited8, alpha, layers.restored, edited16)
    mask = np.clip(np.rint(np.clip(alpha, 0.0, 1.0) * top), 0, top).astype(dtype)
    out = [
        (EDITED_LAYER, bottom, None, True),
        (RESTORED_LAYER, restored, mask, True),
        (ORIGINAL_LAYER, _original_pixels(layers.original, (h, w), deep), None, False),
    ]
    scale = 257 if deep else 1
    for face in layers.faces:
        named = [("face", face.face), (face.element_name or "element", face.element)]
        for what, pixels in named:
            if pixels is None:
                continue
            grey = np.asarray(pixels, np.uint8).astype(dtype) * dtype(scale)
            out.append((f"Face {face.number} \u2014 {what}", np.dstack([grey] * 3), None, False))
    return out


def _restored_pixels(image8, edited8, alpha, restored: Patch, edited16) -> np.ndarray:
    """The restored layer at the document's depth: the restoration at full strength in
    its box (scaled to 16 bit in a 16-bit document, whose result engine.io.export's
    deep_blend makes with the same blend), the edit elsewhere."""
    layer = edited8.copy() if edited16 is None else np.array(edited16, np.uint16)
    x0, y0, x1, y1 = restored.box
    pixels = np.asarray(restored.pixels)
    layer[y0:y1, x0:x1] = pixels if edited16 is None else pixels.astype(np.uint16) * 257
    return layer


def _original_pixels(original: Patch | None, shape, deep: bool) -> np.ndarray:
    layer = np.zeros((*shape, 4), np.uint16 if deep else np.uint8)
    if original is not None:
        x0, y0, x1, y1 = original.box
        pixels = np.asarray(original.pixels)
        layer[y0:y1, x0:x1] = pixels.astype(np.uint16) * 257 if deep else pixels
    return layer


def encode_psd(
    composite: np.ndarray,
    layers: list[tuple[str, np.ndarray, np.ndarray | None, bool]],
    *,
    icc: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    exif: bytes | None = None,
) -> bytes:
    """The document's bytes: `layers` as `psd_layers` gives them (the face masks, named
    "Face N — ...", go into the masks group), `composite` (HxWx3 uint8 or uint16) as its
    merged image, exactly."""
    from PIL import Image
    from psd_tools import PSDImage
    from psd_tools.psd import PSD

    h, w = composite.shape[:2]
    depth = 16 if composite.dtype == np.uint16 else 8
    # The document is built on a record of our own and that record is written: save()
    # would first render the layers into a preview with psd-tools' compositor (slow on a
    # big photo, refused past 30000 px) only for us to replace it by our own composite.
    blank = io.BytesIO()
    PSDImage.new("RGB", (w, h), depth=depth).save(blank)
    record = PSD.read(io.BytesIO(blank.getvalue()))
    document = PSDImage(record)
    group = None
    names: dict[str, str] = {}  # a placeholder name -> the layer's name
    masks: dict[str, np.ndarray] = {}
    for index, (name, pixels, mask, visible) in enumerate(layers):
        if name.startswith("Face "):
            if group is None:
                group = document.create_group(name=MASKS_GROUP)
            parent = group
        else:
            parent = document
        # the element words are the user's: any text, which the legacy MacRoman name
        # cannot hold; the names are set in _finish_layers
        token = f"editedid-layer-{index}"
        names[token] = name
        layer = parent.create_pixel_layer_from_array(np.ascontiguousarray(pixels), name=token)
        layer.visible = visible
        if mask is not None:
            # the mask's place and size; its pixels are written at full depth below
            layer.create_mask(Image.new("L", (w, h), 0))
            masks[token] = mask
    _finish_layers(record, names, masks)
    record.image_data.set_data(_planes(composite), record.header)
    _set_resources(record, icc, dpi, exif)
    out = io.BytesIO()
    record.write(out)
    return out.getvalue()


def _planes(array: np.ndarray) -> list[bytes]:
    big = array.astype(">u2") if array.dtype == np.uint16 else array
    return [np.ascontiguousarray(big[:, :, c]).tobytes() for c in range(array.shape[2])]


def _finish_layers(record, names: dict[str, str], masks: dict[str, np.ndarray]) -> None:
    """Each layer named (placeholder -> `names`): in Unicode, which GIMP and Photoshop
    read (the em dash, the user's element words), and in MacRoman as the legacy name
    ('?' for what it lacks; 255 characters at most, Photoshop's limit); each masked
    layer's mask channel replaced by its `masks` pixels at the file's depth (psd-tools
    makes masks from 8-bit images)."""
    from psd_tools.constants import ChannelID, Tag
    from psd_tools.psd.tagged_blocks import TaggedBlocks

    info = record.layer_and_mask_information.layer_info  # a new document has no Lr16 block
    wanted = dict(masks)
    header = record.header
    for layer, channels in zip(info.layer_records, info.channel_image_data, strict=True):
        token = layer.name
        if layer.tagged_blocks is None:
            layer.tagged_blocks = TaggedBlocks()
        if token in names:
            name = names.pop(token)[:MAX_NAME]
            layer.name = name.encode("mac_roman", "replace").decode("mac_roman")
            layer.tagged_blocks.set_data(Tag.UNICODE_LAYER_NAME, name)
        elif Tag.UNICODE_LAYER_NAME not in layer.tagged_blocks:
            layer.tagged_blocks.set_data(Tag.UNICODE_LAYER_NAME, layer.name)
        if token not in wanted:
            continue
        mask = wanted.pop(token)
        for entry, data in zip(layer.channel_info, channels, strict=True):
            if entry.id == ChannelID.USER_LAYER_MASK:
                big = mask.astype(">u2") if mask.dtype == np.uint16 else mask
                data.set_data(
                    np.ascontiguousarray(big).tobytes(),
                    mask.shape[1],
                    mask.shape[0],
                    header.depth,
                    header.version,
                )
                entry.length = 2 + len(data.data)
    if wanted or names:
        lost = ", ".join(names.get(t, t) for t in [*wanted, *names])
        raise InputError(f"The layered file lost these layers or their masks: {lost}.")


def _set_resources(record, icc: bytes | None, dpi, exif: bytes | None) -> None:
    import struct

    from psd_tools.psd.image_resources import ImageResource

    if icc:
        record.image_resources[_ICC_RESOURCE] = ImageResource(key=_ICC_RESOURCE, data=icc)
    if dpi:
        # ResolutionInfo: 16.16 fixed pixels per inch, unit inch, width/height unit inch
        data = b"".join(
            struct.pack(">IHH", round(float(v) * 65536), 1, 1) for v in (dpi[0], dpi[1])
        )
        record.image_resources[_DPI_RESOURCE] = ImageResource(key=_DPI_RESOURCE, data=data)
    if exif:  # the TIFF-structured EXIF, without JPEG's "Exif\0\0" prefix
        raw = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        record.image_resources[_EXIF_RESOURCE] = ImageResource(key=_EXIF_RESOURCE, data=raw)


def is_large(shape) -> bool:
    """Whether a photo needs the large-document form (.psb)."""
    return max(shape[:2]) > PSB_SIDE


def large_note(out: Path, shape) -> str | None:
    if is_large(shape) and out.suffix.lower() != ".psb":
        return (
            f"{out.name}: saved in Photoshop's large-document form (PSB), as a side is over "
            f"{PSB_SIDE} px; name it .psb if an application does not open it."
        )
    return None
