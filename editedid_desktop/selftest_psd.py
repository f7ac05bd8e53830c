"""The self-test's "layered PSD" check: a small result written as a Photoshop document
through the engine's own writer (`engine.io.export.save_result`), read back with
psd-tools' reader, so an installation missing psd-tools or a part of it (its RLE codec
is a compiled module) says so before a client's Save As does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZE = 24  # px a side: a few kilobytes of document


def check_psd(state: dict) -> str:
    from PIL import Image
    from psd_tools import PSDImage

    from engine.io.export import save_result
    from engine.io.psd import FaceMasks, Patch, ResultLayers

    folder = Path(state["tmp"])
    ramp = np.linspace(0, 255, SIZE, dtype=np.float64)
    edited = np.dstack([np.tile(ramp, (SIZE, 1)).astype(np.uint8)] * 3)
    restored = np.full((SIZE // 2, SIZE // 2, 3), (200, 90, 40), np.uint8)
    blend = np.zeros((SIZE, SIZE), np.float32)
    blend[6:18, 6:18] = 0.5
    a = blend[..., None].astype(np.float64)
    full = edited.astype(np.float64).copy()
    full[6:18, 6:18] = restored
    image = np.clip(edited * (1 - a) + full * a + 0.5, 0, 255).astype(np.uint8)
    face = (blend > 0).astype(np.uint8) * 255
    layers = ResultLayers(
        edited, Patch((6, 6, 18, 18), restored), None, (FaceMasks(1, face, None, "glasses"),)
    )
    reference = folder / "psd-edited.png"
    Image.fromarray(edited).save(reference)
    out = folder / "psd-result.psd"
    save_result(out, image, reference_path=reference, changed_alpha=blend, layers=layers)
    document = PSDImage.open(out)
    names = [layer.name for layer in document.descendants()]
    expected = ["Edited photo", "Restored photo", "Original (aligned)", "EditedID masks",
                "Face 1 \u2014 face"]  # fmt: skip
    if names != expected:
        raise RuntimeError(f"layers read back: {names}")
    mask = np.rint(document[1].numpy("mask")[..., 0] * 255).astype(np.uint8)
    if not np.array_equal(mask, np.rint(blend * 255).astype(np.uint8)):
        raise RuntimeError("the restored layer's mask is not the blend")
    if not np.array_equal(np.rint(document.numpy() * 255).astype(np.uint8), image):
        raise RuntimeError("the document's composite is not the result")
    return f"{SIZE}x{SIZE}, {len(names)} layers and the blend mask read back"
