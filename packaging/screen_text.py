"""Is the text in a screenshot readable, or is every glyph an empty box?

Without a usable font (no fontconfig configuration, no font file) Qt draws each glyph as
a hollow rectangle of one size. This looks at the glyphs of one strip of a screenshot,
the main window's menu bar (`&File &Edit &View &Run &Help`, plain text on a flat
background): each connected blob of "ink" (pixels that differ from the strip's
background colour) is a glyph; a glyph whose bounding box is inked all round and empty
inside is a box. Real letters (F, i, l, e, d, ...) never are.

    python packaging/screen_text.py SHOT.png X Y WIDTH [HEIGHT]   # prints the verdict

Exit status 0: readable; 1: empty boxes; 2: too few glyphs to say (not drawn yet).

No OCR: the check needs only numpy and scipy (already in the environment).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MIN_GLYPHS = 6  # "&File &Edit" alone has 8
INK = 48  # colour distance from the background that counts as ink (0-255 scale)


@dataclass(frozen=True)
class Verdict:
    glyphs: int  # blobs big enough to be a glyph
    boxes: int  # of them, hollow rectangles
    readable: bool

    def __str__(self) -> str:
        what = "readable text" if self.readable else "NO readable text"
        return f"{what}: {self.glyphs} glyphs, {self.boxes} of them empty boxes"


def ink_mask(strip: np.ndarray) -> np.ndarray:
    """Pixels whose colour is far from the strip's most common colour (its background)."""
    pixels = strip.reshape(-1, strip.shape[-1]).astype(np.int16)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return np.abs(strip.astype(np.int16) - background).max(axis=-1) > INK


def is_box(blob: np.ndarray) -> bool:
    """A hollow rectangle: its outline at least 90% inked, its inside at most 10%."""
    h, w = blob.shape
    if h < 5 or w < 4:
        return False
    outline = np.concatenate([blob[0], blob[-1], blob[:, 0], blob[:, -1]])
    inside = blob[2:-2, 2:-2]
    return outline.mean() >= 0.9 and (inside.size == 0 or inside.mean() <= 0.1)


def judge(strip: np.ndarray, min_glyphs: int = MIN_GLYPHS) -> Verdict:
    """Verdict on an RGB strip of text: readable when it has at least `min_glyphs`
    glyphs and fewer than a quarter of them are boxes."""
    mask = ink_mask(strip[..., :3])
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    glyphs = boxes = 0
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        blob = labels[found] == index
        if blob.sum() < 6 or blob.shape[0] < 5:  # anti-aliasing specks, underlines
            continue
        glyphs += 1
        boxes += is_box(blob)
    readable = glyphs >= min_glyphs and boxes * 4 < glyphs
    return Verdict(glyphs, boxes, readable)


def menu_strip(shot: np.ndarray, x: int, y: int, width: int, height: int = 24) -> np.ndarray:
    """The menu bar of a window whose client area starts at (x, y) on the screen."""
    return shot[y : y + height, x : x + min(width, 320)]


def main(argv: list[str]) -> int:
    from PIL import Image

    path, *numbers = argv
    x, y, width, *rest = (int(n) for n in numbers)
    shot = np.asarray(Image.open(path).convert("RGB"))
    verdict = judge(menu_strip(shot, x, y, width, *rest))
    print(f"screen_text: {verdict}")
    if verdict.readable:
        return 0
    return 1 if verdict.glyphs >= MIN_GLYPHS else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
